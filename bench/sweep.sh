#!/usr/bin/env bash
# Knob sweep for the pipeline defaults (docs/PERFORMANCE.md): one knob at a time around the
# automatic values, on a warm page cache, median of REPEAT runs each, same dataset and machine.
# usage: MELPIPE=.carry/melpipe bench/sweep.sh DATA OUTDIR DEVICE [REPEAT]
# prints one line per setting: device knobs median_s min_s max_s init run commit read/compute/write busy
set -uo pipefail
M=${MELPIPE:-target/release/melpipe}
DATA=$1; OUTD=$2; DEV=$3; REP=${4:-3}
mkdir -p "$OUTD"
cat "$DATA"/*/*/*.wav > /dev/null 2>&1 || find "$DATA" -name '*.wav' -print0 | xargs -0 -P8 cat > /dev/null
one() {
    local ts=()
    for _ in $(seq "$REP"); do
        local t0 t1
        rm -rf "$OUTD/o"  # a fresh folder, as bench.py: replacing an output deletes it first
        t0=$(date +%s%N)
        "$M" run "$DATA" -o "$OUTD/o" -q --device "$DEV" "$@" 2>>"$OUTD/stderr.log" || { echo "FAILED $DEV $*"; return; }
        t1=$(date +%s%N)
        ts+=("$(( (t1 - t0) / 1000000 ))e-3")
    done
    python3 - "$OUTD/o/manifest.json" "$DEV" "$*" "${ts[@]}" <<'PY'
import json, statistics, sys
m = json.load(open(sys.argv[1])); t = m.get("timings", {})
ws = sorted(float(x) for x in sys.argv[4:])
print(f"{sys.argv[2]:6s} {sys.argv[3] or 'defaults':42s} median {statistics.median(ws):6.3f}  "
      f"min {ws[0]:6.3f} max {ws[-1]:6.3f} | init {t.get('init_s',0):.3f} run {t.get('run_s',0):.3f} "
      f"commit {t.get('commit_s',0):.3f} | busy read {t.get('read_busy_s',0):.2f} "
      f"compute {t.get('compute_busy_s',0):.2f} write {t.get('write_busy_s',0):.2f} "
      f"ckpt {t.get('checkpoint_s',0):.2f}", flush=True)
PY
}
one
if [ "$DEV" = cpu ]; then
    for v in 8 16 32; do one --threads "$v"; done
    for v in 4 8 32 64; do one --files-per-task "$v"; done
    for v in 4 16 64; do one --queue-depth "$v"; done
else
    for v in 2 4 8 12 16 24; do one --readers "$v"; done
    for v in 32 64 256 512; do one --files-per-task "$v"; done
    for v in 1 2 8; do one --streams "$v"; done
    for v in 4 8 32 64; do one --queue-depth "$v"; done
fi
one
