#!/usr/bin/env python3
"""Decodes audio files with libsndfile (the `soundfile` package from PyPI), the independent
decoder melpipe's tests hold its own decoders to.

usage: decode_reference.py FILE OUT [FILE OUT ...]

Each OUT gets a 12-byte header (sample rate u32, channels u32, frames u32, little-endian) and then
the samples as little-endian float64, interleaved. A file libsndfile cannot read gets no OUT and a
line on stderr; the exit status is then 1.
"""
import struct
import sys

try:
    import soundfile
except ImportError:
    sys.exit("decode_reference.py needs the soundfile package: pip install soundfile")

status = 0
args = sys.argv[1:]
if not args or len(args) % 2:
    sys.exit(__doc__)
for path, out in zip(args[::2], args[1::2]):
    try:
        data, rate = soundfile.read(path, dtype="float64", always_2d=True)
    except Exception as e:  # noqa: BLE001 - every libsndfile error is a file it cannot read
        print(f"{path}: {e}", file=sys.stderr)
        status = 1
        continue
    with open(out, "wb") as f:
        f.write(struct.pack("<III", rate, data.shape[1], data.shape[0]))
        f.write(data.astype("<f8").tobytes())
sys.exit(status)
