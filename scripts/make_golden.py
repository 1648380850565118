#!/usr/bin/env python3
"""Writes melpipe's golden files: small deterministic WAV inputs and torchaudio's float64 features
for them (docs/FORMAT.md, Mathematics), one case per configuration. The `resample` case's inputs
are at 16000 and 44100 Hz: torchaudio.functional.resample (float64, its defaults) takes them to
4096 Hz before the features. Run on a machine with torch + torchaudio
(the GPU machine: torchaudio 2.11); inputs are written with scipy and decoded here with numpy,
since torchaudio.load needs torchcodec.

usage: make_golden.py OUT_DIR      (then copy OUT_DIR to tests/golden/)

OUT_DIR/inputs/*.wav, OUT_DIR/<case>.npy (float32 dB values, shape (rows, n_mels, T), rows in
melpipe's order: files sorted by name, then long, then short window) and OUT_DIR/cases.json
(each case: name, melpipe config as TOML, input files, expected file, torchaudio version).
"""
import json
import os
import sys

import numpy as np
import scipy.io.wavfile
import torch
import torchaudio

SR = 4096
torch.set_default_dtype(torch.float64)  # filterbank and window in float64 too
RNG = np.random.default_rng(20261126)


def q16(x):
    return np.clip(np.round(x * 32768.0), -32768, 32767).astype(np.int16)


def signals():
    t = np.arange(40960) / SR
    quiet = np.where(t < 2.0, 0.7 * np.sin(2 * np.pi * 300 * t), 1e-4 * np.sin(2 * np.pi * 900 * t))
    chirp = 0.8 * np.sin(2 * np.pi * (20 * t + (2000 - 20) / (2 * 10.0) * t * t))
    left = 0.4 * np.sin(2 * np.pi * 150 * t) + 0.05 * RNG.standard_normal(40960)
    right = 0.3 * np.sin(2 * np.pi * 1700 * t)
    tl = np.arange(50000) / SR
    return {
        "a_tone.wav": q16(0.5 * np.sin(2 * np.pi * 440 * t) + 0.05 * np.sin(2 * np.pi * 1200 * t)),
        "b_chirp.wav": q16(chirp),
        "c_noise.wav": q16(0.3 * RNG.standard_normal(40960)),
        "d_quiet.wav": q16(quiet),
        "e_short.wav": q16(0.6 * np.sin(2 * np.pi * 97 * np.arange(10000) / SR)),
        "f_stereo.wav": np.stack([q16(left), q16(right)], axis=1),
        "g_long.wav": q16(0.2 * np.sin(2 * np.pi * 1000 * tl) * np.sin(2 * np.pi * 0.5 * tl)),
        "h_natural.wav": q16(0.5 * RNG.standard_normal(5000) * np.hanning(5000)),
    }


# The `resample` case's inputs: (sample rate, samples), from their own generator so that the
# other inputs stay as they were.
def resample_signals():
    rng = np.random.default_rng(20261206)
    t16 = np.arange(6 * 16000) / 16000
    t44 = np.arange(3 * 44100) / 44100
    tone = 0.5 * np.sin(2 * np.pi * 440 * t16) + 0.2 * np.sin(2 * np.pi * 3000 * t16)  # 3 kHz aliases
    sweep = 0.7 * np.sin(2 * np.pi * (50 * t44 + (20000 - 50) / (2 * 3.0) * t44 * t44))
    return {
        "r1_tone_16k.wav": (16000, q16(tone)),
        "r2_noise_16k.wav": (16000, q16(0.3 * rng.standard_normal(24000))),
        "r3_sweep_44k.wav": (44100, q16(sweep)),
    }


def decode(data):
    x = data.astype(np.float64) / 32768.0
    return x.mean(axis=1) if x.ndim == 2 else x


