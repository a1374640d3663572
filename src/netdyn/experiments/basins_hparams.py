"""``basins-hparams`` (paper Fig. 6): the attraction basins of a deep BN ReLU net (12 layers = depth 10) trained
with Adam, against the batch size and, at the smallest batch, against the learning rate; the test accuracy of
each member beside its curves.

The paper finds both basins larger for smaller batches (test accuracy 98.3% -> 98.9% as the batch shrinks from
30,000 to 300). On the learning rate its text contradicts itself ("the attraction basin increases as the
learning rate decreases", then "the test accuracy rises ... when the rate increases from 0.1 to 0.5", with an
optimum): this experiment sweeps and reports the direction it measures, asserting none.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from netdyn.data.spec import DataSpec
from netdyn.experiments.base import Experiment, ExperimentConfig, ExperimentRuns, Member, member_name, seeded
from netdyn.experiments.basins_depth_width import (
    CURVE_COLUMNS,
    MEMBER_COLUMNS,
    SIZE_COLUMNS,
    SPACES,
    basin_tables,
    rank_trend,
)
from netdyn.experiments.criteria import CannotEvaluate, Criterion
from netdyn.models.spec import ModelSpec
from netdyn.orchestration import RunSpec
from netdyn.training.config import steps_per_epoch

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure


@dataclass(frozen=True)
class BasinsHparamsConfig(ExperimentConfig):
    """One BN ReLU architecture trained with Adam at several batch sizes and learning rates (the paper gives the
    architecture, the optimiser and the batch range; the rest is netdyn's choice)."""

    width: int = 256
    """Neurons per hidden layer (the paper's is 1024)."""
    depth: int = 10
    """Hidden layers: the paper's 12-layer net."""
    batch_sizes: tuple[int, ...] = (50, 200, 1000, 2500)
    """Batch sizes of the batch sweep (the paper's 300..30,000 are 0.5%..50% of its 60,000 digits; these are
    1%..50% of mnist5k's 5,000)."""
    lr: float = 1e-3
    """Learning rate of the batch sweep (Adam's default)."""
    lrs: tuple[float, ...] = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2)
    """Learning rates of the lr sweep (the paper's '0.1 to 0.5' lie far above Adam's usual range; a range
    around Adam's default instead)."""
    lr_batch_size: int = 50
    """Batch size of the lr sweep (the paper's 300: its smallest batch)."""
    optimizer: str = "adam"
    """Optimiser (the paper's Adam)."""
    epochs: float = 50
    """Training length in epochs, the same for every batch size (so that every member sees the data equally
    often) ..."""
    min_steps: int = 100
    """... but at least this many optimiser steps: the basins are defined once training accuracy reaches 100%,
    which a batch of half the training set does not reach in a few epochs' few steps (a depth-10 BN net at
    batch 2,500 still evaluates at chance with running statistics after 43 steps and fits the training set
    after 80, measured). The members table records each member's steps, epochs and training accuracy."""
    equal_steps: int | None = 250
    """Control (see docs/verdicts.md): every batch size of the batch sweep trained again for this many optimiser steps,
    so that batch size and training length are not confounded (None: no control). 250 steps are 2.5 epochs of
    mnist5k at batch 50 and 125 at batch 2,500: the sweep at equal epochs costs about as much."""
    eval_every: str = "log:6"
    """Evaluation points of the training history (each reads the whole train and test sets)."""
    checkpoint_every: str = "log:2"
    """Checkpoints: the first and the last (only the last is analysed)."""
    basin_samples: int | None = 500
    """Training samples the basin curves use (a seeded subset; the basins' CPU default is 2,000)."""
    repeats: int = 3
    """Noise draws per sample (sample space) or perturbed networks (weight space) per amplitude."""
    eps: tuple[float, ...] | None = None
    """Noise amplitudes (None: the basins' default grid, 0..3 by 0.1, extended up to 12 until accuracy halves)."""


def training_steps(n_train: int, batch_size: int, epochs: float, min_steps: int) -> int:
    """Optimiser steps of a member: ``epochs`` epochs of ``batch_size`` minibatches, at least ``min_steps``."""
    return max(int(min_steps), math.ceil(epochs * steps_per_epoch(n_train, batch_size)))


def train_size(data: DataSpec) -> int:
    """Training samples of a data spec (its ``train_size``, or those of the data set it loads)."""
    if data.train_size is not None:
        return int(data.train_size)
    return int(data.load().x_train.shape[0])


