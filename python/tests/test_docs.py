"""The docstrings list the settings with their defaults, from the command's own definitions."""

import inspect
import pydoc
import re

import numpy as np
import pytest

import melpipe
from melpipe import _native
from melpipe._doc import FILE_ONLY

DEFS = {key: (default, text) for key, default, text, _ in _native.definitions()}


def entry_lines(doc):
    """The settings section's entries: {key: default or None}."""
    section = doc.split("Settings (keywords", 1)[1]
    found = {}
    for line in section.splitlines():
        m = re.match(r"^(\w+)(?: \(default: (.*)\))?$", line)
        if m:
            found[m.group(1)] = m.group(2)
    return found


def test_definitions_cover_keys():
    assert set(_native.PARAM_KEYS) <= set(DEFS)
    # strict is a flag of the command, not a defined setting.
    assert set(_native.RUN_KEYS) - {"strict"} <= set(DEFS)
    for key in _native.PARAM_KEYS:
        assert DEFS[key][0], f"{key} has no default in the definitions"


def test_run_doc_lists_every_setting_with_default():
    text = pydoc.render_doc(melpipe.run, renderer=pydoc.plaintext)
    assert text  # help(melpipe.run) renders
    entries = entry_lines(melpipe.run.__doc__)
    for key in _native.PARAM_KEYS:
        assert key in entries, key
        assert entries[key] == DEFS[key][0], key
        assert f"{key} (default: {DEFS[key][0]})" in text, key
    for key in _native.RUN_KEYS:
        if key in ("device", "strict"):
            continue  # run()'s own arguments, documented above the list
        assert key in entries, key
    assert "n_mels (default: 32)" in melpipe.run.__doc__
    assert "Mel bands." in melpipe.run.__doc__
    # The own keywords are documented in the Parameters section.
    for own in ("device", "resume", "force", "strict", "progress", "config", "shard"):
        assert re.search(rf"^\s*{own}$", melpipe.run.__doc__, re.M), own


def test_extractor_doc_lists_sample_keys_only():
    doc = melpipe.Extractor.__doc__
    entries = entry_lines(doc)
    sample_keys = [k for k in _native.PARAM_KEYS if k not in FILE_ONLY]
    assert set(entries) == set(sample_keys)
    for key in FILE_ONLY:
        assert key not in entries
    assert "ext (default" not in doc
    text = pydoc.render_doc(melpipe.Extractor, renderer=pydoc.plaintext)
    assert "clip_samples (default: 40960)" in text
    ex_entries = entry_lines(melpipe.extract.__doc__)
    assert set(ex_entries) == set(sample_keys) - {"sample_rate"}


def test_extractor_doc_dtype_default_is_f32():
    assert melpipe.Extractor().params["dtype"] == "f32"
    assert melpipe.extract(np.zeros(100, np.float32), 4096).dtype == np.float32
    assert entry_lines(melpipe.Extractor.__doc__)["dtype"] == "f32"
    assert entry_lines(melpipe.extract.__doc__)["dtype"] == "f32"


def test_run_doc_sections_aligned():
    doc = inspect.getdoc(melpipe.run)
    lines = doc.splitlines()
    col = {l.strip(): len(l) - len(l.lstrip()) for l in lines if l.strip() in ("Parameters", "Returns")}
    settings = [len(l) - len(l.lstrip()) for l in lines if l.lstrip().startswith("Settings (keywords")]
    assert col["Parameters"] == col["Returns"] == settings[0] == 0
