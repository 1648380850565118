#!/usr/bin/env bash
# Whether reading inputs out of the page cache and writing outputs into it slow each other on
# this machine: alternates REPS times (a) bench/wbench.c writing BYTES into one new file from 4
# pwrite threads (writeback after each 2 MiB), alone; (b) the same while 16 parallel `cat` read
# every WAV of DATA (warm); (c) the readers alone. melpipe does (a) and (c) at once.
# usage: bench/rw_contention.sh DATA [BYTES (1050160528, the seed's outputs)] [REPS (4)]
# (run from the repository root; writes into $WORK, /tmp/rw by default, on the output disk)
set -uo pipefail
DATA=$1; BYTES=${2:-1050160528}; REPS=${3:-4}
W=${WORK:-/tmp/rw}; mkdir -p "$W"
cc -O2 -pthread bench/wbench.c -o "$W/wbench"
find "$DATA" -name '*.wav' -print0 > "$W/list"
xargs -0 -P16 -n512 cat < "$W/list" > /dev/null   # warm the page cache
ms() { echo $(( ($2 - $1) / 1000000 )); }
for _ in $(seq "$REPS"); do
    rm -f "$W/x"; sync
    echo -n "write alone:        "; "$W/wbench" "$W/x" "$BYTES" 4 pwrite 0 2097152 1
    rm -f "$W/x"; sync
    t0=$(date +%s%N)
    xargs -0 -P16 -n64 cat < "$W/list" > /dev/null &
    echo -n "write with readers: "; "$W/wbench" "$W/x" "$BYTES" 4 pwrite 0 2097152 1
    wait; t1=$(date +%s%N)
    echo "readers with the write: done after $(ms "$t0" "$t1") ms"
    rm -f "$W/x"; sync
    t0=$(date +%s%N); xargs -0 -P16 -n64 cat < "$W/list" > /dev/null; t1=$(date +%s%N)
    echo "readers alone:          $(ms "$t0" "$t1") ms"
done
rm -f "$W/x"
