"""The package's `melpipe` command: `python -m melpipe` and the console script."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import melpipe

from conftest import CORRUPT, VALID, melpipe_cli


def console_script():
    path = os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")])
    exe = shutil.which("melpipe", path=path)
    if exe is None:
        pytest.skip("no `melpipe` console script installed")
    return exe


@pytest.fixture(params=["module", "script"])
def cli(request):
    """Runs the command as `python -m melpipe` or as the console script."""
    prefix = [sys.executable, "-m", "melpipe"] if request.param == "module" else [console_script()]

    def run(*args):
        return subprocess.run(prefix + [os.fspath(a) for a in args], capture_output=True, text=True)

    return run


def test_help(cli):
    r = cli("--help")
    assert r.returncode == 0
    for word in ("run", "generate", "inspect", "verify", "merge", "Exit codes"):
        assert word in r.stdout
    r = cli("run", "--help")
    assert r.returncode == 0 and "--n-mels" in r.stdout and "--resume" in r.stdout


def test_version(cli):
    r = cli("--version")
    assert r.returncode == 0
    assert r.stdout.strip() == f"melpipe {melpipe.__version__}"
    assert melpipe.__version__.count(".") == 2


@pytest.mark.parametrize("args", [["bogus"], ["run", "somewhere"], ["run", "--n-mels", "x", "d", "-o", "o"], []])
def test_usage_error_exits_1(cli, args, tmp_path):
    r = cli(*args)
    assert r.returncode == 1, r.stderr
    assert r.stdout == ""
    assert "Usage" in r.stderr or "error" in r.stderr


def test_usage_names_melpipe_under_python_m():
    r = melpipe_cli("bogus")
    assert r.returncode == 1
    assert "Usage: melpipe" in r.stderr


def test_run_inspect_verify(cli, dataset, output, tmp_path):
    out, _ = output
    o = tmp_path / "o"
    r = cli("run", dataset, "-o", o, "--device", "cpu", "-q")
    assert r.returncode == 0, r.stderr
    assert r.stdout == ""
    for name in ("features.npy", "mapping.npy"):
        assert (o / name).read_bytes() == (Path(out) / name).read_bytes()

    r = cli("inspect", o)
    assert r.returncode == 0, r.stderr
    rows = (VALID + CORRUPT) * 237
    assert f"[{rows}, 32, 1] <f2" in r.stdout
    assert f"{VALID} ok, 0 padded, 0 truncated, {CORRUPT} failed" in r.stdout

    r = cli("verify", o)
    assert r.returncode == 0, r.stderr
    assert "intact" in r.stdout and str(rows) in r.stdout

    data = bytearray((o / "features.npy").read_bytes())
    data[-1] ^= 0xFF
    (o / "features.npy").write_bytes(bytes(data))
    r = cli("verify", o)
    assert r.returncode == 2
    assert "intact" not in r.stdout.replace("not intact", "")


def test_run_existing_output_exits_1(output, dataset):
    r = melpipe_cli("run", dataset, "-o", output[0], "--device", "cpu", "-q")
    assert r.returncode == 1
    assert "--force" in r.stderr


def test_run_only_corrupt_exits_4(cli, dataset, tmp_path):
    o = tmp_path / "o"
    r = cli("run", dataset / "unusual", "-o", o, "--device", "cpu", "-q")
    assert r.returncode == 4, r.stderr
    assert "no input file could be used" in r.stderr
    out = melpipe.open(o)
    assert out.manifest["counts"]["failed"] == CORRUPT == len(out.files)


def test_run_strict_exits_3(dataset, tmp_path):
    r = melpipe_cli("run", dataset, "-o", tmp_path / "o", "--device", "cpu", "-q", "--strict")
    assert r.returncode == 3, r.stderr
    assert "strict" in r.stderr


def test_print_config_matches_keys():
    r = melpipe_cli("run", "--print-config")
    assert r.returncode == 0, r.stderr
    from melpipe import _native

    # Absent settings (f_max, top_db) are shown commented out.
    keys = {line.split("=")[0].strip(" #") for line in r.stdout.splitlines() if "=" in line}
    assert set(_native.PARAM_KEYS) <= keys
    assert r.stdout.strip() == _native.default_config().strip()
