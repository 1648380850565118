"""melpipe.extract() and melpipe.Extractor: features of samples in memory, a run's numbers."""

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import soundfile as sf

import melpipe

from conftest import VALID

ROWS = 237  # rows of a 40960-sample clip with the default geometry


@pytest.fixture(scope="module")
def decoded(dataset, output_f32):
    """The valid clips read with soundfile, int16 and float32 (VALID, 40960), and each one's
    rows in the f32 run's output, in row order."""
    out = melpipe.open(output_f32)
    ok = [f for f in out.files if f["status"] == "ok"]
    assert len(ok) == VALID
    i16 = np.stack([sf.read(dataset / f["path"], dtype="int16")[0] for f in ok])
    f32 = np.stack([sf.read(dataset / f["path"], dtype="float32")[0] for f in ok])
    assert i16.shape == (VALID, 40960) and i16.dtype == np.int16
    assert f32.dtype == np.float32
    # soundfile's float32 of PCM16 is v/32768, as melpipe's decoder.
    assert np.array_equal(f32, i16.astype(np.float32) / 32768)
    rows = [np.asarray(out.rows(out.files.index(f))) for f in ok]
    return i16, f32, rows


def test_extract_equals_f32_run(decoded):
    i16, f32, rows = decoded
    for k in (0, 5, VALID - 1):
        a = melpipe.extract(i16[k], 4096)
        b = melpipe.extract(f32[k], 4096)
        assert a.dtype == np.float32 and a.shape == (ROWS, 32, 1)
        assert np.array_equal(a, rows[k])
        assert np.array_equal(b, rows[k])


def test_extract_f16_equals_f16_run(decoded, output):
    i16, _, _ = decoded
    o16 = melpipe.open(output[0])
    a = melpipe.Extractor(dtype="f16").extract(i16[0])
    assert a.dtype == np.float16
    assert np.array_equal(a, o16.rows(0))


def test_batch_in_order(decoded):
    i16, f32, rows = decoded
    ex = melpipe.Extractor()
    b = ex.extract(i16)
    assert b.shape == (VALID * ROWS, 32, 1)
    assert np.array_equal(b, np.concatenate(rows))
    assert np.array_equal(ex.extract(f32[:3]), np.concatenate([ex.extract(c) for c in f32[:3]]))
    assert np.array_equal(melpipe.extract(f32[2:5], 4096), np.concatenate(rows[2:5]))


def test_fixed_length_pads_and_truncates(decoded):
    _, f32, rows = decoded
    ex = melpipe.Extractor()
    short = f32[0, :30000]
    padded = np.concatenate([short, np.zeros(40960 - 30000, np.float32)])
    a = ex.extract(short)
    assert a.shape == (ROWS, 32, 1)
    assert np.array_equal(a, ex.extract(padded))
    assert not np.array_equal(a, rows[0])
    longer = np.concatenate([f32[0], f32[1, :5000]])
    assert np.array_equal(ex.extract(longer), rows[0])
    # int16 the same way, and a batch of short clips.
    i16 = (short * 32768).astype(np.int16)
    assert np.array_equal(ex.extract(i16), a)
    assert np.array_equal(ex.extract(np.stack([short, short])), np.concatenate([a, a]))


def test_natural_length(decoded):
    _, f32, rows = decoded
    ex = melpipe.Extractor(length="natural")
    for n in (40960, 5000, 1024, 1023, 100):
        got = ex.extract(f32[0, :n])
        assert got.shape == (ex.rows(n), 32, 1)
    assert ex.rows(40960) == ROWS
    assert ex.rows(1023) == 0 and ex.rows(1024) == 3
    assert np.array_equal(ex.extract(f32[0]), rows[0])
    # Natural rows of a prefix are the first rows of the whole clip (segments are local).
    assert np.array_equal(ex.extract(f32[0, :5000]), rows[0][: ex.rows(5000)])


