#!/usr/bin/env bash
# Stress runs of docs/RELIABILITY.md: many tiny files (natural and fixed mode), a few hour-long
# files, a deep folder tree and non-UTF-8 names. For each run: exit code, wall time, peak
# resident memory (/usr/bin/time -v), peak anonymous memory (RssAnon of /proc/PID/status sampled
# every 50 ms), files/s, and a check that every input file has a status in the manifest and that
# `melpipe verify` accepts the output. The datasets are deleted at the end (KEEP=1 keeps them).
#
#   scripts/stress.sh [CASE...]     CASE: tiny-natural tiny-fixed hour deep names (default: all)
#   STRESS_DIR=/big/disk scripts/stress.sh      where datasets and outputs go (needs ~8 GB)
#   TINY_FILES=200000 HOUR_FILES=50             dataset sizes
set -euo pipefail
cd "$(dirname "$0")/.."

W=${STRESS_DIR:-/tmp/melpipe-stress}
TINY_FILES=${TINY_FILES:-200000}
HOUR_FILES=${HOUR_FILES:-50}
CASES=("$@")
[ ${#CASES[@]} -eq 0 ] && CASES=(tiny-natural tiny-fixed hour deep names)

cargo build --release --quiet -p melpipe
cargo build --release --quiet -p melpipe-core --example stress_data
BIN=$PWD/target/release/melpipe
DATA=$PWD/target/release/examples/stress_data
mkdir -p "$W"
cleanup() { [ "${KEEP:-0}" = 1 ] || rm -rf "$W"; }
trap cleanup EXIT

# measure NAME FILES CMD...: runs CMD under /usr/bin/time, samples the child's RssAnon.
measure() {
    local name=$1 files=$2
    shift 2
    /usr/bin/time -v -o "$W/$name.time" "$@" 2>"$W/$name.err" &
    local tpid=$! pid="" peak=0 k v
    while kill -0 "$tpid" 2>/dev/null; do
        [ -z "$pid" ] && pid=$(pgrep -P "$tpid" | head -n1 || true)
        if [ -n "$pid" ] && [ -r "/proc/$pid/status" ]; then
            while read -r k v _; do
                if [ "$k" = "RssAnon:" ]; then
                    [ "$v" -gt "$peak" ] && peak=$v
                    break
                fi
            done <"/proc/$pid/status" 2>/dev/null || true
        fi
        sleep 0.05
    done
    local rc=0
    wait "$tpid" || rc=$?
    local wall rss
    wall=$(awk -F': ' '/Elapsed/{print $2}' "$W/$name.time")
    rss=$(awk -F': ' '/Maximum resident/{print $2}' "$W/$name.time")
    python3 - "$name" "$rc" "$wall" "$rss" "$peak" "$files" <<'EOF'
import sys
name, rc, wall, rss, anon, files = sys.argv[1:]
parts = [float(p) for p in wall.split(":")]
secs = sum(p * 60 ** i for i, p in enumerate(reversed(parts)))
print(f"{name}: exit {rc}, wall {secs:.1f} s, {int(files) / secs:,.0f} files/s, "
      f"peak RSS {int(rss) / 1024:.0f} MiB, peak anonymous {int(anon) / 1024:.0f} MiB")
EOF
    grep -E "^  (time|memory|files):|^done:" "$W/$name.err" | sed 's/^/    /' || true
    return "$rc"
}

# check OUT INPUT: every *.wav under INPUT has a manifest entry; verify accepts OUT.
check() {
    local want
    want=$(find "$2" -iname '*.wav' -print0 | tr -cd '\0' | wc -c)
    python3 - "$1" "$want" <<'EOF'
import json, sys
m = json.load(open(sys.argv[1] + "/manifest.json"))
want = int(sys.argv[2])
files = m["files"]
assert len(files) == want, f"{len(files)} statuses for {want} files"
assert all(f["status"] in ("ok", "padded", "truncated", "failed") for f in files)
print(f"    statuses: {len(files)} of {want} files, counts {m['counts']}, rows {m['rows']}")
EOF
    "$BIN" verify "$1" >/dev/null 2>&1 || { echo "    verify FAILED"; return 1; }
    echo "    verify: intact"
}

for c in "${CASES[@]}"; do
    case $c in
    tiny-natural | tiny-fixed)
        [ -d "$W/tiny" ] || "$DATA" tiny "$W/tiny" "$TINY_FILES" 2048 >/dev/null
        mode=${c#tiny-}
        rm -rf "$W/out-$c"
        measure "$c" "$TINY_FILES" "$BIN" run "$W/tiny" -o "$W/out-$c" --length "$mode"
        check "$W/out-$c" "$W/tiny"
        rm -rf "$W/out-$c"
        ;;
    hour)
        [ -d "$W/hour" ] || "$DATA" long "$W/hour" "$HOUR_FILES" 14745600 >/dev/null
        rm -rf "$W/out-hour"
        measure hour "$HOUR_FILES" "$BIN" run "$W/hour" -o "$W/out-hour" --length natural
        check "$W/out-hour" "$W/hour"
        rm -rf "$W/out-hour"
        ;;
    deep)
        rm -rf "$W/deep" "$W/out-deep"
        "$DATA" deep "$W/deep" 30 >/dev/null
        measure deep 30 "$BIN" run "$W/deep" -o "$W/out-deep"
        check "$W/out-deep" "$W/deep"
        ;;
    names)
        rm -rf "$W/names" "$W/out-names"
        "$DATA" names "$W/names" >/dev/null
        measure names 7 "$BIN" run "$W/names" -o "$W/out-names"
        check "$W/out-names" "$W/names"
        python3 -c "import json,sys; [print('    ', repr(f['path']), f.get('path_bytes_hex'), f['status']) for f in json.load(open(sys.argv[1]))['files']]" "$W/out-names/manifest.json"
        ;;
    *)
        echo "unknown case $c" >&2
        exit 1
        ;;
    esac
done
