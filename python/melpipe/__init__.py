"""melpipe: log-mel features of large collections of audio clips, on an NVIDIA GPU or the CPU.

- :func:`run` turns folders of audio files into a feature folder on disk (``melpipe run``);
- :func:`open` reads such a folder: memory-mapped arrays, the manifest, a torch ``Dataset``;
- :func:`extract` and :class:`Extractor` compute features of samples in memory.

The numbers are those of the ``melpipe`` command (the same Rust code). Every parameter is a
keyword with the name of its TOML key (``melpipe run --print-config``); ``help(melpipe.run)``
lists them with their defaults.
"""

# The functions are imported on first use (PEP 562), so that the `melpipe` command, which needs
# none of them, starts no thread before it takes the signals (numpy's BLAS starts threads).
from ._native import (
    __version__,
    ConfigError,
    DeviceError,
    InputError,
    IoError,
    MelpipeError,
    NoUsableFileError,
    StrictFailureError,
)

# The command's exit code for each error (docs: README, "Exit codes"); `hint` is set where there
# is one.
MelpipeError.hint = None
MelpipeError.exit_code = 2
ConfigError.exit_code = 1
InputError.exit_code = 1
NoUsableFileError.exit_code = 4
IoError.exit_code = 2
DeviceError.exit_code = 2
StrictFailureError.exit_code = 3

_LAZY = {
    "run": "._run",
    "RunSummary": "._run",
    "open": "._output",
    "Output": "._output",
    "Verification": "._output",
    "extract": "._extract",
    "Extractor": "._extract",
}

__all__ = [
    "__version__",
    "run",
    "RunSummary",
    "open",
    "Output",
    "Verification",
    "extract",
    "Extractor",
    "MelpipeError",
    "ConfigError",
    "InputError",
    "NoUsableFileError",
    "IoError",
    "DeviceError",
    "StrictFailureError",
]


def __getattr__(name):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'melpipe' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
