#!/usr/bin/env bash
# The bytes melpipe writes, pinned: runs a melpipe binary on a fixed set of cases and prints one
# line per output file, `case file sha256`. With --expect FILE it compares against a recorded
# list and fails on any difference (a missing or extra line included).
#
# What is hashed: every array of the output folder (features, mapping, the seed layout's files)
# and the manifest's file list (`files`, `counts` and `rows`, as canonical JSON). The rest of the
# manifest (timings, creation time, the run's options) is not part of the contract pinned here.
#
# Cases, on the CPU: the seed-shaped dataset (39,563 generated clips; the generator is pinned
# with it); a mix of valid and malformed files in fixed and natural mode, with pool none, top_db,
# f32, an int32 mapping and the seed layout; every golden case (tests/golden) in f16 and f32.
# With --gpu (the GPU machine): the seed dataset on cuda with --cpu-head 0 and with the default
# CPU head. The recorded CPU list is scripts/bytes.sha256; CI checks it. GPU hashes depend on the
# card, so they are compared between two binaries on the same machine:
#   scripts/bytes_check.sh --melpipe OLD --gpu > old.txt
#   scripts/bytes_check.sh --melpipe NEW --gpu --expect old.txt
#
# The CPU backend picks its instruction set at run time (AVX-512, AVX2 + FMA, or portable); the
# three agree within the accuracy contract, not to the bit. The recorded list names the one it
# was made with (`# isa NAME`); on a machine with another, the feature arrays are left out of
# the comparison (said on stderr) and everything else is still compared.
#
# usage: bytes_check.sh [--melpipe PATH] [--work DIR] [--gpu] [--expect FILE] [--seed-files N]
set -euo pipefail
cd "$(dirname "$0")/.."
M=target/release/melpipe
W=/tmp/melpipe-bytes
GPU=0
EXPECT=
SEED_FILES=39563
while [ $# -gt 0 ]; do
    case "$1" in
        --melpipe) M=$2; shift 2 ;;
        --work) W=$2; shift 2 ;;
        --gpu) GPU=1; shift ;;
        --expect) EXPECT=$2; shift 2 ;;
        --seed-files) SEED_FILES=$2; shift 2 ;;
        -h|--help) sed -n '2,/^# usage/p' "$0"; exit 0 ;;
        *) echo "bytes_check.sh: unknown argument $1" >&2; exit 1 ;;
    esac
done
M=$(realpath "$M")
rm -rf "$W"
mkdir -p "$W"
OUTLIST="$W/hashes.txt"
: > "$OUTLIST"

# Hashes of one output folder, appended to the list as `case file sha256`.
hash_out() {
    local case=$1 dir=$2 f
    for f in $(cd "$dir" && ls | grep -v '^manifest.json$' | sort); do
        [ -f "$dir/$f" ] || continue
        echo "$case $f $(sha256sum "$dir/$f" | cut -d' ' -f1)" >> "$OUTLIST"
    done
    python3 - "$dir/manifest.json" "$case" >> "$OUTLIST" <<'PY'
import hashlib, json, sys
m = json.load(open(sys.argv[1]))
doc = json.dumps({"files": m["files"], "counts": m["counts"], "rows": m["rows"]},
                 sort_keys=True, separators=(",", ":"))
print(sys.argv[2], "manifest.files", hashlib.sha256(doc.encode()).hexdigest())
PY
}

# One run: case name, output folder name, then melpipe run arguments.
run_case() {
    local case=$1
    shift
    "$M" -q run "$@" -o "$W/out/$case" >/dev/null 2>"$W/$case.err" || {
        local rc=$?
        # Exit 3 (some files failed) is expected where the inputs include malformed files.
        [ $rc -eq 3 ] || { echo "bytes_check.sh: $case exited $rc" >&2; cat "$W/$case.err" >&2; exit 1; }
    }
    hash_out "$case" "$W/out/$case"
}

"$M" -q generate "$W/seed" --files "$SEED_FILES" >/dev/null
"$M" -q generate "$W/mix" --files 400 --corrupt 60 --seed 7 >/dev/null

if [ $GPU -eq 1 ]; then
    run_case gpu-seed-headless "$W/seed" --device cuda --cpu-head 0
    run_case gpu-seed-default "$W/seed" --device cuda
else
    run_case seed "$W/seed" --device cpu
    run_case mix-fixed "$W/mix" --device cpu
    run_case mix-natural "$W/mix" --device cpu --length natural
    run_case mix-pool-none "$W/mix" --device cpu --pool none
    run_case mix-natural-pool-none "$W/mix" --device cpu --length natural --pool none
    run_case mix-top-db "$W/mix" --device cpu --top-db 80
    run_case mix-f32 "$W/mix" --device cpu --dtype f32
    run_case mix-mapping-i32 "$W/mix" --device cpu --mapping i32
    run_case mix-mapping-none "$W/mix" --device cpu --mapping none
    run_case mix-layout-seed "$W/mix" --device cpu --layout seed
    # The golden cases, each with its own parameters.
    python3 - tests/golden/cases.json "$W" > "$W/golden.sh" <<'PY'
import json, os, shlex, sys
meta = json.load(open(sys.argv[1]))
work = sys.argv[2]
for c in meta["cases"]:
    cfg = os.path.join(work, c["name"] + ".toml")
    open(cfg, "w").write(c["config_toml"])
    inputs = " ".join(shlex.quote(os.path.join("tests/golden/inputs", n)) for n in c["inputs"])
    for dtype in ("f16", "f32"):
        print(f"run_case golden-{c['name']}-{dtype} {inputs} --device cpu --config {shlex.quote(cfg)} --dtype {dtype}")
PY
    # shellcheck disable=SC1091
    . "$W/golden.sh"
fi

# The instruction set the CPU backend picks on this machine (as melpipe_core::dsp::Isa::detect).
ISA=$(python3 - <<'PY'
flags = set()
for line in open("/proc/cpuinfo"):
    if line.startswith("flags"):
        flags = set(line.split(":", 1)[1].split())
        break
print("avx512" if "avx512f" in flags else "avx2" if {"avx2", "fma"} <= flags else "portable")
PY
)

if [ -n "$EXPECT" ]; then
    WANT_ISA=$(sed -n 's/^# isa //p' "$EXPECT")
    keep() { grep -v '^#' | sort; }
    if [ -n "$WANT_ISA" ] && [ "$WANT_ISA" != "$ISA" ]; then
        echo "bytes_check: $EXPECT was recorded with the $WANT_ISA CPU path, this machine takes $ISA: feature arrays not compared" >&2
        keep() { grep -v '^#' | grep -v ' features.npy \| PIPELINE_FEATURES.DAT ' | sort; }
    fi
    if diff <(keep < "$EXPECT") <(keep < "$OUTLIST") > "$W/diff.txt"; then
        echo "bytes_check: $(keep < "$OUTLIST" | wc -l) hashes identical to $EXPECT"
    else
        echo "bytes_check: the output differs from $EXPECT (< expected, > this binary):" >&2
        cat "$W/diff.txt" >&2
        exit 1
    fi
else
    echo "# isa $ISA"
    sort "$OUTLIST"
fi
