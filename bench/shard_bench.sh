#!/usr/bin/env bash
# Single-node figures for docs/SCALING.md: one whole run, the same files as N shards run one
# after another (the per-shard cost a cluster node pays), and the merge of those shards, with the
# release binary on a dataset made by `melpipe generate`. Prints one line per step and a summary.
#
# Usage: bench/shard_bench.sh [DATA_DIR] [N]   (default: a fresh 39,563-file seed-shaped dataset
#        in a temporary folder, N = 4). Environment: DEVICE (default cpu), BIN (default
#        target/release/melpipe), KEEP=1 keeps the outputs.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-target/release/melpipe}
DEVICE=${DEVICE:-cpu}
N=${2:-4}
[ -x "$BIN" ] || cargo build --release -q -p melpipe
W=$(mktemp -d "${TMPDIR:-/tmp}/melpipe-shard-bench.XXXXXX")
trap '[ "${KEEP:-0}" = 1 ] && echo "kept $W" || rm -rf "$W"' EXIT
DATA=${1:-}
if [ -z "$DATA" ]; then
    DATA=$W/data
    "$BIN" generate "$DATA" --files 39563 2>/dev/null
fi
files=$(find "$DATA" -iname '*.wav' | wc -l)
bytes=$(du -sb "$DATA" | cut -f1)
now() { date +%s.%N; }
secs() { python3 -c "print(f'{$2 - $1:.2f}')"; }
# Warm the page cache so both runs read from memory (docs/PERFORMANCE.md: figures are for a warm cache).
find "$DATA" -iname '*.wav' -print0 | xargs -0 cat >/dev/null

echo "machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p'), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "dataset: $files files, $((bytes / 1000000)) MB; device $DEVICE; $("$BIN" --version)"
t0=$(now)
"$BIN" run "$DATA" -o "$W/whole" -q --device "$DEVICE"
t1=$(now)
whole=$(secs "$t0" "$t1")
echo "whole run:            $whole s"
shard_total=0
for k in $(seq 0 $((N - 1))); do
    a=$(now)
    "$BIN" run "$DATA" -o "$W/shard-$k" -q --device "$DEVICE" --shard "$k/$N"
    b=$(now)
    s=$(secs "$a" "$b")
    shard_total=$(python3 -c "print($shard_total + $s)")
    echo "shard $k/$N:            $s s"
done
a=$(now)
"$BIN" merge -q "$W"/shard-* -o "$W/merged"
b=$(now)
merge=$(secs "$a" "$b")
out_bytes=$(du -cb "$W/merged/features.npy" "$W/merged/mapping.npy" | tail -1 | cut -f1)
echo "merge of $N shards:     $merge s ($((out_bytes / 1000000)) MB of arrays, $(python3 -c "print(f'{$out_bytes / $merge / 1e9:.2f}')") GB/s)"
cmp "$W/merged/features.npy" "$W/whole/features.npy"
cmp "$W/merged/mapping.npy" "$W/whole/mapping.npy"
echo "merged arrays are byte-identical to the whole run"
echo "summary: whole $whole s = $(python3 -c "print(f'{$files / $whole:.0f}')") files/s; shards sum $(python3 -c "print(f'{$shard_total:.2f}')") s (overhead $(python3 -c "print(f'{($shard_total / $whole - 1) * 100:+.1f}')") %); merge $merge s"
