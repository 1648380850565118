#!/usr/bin/env python3
"""Compares two melpipe output folders made from the same inputs with different backends
(GPU vs CPU): same manifest rows and statuses, identical mapping, NaN rows in the same places,
and feature values within 1 f16 ulp on at least --min-within percent of values (docs/FORMAT.md, Accuracy).

usage: compare_outputs.py A_OUT B_OUT [--min-within 99.9]
Exit status 0 when the contract holds.
"""
import argparse
import json
import sys

import numpy as np


def load(out):
    m = json.load(open(f"{out}/manifest.json"))
    f = np.load(f"{out}/{m['features']['file']}", mmap_mode="r")
    mp = np.load(f"{out}/{m['mapping']['file']}", mmap_mode="r") if m.get("mapping") else None
    return m, f, mp


def ulp_distance_f16(a, b):
    """Distance in units in the last place between two float16 arrays (ordered integers)."""
    ia = a.view(np.int16).astype(np.int32)
    ib = b.view(np.int16).astype(np.int32)
    ia = np.where(ia < 0, -32768 - ia, ia)
    ib = np.where(ib < 0, -32768 - ib, ib)
    return np.abs(ia - ib)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("--min-within", type=float, default=99.9)
    a = ap.parse_args()
    ma, fa, pa = load(a.a)
    mb, fb, pb = load(a.b)
    ok = True
    if ma["rows"] != mb["rows"] or fa.shape != fb.shape:
        print(f"FAIL shapes differ: {fa.shape} vs {fb.shape}")
        return 1
    sa = [(f["path"], f["status"], f["rows"]) for f in ma["files"]]
    sb = [(f["path"], f["status"], f["rows"]) for f in mb["files"]]
    if sa != sb:
        print("FAIL file lists or statuses differ")
        ok = False
    if pa is not None and pb is not None and not np.array_equal(pa, pb):
        print("FAIL mapping arrays differ")
        ok = False
    n = fa.shape[0]
    chunk = 1 << 20
    total = within = nan_mismatch = 0
    worst = 0.0
    for r in range(0, n, chunk):
        x = np.asarray(fa[r:r + chunk])
        y = np.asarray(fb[r:r + chunk])
        nx, ny = np.isnan(x), np.isnan(y)
        nan_mismatch += int((nx != ny).sum())
        fin = ~nx & ~ny
        if x.dtype == np.float16:
            d = ulp_distance_f16(x[fin], y[fin])
            within += int((d <= 1).sum())
        else:
            d = np.abs(x[fin].astype(np.float64) - y[fin].astype(np.float64))
            # 1 f16 ulp at the value's magnitude
            ulp = np.spacing(np.abs(x[fin]).astype(np.float16)).astype(np.float64)
            within += int((d <= ulp).sum())
        if fin.any():
            worst = max(worst, float(np.abs(x[fin].astype(np.float64) - y[fin].astype(np.float64)).max()))
        total += int(fin.sum())
    pct = 100.0 * within / max(total, 1)
    print(f"rows {n}, finite values compared {total}, within 1 f16 ulp: {pct:.4f}% "
          f"(need ≥ {a.min_within}%), max |Δ| {worst:.4f} dB, NaN mismatches {nan_mismatch}")
    if pct < a.min_within or nan_mismatch:
        ok = False
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
