"""The type stubs say what the package defines (scripts/make_stubs.py)."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_stubs_are_current():
    pytest.importorskip("tomllib")  # the generator reads the defaults with Python 3.11's tomllib
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "make_stubs.py"), "--check"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_stubs_parse_and_name_every_setting():
    import ast

    import melpipe

    text = (ROOT / "python" / "melpipe" / "__init__.pyi").read_text()
    tree = ast.parse(text)
    run = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "run")
    keywords = {a.arg for a in run.args.kwonlyargs}
    assert set(melpipe._native.PARAM_KEYS) <= keywords
    assert "ext" in keywords and "threads" in keywords
    names = {getattr(n, "name", None) for n in tree.body}
    for public in melpipe.__all__:
        if public != "__version__":
            assert public in names, public
