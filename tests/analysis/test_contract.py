"""One contract over every quantity of the registry (``netdyn.analysis.QUANTITIES``) and a set of small networks
(plain, residual, BN, each activation), one test id per (quantity, network): the tables and columns the record
declares, determinism under a seed, float32 vs float64 agreement, fractions in [0, 1], a JSON-ready summary.

A quantity added to the registry is checked here with no edit to this file; SPEC 5.9's own tables are checked
against the registry's columns separately."""

import json

import numpy as np
import pandas as pd
import pytest
import torch

from netdyn import MLP, AnalysisConfig
from netdyn.analysis import QUANTITIES, AnalysisContext

NETWORKS = {
    "relu": dict(activation="relu"),
    "tanh-bn": dict(activation="tanh", batchnorm=True),
    "linear": dict(activation="linear"),
    "gauss": dict(activation="gauss"),
    "sigmoid-bn": dict(activation="sigmoid", batchnorm=True),
    "gelu-residual-pre": dict(activation="gelu", residual="pre"),
    "relu-bn-residual-post": dict(activation="relu", batchnorm=True, residual="post"),
}

#: Small settings: every quantity runs in well under a second on these networks.
CONTRACT_CONFIG = AnalysisConfig(
    max_samples=150, eps=(0.0, 0.5, 1.0, 1.5, 2.0), repeats=2, basin_samples=60, bn_batch_size=50, device="cpu"
)

#: SPEC 5.9's tables and their columns: the registry must hold them exactly.
SPEC_59 = {
    "lmap": ["layer", "split", "accuracy"],
    "lp": ["layer", "split", "accuracy"],
    "rpd": ["layer", "q", "density"],
    "rpd_summary": ["layer", "gradient", "top_mass", "order_index"],
    "neuron_modes": ["layer", "neuron", "order_preservation", "order_index", "class_information", "mode"],
    "neuron_mode_census": ["layer", "opm", "npm", "inactive", "rho_mean", "rho_q10", "rho_q25", "rho_median",
                           "rho_q75", "order_index_mean", "class_information_mean"],
    "class_geometry": ["layer", "cos_dist_mean", "cos_dist_q25", "cos_dist_median", "cos_dist_q75",
                       "centre_similarity", "nc1"],
    "class_geometry_samples": ["layer", "sample", "label", "cos_dist"],
    "sample_basin": ["eps", "accuracy", "ci_low", "ci_high"],
    "weight_basin": ["eps", "accuracy", "ci_low", "ci_high"],
    "local_fields": ["split", "label", "h_a", "h_b"],
    "local_fields_summary": ["label", "test_in_train_fraction"],
    "nearest_train_distance": ["sample", "label", "distance"],
    "bn_perturbation": ["layer", "eps_equivalent"],
}

# per-neuron rank statistics: float32 can break or make a tie between two samples, and a neuron at the
# OPM/NPM boundary may flip mode; these columns are compared loosely
_RANK_COLUMNS = {"order_preservation", "class_information", "order_index", "order_index_mean",
                 "class_information_mean", "rho_mean", "rho_q10", "rho_q25", "rho_median", "rho_q75"}
_SHARE_COLUMNS = {"opm", "npm", "inactive"}


def contract_cases(quantities=QUANTITIES):
    """Every (quantity, network) pair of the contract, from the registry as it is now."""
    return [(q, n) for q in quantities for n in NETWORKS]


@pytest.fixture(scope="module")
def trained(make_blobs, fit_net):
    data = make_blobs(n_train=150, n_test=60, n_features=8, num_classes=4, seed=1)
    nets = {}
    for name, kwargs in NETWORKS.items():
        torch.manual_seed(0)
        nets[name] = fit_net(MLP(8, 12, 4, 4, seed=3, **kwargs), data, steps=40)
    return nets, data


def _assert_close(a: pd.DataFrame, b: pd.DataFrame, bounded: set, n: int, where: str) -> None:
    assert list(a.columns) == list(b.columns) and len(a) == len(b), where
    for col in a.columns:
        x, y = a[col].to_numpy(), b[col].to_numpy()
        if x.dtype.kind in "OUSTb" or str(a[col].dtype) in ("string", "str", "category"):
            if col == "mode":  # a neuron at the OPM/NPM boundary may flip; most must agree
                assert (x == y).mean() >= 0.9, where
            else:
                assert (x == y).all(), f"{where}: {col}"
            continue
        x, y = x.astype(float), y.astype(float)
        assert (np.isnan(x) == np.isnan(y)).all(), f"{where}: {col} NaN pattern"
        x, y = x[~np.isnan(x)], y[~np.isnan(y)]
        if col in _SHARE_COLUMNS:
            np.testing.assert_allclose(x, y, atol=0.1, err_msg=f"{where}: {col}")
        elif col in bounded:
            np.testing.assert_allclose(x, y, atol=2 / n + 1e-9, err_msg=f"{where}: {col}")
        elif col in _RANK_COLUMNS:
            assert np.median(np.abs(x - y)) < 1e-3, f"{where}: {col}"
        else:
            np.testing.assert_allclose(x, y, rtol=1e-3, atol=1e-3, err_msg=f"{where}: {col}")


