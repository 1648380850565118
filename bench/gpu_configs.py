#!/usr/bin/env python3
"""The GPU path across parameter sets: each benchmark configuration with melpipe on the GPU and on
the CPU, torchaudio on the GPU (a pipeline of the seed's design, generalised), and the write floor
of its output, in one call on one machine. One JSON line per measurement, then a table.

Configurations (their datasets are generated into WORK on first use):
  seed            the seed: 39,563 clips of 40,960 samples at 4096 Hz, default parameters
  seed_pool_none  the seed with --pool none (every STFT frame)
  heavy           8,000 seed clips, n_fft 256, hop 2, 64 mels, mean pooling (compute-bound)
  speech          10,000 whole 10 s clips at 16 kHz, n_fft 512, win 400, hop 160, 80 mels, every frame
  music           1,000 whole 30 s clips at 44.1 kHz, n_fft 2048, hop 512, 128 mels, every frame
  whisper_like    the speech clips with n_fft 400, hop 160, 80 mels, every frame

A configuration melpipe's GPU path refuses would be reported with the reason (`--device cuda` exits 2).
The table ends with the ratios the targets of docs/PERFORMANCE.md are stated in: CPU time over GPU
time, torchaudio's over melpipe's GPU time, and melpipe's GPU time over the write floor.

usage: python3 bench/gpu_configs.py --melpipe BIN --work W [--only seed,heavy] [--repeat 1]
                                   [--scale 0.01] [--no-torchaudio]
(--scale shrinks every dataset, for a quick look or a machine without room; the figures in
docs/PERFORMANCE.md are at scale 1.)
"""
import argparse
import json
import os
import queue
import shutil
import subprocess
import sys
import threading
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import write_floor  # noqa: E402
from wav_pcm16 import pcm16  # noqa: E402


def whole(n):
    """One segment per clip: the clip is the long and the short window."""
    n = str(n)
    return ["--clip-samples", n, "--long-win", n, "--long-hop", n, "--short-win", n,
            "--short-hop", n]


DATASETS = {
    "seed": dict(files=39563, rate=4096, samples=40960),
    "speech": dict(files=10000, rate=16000, samples=160000),
    "music": dict(files=1000, rate=44100, samples=1323000),
}

CONFIGS = {
    "seed": dict(data="seed", args=[]),
    "seed_pool_none": dict(data="seed", args=["--pool", "none"]),
    "heavy": dict(data="seed", files=8000,
                  args=["--n-fft", "256", "--win-length", "256", "--hop-length", "2",
                        "--n-mels", "64"]),
    "speech": dict(data="speech",
                   args=whole(160000) + ["--sample-rate", "16000", "--n-fft", "512",
                                         "--win-length", "400", "--hop-length", "160",
                                         "--n-mels", "80", "--pool", "none"]),
    "music": dict(data="music",
                  args=whole(1323000) + ["--sample-rate", "44100", "--n-fft", "2048",
                                         "--win-length", "2048", "--hop-length", "512",
                                         "--n-mels", "128", "--pool", "none"]),
    "whisper_like": dict(data="speech",
                         args=whole(160000) + ["--sample-rate", "16000", "--n-fft", "400",
                                               "--win-length", "400", "--hop-length", "160",
                                               "--n-mels", "80", "--pool", "none"]),
}


def emit(**kw):
    print(json.dumps(kw), flush=True)


def inputs(a, cfg):
    """The run's INPUT argument: the dataset's folder, or a list of its first `files` clips."""
    data = os.path.join(a.work, cfg["data"])
    if "files" not in cfg:
        return data
    count = max(1, int(cfg["files"] * a.scale))
    listing = os.path.join(a.work, f"{cfg['data']}_{count}.txt")
    if not os.path.exists(listing):
        files = sorted(os.path.join(r, n) for r, _, ns in os.walk(data) for n in ns
                       if n.endswith(".wav"))[:count]
        with open(listing, "w") as f:
            f.write("\n".join(files) + "\n")
    return "@" + listing


