"""The report of an analysis shows every registered quantity's section, figures and captioned tables."""

import html

import torch

from netdyn import MLP, AnalysisConfig, analyze, load_dataset
from netdyn.plots.registry import FIGURES, analysis_figures, present_quantities
from netdyn.report.sections import SECTIONS, report_sections


def test_every_registered_table_and_figure_reaches_the_report(tmp_path):
    torch.manual_seed(0)
    data = load_dataset("blobs", train_size=200, test_size=100)
    net = MLP(data.x_train.shape[1], 16, 3, data.num_classes, batchnorm=True, seed=0).eval()
    config = AnalysisConfig(quantities=tuple(SECTIONS), basins=True, basin_samples=50, repeats=1,
                            eps=(0.0, 1.0), max_samples=100, device="cpu")
    result = analyze(net, data, config)
    names = present_quantities(result.tables)
    assert set(names) == set(SECTIONS)  # every registered quantity ran (batch norm: bn_perturbation too)
    page = html.unescape(result.to_html(tmp_path / "report.html").read_text())
    summary = result.summary
    for name in names:
        entry = SECTIONS[name]
        captioned = entry.tables(result.tables, summary)
        if captioned or (name in FIGURES and FIGURES[name].figures(result.tables, summary)):
            assert f">{entry.section}<" in page, name  # a section with nothing to show is left out
        for caption, _ in captioned:
            assert f"<caption>{caption}</caption>" in page, (name, caption)
    known = ["network accuracy", "L-map accuracy", "LP accuracy", "RPD summary", "census by layer", "by layer",
             "basin sizes", "per class", "equivalent eps by layer"]
    assert all(f"<caption>{caption}</caption>" in page for caption in known)
    # the figures: one per registered figure name, embedded once each
    figures = analysis_figures(result.tables, summary)
    expected = {n for name in names if name in FIGURES for n in FIGURES[name].figures(result.tables, summary)}
    assert set(figures) == expected and len(expected) >= 8
    sections = report_sections(result.tables, summary)
    assert sum(len(s.figures) for s in sections) == len(figures)
    assert page.count("<img") == len(figures)


def test_a_batch_norm_runs_training_figure_shows_both_evaluations_by_default():
    """SPEC 4 (bn_eval="auto"): a BN net's history holds running and batch statistics, and the report's training
    figure draws both, so a reader sees the running statistics' lag."""
    from netdyn import TrainConfig, train

    data = load_dataset("blobs", train_size=200, test_size=100)
    net = MLP(data.x_train.shape[1], 16, 2, data.num_classes, batchnorm=True, seed=0)
    history = train(net, data, TrainConfig(steps=20, batch_size=50, eval_every=5)).history
    [training] = [s for s in report_sections({}, {}, history) if s.title == "Training"]
    accuracy_axes = training.figures[0].axes[0]
    labels = sorted(line.get_label() for line in accuracy_axes.get_lines())
    assert labels == ["test, BN batch", "test, BN running", "train, BN batch", "train, BN running"]
    legend = [text.get_text() for text in accuracy_axes.get_legend().get_texts()]
    assert {"BN running statistics", "BN batch statistics"} <= set(legend)