def features(x, c):
    """torchaudio float64 features of one file's samples x under melpipe config c (dict)."""
    clip = c.get("clip_samples", 40960)
    if c.get("length", "fixed") == "fixed":
        x = np.pad(x[:clip], (0, max(0, clip - len(x))))
    lw, lh = c.get("long_win", 1024), c.get("long_hop", 512)
    sw, sh = c.get("short_win", 512), c.get("short_hop", 256)
    n_short = (lw - sw) // sh + 1
    n_long = 0 if len(x) < lw else (len(x) - lw) // lh + 1
    starts = [l * lh + s * sh for l in range(n_long) for s in range(n_short)]
    if not starts:
        return np.zeros((0, c.get("n_mels", 32), 1))
    segs = torch.from_numpy(np.stack([x[s:s + sw] for s in starts]))
    n_fft = c.get("n_fft", 64)
    spec = torchaudio.transforms.Spectrogram(
        n_fft=n_fft, win_length=c.get("win_length", n_fft), hop_length=c.get("hop_length", 16),
        power=2.0, center=True, pad_mode="reflect", normalized=False).double()
    mel = torchaudio.transforms.MelScale(
        n_mels=c.get("n_mels", 32), sample_rate=SR, f_min=c.get("f_min", 0.0),
        f_max=c.get("f_max", SR / 2), n_stft=n_fft // 2 + 1,
        norm=None if c.get("norm", "none") == "none" else "slaney",
        mel_scale=c.get("mel_scale", "htk")).double()
    m = mel(spec(segs))                        # (S, n_mels, T)
    if c.get("pool", "mean") == "mean":
        m = m.mean(dim=-1, keepdim=True)
    db = 10.0 * torch.log10(torch.clamp(m, min=1e-10))
    if c.get("top_db") is not None:            # per segment (docs/FORMAT.md)
        peak = db.amax(dim=(1, 2), keepdim=True)
        db = torch.maximum(db, peak - c["top_db"])
    return db.numpy()


CASES = [
    ("seed", {}, ["a_tone.wav", "b_chirp.wav", "c_noise.wav", "d_quiet.wav", "e_short.wav",
                  "f_stereo.wav", "g_long.wav"]),
    ("pool_none", {"pool": "none", "length": "natural"}, ["h_natural.wav", "e_short.wav"]),
    ("slaney_norm", {"mel_scale": "slaney", "norm": "slaney"}, ["a_tone.wav", "b_chirp.wav", "d_quiet.wav"]),
    ("top_db", {"top_db": 40.0}, ["b_chirp.wav", "d_quiet.wav"]),
    ("fmin_fmax_nmels", {"f_min": 100.0, "f_max": 1500.0, "n_mels": 20}, ["b_chirp.wav", "c_noise.wav"]),
    ("natural", {"length": "natural"}, ["a_tone.wav", "e_short.wav", "g_long.wav", "h_natural.wav"]),
    ("nfft128", {"n_fft": 128, "win_length": 100, "hop_length": 32, "n_mels": 40},
     ["a_tone.wav", "c_noise.wav"]),
    ("resample", {"resample": True}, ["r1_tone_16k.wav", "r2_noise_16k.wav", "r3_sweep_44k.wav"]),
]


def toml_of(c):
    out = []
    for k, v in c.items():
        if isinstance(v, bool):
            out.append(f"{k} = {str(v).lower()}")
        else:
            out.append(f'{k} = "{v}"' if isinstance(v, str) else f"{k} = {v}")
    return "\n".join(out) + ("\n" if out else "")


def main():
    out = sys.argv[1]
    os.makedirs(os.path.join(out, "inputs"), exist_ok=True)
    sigs = signals()
    for name, data in sigs.items():
        scipy.io.wavfile.write(os.path.join(out, "inputs", name), SR, data)
    rates = {}
    for name, (rate, data) in resample_signals().items():
        scipy.io.wavfile.write(os.path.join(out, "inputs", name), rate, data)
        sigs[name], rates[name] = data, rate

    def samples(f, cfg):
        x = decode(sigs[f])
        if cfg.get("resample", False) and rates.get(f, SR) != SR:
            x = torchaudio.functional.resample(torch.from_numpy(x), rates[f], SR).numpy()
        return x

    cases = []
    for name, cfg, inputs in CASES:
        rows = [features(samples(f, cfg), cfg) for f in sorted(inputs)]
        arr = np.concatenate(rows).astype(np.float32)
        np.save(os.path.join(out, f"{name}.npy"), arr)
        cases.append({"name": name, "config_toml": toml_of(cfg), "inputs": sorted(inputs),
                      "expected": f"{name}.npy", "shape": list(arr.shape)})
        print(f"{name}: {arr.shape} min {arr.min():.2f} max {arr.max():.2f}")
    meta = {"torchaudio": torchaudio.__version__, "torch": torch.__version__,
            "generated_by": "scripts/make_golden.py", "cases": cases}
    with open(os.path.join(out, "cases.json"), "w") as f:
        json.dump(meta, f, indent=1)


if __name__ == "__main__":
    main()
