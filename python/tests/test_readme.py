"""The README's Python snippets run as written, on a generated dataset in ./DATA."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def snippet(name):
    readme = (ROOT / "README.md").read_text()
    start = readme.index(f"<!-- snippet: {name} ")
    code = readme[start:]
    code = code[code.index("```python\n") + 10:]
    return code[: code.index("```")]


def test_readme_names_its_snippets():
    names = re.findall(r"<!-- snippet: (python[\w-]*)", (ROOT / "README.md").read_text())
    assert names == ["python", "python-torch"]


@pytest.mark.parametrize("name", ["python", "python-torch"])
def test_readme_snippet_runs(name, dataset, tmp_path):
    if name == "python-torch":
        pytest.importorskip("torch")
    os.symlink(dataset, tmp_path / "DATA")
    r = subprocess.run([sys.executable, "-c", snippet(name)], cwd=tmp_path,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "feats" / "manifest.json").exists()
    if name == "python":
        # summary.rows, summary.files, summary.device (the GPU where there is one)
        assert r.stdout.startswith("6399 {'ok': 24, 'padded': 0, 'truncated': 0, 'failed': 3} "), r.stdout
