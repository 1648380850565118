#!/usr/bin/env python3
"""Summarises a MELPIPE_TRACE file (see crates/core/src/trace.rs): per kind of span, how many,
when the first began and the last ended, and the thread-seconds spent; then, in time bins, how
many tasks had been read, computed and written by then. The stage whose curve lags is the one
that holds the pipeline back.

usage: MELPIPE_TRACE=/tmp/t.tsv melpipe run DATA -o OUT ... ; bench/trace_summary.py /tmp/t.tsv [--bin 0.05]
"""
import argparse
import collections
import signal

signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # `| head` ends the output quietly

ap = argparse.ArgumentParser()
ap.add_argument("trace")
ap.add_argument("--bin", type=float, default=0.05, help="bin width of the time line, seconds")
a = ap.parse_args()

spans = []
with open(a.trace) as f:
    next(f)
    for line in f:
        b, e, thread, what, i = line.rstrip("\n").split("\t")
        spans.append((float(b), float(e), thread, what, int(i)))

by = collections.defaultdict(list)
for s in spans:
    by[s[3]].append(s)
print(f"{'span':24s} {'count':>6s} {'first begin':>11s} {'last end':>9s} {'busy s':>8s} {'threads':>7s}")
for what, ss in sorted(by.items(), key=lambda kv: min(s[0] for s in kv[1])):
    print(f"{what:24s} {len(ss):6d} {min(s[0] for s in ss):11.3f} {max(s[1] for s in ss):9.3f} "
          f"{sum(s[1] - s[0] for s in ss):8.3f} {len({s[2] for s in ss}):7d}")

stages = [w for w in ("read", "prepare", "compute", "write-at", "write") if w in by]
end = max(s[1] for s in spans)
ntasks = max((len(by[w]) for w in stages), default=0)
print(f"\ntasks done by time t (of {ntasks}), and thread-busy per bin")
print(f"{'t s':>6s} " + " ".join(f"{w + ' done':>12s}" for w in stages) + " " +
      " ".join(f"{w + ' busy':>12s}" for w in stages))
t = 0.0
while t < end + a.bin:
    done = [sum(1 for s in by[w] if s[1] <= t) for w in stages]
    busy = [sum(max(0.0, min(s[1], t) - max(s[0], t - a.bin)) for s in by[w]) / a.bin for w in stages]
    print(f"{t:6.3f} " + " ".join(f"{d:12d}" for d in done) + " " + " ".join(f"{b:12.2f}" for b in busy))
    t += a.bin
