#!/usr/bin/env python3
"""How melpipe's run time and memory grow with the number of files (docs/PERFORMANCE.md: linear from 1k to
40k files, peak anonymous memory ≤ 1.5 GB at any size).

One dataset of the largest size is made with `melpipe generate`; every smaller size is a folder
of hard links to its first N clips. The generator makes clip i from the seed and i alone, under
the same relative path whatever --files is, so that folder holds exactly what
`melpipe generate DIR --files N` would (and melpipe reads hard links as the regular files they
are; symbolic links would be refused).

For each size, with the page cache warm (every input read once with parallel `cat` first):
  * `melpipe -q run DIR -o OUT --force --device DEV` --repeat times into a fresh OUT (the old
    one is removed before the clock starts, so the time is the run's, not the deletion's);
    the median wall time is reported, with the peak RSS of that process (wait4's rusage);
  * the write floor: as many bytes as the run's outputs written and fsynced (best of 2), and
    the read floor (every input read by --readers parallel `cat`).
Then seconds = a + b·files is fitted by least squares over the sizes, with R² and residuals.

usage: scaling.py [--sizes 1000,2000,5000,10000,20000,40000] [--repeat 3] [--device cpu]
                  [--scratch DIR] [--melpipe PATH] [--json FILE] [-- extra run args]
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
from bench import read_floor, timed, wav_files, write_floor  # noqa: E402


def subset(full, files, n, dest):
    """A folder of hard links to the first n clips of `full` (clip order = index order)."""
    if os.path.isdir(dest) and len(wav_files(dest)) == n:
        return
    shutil.rmtree(dest, ignore_errors=True)
    for src in files[:n]:
        dst = os.path.join(dest, os.path.relpath(src, full))
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        os.link(src, dst)


def fit(xs, ys):
    """Least squares y = a + b·x; returns a, b, R²."""
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx
    a = my - b * mx
    ss_res = sum((y - a - b * x) ** 2 for x, y in zip(xs, ys))
    ss_tot = sum((y - my) ** 2 for y in ys)
    return a, b, 1.0 - ss_res / ss_tot if ss_tot else 1.0


def output_bytes(out):
    m = json.load(open(os.path.join(out, "manifest.json")))
    n = m["features"]["header_bytes"] + m["features"]["data_bytes"]
    if m.get("mapping"):
        n += m["mapping"]["header_bytes"] + m["mapping"]["data_bytes"]
    return n, m


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="1000,2000,5000,10000,20000,40000")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--readers", type=int, default=os.cpu_count())
    ap.add_argument("--scratch", default=os.path.join(ROOT, "target", "bench"))
    ap.add_argument("--melpipe", default=os.path.join(ROOT, "target", "release", "melpipe"))
    ap.add_argument("--json", default=None)
    ap.add_argument("extra", nargs="*", help="extra arguments for melpipe run (after --)")
    a = ap.parse_args()

    sizes = sorted(int(s) for s in a.sizes.split(",") if s)
    top = sizes[-1]
    os.makedirs(a.scratch, exist_ok=True)
    full = os.path.join(a.scratch, f"data_{top}")
    if not os.path.isdir(full):
        w, _, _ = timed([a.melpipe, "generate", full, "--files", str(top)])
        print(f"generated {top} files in {w:.1f}s", file=sys.stderr)
    all_files = wav_files(full)
    if len(all_files) != top:
        raise SystemExit(f"{full} holds {len(all_files)} clips, expected {top}")

    out = os.path.join(a.scratch, "scaling_out")
    rows = []
    for n in sizes:
        data = full if n == top else os.path.join(a.scratch, f"scaling_{n}")
        if n != top:
            subset(full, all_files, n, data)
        files = wav_files(data)
        read_floor(files, a.readers)  # warm the cache
        rf = min(read_floor(files, a.readers)[0] for _ in range(2))
        load = os.getloadavg()[0]
        walls, peaks = [], []
        for _ in range(a.repeat):
            shutil.rmtree(out, ignore_errors=True)
            subprocess.run(["sync"], check=True)
            cmd = [a.melpipe, "-q", "run", data, "-o", out, "--force", "--device", a.device] + a.extra
            w, peak, _ = timed(cmd)
            walls.append(w)
            peaks.append(peak)
        nbytes, m = output_bytes(out)
        shutil.rmtree(out)
        wf = min(write_floor(os.path.join(a.scratch, "floor.bin"), nbytes) for _ in range(2))
        r = {"files": n, "wall_s": statistics.median(walls), "all_s": walls,
             "peak_rss_mb": max(peaks), "output_bytes": nbytes, "rows": m["rows"],
             "write_floor_s": wf, "read_floor_s": rf, "load_avg_1m": load,
             "timings": m["timings"]}
        rows.append(r)
        t = m["timings"]
        print(f"{n:>7} files  {r['wall_s']:8.3f} s  {r['wall_s'] / n * 1e6:8.1f} µs/file  "
              f"RSS {r['peak_rss_mb']:6.0f} MB  write floor {wf:7.3f} s  read floor {rf:6.3f} s  "
              f"(init {t['init_s']:.2f} run {t['run_s']:.2f} commit {t['commit_s']:.2f}; "
              f"load {load:.2f})", file=sys.stderr)

    xs = [r["files"] for r in rows]
    ys = [r["wall_s"] for r in rows]
    fa, fb, r2 = fit(xs, ys)
    wa, wb, wr2 = fit(xs, [r["write_floor_s"] for r in rows])
    print(f"\n{a.device}, {os.cpu_count()} cores, median of {a.repeat}, page cache warm")
    print(f"{'files':>7}{'seconds':>10}{'µs/file':>10}{'fit s':>9}{'resid %':>9}{'peak RSS MB':>13}"
          f"{'out GB':>8}{'write floor s':>15}{'read floor s':>14}")
    for r in rows:
        pred = fa + fb * r["files"]
        print(f"{r['files']:>7}{r['wall_s']:>10.3f}{r['wall_s'] / r['files'] * 1e6:>10.1f}{pred:>9.3f}"
              f"{(r['wall_s'] - pred) / pred * 100:>9.1f}{r['peak_rss_mb']:>13.0f}"
              f"{r['output_bytes'] / 1e9:>8.3f}{r['write_floor_s']:>15.3f}{r['read_floor_s']:>14.3f}")
    print(f"fit: seconds = {fa:.3f} + {fb * 1e6:.1f} µs × files (R² = {r2:.5f}); "
          f"write floor = {wa:.3f} + {wb * 1e6:.1f} µs × files (R² = {wr2:.5f})")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"device": a.device, "cores": os.cpu_count(), "machine": os.uname().nodename,
                       "repeat": a.repeat, "extra": a.extra, "sizes": rows,
                       "fit": {"a_s": fa, "b_s_per_file": fb, "r2": r2},
                       "write_floor_fit": {"a_s": wa, "b_s_per_file": wb, "r2": wr2}}, f, indent=1)


if __name__ == "__main__":
    main()
