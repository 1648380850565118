#!/usr/bin/env python3
"""Decodes audio files with libsndfile (python `soundfile`): the independent decoder that
crates/core/tests/wav_sndfile.rs compares melpipe's WAV decoder with, and
crates/core/tests/decoders.rs its FLAC, MP3, Ogg Vorbis and AIFF decoding.

    sndfile_decode.py FILE...
        For each FILE, writes FILE.f64: the number of channels (u64, little-endian), then every
        sample as libsndfile's float64 read gives it (`soundfile.read(FILE, dtype='float64',
        always_2d=True)`), frames in order, channels interleaved, little-endian; and FILE.rate,
        the sample rate in decimal. A file libsndfile refuses gets FILE.err with its message
        instead.

    sndfile_decode.py --pcm64 CHANNELS RAW
        The reference for 64-bit integer PCM, which libsndfile does not read: RAW holds
        interleaved int64 samples (little-endian); writes RAW.f32 with, for each frame, every
        channel as int64 / 2^63 rounded once to float32, then their mean (the sum exact, then
        the mean in float64, then float32), all little-endian float32.

Exits 2 with a message naming `pip install soundfile` when numpy or soundfile is missing.
"""

import sys

try:
    import numpy as np
    import soundfile
except ImportError as e:
    sys.stderr.write(f"sndfile_decode.py needs numpy and soundfile ({e}): pip install soundfile numpy\n")
    sys.exit(2)


def decode(path):
    try:
        samples, rate = soundfile.read(path, dtype="float64", always_2d=True)
    except Exception as e:  # libsndfile's refusal is a result here, not a failure
        with open(path + ".err", "w") as f:
            f.write(str(e))
        return
    with open(path + ".f64", "wb") as f:
        f.write(np.uint64(samples.shape[1]).astype("<u8").tobytes())
        f.write(np.ascontiguousarray(samples, dtype="<f8").tobytes())
    with open(path + ".rate", "w") as f:
        f.write(str(rate))


def pcm64(channels, path):
    x = np.fromfile(path, dtype="<i8").reshape(-1, channels)
    # int64 -> float32 is one correctly rounded conversion; 2^-63 scales exactly.
    picked = x.astype(np.float32) * np.float32(2.0**-63)
    # The exact sum in Python integers, then float64 (one rounding), the mean, float32.
    sums = [sum(int(v) for v in row) for row in x]
    mean = (np.array([float(s) for s in sums], dtype=np.float64) / channels * 2.0**-63).astype(np.float32)
    out = np.concatenate([picked, mean.reshape(-1, 1)], axis=1)
    out.astype("<f4").tofile(path + ".f32")


def main(argv):
    if len(argv) == 3 and argv[0] == "--pcm64":
        pcm64(int(argv[1]), argv[2])
        return 0
    if not argv or argv[0].startswith("-"):
        sys.stderr.write(__doc__)
        return 1
    for path in argv:
        decode(path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
