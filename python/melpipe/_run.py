"""``melpipe.run``: the pipeline in this process."""

import json
import os
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional

from . import _native
from ._doc import with_settings

_CONNECTIONS = "CUDA_DEVICE_MAX_CONNECTIONS"

# Keywords of run() itself; every other keyword is a setting.
_OWN = ("device", "resume", "force", "strict", "progress", "config", "shard")


class RunSummary:
    """What a finished run produced."""

    __slots__ = ("out", "rows", "files", "device", "seconds", "failures", "_manifest")

    def __init__(self, out, rows, files, device, seconds, failures):
        self.out: Path = Path(out)
        """The output folder."""
        self.rows: int = rows
        """Feature rows written (N)."""
        self.files: Dict[str, int] = files
        """Files by status: ``ok``, ``padded``, ``truncated``, ``failed``."""
        self.device: str = device
        """What computed the features (``cpu``, ``cuda:0 NVIDIA H100 …``)."""
        self.seconds: float = seconds
        """Wall time of the run, its commit included."""
        self.failures: List[Dict[str, Any]] = failures
        """Failed files grouped by reason: ``reason``, ``files``, ``first``, ``hint``."""
        self._manifest = None

    @property
    def files_total(self) -> int:
        """Input files of the run."""
        return sum(self.files.values())

    @property
    def manifest(self) -> Dict[str, Any]:
        """The committed manifest (``out/manifest.json``, docs/FORMAT.md), read on first use."""
        if self._manifest is None:
            self._manifest = json.loads((self.out / "manifest.json").read_text(encoding="utf-8"))
        return self._manifest

    def __repr__(self) -> str:
        return (f"RunSummary(out={str(self.out)!r}, rows={self.rows}, files={self.files}, "
                f"device={self.device!r}, seconds={self.seconds:.3f}, "
                f"failures={len(self.failures)} groups)")

    def __reduce__(self):
        return (RunSummary, (self.out, self.rows, self.files, self.device, self.seconds,
                             self.failures))


def _tqdm_progress():
    """A tqdm bar's callback and its closer, or (None, None) without tqdm. The bar appears once
    the run knows its files, so that a run refused at the start shows none."""
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None, None
    state = {"bar": None}
    # On a terminal tqdm redraws at most 10 times a second; into a log file, every 10 s (as the
    # command's status line), not at every change.
    interval = 0.1 if sys.stderr.isatty() else 10.0

    def on_progress(done, total, failed, rows, phase):
        if state["bar"] is None:
            if total == 0:
                return
            state["bar"] = tqdm(total=total, unit="file", desc="melpipe", dynamic_ncols=True,
                                mininterval=interval, maxinterval=max(interval, 10.0))
        bar = state["bar"]
        if bar.total != total:
            bar.total = total
        bar.set_postfix_str(f"{rows} rows, {failed} failed, {phase.lower()}", refresh=False)
        if done > bar.n:
            bar.update(done - bar.n)

    def close():
        if state["bar"] is not None:
            state["bar"].close()
            state["bar"] = None

    return on_progress, close


def run(
    inputs,
    out,
    *,
    device: Optional[str] = None,
    resume: bool = False,
    force: bool = False,
    strict: bool = False,
    progress: bool = True,
    config=None,
    shard: Optional[str] = None,
    **params,
) -> RunSummary:
    """Extracts features of every audio file of ``inputs`` into the folder ``out``.

    What ``melpipe run INPUTS -o OUT`` does, in this process: the same files, bytes, manifest
    and guarantees (docs/FORMAT.md). The GIL is released while it runs.

    Parameters
    ----------
    inputs
        A folder (walked recursively), an audio file, ``"@list.txt"`` (one path per line), or a
        list of these.
    out
        The output folder.
    device
        ``"auto"`` (a GPU when there is one, else the CPU), ``"cpu"``, ``"cuda"``, ``"cuda:N"``
        or ``"cuda:all"``. ``None``: the ``config`` file's, else ``"auto"``.
    resume
        Continue an interrupted run into ``out`` (the same inputs and settings).
    force
        Replace an existing melpipe output in ``out`` (kept until the new one commits).
    strict
        Stop at the first failed file (:class:`StrictFailureError`).
    progress
        A tqdm bar when tqdm is installed, else the command's status line on stderr, and the
        summary at the end; ``False``: nothing but warnings (and the failed files, grouped by
        reason, as the command's ``-q``).
    config
        A TOML file of settings (``melpipe run --print-config``); keywords override it.
    shard
        ``"K/N"``: only slice K of N of the sorted file list (``melpipe merge`` joins the
        slices). Unlike the command, the scheduler's variables (Slurm, Kubernetes) are not read.
    **params
        Settings, by their TOML keys (below); an unknown keyword is a ``TypeError``.

    Returns
    -------
    RunSummary

    Raises
    ------
    ConfigError, InputError, IoError, DeviceError, StrictFailureError
        With the command's message and hint (``.hint``, ``.exit_code``).
    NoUsableFileError
        Every input file failed; the manifest was written (``.summary``).
    KeyboardInterrupt
        Ctrl-C stopped the run as it stops the command: what was committed is kept in
        ``out/.melpipe-partial`` for ``resume=True``. A second Ctrl-C returns at once while the
        run finishes stopping in the background. SIGTERM and SIGHUP are the interpreter's: by
        default they end the process (the output stays resumable, as after a kill).

    As the command, a run on a GPU creates its context with one hardware queue
    (``CUDA_DEVICE_MAX_CONNECTIONS=1`` for the run's duration, unless the variable is set): a
    CUDA context another thread creates meanwhile gets one queue too.
    """
    if isinstance(inputs, (str, bytes, os.PathLike)):
        inputs = [inputs]
    inputs = [os.fsdecode(p) for p in inputs]
    on_progress, close_bar = _tqdm_progress() if progress else (None, None)
    # One hardware queue for the GPU context the run creates, as the command does (docs/
    # PERFORMANCE.md, "one hardware queue per context"): read by the driver when a context is
    # created, so set only for the run, and only when the user has not.
    queues = _CONNECTIONS not in os.environ and device != "cpu"
    if queues:
        os.environ[_CONNECTIONS] = "1"
    try:
        brief = _native.run(
            inputs,
            os.fsdecode(out),
            params=params,
            config=None if config is None else os.fsdecode(config),
            device=device,
            resume=resume,
            force=force,
            strict=strict,
            shard=shard,
            status_line=progress and on_progress is None,
            report=progress,
            on_progress=on_progress,
            before_report=close_bar,
        )
    finally:
        if queues:
            os.environ.pop(_CONNECTIONS, None)
        if close_bar is not None:
            close_bar()
    b = json.loads(brief)
    summary = RunSummary(Path(os.fsdecode(out)), b["rows"], b["counts"], b["device"], b["seconds"],
                         b["failures"])
    failed = summary.files.get("failed", 0)
    if shard is None and summary.files_total > 0 and failed == summary.files_total:
        err = NoUsableFileError_(
            f"no input file could be used ({failed} failed; the reasons are in summary.failures "
            f"and the manifest)"
        )
        err.summary = summary
        raise err
    return summary


NoUsableFileError_ = _native.NoUsableFileError

with_settings(
    run,
    [k for k in _native.PARAM_KEYS + _native.RUN_KEYS if k not in ("device", "strict")],
)
