"""Ctrl-C: melpipe.run() raises KeyboardInterrupt keeping its partial output, resume=True
finishes it byte for byte; the CLI entry point exits with 130."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import melpipe

from conftest import generate

CLIPS = 3000
# n_mels=16: no warning about an all-zero mel filter.
PARAMS = dict(n_mels=16)


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    """A dataset that a one-thread run takes a few seconds over, and its uninterrupted output."""
    data = generate(tmp_path_factory.mktemp("big") / "d", "--files", CLIPS)
    ref = tmp_path_factory.mktemp("bigref") / "o"
    melpipe.run(data, ref, device="cpu", progress=False, **PARAMS)
    return data, ref


def default_signals():
    """In the child, before exec: SIGINT, SIGTERM and SIGHUP at their default, as from a
    terminal. A test suite started in the background of a script (`cmd &`: SIGINT ignored) or
    under nohup would pass that on, and a process keeps an inherited ignored signal ignored."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)


def journal_lines(out):
    j = Path(out) / ".melpipe-partial" / "journal.jsonl"
    try:
        return [line for line in j.read_text().splitlines() if line.strip()]
    except FileNotFoundError:
        return []


def interrupt_when_committed(proc, out, timeout=60, sig=signal.SIGINT):
    """Waits until the run's journal has a committed batch (its header is line 1), then sends
    `sig`; returns the committed files_done. Fails if the process ended first."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        lines = journal_lines(out)
        if len(lines) >= 2:
            done = json.loads(lines[-1])["files_done"]
            proc.send_signal(sig)
            return done
        if proc.poll() is not None:
            break
        time.sleep(0.02)
    out_, err = proc.communicate()
    if (Path(out) / "manifest.json").exists():
        pytest.skip("the run finished before it could be interrupted (machine too fast)")
    pytest.fail(f"no journal commit seen (rc {proc.returncode}): {err}")


def test_keyboard_interrupt_then_resume(big, tmp_path):
    data, ref = big
    out = tmp_path / "o"
    code = (
        "import melpipe\n"
        f"melpipe.run({str(data)!r}, {str(out)!r}, device='cpu', progress=False, threads=1, "
        f"files_per_task=1, n_mels={PARAMS['n_mels']})\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE, text=True,
                            preexec_fn=default_signals)
    committed = interrupt_when_committed(proc, out)
    _, err = proc.communicate(timeout=60)
    if proc.returncode == 0 and (out / "manifest.json").exists():
        pytest.skip("the run finished before the signal reached it (machine too fast)")
    assert proc.returncode != 0
    assert "KeyboardInterrupt" in err
    assert "resume=True" in err
    assert 0 < committed < CLIPS
    assert not (out / "manifest.json").exists()
    assert (out / ".melpipe-partial").is_dir()
    last = json.loads(journal_lines(out)[-1])
    assert 0 < last["files_done"] < CLIPS, "the run finished before the signal"

    # Without resume (or force) the partial output is refused.
    with pytest.raises(melpipe.ConfigError):
        melpipe.run(data, out, device="cpu", progress=False, **PARAMS)
    # The kept output is not a finished output.
    with pytest.raises(melpipe.InputError, match="resume=True"):
        melpipe.open(out)

    s = melpipe.run(data, out, device="cpu", progress=False, resume=True, **PARAMS)
    assert s.files == {"ok": CLIPS, "padded": 0, "truncated": 0, "failed": 0}
    assert not (out / ".melpipe-partial").exists()
    for name in ("features.npy", "mapping.npy"):
        assert (out / name).read_bytes() == (ref / name).read_bytes(), name
    assert melpipe.open(out).verify().intact


def _cli_interrupt(data, out, env=None, sig=signal.SIGINT):
    proc = subprocess.Popen(
        [sys.executable, "-m", "melpipe", "run", os.fspath(data), "-o", os.fspath(out),
         "--device", "cpu", "--threads", "1", "--files-per-task", "1", "-q",
         "--n-mels", str(PARAMS["n_mels"])],
        stderr=subprocess.PIPE, text=True, env=env, preexec_fn=default_signals,
    )
    interrupt_when_committed(proc, out, sig=sig)
    _, err = proc.communicate(timeout=60)
    return proc.returncode, err


def test_cli_entry_point_sigint_exits_130(big, tmp_path):
    data, _ = big
    out = tmp_path / "o"
    rc, err = _cli_interrupt(data, out)
    assert rc == 130, err
    assert "interrupted" in err
    assert not (out / "manifest.json").exists()
    assert (out / ".melpipe-partial").is_dir()


def test_cli_entry_point_sigterm_then_resume(big, tmp_path):
    """SIGTERM stops the command as SIGINT does (exit 130, the partial output kept), and
    `--resume` completes it byte for byte."""
    data, ref = big
    out = tmp_path / "o"
    rc, err = _cli_interrupt(data, out, sig=signal.SIGTERM)
    if rc == 0 and (out / "manifest.json").exists():
        pytest.skip("the run finished before the signal reached it (machine too fast)")
    assert rc == 130, err
    assert "--resume" in err
    assert (out / ".melpipe-partial").is_dir()
    assert not (out / "manifest.json").exists()
    r = subprocess.run(
        [sys.executable, "-m", "melpipe", "run", os.fspath(data), "-o", os.fspath(out),
         "--device", "cpu", "-q", "--resume", "--n-mels", str(PARAMS["n_mels"])],
        capture_output=True, text=True,
    )
    assert r.returncode == 0, r.stderr
    for name in ("features.npy", "mapping.npy"):
        assert (out / name).read_bytes() == (ref / name).read_bytes(), name


def test_keyboard_interrupt_with_device_auto(big, tmp_path):
    """With device="auto" the run holds Ctrl-C only while a GPU may be starting: the signal
    still stops it, whether the machine has a GPU or not."""
    data, _ = big
    out = tmp_path / "o"
    code = (
        "import melpipe\n"
        f"melpipe.run({str(data)!r}, {str(out)!r}, device='auto', progress=False, threads=1, "
        f"files_per_task=1, n_mels={PARAMS['n_mels']})\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE, text=True,
                            preexec_fn=default_signals)
    interrupt_when_committed(proc, out)
    _, err = proc.communicate(timeout=60)
    if proc.returncode == 0 and (out / "manifest.json").exists():
        pytest.skip("the run finished before the signal reached it (machine too fast)")
    assert "KeyboardInterrupt" in err and "resume=True" in err, err
    assert (out / ".melpipe-partial").is_dir()
