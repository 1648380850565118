#!/usr/bin/env bash
# One call on the GPU machine: inputs in other formats and at other rates (docs/PERFORMANCE.md,
# 'Inputs: FLAC and resampling'), each against its baseline in the same call.
#   1. the seed dataset as WAV and the same clips as FLAC (melpipe generate --format flac):
#      bench/bench.py on each, cuda and cpu, with the I/O floor;
#   2. the seed's clips at 16 kHz (10 s, 160,000 samples) with --resample to 4096 Hz, against its
#      I/O floor and the torchaudio seed-design pipeline doing resample + MelSpectrogram on the GPU;
#   3. the seed as WAV, alternated A/B against the previous binary (BASE), both devices.
# Logs go to $OUT (the device tool's folder) or /tmp.
# usage: MELPIPE=.carry/melpipe BASE=.carry/melpipe-prev bench/formats_bench.sh [FILES]
set -uo pipefail
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
M=$(realpath "${MELPIPE:-.carry/melpipe}")
B=${BASE:+$(realpath "$BASE")}
N=${1:-39563}
W=${WORK:-/tmp/mpf}
LOG=${OUT:-/tmp}
mkdir -p "$W" "$LOG"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$LOG/machine.txt"
nproc >> "$LOG/machine.txt"
gen() { [ -d "$W/$1" ] || { /usr/bin/time -f "$1: generated in %e s" "$M" generate "$W/$1" --files "$N" "${@:2}" 2>&1 | tail -1; }; }
gen seed
gen seed_flac --format flac
gen seed_16k --sample-rate 16000 --samples 160000
du -sh "$W"/seed* | tee -a "$LOG/machine.txt"
# Correctness first: the GPU against the CPU on resampled and FLAC inputs (1 f16 ulp contract).
for d in seed_16k:--resample seed_flac:; do
    name=${d%%:*}; extra=${d#*:}
    mkdir -p "$W/sub_$name"
    find "$W/$name" -type f | sort | head -2000 > "$W/sub_$name.list"
    for dev in cuda cpu; do
        rm -rf "$W/cmp_${name}_$dev"
        "$M" -q run "@$W/sub_$name.list" -o "$W/cmp_${name}_$dev" --device "$dev" $extra
    done
    python3 scripts/compare_outputs.py "$W/cmp_${name}_cuda" "$W/cmp_${name}_cpu" 2>&1 \
        | tee -a "$LOG/compare.log"
done
for d in seed seed_flac; do
    python3 bench/bench.py --data "$W/$d" --out "$W/bench_$d" --melpipe "$M" --devices cuda,cpu \
        --repeat 3 --json "$LOG/bench_$d.json" 2>&1 | tail -8 | tee "$LOG/bench_$d.log"
done
python3 bench/bench.py --data "$W/seed_16k" --out "$W/bench_16k" --melpipe "$M" --devices cuda,cpu \
    --torchaudio --torchaudio-resample-from 16000 --repeat "${REPEAT_16K:-2}" \
    --json "$LOG/bench_16k.json" -- --resample 2>&1 | tail -8 | tee "$LOG/bench_16k.log"
if [ -n "$B" ]; then
    for dev in cuda cpu; do
        AB_OUT=$W/ab bench/ab.sh "$W/seed" "$dev" "${AB_REPS:-7}" "$B" "$M" 2>&1 | tee -a "$LOG/ab.log"
    done
fi
