"""The settings' documentation, from the definitions the command's ``--help`` is made of."""

import inspect
import textwrap

from . import _native

# Settings that concern files, which an Extractor (samples in memory) does not take.
FILE_ONLY = ("ext", "resample", "channel", "mapping", "layout")


def settings_doc(keys, heading="Settings (keywords; TOML keys of ``melpipe run --print-config``)",
                 defaults=None):
    """A docstring section listing ``keys`` with their defaults (``defaults`` overrides some) and
    meaning."""
    lines = [heading, "-" * len(heading)]
    for key, default, text, _shapes in _native.definitions():
        if key not in keys:
            continue
        default = (defaults or {}).get(key, default)
        shown = f" (default: {default})" if default else ""
        lines.append(f"{key}{shown}")
        lines.extend(textwrap.wrap(text, 92, initial_indent="    ", subsequent_indent="    "))
    return "\n".join(lines)


def with_settings(func, keys, heading=None, defaults=None):
    """Appends the settings section to ``func.__doc__``."""
    if heading is None:
        section = settings_doc(keys, defaults=defaults)
    else:
        section = settings_doc(keys, heading, defaults)
    func.__doc__ = inspect.cleandoc(func.__doc__ or "") + "\n\n" + section + "\n"
    return func
