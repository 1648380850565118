#!/usr/bin/env python3
"""The Python package against its peers, on the GPU machine (the wheel installed first, as
scripts/python_gpu_check.sh does). One JSON line per measurement, then a summary.

  run        melpipe.run (in this process, and as `python -c` including the interpreter and the
             import) against the `melpipe` binary on the same dataset, alternated, GPU;
  extract    melpipe.extract of a batch of seed clips on the CPU against torchaudio's CPU
             MelSpectrogram with the same segmentation (unfold), and Extractor(device="cuda")
             against torchaudio on the GPU, both counting the copies to and from the host;
  loader     a DataLoader over torch_dataset() (4 workers, batch 1024) reading the output: rows/s,
             with what bounds it (the same loop without workers, the gather alone).

usage: python_bench.py DATA WORK --cli BIN [--repeat 3] [--clips 1024] [--loader-batches 4000]
"""
import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np
import torch
import torchaudio

import melpipe
from wav_pcm16 import pcm16

SR, NS = 4096, 40960


def emit(**kw):
    print(json.dumps(kw), flush=True)


def best(f, n):
    times = []
    for _ in range(n):
        t = time.perf_counter()
        r = f()
        times.append(time.perf_counter() - t)
    return min(times), float(np.median(times)), r


def bench_run(a):
    out_cli, out_py, out_sub = (f"{a.work}/run_{k}" for k in ("cli", "py", "sub"))
    rows = {"cli": [], "py": [], "py_process": []}
    sub = ("import melpipe, sys; melpipe.run(sys.argv[1], sys.argv[2], device='cuda', "
           "force=True, progress=False)")
    for i in range(a.repeat):
        t = time.perf_counter()
        subprocess.run([a.cli, "run", a.data, "-o", out_cli, "--device", "cuda", "--force", "-q"],
                       check=True)
        rows["cli"].append(time.perf_counter() - t)
        t = time.perf_counter()
        melpipe.run(a.data, out_py, device="cuda", force=True, progress=False)
        rows["py"].append(time.perf_counter() - t)
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", sub, a.data, out_sub], check=True)
        rows["py_process"].append(time.perf_counter() - t)
        emit(bench="run", round=i, **{k: round(v[-1], 3) for k, v in rows.items()})
    med = {k: float(np.median(v)) for k, v in rows.items()}
    same = all(open(f"{o}/features.npy", "rb").read() == open(f"{out_cli}/features.npy", "rb").read()
               for o in (out_py,))
    emit(bench="run", median_s={k: round(v, 3) for k, v in med.items()},
         py_over_cli=round(med["py"] / med["cli"], 3),
         py_process_over_cli=round(med["py_process"] / med["cli"], 3),
         features_identical=same)


def torchaudio_mel(device):
    mel = torchaudio.transforms.MelSpectrogram(sample_rate=SR, n_fft=64, win_length=64, hop_length=16,
                                               n_mels=32, center=True).to(device)
    to_db = torchaudio.transforms.AmplitudeToDB(stype="power").to(device)

    def features(x):
        seg = x.unfold(1, 1024, 512).unfold(2, 512, 256).reshape(-1, 512)
        return to_db(mel(seg).mean(dim=-1, keepdim=True))

    return features


