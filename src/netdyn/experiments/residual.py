"""``residual`` (paper Fig. 9): the standard structure across depths and widths, plain vs residual.

Every member is a BN ReLU MLP of one (variant, depth, width); the analysis of its last checkpoint gives the LP
and L-map pruning accuracy of every layer. Per network the experiment reads off where each kind of pruning
becomes effective (docs/quantities.md#l-map: test accuracy within 0.005 of the network's), as the first layer *from
which on* every later layer is effective (``effective_layer``'s rule "from"; the earliest effective layer is kept beside
it), and whether the network has the paper's standard structure: LP pruning effective strictly before L-map
pruning, and L-map pruning effective before the last hidden layer (a linear tail of at least one hidden layer).
The paper says residual connections keep that structure over a wider range of depths and widths than plain nets.

Control (see docs/verdicts.md): where a skip crosses the cut (layer l+1 receives x^{l-1}), a residual net's
L-map reads x^{l-1} as well as x^l while its LP reads x^l only. The experiment also fits each residual net's LP on the
L-map's inputs (``lp_accuracy(..., with_skip=True)``: table ``lp_with_skip``), judges the standard structure with it
(``structure_with_skip``, plain nets as they are), draws it as panels of their own in the effective-layer figure,
and states a criterion on it.

The helpers :func:`structure_row` and :func:`structure_table` are shared with ``depth-100``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from netdyn._device import resolve_device
from netdyn.analysis.config import AnalysisConfig
from netdyn.analysis.network import effective_layer
from netdyn.analysis.probes import lp_accuracy
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

VARIANTS = {"none": "plain", "pre": "residual", "post": "residual-post"}
"""Table names of the ``residual`` settings of ModelSpec."""

EFFECTIVE_COLUMNS = ("lp_effective_from", "lmap_effective_from", "lp_effective_earliest", "lmap_effective_earliest")
"""Where LP / L-map pruning becomes effective, by ``effective_layer``'s rule ("from", "earliest")."""
STRUCTURE_COLUMNS = ("test_accuracy", "train_accuracy", *EFFECTIVE_COLUMNS, "linear_tail", "standard_structure")
"""Columns of :func:`structure_table` after the member's parameters."""


def structure_row(lmap: pd.DataFrame, lp: pd.DataFrame, network: pd.DataFrame, depth: int) -> dict[str, Any]:
    """Where pruning becomes effective in one network (tables of that network only), and whether it has the
    standard structure: ``lp_effective_from < lmap_effective_from < depth`` (layers from which on LP / L-map
    pruning is effective on the test set; depth = the last hidden layer L-1)."""
    acc = network.set_index("split")["accuracy"]
    test = float(acc["test"])
    lmap_from, lp_from = effective_layer(lmap, test, rule="from"), effective_layer(lp, test, rule="from")
    standard = lmap_from is not None and lp_from is not None and lp_from < lmap_from < depth
    return {
        "test_accuracy": test,
        "train_accuracy": float(acc["train"]),
        "lp_effective_from": lp_from,
        "lmap_effective_from": lmap_from,
        "lp_effective_earliest": effective_layer(lp, test, rule="earliest"),
        "lmap_effective_earliest": effective_layer(lmap, test, rule="earliest"),
        "linear_tail": None if lmap_from is None else depth - lmap_from,
        "standard_structure": bool(standard),
    }


def structure_table(tables: dict[str, pd.DataFrame], params: list[str]) -> pd.DataFrame:
    """One row per member of stacked ``lmap``, ``lp`` and ``network`` tables (member parameters ``params`` as
    columns, ``depth`` among them): :func:`structure_row` of each."""
    rows = []
    for member, net in tables["network"].groupby("member", sort=False):
        first = net.iloc[0]
        row = {"member": member, **{p: first[p] for p in params}}
        lmap = tables["lmap"][tables["lmap"]["member"] == member]
        lp = tables["lp"][tables["lp"]["member"] == member]
        row.update(structure_row(lmap, lp, net, int(first["depth"])))
        rows.append(row)
    out = pd.DataFrame(rows, columns=["member", *params, *STRUCTURE_COLUMNS])
    for column in (*EFFECTIVE_COLUMNS, "linear_tail"):
        out[column] = out[column].astype("Int64")
    return out.astype({"standard_structure": bool})


