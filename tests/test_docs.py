"""The documentation site builds with ``mkdocs build --strict`` (no broken link or anchor, no docstring mkdocstrings
cannot collect), and its API reference documents every name of ``netdyn.__all__``."""

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

import netdyn

ROOT = Path(__file__).resolve().parents[1]
API = ROOT / "docs" / "api"


def test_api_reference_documents_every_public_name():
    documented = {m for page in API.glob("*.md") for m in re.findall(r"^::: netdyn\.(\w+)$", page.read_text(), re.M)}
    # __version__ is a string, not an object with a docstring: the home page names it
    assert set(netdyn.__all__) - {"__version__"} <= documented
    assert documented <= set(netdyn.__all__), "the API reference documents a name netdyn does not export"


@pytest.mark.skipif(
    any(importlib.util.find_spec(m) is None for m in ("mkdocs", "mkdocstrings", "mkdocstrings_handlers.python")),
    reason="the docs extra is not installed (pip install -e '.[docs]'); CI installs it",
)
def test_site_builds_strict(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(ROOT / "mkdocs.yml"),
         "--site-dir", str(tmp_path / "site")],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    for page in ("quantities", "any-network", "runs", "verdicts", "api/analysis"):
        assert (tmp_path / "site" / page / "index.html").exists(), page
    html = (tmp_path / "site" / "api" / "analysis" / "index.html").read_text()
    assert 'id="netdyn.rpd_summary"' in html and ":class:" not in html


def _anchors(page: Path) -> set[str]:
    """The heading ids mkdocs gives a page (its toc extension's slugs)."""
    headings = re.findall(r"^#+ (.+)$", page.read_text(), re.M)
    return {re.sub(r"[-\s]+", "-", re.sub(r"[^\w\s-]", "", h).strip().lower()) for h in headings}


def test_source_cites_shipped_pages_only():
    # Users have the package and its docs, not the project's internal contract: nothing in the source, comments
    # included, cites "SPEC", and every docs page it cites (docs/PAGE.md#anchor) exists with that heading.
    cited = set()
    for path in (ROOT / "src" / "netdyn").rglob("*.py"):
        text = path.read_text()
        assert "SPEC" not in text, f"{path.relative_to(ROOT)} cites SPEC; cite the docs page instead"
        cited |= {(m.group(1), m.group(2)) for m in re.finditer(r"docs/([\w/-]+\.md)(?:#([\w-]+))?", text)}
    assert cited
    for page, anchor in sorted(cited, key=str):
        assert (ROOT / "docs" / page).exists(), page
        assert anchor is None or anchor in _anchors(ROOT / "docs" / page), f"docs/{page}#{anchor}"
