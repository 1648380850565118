#!/usr/bin/env bash
# FLAC decoding per core: melpipe's decoder (symphonia, crates/core/examples/decode_rate.rs) against
# the reference decoder (`flac -d`, Debian's flac) on the same files, both on one core with the page
# cache warm. The files are the seed-shaped clips encoded by the reference encoder (`flac -5`, the
# default, as LibriSpeech's were), so both decoders see what users' datasets hold.
# usage: bench/flac_rate.sh [FILES] [WORK]      (needs flac; builds the example in release)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-2000}
W=${2:-/tmp/melpipe-flac-rate}
command -v flac >/dev/null || { echo "flac_rate.sh needs the flac program (apt-get install flac)" >&2; exit 1; }
cargo build -q --release -p melpipe --bin melpipe
cargo build -q --release -p melpipe-core --example decode_rate
rm -rf "$W" && mkdir -p "$W/flac"
target/release/melpipe generate "$W/wav" --files "$N" >/dev/null 2>&1
find "$W/wav" -name '*.wav' | sort > "$W/list"
# One folder of FLAC files, encoded by the reference encoder with its defaults (clip names are
# unique, so --output-prefix keeps them apart).
xargs -a "$W/list" -P "$(nproc)" -n 64 flac -s -f --output-prefix="$W/flac/"
find "$W/flac" -name '*.flac' | sort > "$W/flist"
echo "files: $(wc -l < "$W/flist") FLAC, $(du -sh "$W/flac" | cut -f1)"
cat $(cat "$W/flist") > /dev/null
for round in 1 2 3; do
    t0=$(date +%s.%N)
    taskset -c 0 xargs -a "$W/flist" -n 500 flac -d -s -c --force-raw-format --endian=little --sign=signed > /dev/null
    t1=$(date +%s.%N)
    python3 -c "import sys; t=$t1-$t0; n=$(wc -l < "$W/flist")*40960; print(f'flac -d, round $round: {t:.3f} s: {n/t/1e6:.1f} M frames/s (1 core)')"
done
taskset -c 0 target/release/examples/decode_rate "$W/flac" 3
