#!/usr/bin/env bash
# GPU acceptance check, run on the GPU machine from the repository root (no cargo there: pass the
# release binary built elsewhere in MELPIPE). Checks, on the seed-size dataset and the golden set:
#   1. GPU vs CPU backend: within 1 f16 ulp on >= 99.9 % of values, same statuses, same mapping;
#   2. GPU vs torchaudio (float64) on the golden cases, within the tolerance of docs/FORMAT.md (Accuracy);
#   3. `melpipe verify` accepts every output; the PyTorch snippet of docs/FORMAT.md runs on real output;
#   4. device selection (auto, fallback, --device cuda without a device); Ctrl-C at 8 moments of a
#      GPU run exits 130 and the resume is byte-identical;
#   5. a GPU run's CPU head (its first files computed on the CPU while the GPU starts): exactly
#      the CPU run's rows there, exactly the headless GPU run's rows after;
#   6. whole 10 s speech clips with every frame kept (n_fft 512 win 400, n_fft 400 with top_db):
#      the tiled kernel through the whole pipeline, GPU vs CPU.
# The GPU-vs-CPU comparisons run with --cpu-head 0, so that the GPU computes every file.
# usage: MELPIPE=.carry/melpipe WORK=/tmp/mp scripts/gpu_check.sh [files]
set -euo pipefail
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
M=${MELPIPE:-target/release/melpipe}
W=${WORK:-/tmp/melpipe-check}
FILES=${1:-39563}
mkdir -p "$W"
[ -d "$W/data" ] || "$M" generate "$W/data" --files "$FILES" --corrupt 17
echo "== full dataset: GPU vs CPU"
"$M" run "$W/data" -o "$W/gpu0" --device cuda --cpu-head 0 --force
"$M" run "$W/data" -o "$W/cpu" --device cpu --force -q
"$M" verify "$W/gpu0"
"$M" verify "$W/cpu"
python3 scripts/compare_outputs.py "$W/gpu0" "$W/cpu"
echo "== full dataset: a GPU run with its default CPU head"
"$M" run "$W/data" -o "$W/gpu" --device cuda --force
"$M" verify "$W/gpu"
python3 - "$W" <<'PY'
import json, sys
import numpy as np
w = sys.argv[1]
m = json.load(open(f"{w}/gpu/manifest.json"))
head = m.get("cpu_head_files", 0)
assert head > 0, "no CPU head in a default GPU run"
rows = m["files"][head]["first_row"] if head < len(m["files"]) else m["rows"]
f = {k: np.load(f"{w}/{k}/features.npy", mmap_mode="r").view(np.uint16) for k in ("gpu", "gpu0", "cpu")}
assert np.array_equal(f["gpu"][:rows], f["cpu"][:rows]), "head rows differ from the CPU run's"
assert np.array_equal(f["gpu"][rows:], f["gpu0"][rows:]), "rows after the head differ from the GPU run's"
print(f"CPU head: {head} files, {rows} rows equal to the CPU run's; the other rows equal to --cpu-head 0")
PY
echo "== pool none, f32, top_db 60 on a slice: GPU vs CPU"
mkdir -p "$W/slice" && find "$W/data" -name '*.wav' | sort > "$W/slice/all.txt"
head -500 "$W/slice/all.txt" > "$W/slice/list.txt"
"$M" run "@$W/slice/list.txt" -o "$W/gpu_none" --device cuda --cpu-head 0 --pool none --dtype f32 --top-db 60 --force -q
"$M" run "@$W/slice/list.txt" -o "$W/cpu_none" --device cpu --pool none --dtype f32 --top-db 60 --force -q
python3 scripts/compare_outputs.py "$W/gpu_none" "$W/cpu_none"
echo "== whole 10 s clips at 16 kHz, every frame (the tiled kernel): GPU vs CPU"
[ -d "$W/speech" ] || "$M" generate "$W/speech" --files 300 --sample-rate 16000 --samples 160000 --corrupt 7 -q
WHOLE="--clip-samples 160000 --long-win 160000 --long-hop 160000 --short-win 160000 --short-hop 160000 --sample-rate 16000 --hop-length 160 --n-mels 80 --pool none"
for fft in "--n-fft 512 --win-length 400" "--n-fft 400 --win-length 400 --top-db 80"; do
    "$M" run "$W/speech" -o "$W/gpu_speech" --device cuda --cpu-head 0 $WHOLE $fft --force -q
    "$M" run "$W/speech" -o "$W/cpu_speech" --device cpu $WHOLE $fft --force -q
    "$M" verify "$W/gpu_speech"
    python3 scripts/compare_outputs.py "$W/gpu_speech" "$W/cpu_speech"
