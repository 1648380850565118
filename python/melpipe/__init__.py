"""melpipe: log-mel features of large collections of audio clips, on an NVIDIA GPU or the CPU.

- :func:`run` turns folders of audio files into a feature folder on disk (``melpipe run``);
- :func:`open` reads such a folder: memory-mapped arrays, the manifest, a torch ``Dataset``;
- :func:`extract` and :class:`Extractor` compute features of samples in memory.

The numbers are those of the ``melpipe`` command (the same Rust code). Every parameter is a
keyword with the name of its TOML key (``melpipe run --print-config``); ``help(melpipe.run)``
lists them with their defaults.
"""

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
from ._extract import Extractor, extract
from ._output import Output, Verification, open
from ._run import RunSummary, run

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
