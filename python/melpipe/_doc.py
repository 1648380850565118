"""The settings' documentation, from the definitions the command's ``--help`` is made of."""

import textwrap

from . import _native

# Settings that concern files, which an Extractor (samples in memory) does not take.
FILE_ONLY = ("ext", "resample", "channel", "mapping", "layout")


def settings_doc(keys, heading="Settings (keywords; TOML keys of ``melpipe run --print-config``)"):
    """A docstring section listing ``keys`` with their defaults and meaning."""
    lines = [heading, "-" * len(heading)]
    for key, default, text, _shapes in _native.definitions():
        if key not in keys:
            continue
        shown = f" (default: {default})" if default else ""
        lines.append(f"{key}{shown}")
        lines.extend(textwrap.wrap(text, 92, initial_indent="    ", subsequent_indent="    "))
    return "\n".join(lines)


def with_settings(func, keys, heading=None):
    """Appends the settings section to ``func.__doc__``."""
    section = settings_doc(keys) if heading is None else settings_doc(keys, heading)
    func.__doc__ = (textwrap.dedent(func.__doc__ or "").rstrip() + "\n\n" + section + "\n")
    return func
