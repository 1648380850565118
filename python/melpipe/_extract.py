"""``melpipe.extract`` and ``melpipe.Extractor``: features of samples in memory."""

import json
import threading
from collections import OrderedDict

import numpy as np

from . import _native
from ._doc import FILE_ONLY, with_settings

_SAMPLE_KEYS = [k for k in _native.PARAM_KEYS if k not in FILE_ONLY]


def _as_array(samples):
    """``samples`` as a C-contiguous NumPy array: NumPy arrays as they are, torch tensors (and
    other array objects) through DLPack or ``__array__``."""
    if not isinstance(samples, np.ndarray):
        if hasattr(samples, "__dlpack__") and hasattr(np, "from_dlpack"):
            try:
                samples = np.from_dlpack(samples)
            except (TypeError, RuntimeError, BufferError, ValueError):
                samples = np.asarray(samples)
        else:
            samples = np.asarray(samples)
    if samples.ndim == 0:
        raise ValueError("samples must be one clip (1-D) or a batch of clips (2-D), not a scalar (0-D)")
    return np.require(samples, requirements=["C", "A"])


class Extractor:
    """Computes features of clips in memory, keeping its plans (and on a GPU its context,
    compiled kernel and buffers) across calls.

    The numbers are a run's: on ``device="cpu"`` bit for bit the CPU backend's, on
    ``"cuda"`` the GPU backend's (within 1 float16 ulp of the CPU's). A clip is what a run makes
    of a file with the same samples: with ``length = "fixed"`` (the default) zero-padded or
    truncated to ``clip_samples``, with ``"natural"`` its own length. Thread-safe; each call
    releases the GIL and computes on ``threads`` threads (CPU; 0: one per core).

    ``dtype`` is ``"f32"`` unless given (``"f16"``: float16 values, as a run stores them). The
    samples are read in place while a call runs: do not change them from another thread meanwhile.
    An Extractor pickles as its settings (a DataLoader worker gets its own); on a GPU, make it in
    the process that uses it.
    """

    def __init__(self, device: str = "cpu", *, threads: int = 0, **params):
        self._args = (device, threads, dict(params))
        self._native = _native.Extractor(device, threads, params)
        self.params = {k: v for k, v in json.loads(self._native.params_json).items()
                       if k not in FILE_ONLY}
        """Every parameter, with the value used (as a manifest's ``config``)."""

    @property
    def device(self) -> str:
        """``cpu`` or ``cuda:N``."""
        return self._native.device

    @property
    def sample_rate(self) -> int:
        """The sample rate the clips are taken at."""
        return self.params["sample_rate"]

    def rows(self, samples: int) -> int:
        """Rows of features a clip of ``samples`` samples gives."""
        return self._native.rows(samples)

    def extract(self, samples, sample_rate=None):
        """Features of one clip (1-D) or a batch of clips (2-D, one per row), int16 (scaled by
        1/32768, as PCM16 files are) or float32, finite: ``(rows, n_mels, T)`` float32 (float16
        with ``dtype="f16"``), the clips' rows one
        after the other (``Extractor.rows(samples.shape[-1])`` each). ``sample_rate``, if given,
        must be the extractor's."""
        if sample_rate is not None and sample_rate != self.sample_rate:
            raise ValueError(
                f"samples at {sample_rate} Hz, but this Extractor was made for "
                f"{self.sample_rate} Hz (Extractor(sample_rate={sample_rate}, …))"
            )
        return self._native.extract(_as_array(samples))

    __call__ = extract

    def __reduce__(self):
        device, threads, params = self._args
        return (_rebuild, (device, threads, params))

    def __repr__(self) -> str:
        return f"<melpipe.Extractor on {self.device}>"


def _rebuild(device, threads, params):
    return Extractor(device, threads=threads, **params)


_CACHE_SIZE = 8
_cache: "OrderedDict[tuple, Extractor]" = OrderedDict()
_cache_lock = threading.Lock()


def extract(samples, sample_rate: int, *, device: str = "cpu", threads: int = 0, **params):
    """Features of one clip (1-D) or a batch of clips (2-D) sampled at ``sample_rate``:
    ``(rows, n_mels, T)`` float32 (float16 with ``dtype="f16"``), computed as :class:`Extractor` does (which it keeps for the
    next call with the same settings: the last 8 are kept)."""
    try:
        key = (device, threads, sample_rate, tuple(sorted(params.items())))
        hash(key)
    except TypeError:
        key = None
    ex = None
    if key is not None:
        with _cache_lock:
            ex = _cache.get(key)
            if ex is not None:
                _cache.move_to_end(key)
    if ex is None:
        ex = Extractor(device, threads=threads, sample_rate=sample_rate, **params)
        if key is not None:
            with _cache_lock:
                _cache[key] = ex
                while len(_cache) > _CACHE_SIZE:
                    _cache.popitem(last=False)
    return ex.extract(samples)


with_settings(Extractor, _SAMPLE_KEYS, "Settings (keywords)", {"dtype": "f32"})
with_settings(extract, [k for k in _SAMPLE_KEYS if k != "sample_rate"], "Settings (keywords)",
              {"dtype": "f32"})