def files_of(inp):
    if inp.startswith("@"):
        return open(inp[1:]).read().split()
    return sorted(os.path.join(r, n) for r, _, ns in os.walk(inp) for n in ns
                  if n.endswith(".wav"))


def params(cfg):
    """The settings of `cfg` as melpipe's defaults overridden by its flags."""
    p = dict(sample_rate=4096, clip_samples=40960, long_win=1024, long_hop=512, short_win=512,
             short_hop=256, n_fft=64, win_length=64, hop_length=16, n_mels=32, pool="mean")
    args = cfg["args"]
    for i in range(0, len(args), 2):
        k = args[i][2:].replace("-", "_")
        p[k] = args[i + 1] if k == "pool" else int(args[i + 1])
    return p


def melpipe(a, inp, out, device, cfg):
    cmd = [a.melpipe, "-q", "run", inp, "-o", out, "--device", device, "--force", *cfg["args"]]
    t = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t
    if r.returncode != 0:
        return None, (r.stderr.strip().splitlines() or ["exit %d" % r.returncode])[0]
    return wall, None


def torchaudio_run(inp, out, p, readers=8):
    """torchaudio on the GPU with melpipe's segmentation and semantics (mean of mel power before
    the dB with --pool mean), reading with threads, writing f16 features and fsyncing them."""
    import torch
    import torchaudio

    t0 = time.perf_counter()
    files = files_of(inp)
    n = p["clip_samples"]
    n_long = (n - p["long_win"]) // p["long_hop"] + 1
    n_short = (p["long_win"] - p["short_win"]) // p["short_hop"] + 1
    frames = 1 + p["short_win"] // p["hop_length"]
    t_out = 1 if p["pool"] == "mean" else frames
    rows_per_file = n_long * n_short
    # Files per batch: at most 64, and about 2^27 complex STFT values on the GPU at once.
    per_file = rows_per_file * frames * (p["n_fft"] // 2 + 1)
    batch_files = max(1, min(64, (1 << 27) // per_file))
    dev = torch.device("cuda")
    mel = torchaudio.transforms.MelSpectrogram(
        sample_rate=p["sample_rate"], n_fft=p["n_fft"], win_length=p["win_length"],
        hop_length=p["hop_length"], n_mels=p["n_mels"], center=True).to(dev)
    to_db = torchaudio.transforms.AmplitudeToDB(stype="power").to(dev)
    os.makedirs(out, exist_ok=True)
    feats = np.lib.format.open_memmap(os.path.join(out, "features.npy"), mode="w+",
                                      dtype=np.float16,
                                      shape=(len(files) * rows_per_file, p["n_mels"], t_out))
    batches = [files[i:i + batch_files] for i in range(0, len(files), batch_files)]
    q = queue.Queue(maxsize=readers * 2)
    it = iter(enumerate(batches))
    lock = threading.Lock()

    def reader():
        while True:
            with lock:
                job = next(it, None)
            if job is None:
                return
            k, names = job
            arr = np.zeros((len(names), n), np.int16)
            for i, f in enumerate(names):
                try:
                    x = pcm16(f)[:n]
                except ValueError:
                    x = np.zeros(0, np.int16)
                arr[i, :len(x)] = x
            q.put((k, torch.from_numpy(arr).pin_memory()))

    threads = [threading.Thread(target=reader, daemon=True) for _ in range(readers)]
    for th in threads:
        th.start()
    done = {}
    with torch.inference_mode():
        for _ in range(len(batches)):
            k, host = q.get()
            x = host.to(dev, non_blocking=True).float() * (1.0 / 32768.0)
            seg = x.unfold(1, p["long_win"], p["long_hop"]).unfold(2, p["short_win"], p["short_hop"])
            seg = seg.reshape(-1, p["short_win"])
            m = mel(seg)
            if p["pool"] == "mean":
                m = m.mean(dim=-1, keepdim=True)
            y = to_db(m).half().cpu().numpy()
            r0 = k * batch_files * rows_per_file
            feats[r0:r0 + len(y)] = y
            done[k] = True
    feats.flush()
    fd = os.open(feats.filename, os.O_RDONLY)
    os.fsync(fd)
    os.close(fd)
    return time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--melpipe", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--only", default=",".join(CONFIGS))
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--no-torchaudio", action="store_true")
    ap.add_argument("--scale", type=float, default=1.0)
    a = ap.parse_args()
    os.makedirs(a.work, exist_ok=True)
    rows = []
    for name in a.only.split(","):
        cfg = CONFIGS[name]
        d = DATASETS[cfg["data"]]
        data = os.path.join(a.work, cfg["data"])
        if not os.path.isdir(data):
            t = time.perf_counter()
            files = max(1, int(d["files"] * a.scale))
            subprocess.run([a.melpipe, "-q", "generate", data, "--files", str(files),
                            "--sample-rate", str(d["rate"]), "--samples", str(d["samples"])],
                           check=True)
            emit(generated=cfg["data"], seconds=round(time.perf_counter() - t, 1))
        inp = inputs(a, cfg)
        files_of(inp)  # warms the page cache's metadata
        subprocess.run(["cat"] + files_of(inp), stdout=subprocess.DEVNULL)
        res = {"config": name}
        sizes = None
        # Each output is deleted once measured: --pool none on the seed writes 20 GB.
        for dev in ("cpu", "cuda"):
            out = os.path.join(a.work, f"out_{name}_{dev}")
            times, why = [], None
            for _ in range(a.repeat):
                w, why = melpipe(a, inp, out, dev, cfg)
                if w is None:
                    break
                times.append(w)
                if sizes is None:
                    m = json.load(open(os.path.join(out, "manifest.json")))
                    sizes = [m["features"]["data_bytes"] + m["features"]["header_bytes"]]
                    if m.get("mapping"):
                        sizes.append(m["mapping"]["data_bytes"] + m["mapping"]["header_bytes"])
                shutil.rmtree(out, ignore_errors=True)
            res[dev] = round(float(np.median(times)), 3) if times else None
            if why:
                res[f"{dev}_refused"] = why
        if sizes is None:
            emit(config=name, error="the CPU run failed", **res)
            continue
        res["output_gb"] = round(sum(sizes) / 1e9, 3)
        res["write_floor"] = round(write_floor(os.path.join(a.work, "floor.bin"), sizes)[0], 3)
        if not a.no_torchaudio:
            ta_out = os.path.join(a.work, f"out_{name}_ta")
            res["torchaudio_gpu"] = round(torchaudio_run(inp, ta_out, params(cfg)), 3)
            shutil.rmtree(ta_out, ignore_errors=True)
        emit(**res)
        rows.append(res)
    print(f"{'config':16s} {'cuda':>8s} {'cpu':>8s} {'torchaudio':>10s} {'floor':>8s} "
          f"{'GB':>6s} {'cpu/cuda':>8s} {'ta/cuda':>8s} {'cuda/floor':>10s}  notes")
    for r in rows:
        f = lambda v: f"{v:8.3f}" if isinstance(v, float) else f"{'-':>8s}"  # noqa: E731
        cuda = r.get("cuda")
        ratio = lambda a, b: f"{a / b:8.2f}" if a and b else f"{'-':>8s}"  # noqa: E731
        print(f"{r['config']:16s} {f(cuda)} {f(r.get('cpu'))} "
              f"{f(r.get('torchaudio_gpu')):>10s} {f(r.get('write_floor'))} "
              f"{r['output_gb']:6.2f} {ratio(r.get('cpu'), cuda)} "
              f"{ratio(r.get('torchaudio_gpu'), cuda)} {ratio(cuda, r.get('write_floor')):>10s}"
              f"  {r.get('cuda_refused', '')}")


if __name__ == "__main__":
    main()
