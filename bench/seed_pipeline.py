#!/usr/bin/env python3
"""The baseline melpipe is measured against: a torchaudio GPU pipeline of the seed's design
(seed/PIPELINE_ARCHITECTURE.md), written fairly.

Reader threads read tasks of files into pinned fp16 buffers (int16 scaled to [-1, 1) first, not
the seed's unscaled cast), a bounded queue feeds one GPU consumer that copies asynchronously,
unfolds long and short windows, runs torchaudio's MelSpectrogram and AmplitudeToDB, averages over
frames, copies back, and writes features (fp16) and the int64 mapping into numpy memmaps, then
flushes and fsyncs them. Prints one JSON line with the wall time.

With --resample-from HZ the clips are at HZ (10 s: 10·HZ samples): the consumer first converts
them to 4096 Hz on the GPU with torchaudio.functional.resample (its defaults, as melpipe's
`--resample`), then goes on as above.

usage: seed_pipeline.py DATA_DIR OUT_DIR [--threads 2] [--files-per-task 356] [--queue 96]
                        [--resample-from HZ]
"""
import argparse
import json
import os
import queue
import sys
import threading
import time

import numpy as np
import torch
import torchaudio

SR, NS = 4096, 40960
LONG_WIN, LONG_HOP, SHORT_WIN, SHORT_HOP = 1024, 512, 512, 256
N_LONG = (NS - LONG_WIN) // LONG_HOP + 1
N_SHORT = (LONG_WIN - SHORT_WIN) // SHORT_HOP + 1
ROWS_PER_FILE = N_LONG * N_SHORT


def data_offset(buf):
    """Offset and length of the data chunk (walks RIFF chunks, unlike the seed's fixed 44)."""
    pos = 12
    while pos + 8 <= len(buf):
        cid, size = buf[pos:pos + 4], int.from_bytes(buf[pos + 4:pos + 8], "little")
        if cid == b"data":
            return pos + 8, min(size, len(buf) - pos - 8)
        pos += 8 + size + (size & 1)
    raise ValueError("no data chunk")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("data")
    ap.add_argument("out")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--files-per-task", type=int, default=356)
    ap.add_argument("--queue", type=int, default=96)
    ap.add_argument("--resample-from", type=int, default=None)
    a = ap.parse_args()
    rate_in = a.resample_from or SR
    ns_in = NS * rate_in // SR

    t0 = time.perf_counter()
    files = []
    for root, _, names in os.walk(a.data):
        files += [os.path.join(root, n) for n in names if n.lower().endswith(".wav")]
    files.sort()
    n_rows = len(files) * ROWS_PER_FILE
    os.makedirs(a.out, exist_ok=True)
    feats = np.lib.format.open_memmap(os.path.join(a.out, "features.npy"), mode="w+",
                                      dtype=np.float16, shape=(n_rows, 32, 1))
    mapping = np.lib.format.open_memmap(os.path.join(a.out, "mapping.npy"), mode="w+",
                                        dtype=np.int64, shape=(n_rows, 6))
    dev = torch.device("cuda")
    mel = torchaudio.transforms.MelSpectrogram(sample_rate=SR, n_fft=64, hop_length=16,
                                               n_mels=32, center=True).to(dev)
    to_db = torchaudio.transforms.AmplitudeToDB(stype="power").to(dev)
    tasks = [files[i:i + a.files_per_task] for i in range(0, len(files), a.files_per_task)]
    q = queue.Queue(maxsize=a.queue)
    next_task = iter(range(len(tasks)))
    lock = threading.Lock()

    def reader():
        while True:
            with lock:
                t = next(next_task, None)
            if t is None:
                return
            names = tasks[t]
            host = torch.empty((len(names), ns_in), dtype=torch.float16).pin_memory()
            arr = np.zeros((len(names), ns_in), dtype=np.float32)
            for i, p in enumerate(names):
                with open(p, "rb") as f:
                    buf = f.read()
                try:
                    off, n = data_offset(buf)
                    x = np.frombuffer(buf, dtype="<i2", count=min(n // 2, ns_in), offset=off)
                    arr[i, :len(x)] = x
                except ValueError:
                    pass
            host.copy_(torch.from_numpy(arr * (1.0 / 32768.0)))
            q.put((t, host))

    threads = [threading.Thread(target=reader, daemon=True) for _ in range(a.threads)]
    for th in threads:
        th.start()
    stream = torch.cuda.Stream()
    done = 0
    while done < len(tasks):
        t, host = q.get()
        with torch.cuda.stream(stream):
            x = host.to(dev, non_blocking=True).float()
            if rate_in != SR:
                x = torchaudio.functional.resample(x, rate_in, SR)[:, :NS]
            seg = x.unfold(1, LONG_WIN, LONG_HOP).unfold(2, SHORT_WIN, SHORT_HOP)
            seg = seg.reshape(-1, SHORT_WIN)
            with torch.autocast("cuda", dtype=torch.float16):
                m = to_db(mel(seg))
            out = m.mean(dim=-1, keepdim=True).half().cpu()
        stream.synchronize()
        r0 = t * a.files_per_task * ROWS_PER_FILE
        rows = out.shape[0]
        feats[r0:r0 + rows] = out.numpy()
        idx = np.arange(r0, r0 + rows, dtype=np.int64)
        local = idx - r0
        mapping[r0:r0 + rows] = np.stack([
            idx, r0 // ROWS_PER_FILE + local // ROWS_PER_FILE,
            (local % ROWS_PER_FILE) // N_SHORT, local % N_SHORT,
            ((local % ROWS_PER_FILE) // N_SHORT) * LONG_HOP + (local % N_SHORT) * SHORT_HOP,
            ((local % ROWS_PER_FILE) // N_SHORT) * LONG_HOP + (local % N_SHORT) * SHORT_HOP + SHORT_WIN,
        ], axis=1)
        done += 1
    for arr in (feats, mapping):
        arr.flush()
        fd = os.open(arr.filename, os.O_RDONLY)
        os.fsync(fd)
        os.close(fd)
    wall = time.perf_counter() - t0
    print(json.dumps({"pipeline": "torchaudio-seed", "files": len(files), "rows": n_rows,
                      "rate_in": rate_in,
                      "threads": a.threads, "files_per_task": a.files_per_task,
                      "wall_s": round(wall, 3)}))


if __name__ == "__main__":
    sys.exit(main())
