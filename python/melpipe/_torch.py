"""The torch ``Dataset`` of an output folder (imported only when asked for: torch is optional)."""

import numpy as np
import torch
from torch.utils.data import Dataset


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
        x = np.asarray(out.features[r], dtype=self.np_dtype)
        return torch.from_numpy(x), int(out.file_of_rows([r])[0])

    def __getitems__(self, indices):
        """A batch at once (DataLoader's batched fetch): one gather, then views per row."""
        out = self._output()
        idx = np.asarray(indices, dtype=np.int64)
        if idx.size and (idx.min() < -self._len or idx.max() >= self._len):
            raise IndexError(f"index out of range ({self._len} rows)")
        idx = idx % max(self._len, 1)
        rows = self.rows[idx] if self.rows is not None else idx
        x = torch.from_numpy(np.asarray(out.features[rows], dtype=self.np_dtype))
        files = out.file_of_rows(rows).tolist()
        return list(zip(x.unbind(0), files))
