#!/usr/bin/env python3
"""The Python package's GPU checks (scripts/python_gpu_check.sh installs the wheel first).

usage: python_gpu_check.py WORK   (WORK/data: a dataset from `melpipe generate`)
"""
import concurrent.futures
import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np

import melpipe

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "bench"))
from wav_pcm16 import pcm16  # noqa: E402

W = sys.argv[1]
DATA = f"{W}/data"
HERE = os.path.dirname(os.path.abspath(__file__))


def ulp_f16(a, b):
    """Distances in float16 ulps between two float32 arrays rounded to float16."""
    ia = np.asarray(a, np.float16).view(np.int16).astype(np.int32)
    ib = np.asarray(b, np.float16).view(np.int16).astype(np.int32)
    ia = np.where(ia < 0, -32768 - ia, ia)
    ib = np.where(ib < 0, -32768 - ib, ib)
    return np.abs(ia - ib)


def within_contract(gpu, cpu, what):
    assert gpu.shape == cpu.shape, (what, gpu.shape, cpu.shape)
    d = ulp_f16(gpu, cpu)
    share = float((d <= 1).mean()) * 100
    print(f"{what}: {gpu.size} values, {share:.4f} % within 1 f16 ulp, largest {int(d.max())} ulp, "
          f"largest |diff| {float(np.abs(gpu.astype(np.float64) - cpu).max()):.3g} dB")
    assert share >= 99.9, f"{what}: only {share:.4f} % within 1 f16 ulp"


print("== melpipe.run(device='cuda') against device='cpu'")
gpu = melpipe.run(DATA, f"{W}/gpu", device="cuda", force=True, progress=False, cpu_head=0)
cpu = melpipe.run(DATA, f"{W}/cpu", device="cpu", force=True, progress=False)
print(f"cuda: {gpu.rows} rows, {gpu.files}, on {gpu.device}, {gpu.seconds:.2f} s")
print(f"cpu:  {cpu.rows} rows, {cpu.files}, on {cpu.device}, {cpu.seconds:.2f} s")
assert gpu.device.startswith("cuda"), gpu.device
for out in ("gpu", "cpu"):
    v = melpipe.open(f"{W}/{out}").verify()
    assert v.intact, v.problems
subprocess.run([sys.executable, f"{HERE}/compare_outputs.py", f"{W}/gpu", f"{W}/cpu"], check=True)

print("== Extractor(device='cuda') against the CPU extract")
out = melpipe.open(f"{W}/cpu")
ok = [i for i, f in enumerate(out.files) if f["status"] == "ok"][:256]


clips = np.stack([pcm16(f"{DATA}/{out.files[i]['path']}") for i in ok])
cpu_x = melpipe.Extractor("cpu")
gpu_x = melpipe.Extractor("cuda")
assert gpu_x.device.startswith("cuda"), gpu_x.device
a = cpu_x.extract(clips)
b = gpu_x.extract(clips)
within_contract(b, a, "int16 batch, GPU vs CPU")
c = gpu_x.extract((clips / np.float32(32768)).astype(np.float32))
within_contract(c, a, "float32 batch, GPU vs CPU")
# The stored f16 features of the CPU run are the CPU extract rounded.
stored = np.concatenate([np.asarray(out.rows(i)) for i in ok])
assert np.array_equal(stored, a.astype(np.float16)), "the CPU extract is not the CPU run's values"
with concurrent.futures.ThreadPoolExecutor(8) as pool:
    parts = list(pool.map(lambda k: gpu_x.extract(clips[k * 32:(k + 1) * 32]), range(8)))
assert np.array_equal(np.concatenate(parts), b), "8 threads on one Extractor differ from one call"
print("8 threads on one GPU Extractor: identical to one call")
f16 = melpipe.Extractor("cuda", dtype="f16").extract(clips[:16])
assert f16.dtype == np.float16
within_contract(f16.astype(np.float32), a[:16 * 237], "f16 output, GPU vs CPU")
none = dict(pool="none", top_db=60.0)
within_contract(melpipe.Extractor("cuda", **none).extract(clips[:32]),
                melpipe.Extractor("cpu", **none).extract(clips[:32]), "pool none, top_db 60")

print("== torch_dataset() in a DataLoader with 4 workers")
import torch  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402

