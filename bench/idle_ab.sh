#!/usr/bin/env bash
# Alternated A/B of melpipe variants in bench.py's conditions: before every run, one try of the
# write floor (bench.py's write_floor, the outputs' bytes) and a 1 s pause, so the GPU has had
# no client for about 2 s, as every cuda try of bench.py has (a GPU idle that long costs the
# next process 0.08-0.1 s in cuInit: docs/PERFORMANCE.md, 'Design: start of an idle GPU';
# bench/ab.sh runs variants back to back and does not see it). Each run is timed against the
# floor try just before it.
# Variants are BINARY or BINARY:ARGS (extra `run` arguments with commas for spaces); for an
# environment variable, pass a wrapper script. Prints per variant the median wall time, the
# median ratio to its floor, and the paired median difference from the first variant.
# usage: bench/idle_ab.sh DATA DEVICE REPS VARIANT [VARIANT ...]   (from the repository root)
set -uo pipefail
DATA=$1; DEV=$2; REPS=$3; shift 3
OUTD=${AB_OUT:-/tmp/melpipe-idle-ab}
mkdir -p "$OUTD/floor"
LOG="$OUTD/pairs.txt"; : > "$LOG"
first=${1%%:*}
"$first" run "$DATA" -o "$OUTD/sizes" --device "$DEV" -q --force 2>>"$OUTD/stderr.log" || exit 1
SIZES=$(find "$OUTD/sizes" -maxdepth 1 \( -name '*.npy' -o -name '*.DAT' \) -exec stat -c %s {} + | paste -sd,)
rm -rf "$OUTD/sizes"
floor() {
    python3 - "$OUTD/floor/x" "$SIZES" <<'PY'
import sys; sys.path.insert(0, "bench"); import bench
best, v = bench.write_floor(sys.argv[1], [int(s) for s in sys.argv[2].split(",")])
print("%.3f" % best)
PY
}
. "$(dirname "$0")/ab_run.sh"
for r in $(seq "$REPS"); do
    for v in "$@"; do
        f=$(floor); sleep 1
        echo "$r $v $(run_variant "$v") $f" >> "$LOG"
    done
done
python3 - "$LOG" <<'PY'
import collections, statistics as st, sys
d = collections.OrderedDict(); floors = []
for line in open(sys.argv[1]):
    r, v, ms, f = line.split()
    d.setdefault(v, []).append((int(ms) / 1000, float(f))); floors.append(float(f))
print(f"write floor: median {st.median(floors):.3f} s ({min(floors):.3f}-{max(floors):.3f})")
base = [t for t, _ in next(iter(d.values()))]
for v, xs in d.items():
    ts = [t for t, _ in xs]; diff = [b - a for a, b in zip(base, ts)]
    print(f"{v:40s} median {st.median(ts):.3f} s  ratio to its floor {st.median([t / f for t, f in xs]):.2f}"
          f"  paired {st.median(diff):+.3f} s, faster in {sum(x < 0 for x in diff)} of {len(diff)}")
PY
