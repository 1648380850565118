#!/usr/bin/env bash
# Cost of the resume journal (target: at most 3 %, docs/PERFORMANCE.md): the same run with the
# default checkpoint every second (fsync of the arrays + a journal line) and with checkpoints off
# (--checkpoint-secs 1e9: only the final commit), alternated, median of REPEAT each.
# usage: MELPIPE=.carry/melpipe bench/journal_overhead.sh DATA OUTDIR DEVICE [REPEAT]
set -uo pipefail
M=${MELPIPE:-target/release/melpipe}
DATA=$1; OUTD=$2; DEV=$3; REP=${4:-5}
mkdir -p "$OUTD"
t() {
    rm -rf "$OUTD/o"
    local t0 t1
    t0=$(date +%s%N)
    "$M" run "$DATA" -o "$OUTD/o" -q --device "$DEV" "$@" 2>/dev/null || echo "FAILED" >&2
    t1=$(date +%s%N)
    echo $(( (t1 - t0) / 1000000 ))
}
on=(); off=()
for _ in $(seq "$REP"); do
    on+=("$(t --checkpoint-secs 1)")
    off+=("$(t --checkpoint-secs 1000000000)")
done
python3 - "$DEV" "${on[*]}" "${off[*]}" <<'PY'
import statistics, sys
on = [int(x) for x in sys.argv[2].split()]; off = [int(x) for x in sys.argv[3].split()]
a, b = statistics.median(on), statistics.median(off)
print(f"journal {sys.argv[1]}: checkpoints every 1 s {a/1e3:.3f} s (all {on}), off {b/1e3:.3f} s (all {off}): {100*(a-b)/b:+.1f} %")
PY
