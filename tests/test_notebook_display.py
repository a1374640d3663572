"""What a notebook shows for netdyn's objects: HTML blocks with their numbers, and figures as PNG images."""

import re

import pytest

import netdyn
from netdyn.plots.display import FigureSet

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    data = netdyn.load_dataset("digits")
    net = netdyn.MLP(data.n_features, 16, 2, data.num_classes, seed=0)
    result = netdyn.train(net, data, netdyn.TrainConfig(steps=40), run_dir=tmp_path_factory.mktemp("nb") / "run")
    analysis = netdyn.analyze(net, data, netdyn.AnalysisConfig(quantities=("lmap", "lp", "rpd")))
    return data, result, analysis


def test_dataset_html_shows_sizes_class_counts_and_samples(trained):
    data = trained[0]
    page = data._repr_html_()
    assert f"<td>{data.n_train}</td>" in page and f"<td>{data.n_test}</td>" in page
    assert "8 x 8" in page and "samples per class" in page
    first_class = int((data.y_train == 0).sum())
    assert re.search(rf'<td class="num">0</td><td class="num">{first_class}</td>', page)
    assert page.count("data:image/png;base64,") == 1


def test_train_result_and_run_html_show_the_final_numbers(trained):
    _, result, _ = trained
    accuracy = netdyn.report.format_cell(result.summary["test_accuracy"])
    assert f"<td>{accuracy}</td>" in result._repr_html_()
    page = netdyn.load_run(result.run_dir)._repr_html_()
    assert f"<td>{accuracy}</td>" in page and str(result.run_dir) in page
    assert page.count("data:image/png;base64,") == 1  # the training curves


def test_analysis_html_holds_the_pruning_table_and_its_figure(trained):
    analysis = trained[2]
    page = analysis._repr_html_()
    lmap = analysis["lmap"]
    test = lmap[lmap["split"] == "test"].sort_values("layer")["accuracy"]
    for value in test:
        assert f"{value:.4f}" in page
    assert "RPD summary" in page and page.count("data:image/png;base64,") == 1


def test_plot_without_a_folder_returns_figures_a_notebook_shows(trained, tmp_path):
    analysis = trained[2]
    figures = analysis.plot()
    assert isinstance(figures, FigureSet) and "layer_accuracy" in figures
    assert all(fig._repr_png_().startswith(PNG) for fig in figures.values())
    assert figures._repr_html_().count("<img") == len(figures)
    written = analysis.plot(tmp_path)
    assert {p.name for p in written} >= {"layer_accuracy.png", "layer_accuracy.svg"}