done
echo "== golden cases (torchaudio float64) on the GPU"
python3 scripts/check_golden.py --melpipe "$M" --device cuda --work "$W/golden"
echo "== docs/FORMAT.md PyTorch snippet"
rm -rf "$W/snippet" && mkdir -p "$W/snippet"
"$M" run "@$W/slice/list.txt" -o "$W/snippet/feats" --device cuda -q
python3 - "$W/snippet" <<'PY'
import os, re, sys
readme = open("docs/FORMAT.md").read()
start = readme.index("<!-- snippet: torch")
code = readme[start:]
code = code[code.index("```python\n") + 10:]
code = code[:code.index("```")]
os.chdir(sys.argv[1])
exec(compile(code, "docs/FORMAT.md torch snippet", "exec"))
print("docs/FORMAT.md torch snippet: OK", tuple(x.shape), file_idx[:4].tolist())
PY
echo "== device selection: auto takes the GPU; with no device visible, auto falls back to the CPU and cuda exits 2"
rm -rf "$W/sel" && mkdir -p "$W/sel"
"$M" run "@$W/slice/list.txt" -o "$W/sel/auto" -q
python3 -c "import json,sys; d=json.load(open(sys.argv[1]))['device']; print('auto:', d); assert d.startswith('cuda:0'), d" "$W/sel/auto/manifest.json"
CUDA_VISIBLE_DEVICES= "$M" run "@$W/slice/list.txt" -o "$W/sel/fallback" 2>&1 | grep -E "WARN device auto|done:" || true
python3 -c "import json,sys; d=json.load(open(sys.argv[1]))['device']; print('auto, no device visible:', d); assert d.startswith('cpu (auto'), d" "$W/sel/fallback/manifest.json"
"$M" verify "$W/sel/fallback"
python3 scripts/compare_outputs.py "$W/sel/auto" "$W/sel/fallback"
set +e
CUDA_VISIBLE_DEVICES= "$M" run "@$W/slice/list.txt" -o "$W/sel/cuda" --device cuda -q 2> "$W/sel/cuda.err"
rc=$?
set -e
cat "$W/sel/cuda.err"
[ "$rc" = 2 ] && grep -q "found no GPU" "$W/sel/cuda.err" || { echo "FAIL: --device cuda with no device: rc $rc"; exit 1; }
echo "== Ctrl-C at moments from the GPU's start to the end of the run: exit 130, resume byte-identical"
# A non-interactive shell starts background commands with SIGINT ignored; job control (set -m)
# gives them the default disposition, as a terminal's Ctrl-C would find it.
set -m
interrupted=0
for d in 0.05 0.1 0.13 0.15 0.17 0.2 0.3 0.45; do
    rm -rf "$W/int"
    "$M" run "$W/data" -o "$W/int" --device cuda -q 2> "$W/int.err" & P=$!
    sleep "$d"; kill -INT "$P"; set +e; wait "$P"; rc=$?; set -e
    if [ "$rc" = 0 ]; then echo "SIGINT at ${d}s: the run had finished"; continue; fi
    interrupted=$((interrupted + 1))
    [ "$rc" = 130 ] && grep -q "melpipe: interrupted" "$W/int.err" \
        || { echo "FAIL: SIGINT at ${d}s: rc $rc"; cat "$W/int.err"; exit 1; }
    "$M" run "$W/data" -o "$W/int" --device cuda -q --resume
    cmp "$W/int/features.npy" "$W/gpu/features.npy" && cmp "$W/int/mapping.npy" "$W/gpu/mapping.npy" \
        || { echo "FAIL: SIGINT at ${d}s: the resumed output differs"; exit 1; }
    echo "SIGINT at ${d}s: exit 130, resumed byte-identical"
done
set +m
[ "$interrupted" -ge 4 ] || { echo "FAIL: only $interrupted of 8 SIGINTs reached a running run"; exit 1; }
echo "gpu_check: ALL PASSED"
