"""melpipe.open(): memory-mapped arrays, rows by file, usable rows, verify, layouts, natural mode."""

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

import melpipe

from conftest import CORRUPT, VALID, generate


@pytest.fixture(scope="module")
def out(output):
    return melpipe.open(output[0])


def test_arrays_match_manifest(out, output):
    m = json.loads((Path(output[0]) / "manifest.json").read_text())
    assert out.manifest == m
    assert out.params == m["config"]
    assert out.files == m["files"]
    f, mp = out.features, out.mapping
    assert isinstance(f, np.memmap) and isinstance(mp, np.memmap)
    assert f.shape == tuple(m["features"]["shape"]) == (m["rows"], 32, 1)
    assert f.dtype == np.dtype(m["features"]["descr"]) == np.float16
    assert mp.shape == tuple(m["mapping"]["shape"]) == (m["rows"], 6)
    assert mp.dtype == np.dtype(m["mapping"]["descr"]) == np.int64
    assert not f.flags.writeable
    assert np.array_equal(mp[:, 0], np.arange(m["rows"]))
    # The same data np.load gives.
    assert np.load(out.path / "features.npy").tobytes() == f.tobytes()
    assert np.array_equal(np.load(out.path / "mapping.npy"), mp)


def test_len_and_indexing(out):
    n = VALID * 237 + CORRUPT * 237
    assert len(out) == n
    assert out[5].shape == (32, 1)
    assert np.array_equal(out[5], out.features[5])
    assert np.array_equal(out[10:20], out.features[10:20])
    idx = np.array([0, 300, n - 1])
    assert out[idx].tobytes() == out.features[idx].tobytes()
    assert "6399 rows" in repr(out) and f"{CORRUPT} failed" in repr(out)


def test_rows_by_index_path_and_suffix(out):
    for i in (0, 7, VALID - 1):
        f = out.files[i]
        expect = out.features[f["first_row"]: f["first_row"] + f["rows"]]
        assert f["rows"] == 237
        assert np.array_equal(out.rows(i), expect)
        assert np.array_equal(out.rows(f["path"]), expect)
        suffix = f["path"].rsplit("/", 1)[1]  # clip_0000NN.wav: unique
        assert out.file_index(suffix) == i
        assert np.array_equal(out.rows(suffix), expect)
        assert np.array_equal(out.rows(f["path"].split("/", 1)[1]), expect)
    last = out.files[-1]
    assert out.rows(-1).tobytes() == out.rows(len(out.files) - 1).tobytes()
    assert out.rows(np.int64(3)).shape == (237, 32, 1)
    assert last["status"] == "failed"


def test_rows_errors(out):
    with pytest.raises(KeyError):
        out.rows("no_such_clip.wav")
    with pytest.raises(KeyError, match="no file"):
        out.file_index("machine_00/id_00/clip_999999.wav")
    with pytest.raises(KeyError):
        out.rows("lip_000001.wav")  # a suffix only at a path component boundary counts
    with pytest.raises(IndexError):
        out.rows(len(out.files))


def test_ambiguous_suffix(tmp_path_factory):
    # The same names under two inputs: "machine_00/id_00/clip_000000.wav" matches both.
    base = tmp_path_factory.mktemp("amb")
    a = generate(base / "a", "--files", 2)
    b = generate(base / "b", "--files", 2, "--seed", 5)
    o = base / "o"
    melpipe.run([a, b], o, device="cpu", progress=False, n_mels=16)
    out = melpipe.open(o)
    assert [f["path"] for f in out.files][:1] == ["a/machine_00/id_00/clip_000000.wav"]
    with pytest.raises(KeyError, match="2 files"):
        out.rows("clip_000000.wav")
    assert np.array_equal(out.rows("b/machine_00/id_00/clip_000000.wav"), out.rows(2))
    assert not np.array_equal(out.rows(0), out.rows(2))


