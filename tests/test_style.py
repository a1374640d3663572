"""The checked style of docs/ARCHITECTURE.md: ruff (complexity at most 12, docstrings on the modules that define
the exported names, the rest of pyproject.toml's rules) and mypy in its default mode over src/ both pass."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _tool(name: str) -> str:
    exe = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    assert exe is not None, f"{name} is not installed (pip install -e '.[dev]')"
    return exe


def test_ruff_passes():
    result = subprocess.run([_tool("ruff"), "check", "src", "tests"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


def test_mypy_passes(tmp_path):
    result = subprocess.run(
        [_tool("mypy"), "--cache-dir", str(tmp_path / "mypy-cache")], cwd=ROOT, capture_output=True, text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "Success" in result.stdout