def batch_sweep(table: pd.DataFrame, config: BasinsHparamsConfig, schedule: str = "epochs") -> pd.DataFrame:
    """The rows of the batch-size sweep (the members at the sweep's learning rate), trained for equal epochs or,
    the control, equal steps (``schedule``)."""
    rows = table[np.isclose(table["lr"], config.lr)]
    return rows[rows["schedule"] == schedule] if "schedule" in rows.columns else rows


def lr_sweep(table: pd.DataFrame, config: BasinsHparamsConfig) -> pd.DataFrame:
    """The rows of the learning-rate sweep (the members at the lr sweep's batch size, equal epochs)."""
    rows = table[table["batch_size"] == config.lr_batch_size]
    return rows[rows["schedule"] == "epochs"] if "schedule" in rows.columns else rows


#: Smallest y range of the test-accuracy panels (two points): one seed's accuracy moves by a few tenths of a
#: point between runs, and a narrower axis would draw that as a cliff.
ACCURACY_SPAN = 0.02


class BasinsHparams(Experiment[BasinsHparamsConfig]):
    name = "basins-hparams"
    figure = "Fig. 6"
    shows = "attraction basins and test accuracy vs batch size and learning rate, 12-layer BN ReLU net, Adam"
    claim = (
        "For a BN ReLU net of 12 layers (depth 10) and width 1024 trained with Adam, both attraction basins, in "
        "sample space and in weight space, grow as the batch size shrinks, and the test accuracy rises from "
        "98.3% to 98.9% as the batch goes from 30,000 down to 300; the weight-space basin is the more sensitive, "
        "linking the accuracy gain to flatter minima. On the learning rate (at batch 300) the paper's text "
        "contradicts itself: it says the basin grows as the rate decreases, and that the test accuracy rises "
        "as the rate increases from 0.1 to 0.5 and peaks at an optimal rate."
    )
    columns = {
        "basin_curves": ("member", "schedule", "batch_size", "lr", "seed", *CURVE_COLUMNS),
        "basin_sizes": ("member", "schedule", "batch_size", "lr", "seed", *SIZE_COLUMNS),
        "members": ("member", "schedule", "batch_size", "lr", "seed", *MEMBER_COLUMNS),
    }
    nullable = {"basin_sizes": ("size_mid", "size_half"), "members": ("train_accuracy", "test_accuracy")}
    measured = {
        "smoke": "14 s (2 CPU cores shared with other jobs, load average 6; 2026-11-30)",
        "small": "19.2 min (1151.9 s; 3 seeds, 1 torch thread, --jobs 2 on an idle 2-core CPU, 2026-12-06)",
    }
    scales = {
        "smoke": BasinsHparamsConfig(
            seeds=2,
            data=DataSpec("mnist5k", train_size=500, test_size=200), width=16, depth=2, batch_sizes=(25, 100),
            lrs=(1e-3, 3e-3), lr_batch_size=25, epochs=4, min_steps=10, eval_every="log:3", basin_samples=100,
            repeats=2, eps=(0.0, 0.5, 1.0, 2.0, 4.0, 8.0), equal_steps=20,
        ),
        "small": BasinsHparamsConfig(),
        "paper": BasinsHparamsConfig(
            data=DataSpec("mnist", train_size=60000), width=1024, batch_sizes=(300, 1000, 3000, 10000, 30000),
            lr_batch_size=300, epochs=100, min_steps=200, equal_steps=1000,
            basin_samples=None, repeats=5, eval_every="log:20",
        ),
    }

    def members(self, config: BasinsHparamsConfig) -> list[Member]:
        points = [(bs, config.lr, "epochs") for bs in config.batch_sizes]
        points += [(config.lr_batch_size, lr, "epochs") for lr in config.lrs
                   if (config.lr_batch_size, lr, "epochs") not in points]
        if config.equal_steps is not None:  # the control: the batch sweep again at equal steps
            points += [(bs, config.lr, "steps") for bs in config.batch_sizes]
        n_train = train_size(config.data)
        members = []
        for batch_size, lr, schedule in points:
            steps = (training_steps(n_train, batch_size, config.epochs, config.min_steps) if schedule == "epochs"
                     else int(config.equal_steps or 0))  # fmt: skip
            for seed in seeded(config):
                spec = RunSpec(
                    model=ModelSpec(width=config.width, depth=config.depth, batchnorm=True, seed=seed),
                    data=config.data,
                    train=config.train_config(seed, batch_size=batch_size, lr=lr, epochs=None, steps=steps),
                )
                params = {"schedule": schedule, "batch_size": batch_size, "lr": lr, "seed": seed}
                members.append(Member(member_name(**params), spec, params))
        return members

    def tables(self, runs: ExperimentRuns, config: BasinsHparamsConfig) -> dict[str, pd.DataFrame]:
        return basin_tables(runs, config)

    def figures(self, tables: dict[str, pd.DataFrame], config: BasinsHparamsConfig) -> dict[str, Figure]:
        from netdyn.plots._base import new_figure
        from netdyn.plots.basin_sweeps import plot_sweep
        from netdyn.plots.seeds import one_seed_note

        curves, sizes, members = tables["basin_curves"], tables["basin_sizes"], tables["members"]
        seeds = sorted(set(members["seed"]))
        first = seeds[0]
        figs: dict[str, Figure] = {}
        sweeps: list[tuple[str, Callable[[pd.DataFrame, BasinsHparamsConfig], pd.DataFrame], str, str]] = [
            ("batch_size", batch_sweep, f"lr {config.lr:g}, equal epochs", "ab"),
            ("lr", lr_sweep, f"batch {config.lr_batch_size}", "cd"),
        ]
        for key, sweep, fixed, letters in sweeps:
            for letter, space in zip(letters, SPACES, strict=True):
                fig = new_figure((7.2, 4.8))
                ax = fig.add_subplot()
                _sweep_curves(sweep(curves, config), sweep(sizes, config), sweep(members, config), key, space, ax,
                              first)
                # two lines, the seed first: on one line the 7.2-inch figure cut the title off before it
                ax.set_title(f"{space.capitalize()}-space basins by {key.replace('_', ' ')} "
                             f"({one_seed_note(len(seeds), first)})\ndepth {config.depth} = {config.depth + 2} "
                             f"layers, width {config.width}, {fixed}", fontsize="medium")
                figs[f"fig6{letter}_{space}_basin_{key}"] = fig
        if "schedule" in members.columns and (members["schedule"] == "steps").any():
            sweeps.append(("batch_size", partial(batch_sweep, schedule="steps"),
                           f"lr {config.lr:g}, equal steps: {config.equal_steps}", ""))
        fig = new_figure((15.0, 4.2 * len(sweeps)))
        axes = fig.subplots(len(sweeps), 3, squeeze=False)
        for row, (key, sweep, fixed, _) in zip(axes, sweeps, strict=True):
            for ax, space in zip(row[:2], SPACES, strict=True):
                rows = sweep(sizes, config)
                plot_sweep(rows[rows["space"] == space], key, "size_half", ax=ax,
                           ylabel=f"{space}-space size_half", title=f"{space}-space basin size ({fixed})")
            plot_sweep(sweep(members, config), key, "test_accuracy", ax=row[2], ylabel="test accuracy",
                       title=f"test accuracy ({fixed})")
            _min_span(row[2], ACCURACY_SPAN)
        spread = f"median of {len(seeds)} seeds, bars min to max" if len(seeds) > 1 else f"seed {first}"
        fig.suptitle(f"Basin sizes (ε where accuracy halves) and test accuracy, depth {config.depth} "
                     f"({config.depth + 2} layers), width {config.width} ({spread})")
        figs["fig6_sizes"] = fig
        return figs

    def criteria(self, config: BasinsHparamsConfig) -> list[Criterion]:
        return basins_hparams_criteria(config)

    def summary(self, tables: dict[str, pd.DataFrame], config: BasinsHparamsConfig) -> dict[str, Any]:
        sizes, members = tables["basin_sizes"], tables["members"]
        out: dict[str, Any] = {"depth": config.depth, "paper_layers": config.depth + 2, "width": config.width,
                               "train_accuracy_min": _finite(members["train_accuracy"].min())}
        for key, sweep in (("batch_size", batch_sweep), ("lr", lr_sweep)):
            m = sweep(members, config).groupby(key)[["test_accuracy", "train_accuracy", "steps"]].mean()
            out[f"test_accuracy_by_{key}"] = {_key(k): _finite(v) for k, v in m["test_accuracy"].items()}
            out[f"train_accuracy_by_{key}"] = {_key(k): _finite(v) for k, v in m["train_accuracy"].items()}
            out[f"steps_by_{key}"] = {_key(k): int(v) for k, v in m["steps"].items()}
            out[f"test_accuracy_{key}_trend"] = _finite(rank_trend(m.index, m["test_accuracy"]))
            swept = sweep(sizes, config)
            for space in SPACES:
                s = swept[swept["space"] == space].groupby(key)["size_half"].agg(lambda v: v.mean(skipna=False))
                out[f"{space}_size_half_by_{key}"] = {_key(k): _finite(v) for k, v in s.items()}
                out[f"{space}_size_half_{key}_trend"] = _finite(rank_trend(s.index, s))
            if len(m):
                best = m.index.to_numpy()[m["test_accuracy"].argmax()]
                out[f"best_{key}_by_test_accuracy"] = _finite(float(best))
                out[f"best_{key}_is_interior"] = bool(m.index.min() < best < m.index.max())
        return out