def test_usable_and_failed_rows(out):
    usable = out.usable()
    assert usable.dtype == np.int64
    expect = np.concatenate([
        np.arange(f["first_row"], f["first_row"] + f["rows"])
        for f in out.files if f["status"] != "failed"
    ])
    assert np.array_equal(usable, expect)
    assert len(usable) == VALID * 237
    feats = out.features[usable].astype(np.float32)
    assert not np.isnan(feats).any()
    assert np.isfinite(feats).all() and feats.min() >= -100
    failed = [f for f in out.files if f["status"] == "failed"]
    assert len(failed) == CORRUPT
    for f in failed:
        rows = out.features[f["first_row"]: f["first_row"] + f["rows"]]
        assert rows.shape[0] == 237 and np.isnan(rows.astype(np.float32)).all()
        assert f["reason"]
    # FORMAT.md's own recipe agrees.
    assert np.array_equal(np.flatnonzero(~np.isnan(out.features[:, 0, 0])), usable)


def test_file_of_rows(out):
    rows = np.arange(len(out))
    assert np.array_equal(out.file_of_rows(rows), out.mapping[:, 1])
    assert out.file_of_rows([0, 236, 237, len(out) - 1]).tolist() == [0, 0, 1, len(out.files) - 1]


def test_verify_detects_flipped_byte(output, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(output[0], copy)
    assert melpipe.open(copy).verify().intact
    path = copy / "features.npy"
    data = bytearray(path.read_bytes())
    data[128 + 1000] ^= 0x01
    path.write_bytes(bytes(data))
    v = melpipe.open(copy).verify()
    assert v.intact is False and not v
    assert v.problems and any("features" in p for p in v.problems)


def test_open_refuses_an_edited_manifest(output, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(output[0], copy)
    m = copy / "manifest.json"
    m.write_text(m.read_text().replace('"created_unix": ', '"created_unix": 1'))
    with pytest.raises(melpipe.InputError, match="changed after melpipe wrote it"):
        melpipe.open(copy)


def test_open_never_follows_a_path_the_manifest_names(output, tmp_path):
    """A manifest pointing its features at another file (resealed so that its own checksum
    holds) is refused: the arrays' names follow from the layout."""
    import json

    copy = tmp_path / "copy"
    shutil.copytree(output[0], copy)
    m = json.loads((copy / "manifest.json").read_text())
    m["features"]["file"] = "../../../etc/passwd"
    (copy / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(melpipe.InputError):
        melpipe.open(copy)


def test_open_errors(tmp_path):
    with pytest.raises(melpipe.InputError, match="no manifest.json"):
        melpipe.open(tmp_path)
    (tmp_path / "p" / ".melpipe-partial").mkdir(parents=True)
    with pytest.raises(melpipe.InputError, match="resume=True"):
        melpipe.open(tmp_path / "p")
    (tmp_path / "j").mkdir()
    (tmp_path / "j" / "manifest.json").write_text("{not json")
    with pytest.raises(melpipe.InputError, match="not a melpipe manifest"):
        melpipe.open(tmp_path / "j")
    (tmp_path / "k").mkdir()
    (tmp_path / "k" / "manifest.json").write_text('{"format": "other/1"}')
    with pytest.raises(melpipe.InputError, match="not a melpipe manifest"):
        melpipe.open(tmp_path / "k")


def test_seed_layout(dataset, out, tmp_path):
    o = tmp_path / "seed"
    melpipe.run(dataset, o, device="cpu", progress=False, layout="seed")
    assert sorted(os.listdir(o)) == ["PIPELINE_FEATURES.DAT", "PIPELINE_MEMMAP.npy", "manifest.json"]
    s = melpipe.open(o)
    assert s.manifest["features"]["header_bytes"] == 0
    assert isinstance(s.features, np.memmap)
    assert s.features.shape == out.features.shape and s.features.dtype == out.features.dtype
    assert s.features.tobytes() == out.features.tobytes()
    assert (o / "PIPELINE_FEATURES.DAT").read_bytes() == (out.path / "features.npy").read_bytes()[128:]
    assert np.array_equal(s.mapping, out.mapping)
    assert np.array_equal(s.rows(3), out.rows(3))
    assert s.verify().intact


@pytest.mark.parametrize("mapping", ["i32", "none"])
def test_mapping_options(dataset, out, tmp_path, mapping):
    o = tmp_path / mapping
    melpipe.run(dataset, o, device="cpu", progress=False, mapping=mapping)
    s = melpipe.open(o)
    assert s.features.tobytes() == out.features.tobytes()
    if mapping == "none":
        assert s.mapping is None and s.manifest["mapping"] is None
        assert not (o / "mapping.npy").exists()
    else:
        assert s.mapping.dtype == np.int32
        assert np.array_equal(s.mapping, out.mapping)
    assert np.array_equal(s.file_of_rows(np.arange(len(s))), out.mapping[:, 1])
    assert s.verify().intact


@pytest.fixture(scope="module")
def natural(tmp_path_factory, dataset):
    base = tmp_path_factory.mktemp("nat")
    long = generate(base / "long", "--files", 3, "--samples", 5000)
    short = generate(base / "short", "--files", 2, "--samples", 500, "--seed", 2)
    o = base / "o"
    s = melpipe.run([long, short, dataset / "unusual"], o, device="cpu", progress=False,
                    length="natural", n_mels=16)
    return base, o, s


def test_natural_mode(natural):
    base, o, s = natural
    out = melpipe.open(o)
    ex = melpipe.Extractor(length="natural", n_mels=16)
    per_long = ex.rows(5000)
    assert per_long == 24
    assert s.files == {"ok": 5, "padded": 0, "truncated": 0, "failed": CORRUPT}
    assert len(out) == out.features.shape[0] == 3 * per_long
    rows = [f["rows"] for f in out.files]
    assert rows == [per_long] * 3 + [0] * 2 + [0] * CORRUPT
    assert [f["status"] for f in out.files] == ["ok"] * 5 + ["failed"] * CORRUPT
    for i in range(3, len(out.files)):
        assert out.rows(i).shape == (0, 16, 1)
        assert out.files[i]["first_row"] == len(out)
    assert np.array_equal(out.usable(), np.arange(len(out)))
    assert not np.isnan(out.features[:].astype(np.float32)).any()
    assert np.array_equal(out.file_of_rows(np.arange(len(out))), out.mapping[:, 1])
    assert out.file_of_rows([0, per_long, len(out) - 1]).tolist() == [0, 1, 2]
    assert out.verify().intact


def test_natural_mode_no_rows(natural, tmp_path):
    base, _, _ = natural
    o = tmp_path / "o"
    s = melpipe.run(base / "short", o, device="cpu", progress=False, length="natural", n_mels=16)
    assert s.rows == 0 and s.files["ok"] == 2
    out = melpipe.open(o)
    assert len(out) == 0
    assert out.features.shape == (0, 16, 1) and out.features.dtype == np.float16
    assert out.mapping.shape == (0, 6)
    assert out.usable().shape == (0,)
    assert out.rows(0).shape == (0, 16, 1)
    assert out.verify().intact


def test_torch_dataset(out):
    torch = pytest.importorskip("torch")
    ds = out.torch_dataset()
    assert len(ds) == len(out.usable())
    x, fi = ds[0]
    assert isinstance(x, torch.Tensor) and x.dtype == torch.float32 and fi == 0
    assert np.array_equal(x.numpy(), out.features[0].astype(np.float32))
    all_ds = out.torch_dataset(skip_failed=False, dtype="float16")
    assert len(all_ds) == len(out)
    x, fi = all_ds[len(out) - 1]
    assert fi == len(out.files) - 1 and torch.isnan(x).all()
    batch = ds.__getitems__([0, 237, 5])
    assert [b[1] for b in batch] == [0, 1, 0]
