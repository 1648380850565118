#!/usr/bin/env bash
# One call on the GPU machine: correctness (scripts/gpu_check.sh) then the benchmark
# (bench/bench.py: I/O floor, melpipe cuda and cpu, the torchaudio seed-design pipeline, warm and
# cold). Logs go to $OUT (the device tool's folder) or /tmp.
# usage: MELPIPE=.carry/melpipe bench/gpu_bench.sh [--golden]   (--golden: regenerate goldens first)
# SWEEP=0 skips the knob sweep (bench/sweep.sh) that follows the benchmark.
set -uo pipefail
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
M=${MELPIPE:-.carry/melpipe}
W=${WORK:-/tmp/mp}
LOG=${OUT:-/tmp}
mkdir -p "$W"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm --format=csv | tee "$LOG/machine.txt"
nproc >> "$LOG/machine.txt"; free -g >> "$LOG/machine.txt"; df -h /tmp >> "$LOG/machine.txt"
if [ "${1:-}" = "--golden" ]; then
    python3 scripts/make_golden.py "$W/golden" && tar czf "$LOG/golden.tgz" -C "$W" golden
    mkdir -p tests && rm -rf tests/golden && cp -r "$W/golden" tests/golden
fi
MELPIPE=$M WORK=$W/check scripts/gpu_check.sh 2>&1 | tee "$LOG/gpu_check.log"
# The kernel-level parity and timing example, when built and carried
# (cargo build --release --example gpu_parity -p melpipe-cuda; GPU_PARITY=path/to/it).
if [ -n "${GPU_PARITY:-}" ]; then
    "$GPU_PARITY" "$W/parity" --no-time 2>&1 | tee "$LOG/gpu_parity.log"
    python3 scripts/gpu_parity.py "$W/parity" 2>&1 | tee -a "$LOG/gpu_parity.log"
fi
[ -d "$W/seed" ] || "$M" generate "$W/seed" --files 39563 2>&1 | tail -1
python3 bench/bench.py --data "$W/seed" --out "$W/bench" --melpipe "$M" --devices cuda,cpu \
    --torchaudio --cold --repeat 3 --json "$LOG/bench.json" 2>&1 | tee "$LOG/bench.log"
if [ "${SWEEP:-1}" = 1 ]; then
    bench/sweep.sh "$W/seed" "$W/sweep" cuda 3 2>&1 | tee "$LOG/sweep_cuda.log"
    bench/sweep.sh "$W/seed" "$W/sweep" cpu 3 2>&1 | tee "$LOG/sweep_cpu.log"
fi