def check_contract(record, net, data, to_float64) -> None:
    """The contract one quantity keeps on one network (see the module docstring)."""
    where = f"{record.name} on {net.extra_repr()}"
    ctx = AnalysisContext.build(net, data, CONTRACT_CONFIG)
    first = record.compute(net, data, ctx)
    assert set(first) == set(record.tables), where
    for name, table in first.items():
        assert isinstance(table, pd.DataFrame), where
        assert list(table.columns) == list(record.tables[name]), f"{where}: {name}"
        assert len(table) > 0 or not record.applies(net), f"{where}: {name} is empty"
        for col in record.bounded:
            if col in table.columns:
                values = table[col].to_numpy(float)
                values = values[~np.isnan(values)]
                assert ((values >= 0) & (values <= 1)).all(), f"{where}: {name}.{col} outside [0, 1]"
    again = record.compute(net, data, ctx)
    for name in first:
        pd.testing.assert_frame_equal(first[name], again[name], obj=f"{where}: {name}")  # same seed, same table
    network = QUANTITIES["network"].compute(net, data, ctx)  # analyze() always computes it first
    summary = record.summarize({**network, **first}, ctx)
    json.dumps(summary)  # JSON-ready numbers
    net64, data64 = to_float64(net, data)
    wide = record.compute(net64, data64, AnalysisContext.build(net64, data64, CONTRACT_CONFIG))
    for name in first:
        _assert_close(first[name], wide[name], set(record.bounded), len(data.y_train), f"{where}: {name}")


@pytest.mark.filterwarnings("ignore:.*basin.*:RuntimeWarning")
@pytest.mark.parametrize(("quantity", "network"), contract_cases())
def test_contract(quantity, network, trained, to_float64):
    nets, data = trained
    check_contract(QUANTITIES[quantity], nets[network], data, to_float64)


def test_registry_holds_spec_tables():
    declared = {name: list(cols) for record in QUANTITIES.values() for name, cols in record.tables.items()}
    for name, columns in SPEC_59.items():
        assert declared.get(name) == columns, name
    names = [name for record in QUANTITIES.values() for name in record.tables]
    assert len(names) == len(set(names))  # each table belongs to one quantity


def _toy_record():
    """A quantity the package does not have: each split's mean input norm, with a summary; its figure and report
    section are registered by name in plots and report (see _register_toy_drawing)."""
    from matplotlib.figure import Figure

    from netdyn.analysis import Quantity

    def compute(net, data, ctx):
        rows = [{"split": s, "mean_norm": float(getattr(data, f"x_{s}").norm(dim=1).mean())} for s in ("train", "test")]
        return {"toy_norms": pd.DataFrame(rows, columns=["split", "mean_norm"])}

    def figures(tables, summary):
        fig = Figure()
        fig.add_subplot().bar(tables["toy_norms"]["split"], tables["toy_norms"]["mean_norm"])
        return {"toy_norms": fig}

    return Quantity(
        name="toy",
        compute=compute,
        tables={"toy_norms": ("split", "mean_norm")},
        summarize=lambda t, ctx: {"toy_train_norm": float(t["toy_norms"]["mean_norm"].iloc[0])},
        cheap=True,
    ), figures


def test_one_record_adds_a_quantity_everywhere(monkeypatch, trained, to_float64, tmp_path):
    from netdyn import analyze
    from netdyn.orchestration import load_run, write_run_report
    from netdyn.plots.registry import FIGURES, QuantityFigures
    from netdyn.report.sections import SECTIONS, QuantitySection
    from netdyn.training import TrainConfig, train

    nets, data = trained
    record, figures = _toy_record()
    monkeypatch.setitem(QUANTITIES, "toy", record)
    monkeypatch.setitem(FIGURES, "toy", QuantityFigures(figures))
    monkeypatch.setitem(
        SECTIONS, "toy",
        QuantitySection("Toy quantity", "Mean input norm of each split.", lambda t, s: [("toy norms", t["toy_norms"])]),
    )
    # the contract test's cases now include it, and it keeps the contract
    assert [case for case in contract_cases() if case[0] == "toy"] == [("toy", n) for n in NETWORKS]
    check_contract(record, nets["relu"], data, to_float64)
    # analyze() computes it, the summary holds its number, the figures and the report show it
    result = analyze(nets["relu"], data, AnalysisConfig(basins=False, max_samples=100, device="cpu"))
    assert list(result["toy_norms"].columns) == ["split", "mean_norm"]
    assert result.summary["toy_train_norm"] == pytest.approx(float(data.x_train.norm(dim=1).mean()))
    assert "toy_norms" in result.figures()
    page = result.to_html(tmp_path / "report.html").read_text()
    assert "Toy quantity" in page and "toy norms" in page
    # only it, on request
    alone = analyze(nets["relu"], data, AnalysisConfig(quantities=("toy",), device="cpu"))
    assert set(alone.tables) == {"network", "toy_norms"}
    # in a run folder: written, and removed again by an analysis that no longer computes it
    run_dir = tmp_path / "run"
    trained_run = train(MLP(8, 12, 2, 4, seed=0), data, TrainConfig(steps=5), run_dir=run_dir)
    write_run_report(load_run(run_dir), analyze(trained_run.net, data, AnalysisConfig(quantities=("toy",))))
    assert (run_dir / "metrics" / "toy_norms.parquet").is_file() and (run_dir / "figures" / "toy_norms.png").is_file()
    write_run_report(load_run(run_dir), analyze(trained_run.net, data, AnalysisConfig(quantities=("lmap",))))
    assert not (run_dir / "metrics" / "toy_norms.parquet").exists()
