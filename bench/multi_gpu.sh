#!/usr/bin/env bash
# Issue 6: `--device cuda:all` against one GPU, in the same call on a multi-GPU host.
# Two workloads: the seed's parameters (I/O- and host-bound: a GPU is idle most of the time),
# and a compute-heavy one (n_fft 256, hop 2: 257 frames of 256 points per row, the generic
# kernel) where the GPUs are the bottleneck. Logs go to $OUT or /tmp.
# usage: MELPIPE=.carry/melpipe bench/multi_gpu.sh
set -uo pipefail
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
M=${MELPIPE:-.carry/melpipe}
W=${WORK:-/tmp/mg}
LOG=${OUT:-/tmp}
mkdir -p "$W"
nvidia-smi --query-gpu=index,name,driver_version,memory.total --format=csv | tee "$LOG/machine.txt"
nvidia-smi topo -m >> "$LOG/machine.txt" 2>&1
nproc >> "$LOG/machine.txt"
[ -d "$W/seed" ] || "$M" generate "$W/seed" --files 39563 2>&1 | tail -1
echo "== seed parameters"
python3 bench/bench.py --data "$W/seed" --out "$W/b1" --melpipe "$M" --devices cuda:0,cuda:all,cpu \
    --repeat 3 --json "$LOG/seed.json" 2>&1 | grep -v WARN | tee "$LOG/seed.log"
echo "== compute-heavy: n_fft 256, hop 2, 64 mels"
python3 bench/bench.py --data "$W/seed" --out "$W/b2" --melpipe "$M" --devices cuda:0,cuda:all \
    --repeat 3 --json "$LOG/heavy.json" -- --n-fft 256 --win-length 256 --hop-length 2 --n-mels 64 \
    2>&1 | grep -v WARN | tee "$LOG/heavy.log"
# The status line's view of both GPUs during one heavy run.
rm -rf "$W/o"
"$M" run "$W/seed" -o "$W/o" --device cuda:all --n-fft 256 --win-length 256 --hop-length 2 \
    --n-mels 64 2>&1 | grep -v WARN | tail -8 | tee "$LOG/heavy_run.log"
python3 - "$W/o" "$LOG" <<'PY'
import json, sys
m = json.load(open(sys.argv[1] + "/manifest.json"))
print("device:", m["device"], "| timings:", m["timings"])
PY
