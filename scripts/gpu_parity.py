#!/usr/bin/env python3
"""Checks melpipe's CUDA backend against torchaudio in float64 (the accuracy contract of docs/FORMAT.md).

Usage: gpu_parity.py OUT_DIR

OUT_DIR is what `cargo run --release --example gpu_parity -p melpipe-cuda -- OUT_DIR` wrote: one
folder per configuration with samples.npy, files.npy, fb.npy, features.npy and config.toml.
For each, the reference is computed in float64 with torchaudio (functional.spectrogram with a
float64 periodic Hann window, functional.melscale_fbanks under a float64 default dtype), and
independently with numpy as a cross-check. Checked:

  * every value within 60 dB of its segment's peak: |GPU - reference| <= 0.05 dB for f32
    output, <= 0.1 dB for f16 output (after rounding);
  * CPU and GPU backends (cpu.npy, features.npy) agree within 1 f16 ulp on >= 99.9 % of values
    (f32 output: both rounded to f16 first); also reported: agreement of the GPU with the
    reference rounded to f16;
  * rows of failed files are all NaN, every other value is finite.

Prints a table and exits 1 if any configuration fails. Without torch it uses the numpy
reference alone and says so.
"""
import sys
import tomllib
from pathlib import Path

import numpy as np

try:
    import torch
    import torchaudio

    HAVE_TORCH = True
except ImportError:  # the development machine has no torch
    HAVE_TORCH = False

WITHIN_DB = 60.0
TOL_F32 = 0.05
TOL_F16 = 0.1
ULP_SHARE = 0.999


def load_case(d: Path):
    cfg = tomllib.loads((d / "config.toml").read_text())
    cfg.setdefault("f_max", cfg["sample_rate"] / 2)
    cfg.setdefault("top_db", None)
    cpu = np.load(d / "cpu.npy") if (d / "cpu.npy").exists() else None
    return (
        cfg,
        np.load(d / "samples.npy"),
        np.load(d / "files.npy"),
        np.load(d / "fb.npy"),
        np.load(d / "features.npy"),
        cpu,
    )


def segments(cfg, samples, files):
    """(rows, short_win) float64 segments in row order, and a per-row failed mask (docs/FORMAT.md, Statuses)."""
    n_short = (cfg["long_win"] - cfg["short_win"]) // cfg["short_hop"] + 1
    sw = cfg["short_win"]
    starts, failed = [], []
    for offset, _length, rows, is_failed in files:
        r = np.arange(rows)
        start = (r // n_short) * cfg["long_hop"] + (r % n_short) * cfg["short_hop"]
        starts.append(offset + start if not is_failed else np.zeros(rows, dtype=np.int64))
        failed.append(np.full(rows, bool(is_failed)))
    starts = np.concatenate(starts) if starts else np.zeros(0, dtype=np.int64)
    failed = np.concatenate(failed) if failed else np.zeros(0, dtype=bool)
    s64 = np.concatenate([samples.astype(np.float64), np.zeros(sw)])
    segs = s64[starts[:, None] + np.arange(sw)[None, :]]
    segs[failed] = 0.0
    return segs, failed


def hann_centred(cfg):
    n_fft, wl = cfg["n_fft"], cfg["win_length"]
    w = np.zeros(n_fft)
    left = (n_fft - wl) // 2
    w[left : left + wl] = 1.0 if wl == 1 else 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(wl) / wl)
    return w


def mel_numpy(cfg, segs, fb):
    """|STFT|² (center, reflect pad of the segment, periodic Hann) projected on fb, float64."""
    n_fft, hop = cfg["n_fft"], cfg["hop_length"]
    pad = n_fft // 2
    x = np.pad(segs, ((0, 0), (pad, pad)), mode="reflect")
    t = 1 + (x.shape[1] - n_fft) // hop
    idx = np.arange(t)[:, None] * hop + np.arange(n_fft)[None, :]
    spec = np.abs(np.fft.rfft(x[:, idx] * hann_centred(cfg), axis=-1)) ** 2  # (R, T, F)
    return np.einsum("rtf,fm->rmt", spec, fb)


def mel_torch(cfg, segs):
    """The same through torchaudio, float64 throughout."""
    prev = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        fb = torchaudio.functional.melscale_fbanks(
            cfg["n_fft"] // 2 + 1,
            float(cfg["f_min"]),
            float(cfg["f_max"]),
            cfg["n_mels"],
            cfg["sample_rate"],
            norm=None if cfg["norm"] == "none" else cfg["norm"],
            mel_scale=cfg["mel_scale"],
        )
        window = torch.hann_window(cfg["win_length"], periodic=True, dtype=torch.float64)
        spec = torchaudio.functional.spectrogram(
            torch.from_numpy(segs),
            pad=0,
            window=window,
            n_fft=cfg["n_fft"],
            hop_length=cfg["hop_length"],
            win_length=cfg["win_length"],
            power=2.0,
            normalized=False,
            center=True,
            pad_mode="reflect",
            onesided=True,
        )  # (R, F, T)
        mel = torch.einsum("rft,fm->rmt", spec, fb)
        return mel.numpy(), fb.numpy()
    finally:
        torch.set_default_dtype(prev)


def to_db(cfg, mel):
    """Pooling, AmplitudeToDB (power, ref 1, amin 1e-10), top_db per segment."""
    if cfg["pool"] == "mean":
        mel = mel.mean(axis=-1, keepdims=True)
    db = 10.0 * np.log10(np.maximum(mel, 1e-10))
    if cfg["top_db"] is not None:
        db = np.maximum(db, db.max(axis=(1, 2), keepdims=True) - cfg["top_db"])
    return db