def test_pool_none_shape():
    x = np.random.default_rng(0).standard_normal(40960).astype(np.float32) * 0.1
    ex = melpipe.Extractor(pool="none")
    a = ex.extract(x)
    assert a.shape == (ROWS, 32, 33)
    assert ex._native.row_shape == (32, 33)
    assert np.isfinite(a).all()
    # The mean pool is the mean of the power before the log.
    mean = melpipe.extract(x, 4096)
    power = 10 ** (a.astype(np.float64) / 10)
    assert np.allclose(10 * np.log10(power.mean(axis=2)), mean[:, :, 0], atol=1e-3)


def test_f16_is_cast_of_f32(decoded):
    _, f32, _ = decoded
    full = melpipe.Extractor().extract(f32[:4])
    half = melpipe.Extractor(dtype="f16").extract(f32[:4])
    assert half.dtype == np.float16
    assert np.array_equal(half, full.astype(np.float16))
    assert np.array_equal(melpipe.extract(f32[0], 4096, dtype="f16"), full[:ROWS].astype(np.float16))


@pytest.mark.parametrize("dtype", [np.float64, np.int32, np.float16, np.uint8, ">f4"])
def test_wrong_dtype(dtype):
    with pytest.raises(TypeError, match="int16 or float32"):
        melpipe.extract(np.zeros(1000, dtype=dtype), 4096)


def test_wrong_ndim():
    with pytest.raises(ValueError, match="3-D"):
        melpipe.extract(np.zeros((2, 2, 1000), np.float32), 4096)


def test_non_contiguous(decoded):
    _, f32, rows = decoded
    wide = np.stack([f32[0], f32[1]], axis=1)  # (40960, 2)
    col = wide[:, 0]
    assert not col.flags.c_contiguous
    assert np.array_equal(melpipe.extract(col, 4096), rows[0])
    fortran = np.asfortranarray(f32[:2])
    assert np.array_equal(melpipe.extract(fortran, 4096), np.concatenate(rows[:2]))
    assert np.array_equal(melpipe.extract(f32[:4:2], 4096), np.concatenate([rows[0], rows[2]]))


def test_thread_safe(decoded):
    i16, _, _ = decoded
    ex = melpipe.Extractor(threads=1)
    batch = i16[:4]
    expect = ex.extract(batch)
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: ex.extract(batch), range(16)))
    for r in results:
        assert np.array_equal(r, expect)
    with ThreadPoolExecutor(8) as pool:
        singles = list(pool.map(ex.extract, list(i16[:8])))
    assert np.array_equal(np.concatenate(singles), ex.extract(i16[:8]))


@pytest.mark.parametrize(
    "kw", [dict(ext=["wav"]), dict(resample=True), dict(mapping="none"), dict(layout="seed"),
           dict(channel=0)]
)
def test_file_only_settings_refused(kw):
    key = next(iter(kw))
    with pytest.raises(TypeError, match=f"`{key}`"):
        melpipe.Extractor(**kw)
    with pytest.raises(TypeError, match=f"`{key}`"):
        melpipe.extract(np.zeros(100, np.float32), 4096, **kw)


def _cuda_works():
    try:
        melpipe.Extractor(device="cuda")
        return True
    except melpipe.DeviceError:
        return False


def test_devices():
    if _cuda_works():
        pytest.skip("a GPU is usable here")
    with pytest.raises(melpipe.DeviceError) as e:
        melpipe.Extractor(device="cuda")
    assert "cuda:0" in str(e.value)
    with pytest.raises(melpipe.DeviceError):
        melpipe.Extractor(device="cuda:1")
    assert melpipe.Extractor(device="auto").device == "cpu"
    assert melpipe.Extractor().device == "cpu"
    assert "cpu" in repr(melpipe.Extractor())
    with pytest.raises(melpipe.ConfigError):
        melpipe.Extractor(device="cuda:all")
    with pytest.raises(melpipe.ConfigError):
        melpipe.Extractor(device="tpu")


def test_unknown_keyword():
    with pytest.raises(TypeError) as e:
        melpipe.Extractor(n_mel=16)
    assert "'n_mel'" in str(e.value) and "n_mels" in str(e.value)
    with pytest.raises(TypeError):
        melpipe.extract(np.zeros(100, np.float32), 4096, n_mel=16)


