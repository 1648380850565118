#!/usr/bin/env python3
"""melpipe's end-to-end benchmark (docs/PERFORMANCE.md). One run measures, on the same machine and data:

  * the I/O floor: reading every input with N parallel readers, and writing + fsyncing as many
    bytes as the run's outputs (the faster of two ways, per try);
  * `melpipe run` on each requested device (one untimed warm-up run first; peak memory from
    getrusage);
  * the floors and the runs alternate --repeat times, and each figure is the median of its
    --repeat values (the spread is printed too);
  * optionally the torchaudio GPU pipeline of the seed's design (bench/seed_pipeline.py);
  * optionally the read floor and the runs with a cold page cache, --repeat alternated tries
    (needs root: drop_caches).

It prints a table of seconds and ratios and writes the figures as JSON (--json FILE).

usage: bench.py [--files 39563] [--data DIR] [--out DIR] [--devices cpu,cuda] [--repeat 3]
                [--torchaudio] [--torchaudio-resample-from HZ] [--cold] [--melpipe PATH]
                [--json FILE] [-- extra run args]
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


def sh(cmd, **kw):
    return subprocess.run(cmd, check=True, **kw)


def timed(cmd, env=None):
    """Wall seconds, peak RSS (MB) and output of one child process. The peak is that child's
    own (wait4), not the running maximum over every child this script has waited for."""
    t = time.perf_counter()
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out = p.stdout.read().decode(errors="replace")
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0:
        sys.stderr.write(out)
        raise SystemExit(f"command failed ({p.returncode}): {' '.join(cmd)}")
    return wall, ru.ru_maxrss / 1024.0, out


AUDIO = (".wav", ".wave", ".flac", ".mp3", ".ogg", ".oga", ".aiff", ".aif", ".aifc")


def audio_files(data):
    out = []
    for root, _, names in os.walk(data):
        out += [os.path.join(root, n) for n in names if n.lower().endswith(AUDIO)]
    out.sort()
    return out


def read_floor(files, readers):
    """Seconds to read every file with `readers` parallel `cat` processes (native reads; a
    Python loop would measure the interpreter, not the disk)."""
    lst = "\0".join(files).encode() + b"\0"
    per = max(1, min(512, len(files) // (readers * 4) or 1))
    t = time.perf_counter()
    p = subprocess.run(["xargs", "-0", "-P", str(readers), "-n", str(per), "cat"], input=lst,
                       stdout=subprocess.DEVNULL, check=True)
    return time.perf_counter() - t, p.returncode


def _write_file(path, nbytes, chunk, writeback):
    """Writes `nbytes` of `chunk` to a new file; with `writeback`, starts the disk's writeback
    every 32 MiB (sync_file_range, as melpipe's writer does) so the final fsync has little left."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    left, done, synced = nbytes, 0, 0
    while left > 0:
        n = os.write(fd, chunk[: min(left, len(chunk))])
        left -= n
        done += n
        if writeback and done - synced >= 32 << 20:
            _sync_file_range(fd, synced, done - synced)
            synced = done
    return fd


_libc = None


def _sync_file_range(fd, offset, nbytes):
    global _libc
    if _libc is None:
        import ctypes
        _libc = ctypes.CDLL(None, use_errno=True)
        _libc.sync_file_range.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    _libc.sync_file_range(fd, offset, nbytes, 2)  # SYNC_FILE_RANGE_WRITE


def write_floor(path, sizes):
    """Seconds to write files of `sizes` bytes (non-zero data, 8 MiB writes) and fsync them and
    their folder: the fastest of (a) one file written by one thread, then fsync, and (b) one
    thread per file (the run's arrays) starting writeback as it goes, as melpipe's writer does.
    Returns (best, {variant: seconds})."""
    import threading
    chunk = os.urandom(1 << 20) * 8
    d = os.path.dirname(path)
    variants = {}

    t = time.perf_counter()
    fd = _write_file(path, sum(sizes), chunk, False)
    os.fsync(fd)
    os.close(fd)
    dfd = os.open(d, os.O_RDONLY)
    os.fsync(dfd)
    os.close(dfd)
    variants["one_file"] = time.perf_counter() - t
    os.unlink(path)

    paths = [f"{path}.{i}" for i in range(len(sizes))]
    errors = []

    def one(p, n):
        try:
            fd = _write_file(p, n, chunk, True)
            os.fsync(fd)
            os.close(fd)
        except OSError as e:  # reported below
            errors.append(e)

    t = time.perf_counter()
    threads = [threading.Thread(target=one, args=(p, n)) for p, n in zip(paths, sizes)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    dfd = os.open(d, os.O_RDONLY)
    os.fsync(dfd)
    os.close(dfd)
    variants["parallel_writeback"] = time.perf_counter() - t
    for p in paths:
        os.unlink(p)
    if errors:
        raise errors[0]
    return min(variants.values()), variants


def drop_caches():
    sh(["sync"])
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", type=int, default=39563)
    ap.add_argument("--data", default=None, help="dataset folder (generated if absent)")
    ap.add_argument("--out", default=None, help="scratch folder for outputs")
    ap.add_argument("--devices", default="cpu")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--readers", type=int, default=os.cpu_count())
    ap.add_argument("--torchaudio", action="store_true")
    ap.add_argument("--torchaudio-resample-from", type=int, default=None,
                    help="the clips are at this rate: the torchaudio pipeline resamples them to 4096 Hz")
    ap.add_argument("--cold", action="store_true")
    ap.add_argument("--melpipe", default=os.path.join(ROOT, "target", "release", "melpipe"))
    ap.add_argument("--json", default=None)
    ap.add_argument("extra", nargs="*", help="extra arguments for melpipe run (after --)")
    a = ap.parse_args()

    scratch = a.out or os.path.join(ROOT, "target", "bench")
    data = a.data or os.path.join(scratch, f"data_{a.files}")
    os.makedirs(scratch, exist_ok=True)
    if not os.path.isdir(data):
        t, _, _ = timed([a.melpipe, "generate", data, "--files", str(a.files)])
        print(f"generated {a.files} files in {t:.1f}s", file=sys.stderr)
    files = audio_files(data)
    in_bytes = sum(os.path.getsize(p) for p in files)
    results = {"files": len(files), "input_bytes": in_bytes, "machine": os.uname().nodename,
               "cores": os.cpu_count(), "runs": {}}
    read_floor(files, a.readers)  # warm the cache
    devices = [d for d in a.devices.split(",") if d]
    out = os.path.join(scratch, "out")

    def melpipe_run(dev, cold=False):
        # A fresh folder each time, as the write floor writes fresh files: replacing an earlier
        # output (--force) deletes it, which costs as much again on some disks.
        shutil.rmtree(out, ignore_errors=True)
        sh(["sync"])
        if cold:
            drop_caches()
        w, peak, _ = timed([a.melpipe, "-q", "run", data, "-o", out, "--device", dev] + a.extra)
        m = json.load(open(os.path.join(out, "manifest.json")))
        shutil.rmtree(out)
        return w, peak, m

    # One untimed run per device first: the first GPU process after a machine starts pays a
    # one-off device initialisation (seen: 1.4–1.9 s against 0.7 s), which is not a warm run.
    # Its manifest gives the output sizes the write floor writes.
    manifests = {dev: melpipe_run(dev)[2] for dev in devices}
    out_sizes = []
    if manifests:
        m = next(iter(manifests.values()))
        out_sizes = [m["features"]["header_bytes"] + m["features"]["data_bytes"]]
        if m.get("mapping"):
            out_sizes.append(m["mapping"]["header_bytes"] + m["mapping"]["data_bytes"])
    out_bytes = sum(out_sizes)

    # The floors and the runs alternate, so that a disk or machine that drifts during the call
    # moves them alike; every figure is the median of --repeat (METHOD: repeat, take the median).
    reads, writes, variants = [], [], {}
    walls = {dev: [] for dev in devices}
    peaks = {dev: [] for dev in devices}
    for _ in range(a.repeat):
        reads.append(read_floor(files, a.readers)[0])
        if out_bytes:
            best, v = write_floor(os.path.join(scratch, "floor.bin"), out_sizes)
            writes.append(best)
            for k, x in v.items():
                variants.setdefault(k, []).append(x)
        for dev in devices:
            w, peak, m = melpipe_run(dev)
            walls[dev].append(w)
            peaks[dev].append(peak)
            manifests[dev] = m
    runs = {}
    for dev in devices:
        m = manifests[dev]
        runs[dev] = {"wall_s": statistics.median(walls[dev]), "all_s": walls[dev],
                     "peak_rss_mb": max(peaks[dev]), "rows": m["rows"], "device": m["device"],
                     "timings": m["timings"]}
    rf = statistics.median(reads)
    results["read_floor_s"] = rf
    results["read_floor_all_s"] = reads
    results["output_bytes"] = out_bytes
    wf = statistics.median(writes) if writes else 0.0
    results["write_floor_s"] = wf
    results["write_floor_all_s"] = writes
    results["write_floor_variants_s"] = {k: statistics.median(x) for k, x in variants.items()}
    floor = max(rf, wf)
    results["floor_s"] = floor

    if a.torchaudio:
        walls = []
        for _ in range(a.repeat):
            shutil.rmtree(os.path.join(scratch, "seed_out"), ignore_errors=True)
            extra = ([] if a.torchaudio_resample_from is None
                     else ["--resample-from", str(a.torchaudio_resample_from)])
            w, peak, txt = timed([sys.executable, os.path.join(HERE, "seed_pipeline.py"), data,
                                  os.path.join(scratch, "seed_out")] + extra)
            walls.append(w)
        shutil.rmtree(os.path.join(scratch, "seed_out"), ignore_errors=True)
        runs["torchaudio-seed"] = {"wall_s": statistics.median(walls), "all_s": walls, "peak_rss_mb": peak}

    if a.cold:
        # Alternated like the warm figures: each try drops the page cache before the read floor
        # and before every run (single cold runs gave 1.05-1.22x of the cold read between calls).
        cold_reads, cold = [], {dev: [] for dev in devices}
        cold_peaks = {dev: [] for dev in devices}
        for _ in range(a.repeat):
            drop_caches()
            cold_reads.append(read_floor(files, a.readers)[0])
            for dev in devices:
                w, peak, _ = melpipe_run(dev, cold=True)
                cold[dev].append(w)
                cold_peaks[dev].append(peak)
        results["cold_read_floor_s"] = statistics.median(cold_reads)
        results["cold_read_floor_all_s"] = cold_reads
        for dev in devices:
            runs[f"{dev} (cold)"] = {"wall_s": statistics.median(cold[dev]), "all_s": cold[dev],
                                     "peak_rss_mb": max(cold_peaks[dev])}
    results["runs"] = runs

    base = runs.get("torchaudio-seed", {}).get("wall_s")
    print(f"\n{len(files)} files, {in_bytes / 1e9:.2f} GB in, {(out_bytes or 0) / 1e9:.2f} GB out, "
          f"{os.cpu_count()} cores")
    print(f"I/O floor (medians): read {rf:.3f}s ({a.readers} readers), write+fsync {wf:.3f}s "
          f"→ floor {floor:.3f}s")
    print("  read tries: " + " ".join(f"{x:.3f}" for x in reads)
          + " | write tries: " + " ".join(f"{x:.3f}" for x in writes))
    if results["write_floor_variants_s"]:
        print("  write+fsync variants: " + ", ".join(
            f"{k} {v:.3f}s" for k, v in results["write_floor_variants_s"].items()))
    if "cold_read_floor_s" in results:
        print(f"cold read floor (median): {results['cold_read_floor_s']:.3f}s (tries "
              + " ".join(f"{x:.3f}" for x in results["cold_read_floor_all_s"]) + ")")
    print(f"{'run':<22}{'wall s':>9}{'× floor':>9}{'torchaudio ×':>14}{'peak RSS MB':>13}")
    for k, r in runs.items():
        ref = results.get("cold_read_floor_s") if "cold" in k else floor
        ratio = r["wall_s"] / ref if ref else float("nan")
        speed = base / r["wall_s"] if base else float("nan")
        print(f"{k:<22}{r['wall_s']:>9.3f}{ratio:>9.2f}{speed:>14.2f}{r['peak_rss_mb']:>13.0f}"
              + ("  (" + " ".join(f"{x:.3f}" for x in r["all_s"]) + ")" if "all_s" in r else ""))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
