#!/usr/bin/env python3
"""The disk's view of a command: samples /proc/diskstats every INTERVAL seconds while COMMAND
runs and prints, per BIN, the MB the disk wrote and read, how busy it was (io_ticks, % of the
bin) and the requests in flight, then the totals. Shows whether the disk sits idle during a run
(waiting for the GPU, for the manifest, for the exit) or writes at the floor's rate.
usage: disklog.py [--dev vda | --path DIR] [--interval 0.002] [--bin 0.025] -- COMMAND ARGS...
(the device defaults to the one holding --path, the current folder by default)"""
import argparse, os, subprocess, sys, time


def dev_of(path):
    st = os.stat(path)
    major, minor = os.major(st.st_dev), os.minor(st.st_dev)
    for line in open("/proc/diskstats"):
        f = line.split()
        if int(f[0]) == major and int(f[1]) == minor:
            name = f[2]
            # a partition's stats count too, but its whole disk is what queues requests
            return name
    return None


def sample(dev):
    for line in open("/proc/diskstats"):
        f = line.split()
        if f[2] == dev:
            # sectors read (5), sectors written (9), in flight (11), io_ticks ms (12)
            return int(f[5]), int(f[9]), int(f[11]), int(f[12])
    raise SystemExit(f"no disk {dev} in /proc/diskstats")


def main():
    argv = sys.argv[1:]
    cut = argv.index("--") if "--" in argv else len(argv)
    ap = argparse.ArgumentParser()
    ap.add_argument("--dev", default=None)
    ap.add_argument("--path", default=".")
    ap.add_argument("--interval", type=float, default=0.002)
    ap.add_argument("--bin", type=float, default=0.025)
    a = ap.parse_args(argv[:cut])
    cmd = argv[cut + 1:]
    dev = a.dev or dev_of(a.path)
    samples = []
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd)
    while p.poll() is None:
        samples.append((time.perf_counter() - t0, *sample(dev)))
        time.sleep(a.interval)
    end = time.perf_counter() - t0
    samples.append((end, *sample(dev)))
    print(f"# disk {dev}, command {' '.join(cmd)}: {end:.3f} s, exit {p.returncode}")
    print(f"{'bin s':>7s} {'write MB':>9s} {'read MB':>8s} {'busy %':>7s} {'in flight':>9s}")
    nbins = int(end / a.bin) + 1
    first = samples[0]
    for b in range(nbins):
        lo, hi = b * a.bin, (b + 1) * a.bin
        inside = [s for s in samples if lo <= s[0] < hi]
        if not inside:
            continue
        prev = max((s for s in samples if s[0] < lo), default=first, key=lambda s: s[0])
        last = inside[-1]
        w = (last[2] - prev[2]) * 512 / 1e6
        r = (last[1] - prev[1]) * 512 / 1e6
        busy = (last[4] - prev[4]) / ((last[0] - prev[0]) * 1000) * 100 if last[0] > prev[0] else 0
        fl = max(s[3] for s in inside)
        print(f"{lo:7.3f} {w:9.1f} {r:8.1f} {min(busy, 100):7.0f} {fl:9d}")
    last = samples[-1]
    print(f"total: wrote {(last[2] - first[2]) * 512 / 1e6:.1f} MB, read {(last[1] - first[1]) * 512 / 1e6:.1f} MB")
    sys.exit(p.returncode)


if __name__ == "__main__":
    main()
