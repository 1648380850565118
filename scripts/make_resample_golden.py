#!/usr/bin/env python3
"""Writes the resampler's golden files: deterministic inputs and torchaudio's float64
`torchaudio.functional.resample` outputs (defaults: sinc_interp_hann, lowpass_filter_width 6,
rolloff 0.99), and checks scripts/resample_port.py against torchaudio on every case.
Run on a machine with torch + torchaudio (the GPU machine: torchaudio 2.11); no network needed.

usage: make_resample_golden.py OUT_DIR      (then copy OUT_DIR to tests/golden/resample/)

OUT_DIR/inputs.f32   every input, concatenated (the long one first, shared by several cases), little-endian float32. Inputs are built in
                     float64 and rounded to float32 first, so that the float64 signal torchaudio
                     resamples is exactly the float32 signal melpipe resamples.
OUT_DIR/outputs.f64  every torchaudio output, concatenated, little-endian float64
OUT_DIR/index.json   {"torchaudio", "torch", "generated_by", "port_max_abs_diff", "cases": [
                       {"name", "signal", "from_hz", "to_hz", "input_offset", "input_len",
                        "output_offset", "output_len"}]}   (offsets in elements)
"""
import json
import math
import os
import sys

import numpy as np
import torch
import torchaudio

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import resample_port  # noqa: E402

PAIRS = [(16000, 4096), (44100, 4096), (48000, 16000), (22050, 16000), (8000, 16000),
         (44100, 48000), (4096, 16000), (11025, 4096), (96000, 4096), (44100, 22050),
         (16000, 16000)]
SHORT = [1, 2, 7, 100, 1000]
# One long input shared by the pairs: all 40961 samples for every pair that downsamples, its
# first 4801 for the pairs that upsample and the identity (their float64 outputs at 40961 would
# be 2.2 MB on their own).
LONG_DOWN, LONG_UP = 40961, 4801
RNG = np.random.default_rng(20261206)


def signal(kind, n, rate):
    """A float64 test signal of n samples at `rate` Hz, rounded to float32 values."""
    t = np.arange(n) / rate
    if kind == "chirp":      # 20 Hz up to 0.49 rate over the signal: crosses the new Nyquist
        dur = max(n / rate, 1e-9)
        x = 0.8 * np.sin(2 * np.pi * (20 * t + (0.49 * rate - 20) / (2 * dur) * t * t))
    elif kind == "tone":     # one tone below and one above a 4096 Hz target's Nyquist
        x = 0.5 * np.sin(2 * np.pi * 440 * t + 0.3) + 0.3 * np.sin(2 * np.pi * 0.31 * rate * t)
    elif kind == "noise":
        x = 0.3 * RNG.standard_normal(n)
    elif kind == "impulse":  # at both edges and inside: the zero padding on each side
        x = np.zeros(n)
        x[[0, n // 2, n - 1]] = [1.0, -0.75, 0.5]
    elif kind == "long":     # a chirp over the whole band, noise, and a full-scale stretch
        x = 0.6 * np.sin(2 * np.pi * 0.49 * rate / (2 * n / rate) * t * t) + 0.1 * RNG.standard_normal(n)
        x[n // 2:n // 2 + 2000] = np.where(np.arange(2000) % 7 < 3, 32767 / 32768, -1.0)
    elif kind == "fullscale":  # a square wave at the 16-bit extremes plus clipped noise
        x = np.where(np.sin(2 * np.pi * 997 * t + 0.1) >= 0, 32767 / 32768, -1.0)
        x[1::3] = np.clip(RNG.standard_normal(len(x[1::3])), -1.0, 32767 / 32768)
    else:
        raise ValueError(kind)
    return x.astype(np.float32).astype(np.float64)


def cases_of(orig, new):
    g = math.gcd(orig, new)
    o = orig // g
    out = []
    for n in SHORT:
        kinds = ["impulse", "fullscale", "noise"] if n <= 7 or n == 1000 else \
            ["chirp", "tone", "noise", "impulse", "fullscale"]
        if n == 1000:
            kinds = ["chirp", "noise", "fullscale"]
        out += [(k, n) for k in kinds]
    # Rate-specific lengths: one stride of the reduced rate, one more and one less (the target
    # length's ceiling), twice plus one, when not one of the lengths above; only one more when
    # the stride is long (the size of the files).
    lengths = {o - 1, o, o + 1, 2 * o + 1} if o <= 1500 else {o + 1}
    for n in sorted(lengths):
        if 2 < n and n not in SHORT:
            out.append(("chirp", n))
    out.append(("long", LONG_DOWN if new < orig else LONG_UP))
    return out


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    inputs, outputs, cases = [], [], []
    i_off = o_off = 0
    worst_port = 0.0
    long_x = signal("long", LONG_DOWN, 44100)
    inputs.append(long_x.astype("<f4"))
    i_off = LONG_DOWN
    for orig, new in PAIRS:
        pair_port = 0.0
        for kind, n in cases_of(orig, new):
            x = long_x[:n] if kind == "long" else signal(kind, n, orig)
            y = torchaudio.functional.resample(torch.from_numpy(x)[None], orig, new)[0].numpy()
            assert y.dtype == np.float64
            p = resample_port.resample(x, orig, new)
            assert p.shape == y.shape, (orig, new, n, p.shape, y.shape)
            d = float(np.max(np.abs(p - y))) if len(y) else 0.0
            pair_port = max(pair_port, d)
            name = f"{orig}_{new}_{kind}_{n}"
            cases.append({"name": name, "signal": kind, "from_hz": orig, "to_hz": new,
                          "input_offset": 0 if kind == "long" else i_off, "input_len": n,
                          "output_offset": o_off, "output_len": len(y)})
            if kind != "long":
                inputs.append(x.astype("<f4"))
                i_off += n
            outputs.append(y.astype("<f8"))
            o_off += len(y)
        worst_port = max(worst_port, pair_port)
        print(f"{orig:>6} -> {new:>6}: {sum(c['from_hz'] == orig and c['to_hz'] == new for c in cases)}"
              f" cases, port vs torchaudio max abs diff {pair_port:.3e}")
    np.concatenate(inputs).tofile(os.path.join(out, "inputs.f32"))
    np.concatenate(outputs).tofile(os.path.join(out, "outputs.f64"))
    meta = {"torchaudio": torchaudio.__version__, "torch": torch.__version__,
            "generated_by": "scripts/make_resample_golden.py",
            "port_max_abs_diff": worst_port, "cases": cases}
    with open(os.path.join(out, "index.json"), "w") as f:
        json.dump(meta, f, indent=1)
    size = sum(os.path.getsize(os.path.join(out, f)) for f in os.listdir(out))
    print(f"{len(cases)} cases, {size / 1e6:.2f} MB; port vs torchaudio max abs diff {worst_port:.3e}")


if __name__ == "__main__":
    main()
