#!/usr/bin/env python3
"""A float64 numpy port of torchaudio.functional.resample (torchaudio 2.11) with its defaults:
resampling_method "sinc_interp_hann", lowpass_filter_width 6, rolloff 0.99. Needs numpy only.

It follows torchaudio's `_get_sinc_resample_kernel` and `_apply_sinc_resample_kernel` operation
by operation (same float64 expressions in the same order), so that it agrees with torchaudio's
float64 output to rounding; scripts/make_resample_golden.py checks it against torchaudio.

usage as a module: resample(x, orig_freq, new_freq) -> numpy float64 array
"""
import math

import numpy as np


def sinc_resample_kernel(orig_freq, new_freq, gcd, lowpass_filter_width=6, rolloff=0.99):
    """(kernel of shape (new, 2 * width + orig), width) for the gcd-reduced rates."""
    orig_freq = int(orig_freq) // gcd
    new_freq = int(new_freq) // gcd
    base_freq = min(orig_freq, new_freq) * rolloff
    width = math.ceil(lowpass_filter_width * orig_freq / base_freq)
    idx = np.arange(-width, width + orig_freq, dtype=np.float64)[None, :] / orig_freq
    t = np.arange(0, -new_freq, -1, dtype=np.float64)[:, None] / new_freq + idx
    t *= base_freq
    t = np.clip(t, -lowpass_filter_width, lowpass_filter_width)
    window = np.cos(t * math.pi / lowpass_filter_width / 2) ** 2
    t *= math.pi
    scale = base_freq / orig_freq
    safe = np.where(t == 0, 1.0, t)
    kernels = np.where(t == 0, 1.0, np.sin(safe) / safe)
    kernels *= window * scale
    return kernels, width


def resample(x, orig_freq, new_freq, lowpass_filter_width=6, rolloff=0.99):
    """torchaudio.functional.resample of a 1-D float64 signal."""
    x = np.asarray(x, dtype=np.float64)
    if orig_freq <= 0 or new_freq <= 0:
        raise ValueError("Original frequency and desired frequency should be positive")
    if orig_freq == new_freq:
        return x
    gcd = math.gcd(int(orig_freq), int(new_freq))
    kernel, width = sinc_resample_kernel(orig_freq, new_freq, gcd, lowpass_filter_width, rolloff)
    orig, new = int(orig_freq) // gcd, int(new_freq) // gcd
    length = x.shape[-1]
    padded = np.pad(x, (width, width + orig))
    taps = kernel.shape[1]
    # conv1d with stride orig: frame m sees padded[m * orig : m * orig + taps].
    frames = np.lib.stride_tricks.sliding_window_view(padded, taps)[::orig]
    resampled = (frames @ kernel.T).reshape(-1)     # (frames, new) -> frame-major, as transpose+reshape
    target_length = math.ceil(new * length / orig)  # torchaudio: ceil(as_tensor(new * length / orig))
    return resampled[:target_length]
