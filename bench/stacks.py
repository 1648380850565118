#!/usr/bin/env python3
"""Samples where a process's threads wait in the kernel: every INTERVAL seconds, for each thread
in state D (uninterruptible: disk, locks), its name, wchan and kernel stack (/proc/PID/task/TID/
stack, root only). Prints the most frequent stacks per thread name with their sample counts, and
a time line of D-state threads. Used to find what blocks melpipe's writes (docs/PERFORMANCE.md).
usage: stacks.py [--interval 0.005] -- COMMAND ARGS...   (runs COMMAND and samples it)"""
import collections, os, subprocess, sys, time

def main():
    args = sys.argv[1:]
    interval = 0.005
    if args[:1] == ["--interval"]:
        interval = float(args[1]); args = args[2:]
    if args[:1] == ["--"]:
        args = args[1:]
    t0 = time.perf_counter()
    p = subprocess.Popen(args)
    stacks = collections.Counter()
    timeline = []
    while p.poll() is None:
        t = time.perf_counter() - t0
        names = []
        try:
            tids = os.listdir(f"/proc/{p.pid}/task")
        except OSError:
            break
        for tid in tids:
            base = f"/proc/{p.pid}/task/{tid}"
            try:
                stat = open(f"{base}/stat").read()
                state = stat[stat.rindex(")") + 2]
                if state != "D":
                    continue
                comm = open(f"{base}/comm").read().strip()
                try:
                    st = open(f"{base}/stack").read()
                    frames = [l.split()[1].split("+")[0] for l in st.splitlines() if l.strip()][:12]
                except OSError:
                    frames = [open(f"{base}/wchan").read().strip()]
            except (OSError, ValueError):
                continue
            stacks[(comm.rstrip("0123456789"), " < ".join(frames))] += 1
            names.append(comm)
        if names:
            timeline.append((t, names))
        time.sleep(interval)
    wall = time.perf_counter() - t0
    print(f"exit {p.returncode} after {wall:.3f} s; samples every {interval * 1000:.0f} ms")
    for (comm, st), n in stacks.most_common(25):
        print(f"{n:5d} {comm:16s} {st}")
    for t, names in timeline:
        c = collections.Counter(n.rstrip("0123456789") for n in names)
        print(f"  {t:6.3f} " + " ".join(f"{k}×{v}" for k, v in sorted(c.items())))

if __name__ == "__main__":
    main()
