"""``melpipe.open``: an output folder, its arrays memory-mapped (docs/FORMAT.md)."""

import json
import os
from pathlib import Path
from typing import Any, Dict, List, NamedTuple, Optional, Union

import numpy as np

from . import _native


class Verification(NamedTuple):
    """What ``melpipe verify`` finds; true when the output is intact."""

    intact: bool
    problems: List[str]
    notes: List[str]

    def __bool__(self) -> bool:
        return self.intact


def _array(folder: Path, info: Dict[str, Any]):
    """An array of a manifest checked by `read_manifest` (its name one of melpipe's), memory-mapped
    read-only."""
    path = folder / info["file"]
    shape = tuple(int(n) for n in info["shape"])
    dtype = np.dtype(info["descr"])
    if int(np.prod(shape)) == 0:
        # An empty file cannot be memory-mapped.
        return np.empty(shape, dtype=dtype)
    if info["header_bytes"] == 0:
        return np.memmap(path, dtype=dtype, mode="r", shape=shape)
    return np.load(path, mmap_mode="r")


class Output:
    """A melpipe output folder: features and mapping memory-mapped, the manifest's entries.

    ``len(out)`` is the number of rows, ``out[i]`` a row (or rows, for a slice or an index
    array) of the features, ``(n_mels, T)`` each.
    """

    def __init__(self, path):
        self.path = Path(os.fsdecode(path))
        if not (self.path / "manifest.json").exists():
            partial = (self.path / ".melpipe-partial").is_dir()
            raise _native.InputError(
                f"{self.path}: no manifest.json: not a finished melpipe output"
                + (" (an interrupted run: resume it with run(..., resume=True))" if partial else "")
            )
        # Read as `melpipe verify` reads it before trusting it: its checksum, and arrays whose
        # names, shapes, sizes and headers follow from its configuration (never a path of its
        # choosing). The data's checksums are verify()'s.
        manifest = json.loads(_native.read_manifest(os.fsdecode(self.path)))
        self.manifest: Dict[str, Any] = manifest
        """The whole manifest (docs/FORMAT.md)."""
        self.params: Dict[str, Any] = manifest["config"]
        """The parameters of the run (the manifest's ``config``)."""
        self.files: List[Dict[str, Any]] = manifest["files"]
        """Every input file in row order: ``path``, ``status``, ``first_row``, ``rows``, …"""
        self.features = _array(self.path, manifest["features"])
        """``(N, n_mels, T)`` float16 or float32, memory-mapped."""
        self.mapping: Optional[np.ndarray] = (
            None if manifest.get("mapping") is None else _array(self.path, manifest["mapping"])
        )
        """``(N, 6)`` int64 or int32, memory-mapped (None with ``mapping = "none"``)."""
        self._first = np.fromiter((f["first_row"] for f in self.files), np.int64, len(self.files))
        self._count = np.fromiter((f["rows"] for f in self.files), np.int64, len(self.files))
        # The files that have rows, and where their rows start (for file_of_rows).
        self._with_rows = np.flatnonzero(self._count > 0)
        self._starts = self._first[self._with_rows]
        self._index: Optional[Dict[str, int]] = None

    def __len__(self) -> int:
        return int(self.manifest["rows"])

    def __getitem__(self, i):
        return self.features[i]

    def __repr__(self) -> str:
        c = self.manifest["counts"]
        return (f"<melpipe.Output {str(self.path)!r}: {len(self)} rows × {self.features.shape[1:]} "
                f"{self.features.dtype}, {len(self.files)} files ({c.get('failed', 0)} failed)>")

    def file_index(self, path: str) -> int:
        """The index of a file in :attr:`files` by its recorded path, or a unique suffix of it."""
        if self._index is None:
            self._index = {f["path"]: i for i, f in enumerate(self.files)}
        if path in self._index:
            return self._index[path]
        hits = [i for i, f in enumerate(self.files) if f["path"].endswith("/" + path)]
        if len(hits) == 1:
            return hits[0]
        if not hits:
            raise KeyError(f"no file {path!r} in {self.path}")
        raise KeyError(f"{path!r} matches {len(hits)} files in {self.path}: give more of the path")

    def rows(self, file: Union[int, str]) -> np.ndarray:
        """The feature rows of one file, by its index in :attr:`files` or its path."""
        i = self.file_index(file) if isinstance(file, str) else int(file)
        if not -len(self.files) <= i < len(self.files):
            raise IndexError(f"file index {i} out of range ({len(self.files)} files)")
        f = self.files[i]
        return self.features[f["first_row"]: f["first_row"] + f["rows"]]

    def usable(self) -> np.ndarray:
        """Row indices of the files that did not fail (int64), in row order."""
        keep = np.fromiter((f["status"] != "failed" for f in self.files), bool, len(self.files))
        return _ranges(self._first[keep], self._count[keep])

    def file_of_rows(self, rows) -> np.ndarray:
        """The file index of each row index in ``rows``."""
        rows = np.asarray(rows, dtype=np.int64)
        n = len(self)
        if rows.size and (rows.min() < 0 or rows.max() >= n):
            raise IndexError(f"row index out of range (0 … {n - 1})")
        return self._with_rows[np.searchsorted(self._starts, rows, side="right") - 1]

    def verify(self) -> Verification:
        """Checks manifest, headers and checksums as ``melpipe verify`` does."""
        return Verification(*_native.verify(os.fsdecode(self.path)))

    def torch_dataset(self, skip_failed: bool = True, dtype="float32"):
        """A ``torch.utils.data.Dataset`` of ``(features (n_mels, T), file index)`` per row.

        ``skip_failed``: leave out the (NaN) rows of failed files. ``dtype``: of the tensors
        (``"float32"``, ``"float16"`` or a torch dtype). Needs torch; safe to use with
        DataLoader workers (each reopens the arrays). A DataLoader fetches a batch with one
        gather (``__getitems__``), and its default collate gives ``[features (n, n_mels, T),
        file indices (n,)]`` as for any dataset of ``(tensor, int)`` rows; a ``collate_fn`` of
        your own receives the batch as a sequence of ``(features, file index)`` rows (indexable,
        iterable, not a ``list``).
        """
        from ._torch import FeatureDataset

        return FeatureDataset(self.path, self.usable() if skip_failed else None, dtype)


def _ranges(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """The concatenation of ``arange(s, s + c)`` for each pair, without a Python loop."""
    total = int(counts.sum())
    if total == 0:
        return np.empty(0, dtype=np.int64)
    ends = np.cumsum(counts)
    return np.arange(total, dtype=np.int64) + np.repeat(starts - (ends - counts), counts)


def open(path) -> Output:  # noqa: A001 (melpipe.open shadows the built-in on purpose)
    """Opens a melpipe output folder (read-only): see :class:`Output`."""
    return Output(path)