def test_bad_value_is_config_error():
    with pytest.raises(melpipe.ConfigError) as e:
        melpipe.Extractor(n_mels=0)
    assert e.value.exit_code == 1


def test_sample_rate():
    ex = melpipe.Extractor(sample_rate=8000, clip_samples=8000)
    assert ex.sample_rate == 8000 and ex.params["sample_rate"] == 8000
    assert ex.params["dtype"] == "f32"
    x = np.zeros(8000, np.float32)
    assert ex.extract(x, sample_rate=8000).shape == (ex.rows(8000), 32, 1)
    with pytest.raises(ValueError, match="16000"):
        ex.extract(x, sample_rate=16000)
    with pytest.raises(ValueError):
        melpipe.Extractor().extract(x, sample_rate=16000)
    # extract()'s sample_rate is the Extractor's: different rates give different mel scales.
    y = np.random.default_rng(1).standard_normal(8000).astype(np.float32) * 0.1
    a = melpipe.extract(y, 8000, clip_samples=8000)
    b = melpipe.extract(y, 4096, clip_samples=8000)
    assert a.shape == b.shape and not np.array_equal(a, b)


def test_torch_tensor(decoded):
    torch = pytest.importorskip("torch")
    i16, f32, rows = decoded
    assert np.array_equal(melpipe.extract(torch.from_numpy(f32[0]), 4096), rows[0])
    assert np.array_equal(melpipe.extract(torch.from_numpy(i16[:2]), 4096), np.concatenate(rows[:2]))


def test_scalar_is_value_error():
    with pytest.raises(ValueError, match="0-D"):
        melpipe.extract(np.float32(0.5), 4096)


def test_frames_channels_array_is_refused_with_the_way_out():
    stereo = np.zeros((50_000, 2), np.float32)
    with pytest.raises(ValueError, match=r"\(frames, channels\).*x\[:, 0\]"):
        melpipe.extract(stereo, 4096)
    # Its first channel is a clip.
    assert melpipe.extract(np.ascontiguousarray(stereo[:, 0]), 4096).shape == (237, 32, 1)


def test_an_output_larger_than_memory_is_a_memory_error():
    # 10^7 clips of 16 samples: 237 rows of 32 values each, about 300 GB of float32.
    clips = np.zeros((10_000_000, 16), np.int16)
    with pytest.raises(MemoryError, match="cannot be allocated"):
        melpipe.extract(clips, 4096)


def test_non_finite_samples_are_refused_only_where_the_clip_keeps_them():
    x = np.zeros(50_000, np.float32)
    x[45_000] = np.nan  # past clip_samples (40960): truncated away, as a run does
    assert np.isfinite(melpipe.extract(x, 4096)).all()
    x[100] = np.inf
    with pytest.raises(melpipe.InputError, match="NaN or infinity"):
        melpipe.extract(x, 4096)


def test_extractor_pickles_as_its_settings():
    import pickle

    ex = melpipe.Extractor("cpu", threads=2, n_mels=16, pool="none")
    clone = pickle.loads(pickle.dumps(ex))
    x = (np.random.default_rng(1).standard_normal(40960) * 0.1).astype(np.float32)
    assert clone.params == ex.params and clone.device == "cpu"
    assert np.array_equal(clone.extract(x), ex.extract(x))


def test_threads_beyond_the_limit_is_a_config_error():
    with pytest.raises(melpipe.ConfigError, match="at most 1024"):
        melpipe.Extractor("cpu", threads=100_000)


def test_unaligned_input_is_read():
    x = (np.random.default_rng(2).standard_normal(40960) * 0.1).astype(np.float32)
    raw = np.zeros(x.nbytes + 1, np.uint8)
    raw[1:] = x.view(np.uint8)
    unaligned = np.frombuffer(raw.data, dtype=np.float32, offset=1)
    assert not unaligned.flags.aligned
    assert np.array_equal(melpipe.extract(unaligned, 4096), melpipe.extract(x, 4096))
