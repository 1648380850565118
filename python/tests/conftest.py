"""Shared fixtures of the Python package's tests: a small synthetic dataset and its outputs."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

import melpipe

VALID = 24
CORRUPT = 3


def generate(folder, *args):
    """`python -m melpipe generate FOLDER ARGS…` (the package's CLI); returns the folder."""
    r = subprocess.run(
        [sys.executable, "-m", "melpipe", "generate", os.fspath(folder), "-q", *map(str, args)],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    return Path(folder)


def melpipe_cli(*args, **kw):
    """`python -m melpipe ARGS…`, its output captured as text."""
    return subprocess.run(
        [sys.executable, "-m", "melpipe", *map(os.fspath, args)],
        capture_output=True,
        text=True,
        **kw,
    )


@pytest.fixture(scope="session")
def dataset(tmp_path_factory):
    """24 valid 4096 Hz PCM16 clips of 40960 samples (machine_00/…) and 3 malformed files
    (unusual/…)."""
    return generate(tmp_path_factory.mktemp("data") / "d", "--files", VALID, "--corrupt", CORRUPT)


@pytest.fixture(scope="session")
def valid_dir(dataset):
    """The folder of the dataset that holds only the valid clips."""
    d = dataset / "machine_00"
    assert len(list(d.rglob("*.wav"))) == VALID
    return d


@pytest.fixture(scope="session")
def output(dataset, tmp_path_factory):
    """(out folder, RunSummary) of a default run (f16) of the dataset on the CPU."""
    out = tmp_path_factory.mktemp("out") / "o"
    summary = melpipe.run(dataset, out, device="cpu", progress=False)
    return out, summary


@pytest.fixture(scope="session")
def output_f32(dataset, tmp_path_factory):
    """The out folder of a `dtype = "f32"` run of the dataset on the CPU."""
    out = tmp_path_factory.mktemp("out32") / "o"
    melpipe.run(dataset, out, device="cpu", progress=False, dtype="f32")
    return out