def _min_span(ax: Axes, span: float) -> None:
    """Widen the y axis to at least ``span`` around its data, so that differences of a few samples do not
    fill the panel as if they were large."""
    low, high = ax.get_ylim()
    if high - low < span:
        middle = (low + high) / 2
        ax.set_ylim(middle - span / 2, middle + span / 2)


def _key(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _finite(value: Any) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def _sweep_curves(curves: pd.DataFrame, sizes: pd.DataFrame, members: pd.DataFrame, key: str, space: str,
                  ax: Axes, seed: int = 0) -> None:
    """One basin curve per value of the swept ``key`` (one seed), labelled with the member's test accuracy
    (the paper's insets), its size_half marked."""
    from netdyn.plots import plot_basin

    name = {"batch_size": "batch", "lr": "lr"}[key]
    curves = curves[(curves["space"] == space) & (curves["seed"] == seed)]
    size_half = sizes[(sizes["space"] == space) & (sizes["seed"] == seed)].set_index(key)["size_half"]
    test = members[members["seed"] == seed].set_index(key)["test_accuracy"]
    labelled, marks = {}, {}
    for value, table in curves.groupby(curves[key], sort=True):
        label = f"{name} {_key(value)} (test {test.get(value, math.nan):.3f})"
        labelled[label] = table
        marks[label] = size_half.get(value, math.nan)
    plot_basin(labelled, ax=ax, kind=space, sizes=marks, legend_title=f"{name.replace('_', ' ')} (test accuracy)")
    legend = ax.get_legend()
    if legend is not None:
        legend.set_loc("lower left")  # below a curve's fall and left of its tail: empty on every panel


# ------------------------------------------------------------------------------------------ criteria
# Written from the paper's text on Fig. 6 (section V, "The attraction basins and the flat minima hypothesis") before
# any run used them (see docs/verdicts.md). The batch claims are tested twice: with every batch size trained for the
# same number of epochs (the sweep) and for the same number of optimiser steps (the control, docs/verdicts.md), since a
# batch size changes one or the other. On the learning rate the paper's text contradicts itself
# (docs/reproduction/basins-hparams.md): no direction is asserted, only its optimum and the weight space's greater
# sensitivity, which hold under either reading.

MIN_TREND = 0.5
"""A Spearman correlation that counts as a trend (|rho| >= 0.5)."""
MORE_SENSITIVE = 1.5
"""How many times larger the weight-space basin's spread (log max/min over a sweep) must be than the sample
space's for 'much more sensitive'."""


def _swept(tables: Mapping[str, pd.DataFrame], name: str, config: Any, seed: int, key: str,
           schedule: str) -> pd.DataFrame:
    """One seed's rows of table ``name`` in the batch sweep (``key="batch_size"``) or the lr sweep, trained for
    equal epochs or equal steps (``schedule``)."""
    table = tables.get(name)
    rows = None if table is None else table[table["seed"] == seed]
    if rows is not None and "schedule" not in rows.columns and schedule != "epochs":
        rows = None
    if rows is not None:
        rows = batch_sweep(rows, config, schedule) if key == "batch_size" else lr_sweep(rows, config)
    if rows is None or rows.empty:
        raise CannotEvaluate(f"no {name} rows of the {key} sweep at equal {schedule}, seed {seed}")
    return rows


def size_trend(tables: Mapping[str, pd.DataFrame], config: Any, seed: int, *, space: str, key: str,
               schedule: str) -> float:
    """Spearman's correlation of the ``space`` basin's ``size_half`` with the swept ``key``."""
    rows = _swept(tables, "basin_sizes", config, seed, key, schedule)
    rows = rows[rows["space"] == space]
    value = rank_trend(rows[key], rows["size_half"])
    if math.isnan(value):
        raise CannotEvaluate(f"no rank correlation: fewer than two {space}-space sizes reached, or all equal")
    return value


def accuracy_trend(tables: Mapping[str, pd.DataFrame], config: Any, seed: int, *, key: str, schedule: str) -> float:
    """Spearman's correlation of the test accuracy with the swept ``key``."""
    rows = _swept(tables, "members", config, seed, key, schedule)
    value = rank_trend(rows[key], rows["test_accuracy"])
    if math.isnan(value):
        raise CannotEvaluate("no rank correlation: fewer than two test accuracies, or all equal")
    return value


def sensitivity_ratio(tables: Mapping[str, pd.DataFrame], config: Any, seed: int, *, key: str,
                      schedule: str) -> float:
    """log(max / min) of the weight-space ``size_half`` over the sweep, over the same of the sample space."""
    rows = _swept(tables, "basin_sizes", config, seed, key, schedule)
    spread = {}
    for space in SPACES:
        sizes = rows[rows["space"] == space]["size_half"].astype(float)
        if len(sizes) < 2 or sizes.isna().any() or (sizes <= 0).any():
            raise CannotEvaluate(f"a {space}-space size_half was not reached (or fewer than two points)")
        spread[space] = math.log(sizes.max() / sizes.min())
    if spread["sample"] == 0:
        raise CannotEvaluate("the sample-space size is the same at every point of the sweep")
    return spread["weight"] / spread["sample"]


def interior_best_lr(tables: Mapping[str, pd.DataFrame], config: Any, seed: int) -> bool:
    """Whether the most accurate learning rate of the lr sweep lies strictly inside the swept range."""
    rows = _swept(tables, "members", config, seed, "lr", "epochs").dropna(subset=["test_accuracy"])
    if rows["lr"].nunique() < 3:
        raise CannotEvaluate("fewer than three learning rates: no interior rate")
    best = float(rows["lr"].to_numpy()[rows["test_accuracy"].to_numpy().argmax()])
    return bool(rows["lr"].min() < best < rows["lr"].max())


def _batch_criteria(schedule: str) -> list[Criterion]:
    control = "" if schedule == "epochs" else "_equal_steps"
    how = ("every batch size trained for the same epochs (at least min_steps steps)" if schedule == "epochs" else
           "control: every batch size trained for the same number of optimiser steps (equal_steps)")
    out = []
    for space in SPACES:
        out.append(Criterion(
            f"{space}_basin_grows_as_batch_shrinks{control}",
            f"Fig. 6({'a' if space == 'sample' else 'b'}): 'in both cases, the size of the attraction basin "
            "increases as the batch size decreases'",
            f"Spearman's correlation of the {space}-space size_half with the batch size (at most {-MIN_TREND:g}); "
            f"one seed's batch sweep, {how}",
            "<=", -MIN_TREND, partial(size_trend, space=space, key="batch_size", schedule=schedule),
        ))
    out.append(Criterion(
        f"test_accuracy_rises_as_batch_shrinks{control}",
        "Fig. 6(a, b) insets: 'the test accuracy rises from 98.3% to 98.9% when the batch size is reduced from "
        "30,000 to 300'",
        f"Spearman's correlation of the test accuracy with the batch size; one seed's batch sweep, {how}",
        "<=", -MIN_TREND, partial(accuracy_trend, key="batch_size", schedule=schedule),
    ))
    out.append(Criterion(
        f"weight_basin_more_sensitive_to_batch{control}",
        "Fig. 6: 'in both case the changes in attraction size is much more sensitive in the weight vector space "
        "than in the sample vector space'",
        "log(max/min) of the weight-space size_half over the batch sweep over the same of the sample space (at "
        f"least {MORE_SENSITIVE:g}); one seed's batch sweep, {how}",
        ">=", MORE_SENSITIVE, partial(sensitivity_ratio, key="batch_size", schedule=schedule),
    ))
    return out


def basins_hparams_criteria(config: BasinsHparamsConfig) -> list[Criterion]:
    """The criteria of ``basins-hparams`` (see docs/verdicts.md)."""
    out = _batch_criteria("epochs")
    if config.equal_steps is not None:
        out += _batch_criteria("steps")
    out += [
        Criterion(
            "test_accuracy_peaks_inside_lr_range",
            "Fig. 6(c, d): the accuracy 'peaks at an optimal learning rate' (the direction of the basin with the "
            "rate is not asserted: the paper's text states both)",
            "whether the most accurate learning rate lies strictly inside the swept range; one seed's lr sweep",
            "true", None, interior_best_lr,
        ),
        Criterion(
            "weight_basin_more_sensitive_to_lr",
            "Fig. 6: 'in both case the changes in attraction size is much more sensitive in the weight vector space "
            "than in the sample vector space'",
            "log(max/min) of the weight-space size_half over the lr sweep over the same of the sample space (at "
            f"least {MORE_SENSITIVE:g}); one seed's lr sweep",
            ">=", MORE_SENSITIVE, partial(sensitivity_ratio, key="lr", schedule="epochs"),
        ),
    ]
    return out


EXPERIMENT = BasinsHparams
