#!/usr/bin/env bash
# Alternated A/B timing of melpipe binaries (or settings) on one machine, in one call: runs
# every variant once per round, REPS rounds, each into a fresh output folder after `sync`, then
# prints the median, min and max per variant. Variants are BINARY or BINARY:ARGS, where ARGS
# are extra `run` arguments with commas for spaces (e.g. .carry/melpipe:--streams,8).
# Absolute times drift between machines and over a call; compare variants of one call only.
# usage: bench/ab.sh DATA DEVICE REPS VARIANT [VARIANT ...]
set -uo pipefail
DATA=$1; DEV=$2; REPS=$3; shift 3
OUTD=${AB_OUT:-/tmp/melpipe-ab}
mkdir -p "$OUTD"
LOG="$OUTD/ab.txt"; : > "$LOG"
. "$(dirname "$0")/ab_run.sh"
for _ in $(seq "$REPS"); do
    for v in "$@"; do
        echo "$DEV $v $(run_variant "$v")" >> "$LOG"
    done
done
python3 - "$LOG" <<'PY'
import collections, statistics, sys
d = collections.OrderedDict()
for line in open(sys.argv[1]):
    dev, v, ms = line.split()
    d.setdefault((dev, v), []).append(int(ms) / 1000)
for (dev, v), ts in d.items():
    print(f"{dev:5s} {v:40s} median {statistics.median(ts):.3f}  min {min(ts):.3f}  max {max(ts):.3f}  "
          + " ".join(f"{t:.3f}" for t in ts))
PY
