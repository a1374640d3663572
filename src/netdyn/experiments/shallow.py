"""``shallow`` (paper Fig. 2): when does a one-hidden-layer tanh net stop being a linear network?

A 784-2048-10 tanh net (no batch norm) and the same architecture with linear units are trained on training sets
of several sizes. For each, the test accuracy of the network, of its L-map and of its LP at layer 0 (the input:
the L-map there is the net with tanh replaced by the identity, the LP a least-squares map from the pixels to the
net's own output fields) and of the linear network: where the four agree the tanh net acts as a linear net
(only order-preserving neurons); where the net beats its L-map0, its nonlinearity is at work. The same over
training at the largest size; the RPD of the hidden layer of the tanh and the linear net at the smallest and the
largest size, and its evolution over training; the neuron-mode census beside it.

Everything runs twice: on inputs in [0, 1] (the raw pixels) and on unit-norm inputs (netdyn's default), because
the input scale decides whether the tanh units ever leave their linear range.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

import pandas as pd

from netdyn.analysis.config import AnalysisConfig
from netdyn.data.spec import DataSpec
from netdyn.experiments.base import (
    Experiment,
    ExperimentConfig,
    ExperimentRuns,
    Member,
    member_name,
    seeded,
    with_params,
)
from netdyn.experiments.criteria import CannotEvaluate, Criterion
from netdyn.models.spec import ModelSpec
from netdyn.orchestration import RunSpec

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: How the figures name the two input scalings.
INPUTS = {"none": "inputs in [0, 1]", "unit": "unit-norm inputs"}
#: The readouts of the size and time panels: the network itself, its L-map and its LP at layer 0.
READOUTS = ("network", "L-map0", "LP0")
#: The curves of Fig. 2(a, b), in the paper's order: three readouts of the tanh net and the linear net.
CURVES = ("tanh network", "tanh L-map0", "tanh LP0", "linear network")
#: The gaps drawn beside them: the tanh net's test accuracy minus each of the other three curves.
GAPS = ("L-map0", "LP0", "linear network")


@dataclass(frozen=True)
class ShallowConfig(ExperimentConfig):
    """A 784-width-10 tanh net and its linear twin on training sets of several sizes (the paper gives the
    architecture and the sizes 600..60,000, not the training settings: those below are netdyn's choices)."""

    width: int = 512
    """Hidden neurons (the paper's 2048; 512 at small keeps 16 members within minutes on a CPU)."""
    train_sizes: tuple[int, ...] = (600, 1200, 2500, 5000)
    """Training-set sizes (class-stratified subsets); the time and RPD-evolution panels use the largest."""
    normalizations: tuple[str, ...] = ("none", "unit")
    """Input scalings, each a run of its own: none = pixels in [0, 1], unit = each sample scaled to norm 1."""
    activations: tuple[str, ...] = ("tanh", "linear")
    """The paper's tanh net (NNN) and the linear network (LNN) of the same architecture."""
    optimizer: str = "adam"
    """Optimiser (the paper does not say)."""
    lr: float = 1e-3
    """Learning rate (Adam's default)."""
    batch_size: int = 100
    """Minibatch size."""
    steps: int = 1500
    """Optimiser steps of every member, whatever its training-set size (the same training time for all)."""
    eval_every: str = "log:20"
    """Evaluation points of the training history."""
    checkpoints: str = "log:12"
    """Checkpoints of the largest-size members, each analysed for the time and RPD-evolution panels (the other
    members keep only their first and last)."""
    max_samples: int = 2000
    """Training samples of the RPD and the neuron modes (a seeded subset)."""


def _accuracy_and_gap(
    table: pd.DataFrame, x: str, xlabel: str, title: str, gap_title: str
) -> tuple[Figure, Figure]:
    """Fig. 2a/2b's pair: the test accuracy of the tanh net and its linearisations against ``x``, and the tanh
    net's lead over each."""
    from netdyn.plots.sizes import plot_against

    curves = curve_table(table, split="test")
    accuracy = plot_against(
        curves, x, "accuracy", by="curve", panel="inputs", order=_present(CURVES, curves["curve"]), logx=True,
        xlabel=xlabel, ylabel="test accuracy (fraction)", legend_title="",
    )  # fmt: skip
    accuracy.suptitle(title)
    gaps = gap_table(curves, x)
    gap = plot_against(
        gaps, x, "gap", by="gap_of", panel="inputs", order=_present(GAPS, gaps["gap_of"]), logx=True,
        xlabel=xlabel, ylabel="test accuracy of the tanh net minus ...", legend_title="",
    )  # fmt: skip
    for ax in gap.axes:
        ax.axhline(0, color="0.3", lw=0.8)
    gap.suptitle(gap_title)
    return accuracy, gap


class Shallow(Experiment[ShallowConfig]):
    name = "shallow"
    figure = "Fig. 2"
    shows = "784-W-10 tanh vs linear net: network, L-map0, LP0 accuracy vs training-set size and time; RPDs"
    claim = (
        "On small training sets a shallow tanh network (784-2048-10) behaves as a linear network: its test "
        "accuracy equals that of its L-map and of an LP fitted from the input, and of the linear network, and "
        "the RPD of its hidden layer matches the linear network's (all neurons order-preserving). As the "
        "training set grows (to 60,000) the curves separate: the tanh net beats its linearisation and its RPD "
        "flattens against the linear net's, a sign that non-order-preserving neurons are at work. Over training "
        "the four curves first overlap and then part, and the RPD gradient rises, peaks and falls."
    )
    columns = {
        "size_accuracy": ("normalize", "train_size", "activation", "seed", "split", "readout", "accuracy"),
        "time_accuracy": ("normalize", "train_size", "activation", "seed", "step", "split", "readout", "accuracy"),
        "rpd": ("normalize", "train_size", "activation", "seed", "layer", "q", "density"),
        "rpd_evolution": ("normalize", "train_size", "activation", "seed", "step", "layer", "q", "density"),
        "rpd_summary": ("normalize", "train_size", "activation", "seed", "step", "layer", "gradient", "top_mass",
                        "order_index"),
        "neuron_mode_census": ("normalize", "train_size", "activation", "seed", "layer", "opm", "npm", "inactive",
                               "rho_median"),
    }
    nullable = {"neuron_mode_census": ("rho_mean", "rho_q10", "rho_q25", "rho_median", "rho_q75",
                                       "order_index_mean")}
    measured = {
        "smoke": "about 15 s (12-15 s of CPU time; 2.5 min wall on the shared, loaded machine)",
        "small": "6.1 min (364.2 s; 3 seeds, 1 torch thread, --jobs 2 on an idle 2-core CPU, 2026-12-06)",
        "paper": "not run (meant for a GPU; the task that built it had none)",
    }
    scales = {
        "smoke": ShallowConfig(
            seeds=2,
            data=DataSpec("mnist5k", train_size=500, test_size=200), width=64, train_sizes=(200, 500), steps=30,
            eval_every="log:4", checkpoints="log:2", max_samples=200,
        ),
        "small": ShallowConfig(),
        "paper": ShallowConfig(
            data=DataSpec("mnist"), width=2048, train_sizes=(600, 2000, 6000, 20000, 60000), steps=20000,
            eval_every="log:40", checkpoints="log:16",
        ),
    }

    def members(self, config: ShallowConfig) -> list[Member]:
        members = []
        largest = max(config.train_sizes)
        for normalize in config.normalizations:
            for size in config.train_sizes:
                data = dataclasses.replace(config.data, train_size=size, normalize=normalize)
                for activation in config.activations:
                    for seed in seeded(config):
                        spec = RunSpec(
                            model=ModelSpec(width=config.width, depth=1, activation=activation, seed=seed),
                            data=data,
                            train=config.train_config(
                                seed, checkpoint_every=config.checkpoints if size == largest else config.steps
                            ),
                        )
                        params = {"normalize": normalize, "train_size": size, "activation": activation, "seed": seed}
                        members.append(Member(member_name(**params), spec, params))
        return members

    def _analysis_config(self, config: ShallowConfig) -> AnalysisConfig:
        return AnalysisConfig(
            quantities=("lmap", "lp", "rpd", "neuron_modes"), basins=False, max_samples=config.max_samples,
            device=config.device,
        )

    def tables(self, runs: ExperimentRuns, config: ShallowConfig) -> dict[str, pd.DataFrame]:
        largest = max(config.train_sizes)
        analysis_config = self._analysis_config(config)
        parts: dict[str, list[pd.DataFrame]] = {name: [] for name in self.columns}
        for member in runs:
            if runs.diverged(member):
                continue
            over_time = member.params["train_size"] == largest
            analysis = runs.analysis(member, analysis_config, steps="all" if over_time else "last")
            t = {name: with_params(table, member) for name, table in analysis.tables.items()}
            last = int(t["network"]["step"].max())
            readouts = readout_table(t["network"], t["lmap"], t["lp"])
            parts["size_accuracy"].append(readouts[readouts["step"] == last].drop(columns="step"))
            parts["rpd"].append(t["rpd"][t["rpd"]["step"] == last].drop(columns="step"))
            parts["rpd_summary"].append(t["rpd_summary"])
            census = t["neuron_mode_census"]
            parts["neuron_mode_census"].append(census[census["step"] == last].drop(columns="step"))
            if over_time:
                parts["time_accuracy"].append(readouts)
                parts["rpd_evolution"].append(t["rpd"])
        return {name: pd.concat(frames, ignore_index=True) for name, frames in parts.items() if frames}

    def figures(self, tables: dict[str, pd.DataFrame], config: ShallowConfig) -> dict[str, Figure]:
        from netdyn.plots import plot_rpd
        from netdyn.plots._base import new_figure
        from netdyn.plots.sizes import plot_against, plot_census_by

        figs: dict[str, Figure] = {}
        normalizations = [n for n in config.normalizations if n in set(tables["size_accuracy"]["normalize"])]
        sizes = sorted(set(tables["size_accuracy"]["train_size"]))
        largest = max(sizes)
        n_seeds = int(tables["size_accuracy"]["seed"].nunique())
        one_seed = "seed 0 only" + (f" of {n_seeds}" if n_seeds > 1 else "")
        spread = f"median of {n_seeds} seeds, band min to max" if n_seeds > 1 else "seed 0"

        figs["fig2a_size_accuracy"], figs["fig2a_size_gap"] = _accuracy_and_gap(
            tables["size_accuracy"], "train_size", "training-set size (log scale)",
            f"784-{config.width}-10 nets: test accuracy against training-set size ({config.steps} steps each; "
            f"{spread})", f"How much the tanh net beats its linearisations, against training-set size ({spread})",
        )  # fmt: skip
        if "time_accuracy" in tables:
            figs["fig2b_time_accuracy"], figs["fig2b_time_gap"] = _accuracy_and_gap(
                tables["time_accuracy"], "step", "training step (log scale)",
                f"784-{config.width}-10 nets on {largest} digits: test accuracy during training ({spread})",
                f"How much the tanh net beats its linearisations during training ({largest} digits; {spread})",
            )  # fmt: skip

        seed0 = tables["rpd"][tables["rpd"]["seed"] == 0]
        for panel, size in (("fig2c_rpd_smallest", min(sizes)), ("fig2d_rpd_largest", largest)):
            fig = new_figure((5.6 * len(normalizations) + 0.6, 4.4))
            axes = fig.subplots(1, len(normalizations), sharey=True, squeeze=False)[0]
            for normalize, ax in zip(normalizations, axes, strict=True):
                rows = seed0[(seed0["normalize"] == normalize) & (seed0["train_size"] == size)]
                plot_rpd(rows, by="activation", ax=ax)
                ax.set_title(INPUTS[normalize])
            fig.suptitle(f"RPD of the hidden layer, tanh vs linear network, {size} training digits ({one_seed})")
            figs[panel] = fig

        if "rpd_evolution" in tables:
            evolution = tables["rpd_evolution"]
            evolution = evolution[(evolution["seed"] == 0) & (evolution["activation"] == "tanh")]
            fig = new_figure((5.6 * len(normalizations) + 0.6, 4.4))
            axes = fig.subplots(1, len(normalizations), sharey=True, squeeze=False)[0]
            for normalize, ax in zip(normalizations, axes, strict=True):
                plot_rpd(evolution[evolution["normalize"] == normalize], by="step", ax=ax)
                ax.set_title(INPUTS[normalize])
            fig.suptitle(f"RPD of the tanh net's hidden layer during training ({largest} digits; {one_seed})")
            figs["fig2e_rpd_evolution"] = fig

            summary = tables["rpd_summary"]
            gradient = summary[summary["train_size"] == largest].assign(
                inputs=lambda t: t["normalize"].map(INPUTS))
            fig = plot_against(gradient, "step", "gradient", by="activation", panel="inputs", logx=True,
                               xlabel="training step (log scale)", ylabel="RPD gradient of the hidden layer\n"
                               "(−slope of density vs q; steeper = more order-preserving)",
                               order=_present(config.activations, gradient["activation"]))
            fig.suptitle(f"RPD gradient during training ({largest} digits; {spread})")
            figs["fig2e_rpd_gradient"] = fig

        census = tables["neuron_mode_census"]
        census = census[(census["seed"] == 0) & (census["activation"] == "tanh")].copy()
        census["case"] = [f"{'[0,1]' if n == 'none' else 'unit'}, {s}" for n, s in
                          zip(census["normalize"], census["train_size"], strict=True)]
        order = [f"{'[0,1]' if n == 'none' else 'unit'}, {s}" for n in normalizations for s in sizes]
        fig = plot_census_by(census, by="case", order=[c for c in order if c in set(census["case"])])
        fig.axes[0].set_xlabel("inputs, training-set size")
        fig.axes[1].set_xlabel("inputs, training-set size")
        fig.suptitle(f"Tanh net, hidden layer: neuron modes ({one_seed}; rho = 1 by construction in layer 1: a "
                     "monotone unit keeps its local field's order)")
        figs["fig2_neuron_modes"] = fig
        return figs

    def criteria(self, config: ShallowConfig) -> list[Criterion]:
        return shallow_criteria(config)

    def summary(self, tables: dict[str, pd.DataFrame], config: ShallowConfig) -> dict[str, Any]:
        out: dict[str, Any] = {"steps": config.steps, "width": config.width}
        sizes = tables["size_accuracy"]
        acc = sizes[sizes["split"] == "test"].groupby(["normalize", "train_size", "activation", "readout"])[
            "accuracy"].mean()
        rs = tables["rpd_summary"]
        for normalize in config.normalizations:
            key = "01" if normalize == "none" else normalize
            for size in config.train_sizes:
                if (normalize, size, "tanh", "network") not in acc.index:
                    continue
                net = float(acc[(normalize, size, "tanh", "network")])
                row = {
                    "tanh": net,
                    "lmap0": float(acc[(normalize, size, "tanh", "L-map0")]),
                    "lp0": float(acc[(normalize, size, "tanh", "LP0")]),
                }
                if (normalize, size, "linear", "network") in acc.index:
                    row["linear"] = float(acc[(normalize, size, "linear", "network")])
                row["tanh_minus_lmap0"] = net - row["lmap0"]
                row["tanh_minus_lp0"] = net - row["lp0"]
                if "linear" in row:
                    row["tanh_minus_linear"] = net - row["linear"]
                final = rs[(rs["normalize"] == normalize) & (rs["train_size"] == size)]
                final = final[final["step"] == final.groupby("member")["step"].transform("max")]
                for activation in ("tanh", "linear"):
                    values = final[final["activation"] == activation]["gradient"]
                    if len(values):
                        row[f"rpd_gradient_{activation}"] = float(values.mean())
                out[f"{key}_size{size}"] = row
            over_time = rs[(rs["normalize"] == normalize) & (rs["train_size"] == max(config.train_sizes))
                           & (rs["activation"] == "tanh") & (rs["seed"] == 0) & (rs["step"] > 0)].sort_values("step")
            if len(over_time):
                peak = over_time.iloc[over_time["gradient"].argmax()]
                out[f"{key}_rpd_gradient_over_training"] = {
                    "first": float(over_time["gradient"].iloc[0]),
                    "peak": float(peak["gradient"]),
                    "peak_step": int(peak["step"]),
                    "last": float(over_time["gradient"].iloc[-1]),
                }
            gaps = [out[f"{key}_size{s}"]["tanh_minus_lmap0"] for s in config.train_sizes if f"{key}_size{s}" in out]
            if gaps:
                out[f"{key}_tanh_minus_lmap0_smallest"] = gaps[0]
                out[f"{key}_tanh_minus_lmap0_largest"] = gaps[-1]
        return out


def readout_table(network: pd.DataFrame, lmap: pd.DataFrame, lp: pd.DataFrame) -> pd.DataFrame:
    """The accuracies of the network, its L-map at layer 0 and its LP at layer 0, stacked with a ``readout``
    column (``network``, ``L-map0``, ``LP0``); the tables come from one member's analysis (``step`` column and
    member parameters kept)."""
    parts = [network.assign(readout="network")]
    for name, table in (("L-map0", lmap), ("LP0", lp)):
        parts.append(table[table["layer"] == 0].drop(columns="layer").assign(readout=name))
    out = pd.concat(parts, ignore_index=True)
    front = [c for c in out.columns if c not in ("split", "readout", "accuracy")]
    return out[[*front, "split", "readout", "accuracy"]]


def curve_table(readouts: pd.DataFrame, split: str = "test") -> pd.DataFrame:
    """The curves of Fig. 2(a, b) from a readout table: the tanh net's three readouts and the linear net itself,
    as a ``curve`` column (``tanh network``, ``tanh L-map0``, ``tanh LP0``, ``linear network``), with the
    input scaling named in ``inputs``."""
    rows = readouts[readouts["split"] == split]
    keep = (rows["activation"] != "linear") | (rows["readout"] == "network")
    rows = rows[keep].copy()
    rows["curve"] = rows["activation"] + " " + rows["readout"]
    rows["inputs"] = rows["normalize"].map(INPUTS)
    return rows


def gap_table(curves: pd.DataFrame, x: str) -> pd.DataFrame:
    """The tanh network's accuracy minus each other curve of a :func:`curve_table`, at each (inputs, ``x``,
    seed): columns ``inputs, <x>, seed, gap_of`` (``L-map0``, ``LP0``, ``linear network``) and ``gap``."""
    keys = ["inputs", x, "seed"]
    wide = curves.pivot_table(index=keys, columns="curve", values="accuracy", aggfunc="first")
    parts = []
    for name in GAPS:
        column = "linear network" if name == "linear network" else f"tanh {name}"
        if column in wide.columns and "tanh network" in wide.columns:
            gap = (wide["tanh network"] - wide[column]).dropna()
            parts.append(gap.rename("gap").reset_index().assign(gap_of=name))
    return pd.concat(parts, ignore_index=True)[[*keys, "gap_of", "gap"]]


def _present(order: Sequence[str], values: Iterable[str]) -> list[str]:
    have = set(values)
    return [v for v in order if v in have]


# ------------------------------------------------------------------------------------------ criteria
# Written from the paper's text on Fig. 2 (section IV) before any run used them (see docs/verdicts.md). The paper does
# not say how its inputs were scaled, and the scaling decides whether the tanh units leave their linear range: every
# claim is tested under each scaling the config runs, and each counts (the write-up may explain a scaling that fails,
# never drop it).

AGREE = 0.01
"""Test-accuracy difference (one point) within which two of Fig. 2's curves count as converged."""
SEPARATE = 0.01
"""Lead of the tanh net over its L-map0 (one point) that counts as the curves having separated."""
RPD_MATCH = 0.05
"""Relative difference of the tanh and linear nets' RPD gradients within which the RPDs count as aligned."""
RPD_STEEPER = 0.1
"""How much steeper (relative) the linear net's RPD gradient must be to count as 'a steeper gradient'."""
RISE_FALL = 0.05
"""Share of the peak RPD gradient by which it must rise before the peak and fall after it."""
EARLY = 0.8
"""'Initially': the first evaluation where the tanh net has reached this share of its final test accuracy."""


def _readouts(tables: Mapping[str, pd.DataFrame], name: str, normalize: str, seed: int) -> pd.DataFrame:
    table = tables.get(name)
    rows = None if table is None else table[(table["normalize"] == normalize) & (table["seed"] == seed)
                                            & (table["split"] == "test")]  # fmt: skip
    if rows is None or rows.empty:
        raise CannotEvaluate(f"no {name} rows of seed {seed} with {INPUTS.get(normalize, normalize)}")
    return rows


def _curves_at(rows: pd.DataFrame) -> pd.Series:
    """Test accuracy of each of Fig. 2's four curves in ``rows`` (one size, one step)."""
    curves = curve_table(rows)
    values = curves.groupby("curve")["accuracy"].first()
    missing = [c for c in CURVES if c not in values.index]
    if missing:
        raise CannotEvaluate(f"curve(s) {', '.join(missing)} missing (a member diverged or was not run)")
    return values


def _largest_gap(values: pd.Series) -> float:
    """The largest difference between the tanh network and any other curve."""
    net = float(values["tanh network"])
    return max(abs(net - float(values[c])) for c in CURVES[1:])


def curves_agree_smallest(tables: Mapping[str, pd.DataFrame], config: Any, seed: int, *, normalize: str) -> float:
    """Largest test-accuracy difference between the tanh net and its L-map0, its LP0 or the linear net, at the
    smallest training-set size."""
    rows = _readouts(tables, "size_accuracy", normalize, seed)
    return _largest_gap(_curves_at(rows[rows["train_size"] == rows["train_size"].min()]))


def lmap_gap_largest(tables: Mapping[str, pd.DataFrame], config: Any, seed: int, *, normalize: str) -> float:
    """Test accuracy of the tanh net minus that of its L-map0 at the largest training-set size."""
    rows = _readouts(tables, "size_accuracy", normalize, seed)
    values = _curves_at(rows[rows["train_size"] == rows["train_size"].max()])
    return float(values["tanh network"] - values["tanh L-map0"])


def curves_agree_early(tables: Mapping[str, pd.DataFrame], config: Any, seed: int, *, normalize: str) -> float:
    """At the largest size, the largest difference between the tanh net and the other curves at the first
    evaluation (after step 0) where the tanh net has reached ``EARLY`` of its final test accuracy."""
    rows = _readouts(tables, "time_accuracy", normalize, seed)
    net = rows[(rows["activation"] == "tanh") & (rows["readout"] == "network") & (rows["step"] > 0)]
    net = net.sort_values("step")
    if len(net) < 2:
        raise CannotEvaluate("fewer than two evaluations after step 0")
    reached = net[net["accuracy"] >= EARLY * float(net["accuracy"].iloc[-1])]
    step = int(reached["step"].iloc[0])
    if step == int(net["step"].iloc[-1]):
        raise CannotEvaluate("the tanh net reaches its final accuracy only at the last evaluation: no early phase")
    return _largest_gap(_curves_at(rows[rows["step"] == step]))


def _gradients(tables: Mapping[str, pd.DataFrame], normalize: str, seed: int, size: str) -> tuple[float, float]:
    """The final RPD gradient of the tanh and of the linear net's hidden layer at the smallest or largest size."""
    table = tables.get("rpd_summary")
    rows = None if table is None else table[(table["normalize"] == normalize) & (table["seed"] == seed)]
    if rows is None or rows.empty:
        raise CannotEvaluate(f"no RPD summary of seed {seed} with {INPUTS.get(normalize, normalize)}")
    rows = rows[rows["train_size"] == (rows["train_size"].min() if size == "smallest" else rows["train_size"].max())]
    rows = rows[rows["step"] == rows.groupby("member")["step"].transform("max")].set_index("activation")
    if not {"tanh", "linear"} <= set(rows.index):
        raise CannotEvaluate("the tanh or the linear net has no RPD at this size")
    tanh, linear = float(rows.loc["tanh", "gradient"]), float(rows.loc["linear", "gradient"])
    if linear == 0:  # the criteria compare relative to it (a float division by 0 would stop the whole run)
        raise CannotEvaluate(f"the linear net's RPD gradient is 0 at the {size} size: no relative difference")
    return tanh, linear


def rpd_match_smallest(tables: Mapping[str, pd.DataFrame], config: Any, seed: int, *, normalize: str) -> float:
    """|tanh - linear| / linear RPD gradient of the hidden layer at the smallest size."""
    tanh, linear = _gradients(tables, normalize, seed, "smallest")
    return abs(tanh - linear) / abs(linear)


def rpd_steeper_linear_largest(tables: Mapping[str, pd.DataFrame], config: Any, seed: int, *, normalize: str) -> float:
    """(linear - tanh) / linear RPD gradient of the hidden layer at the largest size (positive: linear steeper)."""
    tanh, linear = _gradients(tables, normalize, seed, "largest")
    return (linear - tanh) / abs(linear)


def rpd_rise_and_fall(tables: Mapping[str, pd.DataFrame], config: Any, seed: int, *, normalize: str) -> float:
    """Tanh net at the largest size over training (steps > 0): the smaller of the rise before the RPD gradient's
    peak and the fall after it, as a share of the peak (0 when the peak is the first or last checkpoint)."""
    table = tables.get("rpd_summary")
    rows = None if table is None else table[(table["normalize"] == normalize) & (table["seed"] == seed)
                                            & (table["activation"] == "tanh") & (table["step"] > 0)]  # fmt: skip
    if rows is None or rows.empty:
        raise CannotEvaluate(f"no RPD summary of the tanh net of seed {seed} with {INPUTS.get(normalize, normalize)}")
    rows = rows[rows["train_size"] == rows["train_size"].max()].sort_values("step")
    if len(rows) < 3:
        raise CannotEvaluate("fewer than three checkpoints after step 0")
    gradient = rows["gradient"].astype(float).to_numpy()
    peak = float(gradient.max())
    if peak <= 0:
        raise CannotEvaluate("the RPD gradient is never positive")
    return min(peak - float(gradient[0]), peak - float(gradient[-1])) / peak


def shallow_criteria(config: ShallowConfig) -> list[Criterion]:
    """The criteria of ``shallow`` (see docs/verdicts.md), one set per input scaling the config runs."""
    out: list[Criterion] = []
    for normalize in config.normalizations:
        key = "01" if normalize == "none" else normalize
        inputs = INPUTS.get(normalize, normalize)
        out += [
            Criterion(
                f"curves_agree_smallest_{key}",
                "Fig. 2(a): 'For small training sets, we observe that the four accuracy curves converge, "
                "indicating that the NNN behaves effectively as a LNN'",
                "largest test-accuracy difference between the tanh net and its L-map0, its LP0 or the linear net "
                f"at the smallest training set; {inputs}",
                "<=", AGREE, partial(curves_agree_smallest, normalize=normalize),
            ),
            Criterion(
                f"curves_separate_largest_{key}",
                "Fig. 2(a): 'as the training set size increases, the accuracy curves deviate, indicating the "
                "significant activation of NPM neurons'",
                f"test accuracy of the tanh net minus its L-map0's at the largest training set; {inputs}",
                ">=", SEPARATE, partial(lmap_gap_largest, normalize=normalize),
            ),
            Criterion(
                f"curves_overlap_early_{key}",
                "Fig. 2(b): 'Initially, the four accuracy curves overlap but gradually diverge as training "
                "progresses'",
                "largest test-accuracy difference between the tanh net and the other three curves at the first "
                f"evaluation where the tanh net has {EARLY:g} of its final accuracy, largest training set; {inputs}",
                "<=", AGREE, partial(curves_agree_early, normalize=normalize),
            ),
            Criterion(
                f"rpd_aligned_smallest_{key}",
                "Fig. 2(c): 'The precise alignment of the RPD curves for the LNN and Tanh-NNN confirms that this "
                "NNN is composed entirely of OPM neurons' (600 samples)",
                "|tanh - linear| / linear RPD gradient of the hidden layer at the smallest training set, last "
                f"checkpoint; {inputs}",
                "<=", RPD_MATCH, partial(rpd_match_smallest, normalize=normalize),
            ),
            Criterion(
                f"rpd_linear_steeper_largest_{key}",
                "Fig. 2(d): 'the RPDs diverge markedly with a training set size of 60,000, with the LNN exhibiting "
                "a steeper gradient'",
                "(linear - tanh) / linear RPD gradient of the hidden layer at the largest training set, last "
                f"checkpoint; {inputs}",
                ">=", RPD_STEEPER, partial(rpd_steeper_linear_largest, normalize=normalize),
            ),
            Criterion(
                f"rpd_gradient_rises_then_falls_{key}",
                "Fig. 2(e): 'the gradient increases initially, reaches a maximum, and then decreases towards the "
                "final state'",
                "tanh net at the largest training set, checkpoints after step 0: the smaller of the RPD gradient's "
                f"rise to its peak and its fall after it, as a share of the peak; {inputs}",
                ">=", RISE_FALL, partial(rpd_rise_and_fall, normalize=normalize),
            ),
        ]
    return out


EXPERIMENT = Shallow
