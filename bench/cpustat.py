#!/usr/bin/env python3
"""The CPU's view of a command: samples /proc/stat every few milliseconds while COMMAND runs and
prints, per time bin, how many cores were busy in user, system, irq + softirq, and stolen by the
hypervisor (steal), and how many were idle or waiting for I/O; then the totals in core-seconds.
On a virtual machine, `steal` is time the vCPUs wanted to run but the host ran something else
(for example its own side of the virtual disk's writes).

usage: bench/cpustat.py [--bin 0.05] -- COMMAND [ARGS...]
"""
import argparse
import os
import subprocess
import sys
import threading
import time

ap = argparse.ArgumentParser()
ap.add_argument("--bin", type=float, default=0.05, help="bin width, seconds")
ap.add_argument("--every", type=float, default=0.01, help="sampling interval, seconds")
ap.add_argument("cmd", nargs=argparse.REMAINDER)
a = ap.parse_args()
cmd = a.cmd[1:] if a.cmd and a.cmd[0] == "--" else a.cmd
if not cmd:
    sys.exit("usage: cpustat.py -- COMMAND")

HZ = os.sysconf("SC_CLK_TCK")
# /proc/stat cpu fields: user nice system idle iowait irq softirq steal guest guest_nice


def read():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:9]]
    return time.monotonic(), v


samples = []
done = threading.Event()


def sampler():
    while not done.is_set():
        samples.append(read())
        time.sleep(a.every)
    samples.append(read())


th = threading.Thread(target=sampler)
th.start()
t0 = time.monotonic()
rc = subprocess.call(cmd)
t1 = time.monotonic()
done.set()
th.join()


def split(d):
    user, nice, system, idle, iowait, irq, softirq, steal = d
    return {"user": user + nice, "sys": system, "irq": irq + softirq, "steal": steal,
            "idle": idle, "iowait": iowait}


cols = ["user", "sys", "irq", "steal", "idle", "iowait"]
print(f"command: {' '.join(cmd)} (exit {rc}, {t1 - t0:.3f} s)")
print("cores busy per bin (jiffies of 1/%d s; a bin's figure is core-seconds / bin width)" % HZ)
print(f"{'t s':>6s} " + " ".join(f"{c:>7s}" for c in cols))
edges = []
b = t0
while b < t1 + a.bin:
    edges.append(b)
    b += a.bin
prev = samples[0]
j = 0
for e in edges[1:]:
    while j + 1 < len(samples) and samples[j + 1][0] <= e:
        j += 1
    cur = samples[j]
    dt = max(cur[0] - prev[0], 1e-9)
    if cur is prev:
        continue
    d = split([c - p for c, p in zip(cur[1], prev[1])])
    print(f"{e - t0:6.3f} " + " ".join(f"{d[c] / HZ / dt:7.2f}" for c in cols))
    prev = cur
tot = split([c - p for c, p in zip(samples[-1][1], samples[0][1])])
print("total core-seconds: " + " ".join(f"{c} {tot[c] / HZ:.3f}" for c in cols))
sys.exit(rc)
