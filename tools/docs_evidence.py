"""Bring the documents' evidence up to date from one ``netdyn reproduce all`` folder.

    python tools/docs_evidence.py RUNS_DIR

RUNS_DIR is the folder ``netdyn reproduce all --scale small --jobs 2 --out RUNS_DIR`` wrote. For every experiment
folder under it this copies ``summary.json`` and the figures (PNG, in 128 colours) to ``docs/evidence/NAME/``,
writes the generated page ``docs/reproduction/NAME.md`` (claim, verdict, every criterion per seed, headline
numbers, figures), and replaces the verdict table of README.md and docs/REPRODUCTION.md (between the markers
below) by what ``netdyn reproduce --table docs/evidence`` prints. ``tests/test_docs_evidence.py`` checks that the
committed pages and tables are what this script writes from the committed summaries.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path

from netdyn.experiments.verdicts import experiment_page, experiment_summaries, verdict_markdown, verdict_table

ROOT = Path(__file__).resolve().parent.parent
EVIDENCE = ROOT / "docs" / "evidence"
PAGES = ROOT / "docs" / "reproduction"
TABLE_DOCUMENTS = (ROOT / "README.md", ROOT / "docs" / "REPRODUCTION.md")
COMMAND = "netdyn reproduce all --scale small --jobs 2"
START = "<!-- verdict table: netdyn reproduce --table docs/evidence (tools/docs_evidence.py writes it) -->"
END = "<!-- end of verdict table -->"


def figures_of(name: str) -> list[str]:
    """The figures of an experiment in docs/evidence, as paths relative to its page."""
    return [f"../evidence/{name}/{p.name}" for p in sorted((EVIDENCE / name).glob("*.png"))]


def page_text(name: str) -> str:
    """The generated page of the experiment ``name`` from its committed summary."""
    summary = json.loads((EVIDENCE / name / "summary.json").read_text())
    return experiment_page(summary, figures_of(name), COMMAND) + "\n"


def table_text() -> str:
    """The verdict table of the committed summaries, between its markers."""
    return f"{START}\n{verdict_markdown(verdict_table(EVIDENCE))}\n{END}"


def with_table(text: str, path: Path) -> str:
    """``text`` with its verdict table (between the markers) replaced by :func:`table_text`."""
    pattern = re.compile(re.escape(START) + ".*?" + re.escape(END), re.DOTALL)
    if not pattern.search(text):
        raise SystemExit(f"{path} has no verdict table markers ({START} ... {END})")
    return pattern.sub(lambda _: table_text(), text)


def _copy_figure(source: Path, target: Path) -> None:
    """A 128-colour copy of a figure: a third of the bytes, the same picture to the eye (flat colours, lines)."""
    from PIL import Image

    with Image.open(source) as image:
        image.convert("RGB").quantize(colors=128, method=Image.Quantize.MEDIANCUT).save(target, optimize=True)


def main(runs: Path) -> None:
    found = experiment_summaries(runs)
    if not found:
        raise SystemExit(f"no experiment folder (summary.json) under {runs}")
    for folder, summary in found:
        name = summary["experiment"]
        target = EVIDENCE / name
        if target.exists():
            shutil.rmtree(target)
        target.mkdir(parents=True)
        shutil.copy2(folder / "summary.json", target / "summary.json")
        for figure in sorted((folder / "figures").glob("*.png")):
            _copy_figure(figure, target / figure.name)
        (PAGES / f"{name}.md").write_text(page_text(name))
        print(f"{name}: {summary['verdict']}, {len(figures_of(name))} figures")
    for path in TABLE_DOCUMENTS:
        path.write_text(with_table(path.read_text(), path))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python tools/docs_evidence.py RUNS_DIR")
    main(Path(sys.argv[1]))