ds = melpipe.open(f"{W}/gpu").torch_dataset()
usable = melpipe.open(f"{W}/gpu").usable()
assert len(ds) == len(usable)
loader = DataLoader(ds, batch_size=1024, shuffle=False, num_workers=4)
feats = melpipe.open(f"{W}/gpu").features
seen = 0
for x, file_idx in loader:
    want = np.asarray(feats[usable[seen:seen + len(x)]], np.float32)
    assert x.dtype == torch.float32 and np.array_equal(x.numpy(), want), "a batch differs from the array"
    seen += len(x)
assert seen == len(ds), (seen, len(ds))
assert not torch.isnan(x).any()
print(f"DataLoader: {seen} rows in {len(loader)} batches, equal to the array's usable rows")

print("== Ctrl-C during a GPU run's start and work, then resume=True: the bytes of a whole run")
import signal  # noqa: E402
import time  # noqa: E402

ref = f"{W}/gpu_ref"
melpipe.run(DATA, ref, device="cuda", force=True, progress=False)
ref_bytes = {k: open(f"{ref}/{k}", "rb").read() for k in ("features.npy", "mapping.npy")}
code = ("import melpipe, sys; melpipe.run(sys.argv[1], sys.argv[2], device='cuda', force=True, "
        "progress=False)")
crashes = []
for delay in (0.05, 0.15, 0.25, 0.35, 0.45, 0.7):
    for how in ("run", "command"):
        out = f"{W}/int_{how}_{delay}"
        shutil.rmtree(out, ignore_errors=True)
        if how == "run":
            cmd = [sys.executable, "-c", code, DATA, out]
        else:
            cmd = [sys.executable, "-m", "melpipe", "run", DATA, "-o", out, "--device", "cuda",
                   "--force", "-q"]
        p = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
        time.sleep(delay)
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=120)
        finished = os.path.exists(f"{out}/manifest.json")
        # The command exits 130 (or 0 when it had finished; or by SIGINT, -2, when the signal
        # came while the interpreter still started, before the command took the signals);
        # run() raises KeyboardInterrupt (Python then ends by SIGINT, -2), or returns when it
        # had finished.
        # A signal during the interpreter's own start ends it with a KeyboardInterrupt there
        # (exit 1), before melpipe is imported.
        starting = (p.returncode == 1 and "KeyboardInterrupt" in err
                    and not os.path.isdir(f"{out}/.melpipe-partial"))
        expected = (0, 130, -2) if how == "command" else (0, -2)
        # A run that had finished may still take the signal while the interpreter exits (-2).
        ok = (starting or (finished and p.returncode in (0, -2, 130))
              or (p.returncode in expected and (p.returncode == 0 or how == "command"
                                                or "KeyboardInterrupt" in err)))
        if not ok:
            crashes.append((how, delay, p.returncode, err[-600:]))
        if not finished:
            try:
                melpipe.run(DATA, out, device="cuda", resume=True, progress=False)
            except melpipe.ConfigError as e:
                # Killed before its journal had a header: nothing to resume.
                print(f"  resume refused ({str(e).splitlines()[0]}): run again with force=True")
                melpipe.run(DATA, out, device="cuda", force=True, progress=False)
        for k, v in ref_bytes.items():
            assert open(f"{out}/{k}", "rb").read() == v, (how, delay, k)
        print(f"SIGINT at {delay:.2f} s into {how}: rc {p.returncode}"
              f"{'' if ok else ' (NOT the expected stop)'}, "
              f"{'finished before it' if finished else 'resumed'}: identical to a whole run")
if crashes:
    for c in crashes:
        print("unexpected end:", c)
    sys.exit(1)

print("== README Python snippets")
readme = open("README.md").read()
for name in re.findall(r"<!-- snippet: (python[\w-]*)", readme):
    start = readme.index(f"<!-- snippet: {name}")
    code = readme[start:]
    code = code[code.index("```python\n") + 10:]
    code = code[:code.index("```")]
    cwd = f"{W}/snippet-{name}"
    os.makedirs(cwd, exist_ok=True)
    if not os.path.exists(f"{cwd}/DATA"):
        os.symlink(DATA, f"{cwd}/DATA")
    subprocess.run([sys.executable, "-c", code], cwd=cwd, check=True)
    print(f"snippet {name}: ran")
print(json.dumps({"python_gpu_check": "PASS"}))
