"""The HTML report: one self-contained file, every section and figure in it, everything escaped."""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from netdyn.report import ReportSection, format_cell, render_report


def _figure(title):
    fig = Figure(figsize=(3, 2))
    ax = fig.add_subplot()
    ax.plot([0, 1, 2], [1, 0, 1])
    ax.set_title(title)
    return fig


@dataclass(frozen=True)
class _Config:
    depth: int = 4
    lr: float = 1e-3


def _sections():
    table = pd.DataFrame(
        {
            "layer": [0, 1, 2],
            "split": ["test"] * 3,
            "accuracy": [0.123456789, 0.98765, 1.0],
            "note": ["a", "<b>", None],
        }
    )
    return [
        ReportSection(
            "L-map pruning",
            "The L-map replaces every transfer function after layer l.\n\nA second paragraph & more.",
            figures=[_figure("accuracy by layer"), _figure("second")],
            tables=[("L-map accuracy", table)],
        ),
        ReportSection("<script>alert(1)</script>", "x < y", figures=[_figure("rpd")]),
        ReportSection("Empty section"),
    ]


def test_report_is_one_self_contained_file(tmp_path):
    out = tmp_path / "run" / "report.html"
    path = render_report(
        "Run <1>", _sections(), out, meta={"dataset": "digits", "config": _Config(), "seed": 0}
    )
    assert path == out
    assert [p.name for p in out.parent.iterdir()] == ["report.html"]  # no temporary file left behind
    page = out.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page)
    assert "<link" not in page and "@import" not in page and "url(" not in page
    for title in ("L-map pruning", "&lt;script&gt;alert(1)&lt;/script&gt;", "Empty section"):
        assert title in page
    assert "<script>" not in page
    assert page.count('src="data:image/png;base64,') == 3
    encoded = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert all(base64.b64decode(e)[:8] == b"\x89PNG\r\n\x1a\n" for e in encoded)
    assert 'alt="accuracy by layer"' in page
    # Header: escaped title, date, meta with the dataclass config as JSON.
    assert "<title>Run &lt;1&gt;</title>" in page and "<h1>Run &lt;1&gt;</h1>" in page
    assert re.search(r"Generated \d{4}-\d{2}-\d{2} \d{2}:\d{2}", page)
    assert "digits" in page and "&quot;depth&quot;: 4" in page
    # Text: paragraphs, escaped.
    assert "<p>A second paragraph &amp; more.</p>" in page and "<p>x &lt; y</p>" in page
    # Table: rounded numbers, escaped cells, missing values shown as a dash.
    assert "<caption>L-map accuracy</caption>" in page
    assert ">0.1235</td>" in page and ">0.9877</td>" in page and "0.123456789" not in page
    assert "<td>&lt;b&gt;</td>" in page and "<td>–</td>" in page


def test_long_tables_are_cut_with_a_note(tmp_path):
    table = pd.DataFrame({"neuron": np.arange(250), "order_index": np.linspace(0, 1, 250)})
    page = render_report(
        "t", [ReportSection("modes", tables=[("neurons", table)])], tmp_path / "r.html", max_table_rows=20
    ).read_text()
    assert page.count("<tr>") == 21  # header + 20 rows
    assert "First 20 of 250 rows." in page


def test_report_rejects_what_it_cannot_embed(tmp_path):
    with pytest.raises(TypeError, match="Figure"):
        render_report("t", [ReportSection("s", figures=["plot.png"])], tmp_path / "r.html")
    with pytest.raises(TypeError, match="DataFrame"):
        render_report("t", [ReportSection("s", tables=[("x", [1, 2])])], tmp_path / "r.html")
    assert not list(tmp_path.iterdir())


def test_numbers_align_within_a_column(tmp_path):
    table = pd.DataFrame(
        {
            "accuracy": [0.6, 1.0, 0.98765],
            "step": [0.0, 10.0, 1000.0],
            "gradient": [2.4, 12.5, np.nan],
            "tiny": [1e-6, 0.5, 0.25],
        }
    )
    page = render_report("t", [ReportSection("s", tables=[("x", table)])], tmp_path / "r.html").read_text()
    rows = re.findall(r"<tr>(.*?)</tr>", page)[1:]
    cells = [re.findall(r"<td[^>]*>(.*?)</td>", row) for row in rows]
    assert [c[0] for c in cells] == ["0.6000", "1.0000", "0.9877"]
    assert [c[1] for c in cells] == ["0", "10", "1000"]
    assert [c[2] for c in cells] == ["2.40", "12.50", "–"]
    assert [c[3] for c in cells] == ["1.000e-06", "0.5", "0.25"]


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (3, "3"),
        (np.int64(12), "12"),
        (0.98765, "0.9877"),
        (1.0, "1"),
        (123.456, "123.5"),
        (123456.7, "123,457"),
        (1.23456e-5, "1.235e-05"),
        (-0.5, "-0.5"),
        (0.0, "0"),
        (float("nan"), "–"),
        (None, "–"),
        (pd.NA, "–"),
        (float("inf"), "∞"),
        (True, "True"),
        ("OPM", "OPM"),
    ],
)
def test_format_cell(value, text):
    assert format_cell(value) == text
