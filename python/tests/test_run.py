"""melpipe.run(): the summary, the output, errors, config files and progress display."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import melpipe
from melpipe import _native

from conftest import CORRUPT, VALID, melpipe_cli


def read_manifest(out):
    return json.loads((Path(out) / "manifest.json").read_text())


def test_summary_matches_manifest(output):
    out, s = output
    m = read_manifest(out)
    assert isinstance(s, melpipe.RunSummary)
    assert s.out == Path(out)
    assert s.rows == m["rows"] == VALID * 237 + CORRUPT * 237
    assert s.files == m["counts"] == {"ok": VALID, "padded": 0, "truncated": 0, "failed": CORRUPT}
    assert s.files_total == VALID + CORRUPT
    assert s.device == m["device"] == "cpu"
    # The summary's time includes the wait after the manifest's own writing.
    assert m["timings"]["total_s"] > 0
    assert m["timings"]["total_s"] <= s.seconds < m["timings"]["total_s"] + 5
    assert s.failures == m["failures"]
    assert sum(f["files"] for f in s.failures) == CORRUPT
    skip = ("timings", "manifest_xxh3_64")
    assert {k: v for k, v in s.manifest.items() if k not in skip} == {
        k: v for k, v in m.items() if k not in skip
    }
    assert m["config"]["dtype"] == "f16"


def test_summary_manifest_is_the_committed_one(output):
    out, s = output
    m = read_manifest(out)
    assert s.manifest == m
    # The summary's seconds: the whole run, its commit included (the manifest's total_s ends
    # before the manifest's own writing).
    assert m["timings"]["total_s"] <= s.seconds


def test_output_verifies(output):
    out, _ = output
    v = melpipe.open(out).verify()
    assert v.intact is True and bool(v)
    assert v.problems == []


def test_byte_identical_to_cli(output, dataset, tmp_path):
    out, _ = output
    out2 = tmp_path / "cli"
    r = melpipe_cli("run", dataset, "-o", out2, "--device", "cpu", "-q")
    assert r.returncode == 0, r.stderr
    for name in ("features.npy", "mapping.npy"):
        assert (out2 / name).read_bytes() == (Path(out) / name).read_bytes(), name
    a, b = read_manifest(out), read_manifest(out2)
    assert a["config"] == b["config"] and a["files"] == b["files"]


def test_inputs_as_list_of_paths(output, dataset, tmp_path):
    out, _ = output
    s = melpipe.run([Path(dataset)], tmp_path / "o", device="cpu", progress=False)
    assert (tmp_path / "o" / "features.npy").read_bytes() == (Path(out) / "features.npy").read_bytes()
    assert s.rows == read_manifest(out)["rows"]


def test_unknown_keyword_is_type_error(valid_dir, tmp_path):
    with pytest.raises(TypeError) as e:
        melpipe.run(valid_dir, tmp_path / "o", device="cpu", progress=False, n_mel=16)
    msg = str(e.value)
    assert "'n_mel'" in msg
    for key in _native.PARAM_KEYS:
        assert key in msg
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("value", ["x", 0, -3])
def test_bad_value_is_config_error(valid_dir, tmp_path, value):
    with pytest.raises(melpipe.ConfigError) as e:
        melpipe.run(valid_dir, tmp_path / "o", device="cpu", progress=False, n_mels=value)
    assert isinstance(e.value, melpipe.MelpipeError)
    assert e.value.exit_code == 1
    assert isinstance(e.value.hint, str) and "help(melpipe.run)" in e.value.hint
    assert "n_mels" in str(e.value)
    assert not (tmp_path / "o").exists()


def test_bad_device_is_config_error(valid_dir, tmp_path):
    with pytest.raises(melpipe.ConfigError) as e:
        melpipe.run(valid_dir, tmp_path / "o", device="tpu", progress=False)
    assert e.value.exit_code == 1
    assert "tpu" in str(e.value)


def test_existing_output_needs_force(valid_dir, tmp_path):
    out = tmp_path / "o"
    melpipe.run(valid_dir, out, device="cpu", progress=False, n_mels=16)
    before = (out / "manifest.json").read_bytes()
    with pytest.raises(melpipe.ConfigError) as e:
        melpipe.run(valid_dir, out, device="cpu", progress=False, n_mels=8)
    assert e.value.exit_code == 1
    assert "force" in str(e.value)
    assert (out / "manifest.json").read_bytes() == before
    s = melpipe.run(valid_dir, out, device="cpu", progress=False, n_mels=8, force=True)
    assert s.manifest["config"]["n_mels"] == 8
    o = melpipe.open(out)
    assert o.features.shape == (VALID * 237, 8, 1)
    assert o.verify().intact
    assert sorted(os.listdir(out)) == ["features.npy", "manifest.json", "mapping.npy"]


def test_missing_input_is_input_error(tmp_path):
    with pytest.raises(melpipe.InputError) as e:
        melpipe.run(tmp_path / "nonexistent", tmp_path / "o", device="cpu", progress=False)
    assert not isinstance(e.value, melpipe.NoUsableFileError)
    assert e.value.exit_code == 1
    assert "nonexistent" in str(e.value)


def test_empty_input_list_is_input_error(tmp_path):
    with pytest.raises(melpipe.InputError) as e:
        melpipe.run([], tmp_path / "o", device="cpu", progress=False)
    assert e.value.exit_code == 1


def test_strict_stops_at_failed_file(dataset, tmp_path):
    out = tmp_path / "o"
    with pytest.raises(melpipe.StrictFailureError) as e:
        melpipe.run(dataset, out, device="cpu", progress=False, strict=True)
    assert e.value.exit_code == 3
    assert "unusual/" in str(e.value)
    assert e.value.hint
    assert not (out / "manifest.json").exists()


def test_only_corrupt_files(dataset, tmp_path):
    out = tmp_path / "o"
    with pytest.raises(melpipe.NoUsableFileError) as e:
        melpipe.run(dataset / "unusual", out, device="cpu", progress=False)
    err = e.value
    assert isinstance(err, melpipe.InputError)
    assert err.exit_code == 4
    s = err.summary
    assert isinstance(s, melpipe.RunSummary)
    assert s.files == {"ok": 0, "padded": 0, "truncated": 0, "failed": CORRUPT}
    assert s.rows == CORRUPT * 237
    assert sum(f["files"] for f in s.failures) == CORRUPT
    # The manifest is written and the output is intact (all NaN).
    assert read_manifest(out)["counts"] == s.files
    o = melpipe.open(out)
    assert o.verify().intact
    assert np.isnan(o.features[:].astype(np.float32)).all()


def test_config_file_and_keyword_override(valid_dir, tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('n_mels = 16\ndtype = "f32"\ndevice = "cpu"\n')
    s = melpipe.run(valid_dir, tmp_path / "a", progress=False, config=cfg)
    assert s.manifest["config"]["n_mels"] == 16
    assert s.manifest["config"]["dtype"] == "f32"
    assert s.device == "cpu"
    assert melpipe.open(tmp_path / "a").features.shape == (VALID * 237, 16, 1)
    s = melpipe.run(valid_dir, tmp_path / "b", progress=False, config=str(cfg), n_mels=8)
    assert s.manifest["config"]["n_mels"] == 8
    assert s.manifest["config"]["dtype"] == "f32"
    assert melpipe.open(tmp_path / "b").features.dtype == np.float32


def test_config_file_errors(valid_dir, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("n_melz = 16\n")
    with pytest.raises(melpipe.ConfigError) as e:
        melpipe.run(valid_dir, tmp_path / "o", device="cpu", progress=False, config=bad)
    assert "n_melz" in str(e.value) and e.value.exit_code == 1
    with pytest.raises(melpipe.ConfigError):
        melpipe.run(valid_dir, tmp_path / "o", device="cpu", progress=False,
                    config=tmp_path / "missing.toml")


def test_shard(dataset, output, tmp_path):
    out, full = output
    s0 = melpipe.run(dataset, tmp_path / "s0", device="cpu", progress=False, shard="0/2")
    s1 = melpipe.run(dataset, tmp_path / "s1", device="cpu", progress=False, shard="1/2")
    assert s0.manifest["shard"]["index"] == 0 and s1.manifest["shard"]["count"] == 2
    assert s0.files_total + s1.files_total == VALID + CORRUPT
    assert s0.rows + s1.rows == full.rows
    f = melpipe.open(out).features
    both = np.concatenate([melpipe.open(tmp_path / "s0").features, melpipe.open(tmp_path / "s1").features])
    assert both.tobytes() == f.tobytes()


def _python(code, **kw):
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, **kw)


def test_progress_without_tqdm_uses_status_line(valid_dir, tmp_path):
    code = (
        "import sys; sys.modules['tqdm'] = None\n"
        "import melpipe\n"
        f"melpipe.run({str(valid_dir)!r}, {str(tmp_path / 'o')!r}, device='cpu', n_mels=16)\n"
    )
    r = _python(code)
    assert r.returncode == 0, r.stderr
    assert f"done: {VALID} files" in r.stderr
    assert "melpipe:" not in r.stderr  # no tqdm bar
    assert r.stdout == ""


def test_progress_with_tqdm_shows_bar(valid_dir, tmp_path):
    pytest.importorskip("tqdm")
    code = (
        "import melpipe\n"
        f"melpipe.run({str(valid_dir)!r}, {str(tmp_path / 'o')!r}, device='cpu', n_mels=16)\n"
    )
    r = _python(code)
    assert r.returncode == 0, r.stderr
    assert "melpipe:" in r.stderr
    assert f"{VALID}/{VALID}" in r.stderr
    assert f"done: {VALID} files" in r.stderr


def test_progress_false_prints_nothing(valid_dir, tmp_path):
    code = (
        "import melpipe\n"
        f"s = melpipe.run({str(valid_dir)!r}, {str(tmp_path / 'o')!r}, device='cpu', "
        "progress=False, n_mels=16)\n"
        "assert s.rows > 0\n"
    )
    r = _python(code)
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""
    assert r.stdout == ""


def test_progress_false_keeps_warnings(valid_dir, tmp_path):
    # The default n_mels=32 with n_fft=64 gives an all-zero mel filter: a warning.
    code = (
        "import melpipe\n"
        f"melpipe.run({str(valid_dir)!r}, {str(tmp_path / 'o')!r}, device='cpu', progress=False)\n"
    )
    r = _python(code)
    assert r.returncode == 0, r.stderr
    assert "WARN" in r.stderr and "mel filters are all zero" in r.stderr
    assert "done:" not in r.stderr


def test_log_level_follows_each_call(dataset, tmp_path):
    """progress=False shows warnings only, progress=True the INFO lines, whatever came first."""
    code = (
        "import melpipe, sys\n"
        "d, o = sys.argv[1], sys.argv[2]\n"
        "melpipe.run(d, o + '/a', n_mels=16, progress=False)\n"
        "print('---', file=sys.stderr, flush=True)\n"
        "melpipe.run(d, o + '/b', n_mels=16, progress=True)\n"
        "print('---', file=sys.stderr, flush=True)\n"
        "melpipe.run(d, o + '/c', n_mels=16, progress=False)\n"
    )
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    r = subprocess.run([sys.executable, "-c", code, str(dataset), str(tmp_path)],
                       capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    first, second, third = r.stderr.split("---\n")
    assert "INFO" not in first and "INFO" not in third, r.stderr
    assert "INFO device" in second, r.stderr
