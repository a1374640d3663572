"""examples/tour.ipynb runs in a fresh Jupyter kernel, and what it shows is what the run folders hold."""

import re
from pathlib import Path

import pandas as pd
import pytest

import netdyn

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

TOUR = Path(__file__).resolve().parents[1] / "examples" / "tour.ipynb"


def _outputs(cell):
    return {mime: value for out in cell.outputs if out.output_type == "execute_result"
            for mime, value in out["data"].items()}


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("tour")
    notebook = nbformat.read(TOUR, as_version=4)
    client = nbclient.NotebookClient(notebook, timeout=120, kernel_name="python3",
                                     resources={"metadata": {"path": str(workdir)}})
    client.execute()  # a cell that raises fails here, naming the cell
    cells = {cell.source.splitlines()[-1]: _outputs(cell) for cell in notebook.cells if cell.cell_type == "code"}
    return workdir, cells


def test_the_tour_shows_the_data_set_and_the_training_result(executed):
    workdir, cells = executed
    page = cells["data"]["text/html"]
    assert "<td>1000</td>" in page and "<td>300</td>" in page and "data:image/png;base64," in page
    run = netdyn.load_run(workdir / "runs" / "tour")
    accuracy = netdyn.report.format_cell(run.summary["test_accuracy"])
    assert f"<th scope=\"row\">test_accuracy</th><td>{accuracy}</td>" in cells["result"]["text/html"]


def test_the_tour_shows_the_analysis_numbers_and_a_figure(executed):
    workdir, cells = executed
    page = cells["analysis"]["text/html"]
    lmap = pd.read_parquet(workdir / "runs" / "tour" / "metrics" / "lmap.parquet")
    test = lmap[lmap["split"] == "test"].sort_values("layer")
    for layer, accuracy in zip(test["layer"], test["accuracy"], strict=True):
        assert re.search(rf'<td class="num">{layer}</td><td class="num">{accuracy:.4f}</td>', page), layer
    assert "data:image/png;base64," in page
    figure = cells['figures["rpd_summary"]']
    assert figure["image/png"] and "text/html" not in figure  # an image, not "<Figure size ...>" alone


def test_the_tour_monitors_a_loop_and_compares_two_runs(executed):
    workdir, cells = executed
    monitored = netdyn.load_run(workdir / "runs" / "tour-loop")
    accuracy = netdyn.report.format_cell(monitored.summary["test_accuracy"])
    assert f"<td>{accuracy}</td>" in cells['netdyn.load_run("runs/tour-loop")']["text/html"]
    assert (workdir / "runs" / "tour-compare" / "report.html").is_file()