def f16_ulp_share(gpu16, ref):
    """Share of values whose f16 bit patterns differ by at most 1 from the rounded reference."""
    a = gpu16.astype(np.float16).view(np.int16).astype(np.int32)
    b = ref.astype(np.float16).view(np.int16).astype(np.int32)
    return float(np.mean(np.abs(a - b) <= 1)) if a.size else 1.0


def check(d: Path):
    cfg, samples, files, fb_given, feats, cpu = load_case(d)
    segs, failed = segments(cfg, samples, files)
    notes = []
    mel_np = mel_numpy(cfg, segs, fb_given)
    if HAVE_TORCH:
        mel_ref, fb_ref = mel_torch(cfg, segs)
        fb_err = float(np.max(np.abs(fb_ref - fb_given))) if fb_ref.size else 0.0
        if fb_err > 1e-9:
            notes.append(f"filterbank differs from torchaudio's by {fb_err:.2e}")
        ref_db = to_db(cfg, mel_ref)
        np_db = to_db(cfg, mel_numpy(cfg, segs, fb_ref))
        ok_rows = ~failed
        cross = float(np.max(np.abs(ref_db - np_db)[ok_rows])) if ok_rows.any() else 0.0
        if cross > 1e-6:
            notes.append(f"numpy and torchaudio references differ by {cross:.2e} dB")
    else:
        ref_db = to_db(cfg, mel_np)
        notes.append("no torch here: numpy float64 reference only")

    gpu = feats.astype(np.float64)
    ok = ~failed
    res = {"case": d.name, "dtype": str(feats.dtype), "rows": len(failed), "notes": notes}
    if gpu.shape != ref_db.shape:
        res.update(verdict="FAIL", why=f"shape {gpu.shape} != reference {ref_db.shape}")
        return res
    failed_nan = bool(np.all(np.isnan(gpu[failed])))
    finite = bool(np.all(np.isfinite(gpu[ok])))
    peak = ref_db.max(axis=(1, 2), keepdims=True)
    near = (ref_db >= peak - WITHIN_DB) & ok[:, None, None]
    err = np.abs(gpu - ref_db)
    err_near = err[near]
    tol = TOL_F16 if feats.dtype == np.float16 else TOL_F32
    res.update(
        checked=int(near.sum()),
        max_err=float(err_near.max()) if err_near.size else 0.0,
        p999_err=float(np.quantile(err_near, 0.999)) if err_near.size else 0.0,
        max_err_all=float(np.nanmax(err[ok])) if ok.any() else 0.0,
        ulp_share=f16_ulp_share(gpu[ok], ref_db[ok]),
        failed_rows=int(failed.sum()),
        failed_nan=failed_nan,
        finite=finite,
    )
    why = []
    if cpu is not None:
        c = cpu.astype(np.float64)
        same_nan = bool(np.array_equal(np.isnan(c), np.isnan(gpu)))
        res["cpu_share"] = f16_ulp_share(gpu[ok], c[ok])
        res["cpu_max"] = float(np.max(np.abs(gpu[ok] - c[ok]))) if ok.any() else 0.0
        if not same_nan:
            why.append("CPU and GPU NaNs differ")
        if res["cpu_share"] < ULP_SHARE:
            why.append(f"CPU/GPU: only {100 * res['cpu_share']:.3f} % within 1 f16 ulp")
    else:
        notes.append("no cpu.npy: CPU/GPU agreement not checked")
    if res["max_err"] > tol:
        why.append(f"max error {res['max_err']:.4f} dB > {tol}")
    if not failed_nan:
        why.append("a failed file's row is not all NaN")
    if not finite:
        why.append("non-finite value in a good row")
    res["verdict"] = "FAIL" if why else "ok"
    res["why"] = "; ".join(why)
    return res


def main():
    if len(sys.argv) != 2:
        print(__doc__)
        return 1
    root = Path(sys.argv[1])
    cases = sorted(p for p in root.iterdir() if (p / "features.npy").exists())
    if not cases:
        print(f"no cases under {root}")
        return 1
    print(f"reference: {'torchaudio ' + torchaudio.__version__ if HAVE_TORCH else 'numpy'} float64")
    head = (
        f"{'case':<14} {'dtype':<8} {'rows':>6} {'checked':>9} {'max dB':>8} {'p99.9':>8} "
        f"{'max all':>8} {'ref ulp%':>9} {'cpu ulp%':>9} {'cpu max':>8} {'NaN rows':>8}  verdict"
    )
    print(head)
    print("-" * len(head))
    failed = False
    for d in cases:
        r = check(d)
        if "checked" in r:
            print(
                f"{r['case']:<14} {r['dtype']:<8} {r['rows']:>6} {r['checked']:>9} "
                f"{r['max_err']:>8.4f} {r['p999_err']:>8.4f} {r['max_err_all']:>8.3f} "
                f"{100 * r['ulp_share']:>9.3f} {100 * r.get('cpu_share', float('nan')):>9.3f} "
                f"{r.get('cpu_max', float('nan')):>8.4f} {r['failed_rows']:>8}  {r['verdict']} {r['why']}"
            )
        else:
            print(f"{r['case']:<14} {r['verdict']} {r['why']}")
        for n in r["notes"]:
            print(f"    note: {n}")
        failed |= r["verdict"] != "ok"
    print("PARITY FAILED" if failed else "all configurations within the accuracy contract")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