def by_network(table: pd.DataFrame, keys: list[str], value: str) -> dict[str, Any]:
    """``{"variant-depthD-widthW": value}`` from a structure table: the value itself with one seed, the list
    over seeds with several (NaN and NA as None)."""
    out: dict[str, Any] = {}
    for group, rows in table.groupby(keys, sort=True):
        name = member_name(**dict(zip(keys, group if isinstance(group, tuple) else (group,), strict=True)))
        values = [None if pd.isna(v) else (v.item() if hasattr(v, "item") else v) for v in rows[value]]
        out[name] = values[0] if len(values) == 1 else values
    return out


@dataclass(frozen=True)
class ResidualConfig(ExperimentConfig):
    """BN ReLU MLPs over a grid of depths and widths, plain and residual (the paper shows the grid, not its
    training settings: those below are netdyn's choices)."""

    depths: tuple[int, ...] = (4, 8, 16, 32)
    """Hidden layers (an n-layer net of the paper is depth n - 2: 6 to 34 layers here)."""
    widths: tuple[int, ...] = (16, 64, 256)
    """Neurons per hidden layer (kept modest on a CPU: the cost grows with depth x width^2)."""
    residuals: tuple[str, ...] = ("none", "pre")
    """Plain and residual (skip into the local field after batch norm, the paper's Eq. 2)."""
    optimizer: str = "adam"
    """Optimiser (the paper does not say; Adam as in its Fig. 6)."""
    lr: float = 1e-3
    """Learning rate (Adam's default)."""
    batch_size: int = 100
    """Minibatch size."""
    epochs: float = 16
    """Training length in epochs (every net fits its training set well before the end at small)."""
    eval_every: str = "log:8"
    """Evaluation points of the training history (the figures use the last checkpoint only)."""
    checkpoint_every: str = "log:2"
    """Checkpoints: the analysis reads the last one."""


CONTROL_PANEL = ", LP given x^l and x^(l-1)"
"""Appended to a residual variant's name for the effective-layer panel of the control (the LP with skip)."""


def lp_with_skip_table(runs: ExperimentRuns, config: ExperimentConfig) -> pd.DataFrame:
    """The LP control (docs/verdicts.md): the LP of each residual member's last checkpoint given the L-map's inputs,
    ``lp_accuracy(..., with_skip=True)`` (x^l and x^{l-1} at each cut a skip crosses), stacked with the members'
    parameters; diverged members left out as in the analysis tables."""
    device = resolve_device(config.device)
    parts = []
    for member in runs:
        if member.params["variant"] == VARIANTS["none"] or runs.diverged(member):
            continue
        net = runs.run(member).model("last").to(device)
        parts.append(with_params(lp_accuracy(net, runs.data(member), with_skip=True), member))
    columns = ["member", "variant", "depth", "width", "seed", "layer", "split", "accuracy", "skip"]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=columns)


