#!/usr/bin/env python3
"""Runs the melpipe binary on each golden case (tests/golden) and checks the accuracy
contract of docs/FORMAT.md against torchaudio's float64 values: for every value within 60 dB of its segment's
peak, |melpipe - torchaudio| <= 0.05 dB (f32 output) and <= 0.1 dB after f16 rounding; no value
non-finite. Used on the GPU machine with --device cuda; works with --device cpu anywhere.

usage: check_golden.py [--melpipe PATH] [--device cuda] [--golden tests/golden] [--work DIR]
"""
import argparse
import json
import os
import shutil
import subprocess
import sys

import numpy as np


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--melpipe", default="target/release/melpipe")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--golden", default="tests/golden")
    ap.add_argument("--work", default="/tmp/melpipe-golden")
    a = ap.parse_args()
    meta = json.load(open(os.path.join(a.golden, "cases.json")))
    shutil.rmtree(a.work, ignore_errors=True)
    os.makedirs(a.work)
    failed = 0
    print(f"{'case':<18}{'dtype':>6}{'rows':>7}{'max|Δ| ≤60dB':>15}{'max|Δ| all':>12}  result")
    for case in meta["cases"]:
        ref = np.load(os.path.join(a.golden, case["expected"])).astype(np.float64)
        cfg = os.path.join(a.work, case["name"] + ".toml")
        with open(cfg, "w") as f:
            f.write(case["config_toml"])
        inputs = [os.path.join(a.golden, "inputs", n) for n in case["inputs"]]
        for dtype, tol in (("f32", 0.05), ("f16", 0.1)):
            out = os.path.join(a.work, f"{case['name']}_{dtype}")
            subprocess.run([a.melpipe, "-q", "run", *inputs, "-o", out, "--config", cfg,
                            "--device", a.device, "--dtype", dtype]
                           + (["--cpu-head", "0"] if a.device != "cpu" else []), check=True)
            got = np.load(os.path.join(out, "features.npy")).astype(np.float64)
            ok = got.shape == ref.shape and np.isfinite(got).all()
            worst = worst_all = float("nan")
            if ok and got.size:
                peak = ref.max(axis=(1, 2), keepdims=True)
                mask = ref >= peak - 60.0
                d = np.abs(got - ref)
                worst, worst_all = float(d[mask].max()), float(d.max())
                ok = worst <= tol
            failed += not ok
            print(f"{case['name']:<18}{dtype:>6}{ref.shape[0]:>7}{worst:>15.5f}{worst_all:>12.4f}  "
                  f"{'ok' if ok else 'FAIL (shape %s vs %s)' % (got.shape, ref.shape)}")
    print("golden: ALL PASSED" if not failed else f"golden: {failed} FAILED")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
