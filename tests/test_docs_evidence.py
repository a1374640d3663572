"""The documents agree with their evidence: the verdict tables of README.md and docs/REPRODUCTION.md are what
``netdyn reproduce --table docs/evidence`` prints, each docs/reproduction page is generated from its committed
summary.json, every registered experiment has its small-scale evidence, and every image a document shows exists."""

import importlib.util
import json
import re
from pathlib import Path

import pytest

from netdyn.experiments import EXPERIMENTS

ROOT = Path(__file__).resolve().parent.parent
EVIDENCE = ROOT / "docs" / "evidence"


def _tool():
    spec = importlib.util.spec_from_file_location("docs_evidence", ROOT / "tools" / "docs_evidence.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_experiment_has_its_small_scale_evidence_with_three_seeds():
    for name in EXPERIMENTS:
        summary = json.loads((EVIDENCE / name / "summary.json").read_text())
        assert summary["experiment"] == name and summary["scale"] == "small" and summary["threads"] == 1
        assert summary["criteria"] and all(c["n_seeds"] == 3 for c in summary["criteria"])
        assert summary["verdict"] in ("reproduced", "partly", "not reproduced")
    assert sorted(p.name for p in EVIDENCE.iterdir() if p.is_dir()) == sorted(EXPERIMENTS)


@pytest.mark.parametrize("document", ["README.md", "docs/REPRODUCTION.md"])
def test_verdict_tables_are_the_generated_table(document):
    tool = _tool()
    text = (ROOT / document).read_text()
    assert text.count(tool.START) == 1 and text.count(tool.END) == 1
    assert tool.table_text() in text
    assert tool.with_table(text, ROOT / document) == text


@pytest.mark.parametrize("name", list(EXPERIMENTS))
def test_experiment_pages_are_generated_from_their_summaries(name):
    tool = _tool()
    page = (ROOT / "docs" / "reproduction" / f"{name}.md").read_text()
    assert page == tool.page_text(name)
    summary = json.loads((EVIDENCE / name / "summary.json").read_text())
    for criterion in summary["criteria"]:
        assert f"`{criterion['label']}" in page and f"{criterion['seeds_passing']}/{criterion['n_seeds']}" in page
    assert sorted((ROOT / "docs" / "reproduction").glob("*.md")) == sorted(
        ROOT / "docs" / "reproduction" / f"{n}.md" for n in EXPERIMENTS)


def test_every_image_a_document_shows_exists():
    documents = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    shown = 0
    for document in documents:
        for target in re.findall(r"!\[[^\]]*\]\(([^)\s]+)\)", document.read_text()):
            if target.startswith("http"):
                continue
            assert (document.parent / target).is_file(), f"{document.relative_to(ROOT)} shows missing {target}"
            shown += 1
    assert shown >= len(EXPERIMENTS)


def test_an_experiment_page_shows_each_seed_its_reason_and_the_revision_mark():
    from netdyn.experiments.verdicts import experiment_page

    criterion = {"name": "c", "label": "c", "statement": "the paper | says", "quantity": "q", "rule_text": ">= 1",
                 "values": [2.0, None, 0.123456], "reasons": [None, "no bump to place", None], "seeds": [0, 1, 2],
                 "seeds_passing": 1, "n_seeds": 3, "holds": False, "decides": True}
    revised = dict(criterion, name="c2", label="c2", decides=False, since="2026-11-30", holds=True, seeds_passing=3)
    summary = {"experiment": "grokking", "figure": "Fig. 7", "scale": "small", "dataset": "mnist5k", "members": 3,
               "threads": 1, "wall_time": 120.0, "verdict": "partly", "verdict_line": "partly: 0 of 1",
               "test_accuracy": [0.9, 0.91], "by_depth": {"depth2": 0.5}, "criteria": [criterion, revised]}
    page = experiment_page(summary, ["../evidence/grokking/a.png"], "netdyn reproduce all")
    assert "| `c` | the paper \\| says | q | >= 1 | 2; – (no bump to place); 0.123 | 1/3 | fails |" in page
    assert "| `c2 [changed 2026-11-30, does not decide]` |" in page and "| 3/3 | **holds** |" in page
    assert "2.0 min of wall time with 1 torch thread." in page and "partly: 0 of 1" in page
    assert "| `test_accuracy` | 0.9, 0.91 |" in page and "| `by_depth` | depth2: 0.5 |" in page
    assert "![a](../evidence/grokking/a.png)" in page and "## The paper's claim" in page
    assert "| `verdict` |" not in page  # the verdict is the page's first line, not a headline number