def structure_with_skip(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """The structure table of every member with a residual net's LP replaced by the control's (the LP given
    x^{l-1} too where a skip crosses the cut); a plain net's LP already reads its L-map's inputs and stays."""
    control = tables["lp_with_skip"].drop(columns="skip")
    lp = tables["lp"][~tables["lp"]["member"].isin(control["member"])]
    lp = pd.concat([lp, control[lp.columns]], ignore_index=True)
    return structure_table({**tables, "lp": lp}, ["variant", "depth", "width", "seed"])


def effective_panels(structure: pd.DataFrame, control: pd.DataFrame) -> pd.DataFrame:
    """A structure table with the control's residual rows beside it as variants of their own (``residual`` +
    :data:`CONTROL_PANEL`), one panel each in the effective-layer figure, next to their variant's."""
    residual = control[control["variant"] != VARIANTS["none"]]
    return pd.concat([structure, residual.assign(variant=residual["variant"] + CONTROL_PANEL)], ignore_index=True)


def seed_medians(structure: pd.DataFrame) -> pd.DataFrame:
    """One row per network of a structure table: the median over seeds of the layers from which on LP and L-map
    pruning are effective (a seed where pruning never becomes effective ranks after every layer, so the median is
    missing when most seeds have none), the median test accuracy, and the standard structure where at least half
    the seeds have it. With one seed, the seed's own values."""
    keys = ["variant", "depth", "width"]
    layers = ["lmap_effective_from", "lp_effective_from"]
    frame = structure[keys].copy()
    for column in layers:  # "never effective" as +inf: the median then ranks it last
        frame[column] = structure[column].astype("float64").fillna(np.inf)
    frame["test_accuracy"] = structure["test_accuracy"].astype("float64")
    frame["standard_structure"] = structure["standard_structure"].astype("float64")
    grouped = frame.groupby(keys, sort=True)
    out = grouped[layers].median().replace(np.inf, np.nan)
    out["test_accuracy"] = grouped["test_accuracy"].median()
    out["standard_structure"] = grouped["standard_structure"].mean() >= 0.5
    return out.reset_index()


def _effective_bars(fig: Figure, structure: pd.DataFrame) -> None:
    """Min-max bars over seeds on each L-map line of :func:`~netdyn.plots.pruning.plot_effective_layers` (a seed
    whose L-map never becomes effective counts as 1: no linear tail)."""
    from netdyn.plots.seeds import seed_band

    ratio = structure.assign(
        at=structure["lmap_effective_from"].astype("float64").fillna(structure["depth"]) / structure["depth"])
    for ax, (_, rows) in zip(fig.axes, ratio.groupby("variant", sort=True), strict=False):
        lines = [line for line in ax.get_lines() if str(line.get_label()).startswith("L-map, ")]
        for line, (_, own) in zip(lines, rows.groupby("width", sort=True), strict=True):
            spread = own.groupby("depth", sort=True)["at"]
            seed_band(line, spread.min().to_numpy(), spread.max().to_numpy(), style="bars")


def _accuracy_bands(fig: Figure, structure: pd.DataFrame) -> None:
    """Min-max bands over seeds on each line of :func:`~netdyn.plots.pruning.plot_by_size`'s test accuracy."""
    from netdyn.plots.seeds import seed_band

    lines = fig.axes[0].get_lines()
    groups = structure.groupby(["variant", "width"], sort=True)
    for line, (_, own) in zip(lines, groups, strict=True):
        spread = own.groupby("depth", sort=True)["test_accuracy"]
        seed_band(line, spread.min(), spread.max())


def _effective_figure(tables: dict[str, pd.DataFrame], n_seeds: int, first: int) -> Figure:
    """Where LP and L-map pruning become effective, one panel per variant, the control's panels (a residual
    net's LP given x^{l-1} too) beside their variant's when the tables have them."""
    from netdyn.plots.pruning import plot_effective_layers

    structure = tables["structure"]
    if "structure_with_skip" in tables:
        structure = effective_panels(structure, tables["structure_with_skip"])
    fig = plot_effective_layers(seed_medians(structure))
    control = ""
    if "structure_with_skip" in tables:
        control = (f"\npanels '...{CONTROL_PANEL}': the control, a residual net's LP fitted on x^l and x^(l-1) "
                   "where a skip crosses the cut (the L-map's inputs there)")
    if n_seeds > 1:
        _effective_bars(fig, structure)
        fig.suptitle(f"Where LP and L-map pruning become effective (test set; median of {n_seeds} seeds, bars: "
                     "min to max of the L-map layer,\nnever effective drawn at 1; filled where most seeds have "
                     f"the standard structure){control}")
    else:
        fig.suptitle(f"Where LP and L-map pruning become effective (test set; seed {first}){control}")
    return fig


class Residual(Experiment[ResidualConfig]):
    name = "residual"
    figure = "Fig. 9"
    shows = "standard structure (LP/L-map pruning) over a depth x width grid, plain vs residual BN ReLU nets"
    claim = (
        "Residual connections play a crucial role in maintaining the standard structure (nonlinear early "
        "layers after which LP pruning is effective, then a linear tail where L-map pruning is effective): "
        "residual networks keep a stable standard structure across a vast range of depths and widths, a "
        "broader range than networks without residual connections; too deep or too wide plain networks lose it."
    )
    measured = {
        "smoke": "5.0 s (2 seeds; 2 CPU cores shared with other jobs, load ~5, 1 thread, 2026-12-06)",
        "small": "13.6 min (816.7 s; 3 seeds, 1 torch thread, --jobs 2 on an idle 2-core CPU, 2026-12-06)",
    }
    columns = {
        "network": ("variant", "depth", "width", "seed", "split", "accuracy"),
        "lmap": ("variant", "depth", "width", "seed", "layer", "split", "accuracy"),
        "lp": ("variant", "depth", "width", "seed", "layer", "split", "accuracy"),
        "structure": ("variant", "depth", "width", "seed", *STRUCTURE_COLUMNS),
        "lp_with_skip": ("variant", "depth", "width", "seed", "layer", "split", "accuracy", "skip"),
        "structure_with_skip": ("variant", "depth", "width", "seed", *STRUCTURE_COLUMNS),
    }
    nullable = {"structure": (*EFFECTIVE_COLUMNS, "linear_tail"),
                "structure_with_skip": (*EFFECTIVE_COLUMNS, "linear_tail")}
    scales = {
        "smoke": ResidualConfig(
            seeds=2,
            data=DataSpec("mnist5k", train_size=500, test_size=200), depths=(3, 4), widths=(8,), epochs=2,
            eval_every="log:3",
        ),
        "small": ResidualConfig(),
        "paper": ResidualConfig(
            data=DataSpec("mnist"), depths=(4, 8, 16, 32, 64), widths=(64, 256, 1024, 2048), batch_size=300,
            epochs=20,
        ),
    }

    def members(self, config: ResidualConfig) -> list[Member]:
        members = []
        for residual in config.residuals:
            for width in config.widths:
                for depth in config.depths:
                    if residual != "none" and depth < 3:
                        continue  # a residual pair needs depth >= 3
                    for seed in seeded(config):
                        spec = RunSpec(
                            model=ModelSpec(width=width, depth=depth, batchnorm=True, residual=residual, seed=seed),
                            data=config.data,
                            train=config.train_config(seed),
                        )
                        params = {"variant": VARIANTS[residual], "depth": depth, "width": width, "seed": seed}
                        members.append(Member(member_name(**params), spec, params))
        return members

    def tables(self, runs: ExperimentRuns, config: ResidualConfig) -> dict[str, pd.DataFrame]:
        analysis = AnalysisConfig(quantities=("lmap", "lp"), basins=False, device=config.device)
        tables = runs.tables(("network", "lmap", "lp"), analysis)
        tables = {name: table.drop(columns="step", errors="ignore") for name, table in tables.items()}
        tables["structure"] = structure_table(tables, ["variant", "depth", "width", "seed"])
        tables["lp_with_skip"] = lp_with_skip_table(runs, config)
        tables["structure_with_skip"] = structure_with_skip(tables)
        return tables

    def figures(self, tables: dict[str, pd.DataFrame], config: ResidualConfig) -> dict[str, Figure]:
        from netdyn.plots.pruning import plot_by_size, plot_pruning_grid

        figs: dict[str, Figure] = {}
        n_seeds = tables["structure"]["seed"].nunique()
        first = int(tables["structure"]["seed"].min())
        seed0 = {name: table[table["seed"] == first] for name, table in tables.items()}
        for variant in sorted(pd.unique(seed0["network"]["variant"])):
            t = {name: table[table["variant"] == variant] for name, table in seed0.items()}
            fig = plot_pruning_grid(t["lmap"], t["lp"], t["network"], rows="width", cols="depth")
            which = f"; seed {first} of {n_seeds}" if n_seeds > 1 else ""
            fig.suptitle(f"{variant.capitalize()} BN ReLU nets: LP and L-map pruning by layer\n"
                         f"(test set; layer 0 = input; filled = effective{which})")
            figs[f"fig9_pruning_{variant}"] = fig
        per_network = seed_medians(tables["structure"])
        figs["fig9_effective_layers"] = _effective_figure(tables, n_seeds, first)
        fig = plot_by_size(
            per_network, "test_accuracy",
            ylabel="test accuracy" if n_seeds == 1 else f"test accuracy (median of {n_seeds} seeds)",
        )  # fmt: skip
        if n_seeds > 1:
            _accuracy_bands(fig, tables["structure"])
            fig.axes[0].set_title(f"Test accuracy by depth and width\n(median of {n_seeds} seeds, band min to max)")
        figs["fig9_test_accuracy"] = fig
        return figs

    def criteria(self, config: ResidualConfig) -> list[Criterion]:
        return residual_criteria()

    def summary(self, tables: dict[str, pd.DataFrame], config: ResidualConfig) -> dict[str, Any]:
        table = tables["structure"]
        keys = ["variant", "depth", "width"]
        out: dict[str, Any] = {
            "standard_structure_share": {
                variant: float(rows["standard_structure"].mean()) for variant, rows in table.groupby("variant")
            },
        }
        for value in ("standard_structure", "lmap_effective_from", "lp_effective_from", "linear_tail", "test_accuracy"):
            out[value] = by_network(table, keys, value)
        control = tables.get("structure_with_skip")
        if control is not None:  # the control: the LP given the L-map's inputs
            out["standard_structure_share_lp_with_skip"] = {
                variant: float(rows["standard_structure"].mean()) for variant, rows in control.groupby("variant")
            }
            out["lp_with_skip_effective_from"] = by_network(control, keys, "lp_effective_from")
        return out


# ------------------------------------------------------------------------------------------ criteria
# From the paper's conclusion 6 and Fig. 9 ("residual connections empower networks to uphold stable standard
# structures across a vast range of depths and widths ... a broader spectrum of network scales compared to those
# devoid of residual connections") and section V ("if the network is too wide or too deep, the standard structure
# ... will no longer be maintained"). A network has the standard structure as structure_row says.

WIDE_RANGE = 0.75
"""Share of the grid that counts as 'a vast range of depths and widths'."""


def _grid(tables: Mapping[str, pd.DataFrame], seed: int) -> pd.DataFrame:
    table = tables["structure"]
    rows = table[table["seed"] == seed]
    if rows.empty:
        raise CannotEvaluate(f"no network of seed {seed} was analysed (every one diverged)")
    return rows


def _share(rows: pd.DataFrame, variant: str) -> float:
    own = rows[rows["variant"] == variant]
    if own.empty:
        raise CannotEvaluate(f"no {variant} network of this seed was analysed")
    return float(own["standard_structure"].astype(float).mean())


def structure_share_difference(tables: Mapping[str, pd.DataFrame], config: Any, seed: int) -> float:
    """Share of the residual networks with the standard structure minus that of the plain ones (one seed)."""
    rows = _grid(tables, seed)
    return _share(rows, "residual") - _share(rows, "plain")


def residual_structure_share(tables: Mapping[str, pd.DataFrame], config: Any, seed: int) -> float:
    """Share of the residual networks of the grid with the standard structure (one seed)."""
    return _share(_grid(tables, seed), "residual")


def deepest_share_difference(tables: Mapping[str, pd.DataFrame], config: Any, seed: int) -> float:
    """At the largest depth: share of residual networks (over widths) with the standard structure minus plain's."""
    rows = _grid(tables, seed)
    deepest = rows[rows["depth"] == tables["structure"]["depth"].max()]
    return structure_share_difference({"structure": deepest}, config, seed)


def deepest_tail_longer(tables: Mapping[str, pd.DataFrame], config: Any, seed: int) -> bool:
    """At the largest depth and at every width >= 64: the residual net's linear tail is longer than the plain
    one's (a net with no effective L-map layer has a tail of 0)."""
    rows = _grid(tables, seed)
    rows = rows[(rows["depth"] == tables["structure"]["depth"].max()) & (rows["width"] >= 64)]
    tails = rows.assign(tail=rows["linear_tail"].astype("float64").fillna(0.0))
    wide = tails.pivot_table(index="width", columns="variant", values="tail")
    if wide.empty or not {"plain", "residual"} <= set(wide.columns):
        raise CannotEvaluate("no plain and residual pair of width >= 64 at the largest depth")
    return bool((wide["residual"] > wide["plain"]).all())


def share_difference_lp_with_skip(tables: Mapping[str, pd.DataFrame], config: Any, seed: int) -> float:
    """:func:`structure_share_difference` on the control's structure table (``structure_with_skip``), where a
    residual net's LP reads x^l and x^{l-1} at each cut a skip crosses, the inputs of its L-map there."""
    if "structure_with_skip" not in tables:
        raise CannotEvaluate("no structure_with_skip table: the LP given the L-map's inputs was not computed")
    return structure_share_difference({"structure": tables["structure_with_skip"]}, config, seed)


def residual_criteria() -> list[Criterion]:
    """The criteria of ``residual`` (see docs/verdicts.md)."""
    grid = "structure table, one seed's networks over the depth x width grid"
    return [
        Criterion(
            "residual_keeps_structure_more_often",
            "Fig. 9: 'DNNs endowed with residual connections are capable of achieving a standard structure across "
            "a broader spectrum of network scales compared to those devoid of residual connections'",
            f"share of residual networks with the standard structure minus the share of plain ones; {grid}",
            ">", 0.0, structure_share_difference,
        ),
        Criterion(
            "residual_structure_wide_range",
            "Fig. 9: residual connections 'empower networks to uphold stable standard structures across a vast "
            "range of depths and widths'",
            f"share of residual networks with the standard structure (at least {WIDE_RANGE:g}); {grid}",
            ">=", WIDE_RANGE, residual_structure_share,
        ),
        Criterion(
            "plain_loses_structure_when_deep",
            "Section V: 'if the network is too wide or too deep, the standard structure shown in Figure 3(a) will "
            "no longer be maintained' (plain nets; residual ones keep it, Fig. 9)",
            "at the largest depth: share of residual networks (over widths) with the standard structure minus the "
            f"share of plain ones; {grid}",
            ">", 0.0, deepest_share_difference,
        ),
        Criterion(
            "residual_keeps_structure_more_often_lp_with_skip",
            "Fig. 9: 'DNNs endowed with residual connections are capable of achieving a standard structure across "
            "a broader spectrum of network scales compared to those devoid of residual connections', the standard "
            "structure being LP pruning effective before L-map pruning (Fig. 3(a)); control (docs/verdicts.md): the LP "
            "given the same inputs as the L-map",
            "share of residual networks with the standard structure, judged with the LP given x^l and x^{l-1} at "
            "each cut a skip crosses (the L-map's inputs there), minus the share of plain ones (whose LP already "
            f"reads the L-map's inputs); structure_with_skip table, {grid.removeprefix('structure table, ')}",
            ">", 0.0, share_difference_lp_with_skip,
        ),
        Criterion(
            "linear_tail_longer_when_deep",
            "Fig. 9, as docs/reproduction/residual.md read it after the first run: the binary criterion 'misses "
            "what the paper calls stable'; in residual nets 'the nonlinear section stays short as depth grows, "
            "and the linear tail takes up the rest' (widths 64 and 256)",
            "at the largest depth, at every width >= 64: the residual net's linear tail (hidden layers after the "
            f"L-map layer) is longer than the plain net's; {grid}",
            "true", None, deepest_tail_longer, since="2026-11-30", revises="residual_keeps_structure_more_often",
        ),
    ]


EXPERIMENT = Residual
