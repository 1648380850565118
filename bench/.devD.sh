export LD_LIBRARY_PATH=/usr/local/cuda/lib64
export MELPIPE=.carry/melpipe
W=/tmp/mp
GPU_PARITY= SWEEP=1 bench/gpu_bench.sh > $OUT/all.log 2>&1
ab() { local b=$1 l=$2; shift 2
  for i in 1 2 3 4 5; do rm -rf $W/o; t0=$(date +%s%N); env "$@" $b run $W/seed -o $W/o -q 2>/dev/null; t1=$(date +%s%N); echo "$l $(( (t1-t0)/1000000 ))"; done; }
{ ab .carry/melpipe.C C_auto; ab .carry/melpipe D_auto; ab .carry/melpipe.C C_auto; ab .carry/melpipe D_auto; } > $OUT/ab.log
for d in cuda cpu; do bench/journal_overhead.sh $W/seed $W/jo $d 5 >> $OUT/journal.log 2>&1; done
rm -rf $W/o; $MELPIPE -v run $W/seed -o $W/o --device cuda 2>&1 | grep -E "timeline|time:|memory:" > $OUT/timeline.log
rm -rf $W/o; $MELPIPE -v run $W/seed -o $W/o 2>&1 | grep -E "timeline|time:|device" >> $OUT/timeline.log