def bench_extract(a):
    files = []
    for root, _, names in os.walk(a.data):
        files += [os.path.join(root, n) for n in names if n.endswith(".wav") and "unusual" not in root]
    files.sort()
    clips = np.stack([pcm16(p) for p in files[:a.clips]])
    assert clips.shape == (a.clips, NS), clips.shape
    clips_f32 = (clips / np.float32(32768)).astype(np.float32)
    mb = clips.nbytes / 1e6
    # CPU
    cpu = melpipe.Extractor("cpu")
    cpu.extract(clips[:8])
    t_cpu, m_cpu, feats = best(lambda: cpu.extract(clips), a.inner)
    torch.set_num_threads(os.cpu_count())
    ta_cpu = torchaudio_mel("cpu")
    with torch.inference_mode():
        ta_cpu(torch.from_numpy(clips_f32[:8]))
        t_ta, m_ta, ref = best(lambda: ta_cpu(torch.from_numpy(clips_f32)).numpy(), max(2, a.inner // 2))
    diff = float(np.abs(feats.astype(np.float64) - ref.reshape(feats.shape)).max())
    emit(bench="extract_cpu", clips=a.clips, input_mb=round(mb, 1), threads=os.cpu_count(),
         melpipe_s=round(t_cpu, 4), melpipe_median_s=round(m_cpu, 4),
         torchaudio_s=round(t_ta, 4), torchaudio_median_s=round(m_ta, 4),
         speedup=round(t_ta / t_cpu, 2), max_abs_diff_db=round(diff, 5))
    # GPU
    gpu = melpipe.Extractor("cuda")
    gpu.extract(clips[:8])
    t_g16, m_g16, _ = best(lambda: gpu.extract(clips), a.inner)
    t_g32, m_g32, g32 = best(lambda: gpu.extract(clips_f32), a.inner)
    ta_gpu = torchaudio_mel("cuda")

    def ta_f32():
        x = torch.from_numpy(clips_f32).cuda()
        r = ta_gpu(x).cpu().numpy()
        return r

    def ta_i16():
        x = torch.from_numpy(clips).cuda().float() * (1.0 / 32768.0)
        return ta_gpu(x).cpu().numpy()

    with torch.inference_mode():
        ta_f32()
        t_t32, m_t32, _ = best(ta_f32, a.inner)
        t_t16, m_t16, _ = best(ta_i16, a.inner)
    emit(bench="extract_gpu", clips=a.clips, device=gpu.device, gpu=torch.cuda.get_device_name(),
         melpipe_int16_s=round(t_g16, 4), melpipe_float32_s=round(t_g32, 4),
         torchaudio_int16_s=round(t_t16, 4), torchaudio_float32_s=round(t_t32, 4),
         speedup_int16=round(t_t16 / t_g16, 2), speedup_float32=round(t_t32 / t_g32, 2),
         medians={"melpipe_int16": round(m_g16, 4), "melpipe_float32": round(m_g32, 4),
                  "torchaudio_int16": round(m_t16, 4), "torchaudio_float32": round(m_t32, 4)})


def bench_loader(a):
    from torch.utils.data import DataLoader

    out = f"{a.work}/run_py"
    if not os.path.exists(f"{out}/manifest.json"):
        melpipe.run(a.data, out, device="cuda", force=True, progress=False)
    o = melpipe.open(out)
    ds = o.torch_dataset()
    n = min(a.loader_batches, len(ds) // 1024)
    # Touch every page once so that the loaders read from the page cache.
    _ = np.asarray(o.features).sum()

    def rate(workers):
        loader = DataLoader(ds, batch_size=1024, shuffle=True, num_workers=workers,
                            persistent_workers=False)
        it = iter(loader)
        next(it)  # workers started and first batch: not counted
        t = time.perf_counter()
        rows = 0
        for _ in range(n - 1):
            x, f = next(it)
            rows += len(x)
        return rows / (time.perf_counter() - t)

    r4 = rate(4)
    r0 = rate(0)
    idx = np.random.default_rng(0).permutation(len(ds))[: 1024 * 200]
    t = time.perf_counter()
    for k in range(200):
        ds.__getitems__(idx[k * 1024:(k + 1) * 1024])
    getitems = 1024 * 200 / (time.perf_counter() - t)
    rows_sel = o.usable()[idx]
    t = time.perf_counter()
    for k in range(200):
        np.asarray(o.features[np.sort(rows_sel[k * 1024:(k + 1) * 1024])], np.float32)
    gather = 1024 * 200 / (time.perf_counter() - t)
    emit(bench="loader", batches=n, rows_per_s_4_workers=round(r4), rows_per_s_no_workers=round(r0),
         getitems_rows_per_s=round(getitems), gather_rows_per_s=round(gather))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("data")
    ap.add_argument("work")
    ap.add_argument("--cli", required=True)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--inner", type=int, default=5)
    ap.add_argument("--clips", type=int, default=1024)
    ap.add_argument("--loader-batches", type=int, default=4000)
    ap.add_argument("--only", default="run,extract,loader")
    a = ap.parse_args()
    os.makedirs(a.work, exist_ok=True)
    for name in a.only.split(","):
        {"run": bench_run, "extract": bench_extract, "loader": bench_loader}[name](a)


if __name__ == "__main__":
    main()
