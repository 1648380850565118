"""The torch ``Dataset`` of an output folder (imported only when asked for: torch is optional)."""

from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

try:  # torch >= 1.13: the default collate's documented extension point
    from torch.utils.data._utils.collate import default_collate_fn_map
except ImportError:  # older torch collates the rows one by one: the same batch, slower
    default_collate_fn_map = {}


def _dtypes(dtype):
    """The NumPy and torch dtypes of ``dtype`` (a name or a torch dtype)."""
    names = {"float32": np.float32, "float16": np.float16, "float64": np.float64}
    if isinstance(dtype, torch.dtype):
        name = str(dtype).replace("torch.", "")
    else:
        name = str(np.dtype(dtype))
    if name not in names:
        raise ValueError(f"dtype {dtype!r}: float32, float16 or float64")
    return np.dtype(names[name]), getattr(torch, name)


class FeatureDataset(Dataset):
    """Rows of a melpipe output as ``(features, file index)``; see ``Output.torch_dataset``."""

    def __init__(self, path, rows, dtype):
        self.path = path
        self.rows = rows
        self.np_dtype, self.torch_dtype = _dtypes(dtype)
        self._out = None
        self._len = len(rows) if rows is not None else len(self._output())

    def _output(self):
        # Opened lazily, and again in each DataLoader worker (memory maps are not pickled).
        if self._out is None:
            from ._output import Output

            self._out = Output(self.path)
        return self._out

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_out"] = None
        return state

    def __len__(self):
        return self._len

    def _row(self, i):
        if not -self._len <= i < self._len:
            raise IndexError(f"index {i} out of range ({self._len} rows)")
        return int(self.rows[i]) if self.rows is not None else i % self._len

    def __getitem__(self, i):
        out = self._output()
        r = self._row(int(i))
        # A copy: a view would alias the read-only memory map.
        x = np.array(out.features[r], dtype=self.np_dtype, copy=True)
        return torch.from_numpy(x), int(out.file_of_rows([r])[0])

    def __getitems__(self, indices):
        """A batch at once (DataLoader's batched fetch): one gather of the rows, returned as a
        sequence of ``(features, file index)`` rows that the default collate takes whole."""
        out = self._output()
        idx = np.asarray(indices, dtype=np.int64)
        if idx.size and (idx.min() < -self._len or idx.max() >= self._len):
            raise IndexError(f"index out of range ({self._len} rows)")
        idx = idx % max(self._len, 1)
        rows = self.rows[idx] if self.rows is not None else idx
        # Fancy indexing copies: the tensors never alias the memory map.
        feats = out.features[rows]
        files = out.file_of_rows(rows)
        # Both tensors in one buffer, made in shared memory in a DataLoader worker: a batch
        # then crosses to the main process as one shared-memory block, not two.
        shape = (len(rows),) + tuple(out.features.shape[1:])
        nf = files.nbytes
        nx = int(np.prod(shape)) * self.np_dtype.itemsize
        buf = torch.empty(nf + nx, dtype=torch.uint8)
        if torch.utils.data.get_worker_info() is not None:
            buf.share_memory_()
        files_t = buf[:nf].view(torch.int64)
        x = buf[nf:].view(self.torch_dtype).view(shape)
        np.copyto(files_t.numpy(), files)
        np.copyto(x.numpy(), feats, casting="unsafe")
        return _Rows(x, files_t)


class _Row(tuple):
    """One row of a fetched batch: ``(features, file index)``."""

    __slots__ = ()


class _Rows(Sequence):
    """A fetched batch: the gathered features ``(n, n_mels, T)`` and file indices ``(n,)``.

    To any code it is a sequence of ``(features, file index)`` rows, made when asked for. The
    default collate (``torch.utils.data.default_collate``, through ``default_collate_fn_map``,
    its documented extension point) returns the two tensors at once instead of splitting the
    batch into rows and stacking them again: the same tensors, without a Python object per row,
    which is what held a DataLoader below a million rows a second.
    """

    __slots__ = ("x", "files")

    def __init__(self, x, files):
        self.x = x
        self.files = files

    def __len__(self):
        return len(self.files)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        return _Row((self.x[i], int(self.files[i])))


def _collate_rows(batch, *, collate_fn_map=None):
    """Collates rows of melpipe batches: a whole fetched batch as it is, else stacked."""
    # A list, as torch's default collate makes of a batch of tuples.
    if isinstance(batch, _Rows):
        return [batch.x, batch.files]
    return [torch.stack([r[0] for r in batch]),
            torch.tensor([r[1] for r in batch], dtype=torch.int64)]


default_collate_fn_map[_Row] = _collate_rows
