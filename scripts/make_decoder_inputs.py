#!/usr/bin/env python3
"""Writes the compressed and AIFF inputs of melpipe's decoder tests (crates/core/tests/decoders.rs)
with libsndfile (the `soundfile` package): every format and sample width melpipe takes through
symphonia, mono and stereo, at several rates and lengths. Deterministic signals; the bytes of lossy
files depend on the libsndfile build, which is why the tests compare against libsndfile's own
decoding of the same files rather than against stored values.

usage: make_decoder_inputs.py OUT_DIR      (prints one line per file: name)
"""
import os
import sys

import numpy as np

try:
    import soundfile
except ImportError:
    sys.exit("make_decoder_inputs.py needs the soundfile package: pip install soundfile")

# name: (format, subtype, rate, channels, frames)
CASES = {
    "flac16_mono.flac": ("FLAC", "PCM_16", 4096, 1, 40960),
    "flac16_stereo_odd.flac": ("FLAC", "PCM_16", 16000, 2, 12345),
    "flac24_stereo.flac": ("FLAC", "PCM_24", 44100, 2, 30000),
    "flac8_mono.flac": ("FLAC", "PCM_S8", 8000, 1, 5000),
    "flac16_3ch.flac": ("FLAC", "PCM_16", 48000, 3, 7000),
    "flac16_tiny.flac": ("FLAC", "PCM_16", 4096, 1, 1),
    "mp3_mono_16000.mp3": ("MP3", "MPEG_LAYER_III", 16000, 1, 160000),
    "mp3_stereo_44100.mp3": ("MP3", "MPEG_LAYER_III", 44100, 2, 50000),
    "mp3_mono_8000.mp3": ("MP3", "MPEG_LAYER_III", 8000, 1, 9999),
    "vorbis_mono_4096.ogg": ("OGG", "VORBIS", 4096, 1, 40960),
    "vorbis_stereo_48000.ogg": ("OGG", "VORBIS", 48000, 2, 60001),
    "vorbis_mono_22050.ogg": ("OGG", "VORBIS", 22050, 1, 777),
    "aiff16_mono.aiff": ("AIFF", "PCM_16", 4096, 1, 40960),
    "aiff24_stereo.aiff": ("AIFF", "PCM_24", 44100, 2, 20000),
    "aiff32_mono.aif": ("AIFF", "PCM_32", 8000, 1, 3000),
    "aiff8_mono.aif": ("AIFF", "PCM_S8", 8000, 1, 3000),
}


def signal(rate, channels, frames, seed):
    rng = np.random.default_rng(seed)
    t = np.arange(frames) / rate
    out = []
    for c in range(channels):
        f0 = 110.0 * (c + 1) + 37.0 * seed % 200
        x = 0.45 * np.sin(2 * np.pi * f0 * t)
        x += 0.2 * np.sin(2 * np.pi * (50 + (rate / 5) * t / max(t[-1], 1e-9) / 2) * t)
        x += 0.05 * rng.standard_normal(frames)
        out.append(np.clip(x, -0.99, 0.99))
    return np.stack(out, axis=1)


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    for i, (name, (fmt, sub, rate, ch, n)) in enumerate(sorted(CASES.items())):
        soundfile.write(os.path.join(out, name), signal(rate, ch, n, i + 1), rate,
                        format=fmt, subtype=sub)
        print(name)


main()
