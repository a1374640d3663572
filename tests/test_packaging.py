"""The distribution: a wheel that builds without network (``python -m build --no-isolation``), passes ``twine check
--strict``, holds the package with its py.typed marker and license and nothing of the tests; the license and
citation files it names exist."""

import importlib.util
import shutil
import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_license_and_citation_files():
    assert "MIT License" in (ROOT / "LICENSE").read_text()
    citation = (ROOT / "CITATION.cff").read_text()
    assert "cff-version:" in citation and "arXiv:2501.02436" in citation and "license: MIT" in citation


@pytest.mark.skipif(
    any(importlib.util.find_spec(m) is None for m in ("build", "twine")),
    reason="build and twine come with the dev extra (pip install -e '.[dev]'); CI installs them",
)
def test_wheel_builds_offline_and_passes_twine_check(tmp_path):
    # Built from a copy holding only what the sdist would, so the build writes nothing into the working tree.
    project = tmp_path / "project"
    project.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, project / name)
    shutil.copytree(ROOT / "src", project / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    dist = tmp_path / "dist"
    built = subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--wheel", "--outdir", str(dist),
                            str(project)], capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    (wheel,) = dist.glob("netdyn-*.whl")
    checked = subprocess.run([sys.executable, "-m", "twine", "check", "--strict", str(wheel)],
                             capture_output=True, text=True, timeout=120)
    assert checked.returncode == 0, checked.stdout + checked.stderr

    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        (metadata_name,) = [n for n in names if n.endswith(".dist-info/METADATA")]
        metadata = Parser().parsestr(archive.read(metadata_name).decode())
    assert "netdyn/py.typed" in names
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert not [n for n in names if n.startswith("tests/") or "/tests/" in n or n.split("/")[-1].startswith("test_")]
    modules = {p.relative_to(ROOT / "src").as_posix() for p in (ROOT / "src" / "netdyn").rglob("*.py")}
    assert modules <= set(names), sorted(modules - set(names))
    assert metadata["License-Expression"] == "MIT"
    classifiers = metadata.get_all("Classifier")
    assert "Typing :: Typed" in classifiers and "Intended Audience :: Science/Research" in classifiers
    assert metadata["Keywords"] and metadata["Description-Content-Type"] == "text/markdown"
