"""``grokking`` (paper Fig. 7): a shallow ReLU net that generalises long after it fits, and its basins.

The 784-200-200-10 ReLU net of Omnigrok's MNIST set-up (Liu, Michaud and Tegmark, ICLR 2023): 1,000 training
digits with inputs in [0, 1], MSE on one-hot targets, AdamW (lr 1e-3, weight decay 0.01), batch 200, every
initial parameter scaled by 8, float64, 10^5 steps. The experiment shows

* train and test accuracy against steps, with the accuracy of noised training samples at several amplitudes
  (the sample basin on a fixed grid at every checkpoint) and the sample basin's size against steps beside
  the test samples' relative distance to their nearest training sample (the paper's mechanism: test samples
  are classified once the basins have grown past them);
* sample- and weight-basin curves at three stages picked from the run itself (before learning, just before
  and just after the test accuracy's jump), with that distance drawn on the same axis;
* the output local fields of classes 1, 2, 3, train and test, before and after the jump.

The jump is defined in :mod:`netdyn.transitions` (shared with the transition detector), the stages by the pure
functions below, on history tables (the columns of ``netdyn.train``'s history: ``step, split, bn_mode, loss,
accuracy``). Every step they return is an evaluated step of the table.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from netdyn.analysis.basins import curve_sizes, nearest_train_distance
from netdyn.analysis.config import AnalysisConfig
from netdyn.data.spec import DataSpec
from netdyn.errors import ConfigError
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
from netdyn.transitions import Jump, accuracy_jump, curve, jump_table

if TYPE_CHECKING:
    from matplotlib.figure import Figure

STAGES = ("initial", "before", "after")
#: Figures draw a checkpoint's basin size only where the clean accuracy of its curve (eps = 0) is at least this:
#: the "basin" of a net still at chance has no meaning (its half-accuracy point sits at chance level).
MIN_CLEAN_ACCURACY = 0.5
STAGE_TITLES = {"initial": "before learning", "before": "just before the jump", "after": "just after the jump"}


# ----------------------------------------------------------------------------------- definitions on histories
def before_learning_step(
    history: pd.DataFrame, candidates: Sequence[int], chance: float, margin: float = 0.1,
    bn_mode: str | None = None,
) -> int:
    """The latest of ``candidates`` (checkpoint steps) at which train and test accuracy are both still within
    ``margin`` of ``chance`` (the basins have not formed); the earliest candidate when none is.

    Each candidate is read at the latest evaluated step at or before it."""
    train = curve(history, "train", bn_mode=bn_mode)
    test = curve(history, "test", bn_mode=bn_mode)
    steps = sorted(int(c) for c in candidates)
    if not steps:
        raise ConfigError("before_learning_step needs at least one candidate step")
    low = [s for s in steps if _at(train, s) <= chance + margin and _at(test, s) <= chance + margin]
    return low[-1] if low else steps[0]


def stage_rows(table: pd.DataFrame, stages: Mapping[str, int]) -> pd.DataFrame:
    """The rows of an analysis table (one with a ``step`` column) at each stage's step, labelled with a leading
    ``stage`` column, in the order of ``stages``."""
    frames = [table[table["step"] == step].assign(stage=stage) for stage, step in stages.items()]
    table = pd.concat(frames, ignore_index=True)
    front = ["stage", "step"]
    return table[front + [c for c in table.columns if c not in front]]


def grokking_stages(
    history: pd.DataFrame, candidates: Sequence[int], jump: Jump, chance: float, margin: float = 0.1,
    bn_mode: str | None = None,
) -> dict[str, int]:
    """Three of ``candidates`` (checkpoint steps) for the paper's Fig. 7(b): ``initial`` =
    :func:`before_learning_step`; ``before`` = the latest candidate at or before the jump's onset; ``after`` =
    the earliest candidate at or after the jump's end (the last candidate if none is). Without a jump,
    ``before`` is the latest candidate at or before the fit step (or the first step) and ``after`` the last
    candidate. ``before`` is never earlier than ``initial``."""
    steps = sorted(int(c) for c in candidates)
    initial = before_learning_step(history, steps, chance, margin, bn_mode=bn_mode)
    if jump.onset_step is not None and jump.end_step is not None:  # jump.found
        edge = jump.onset_step
        late = [s for s in steps if s >= jump.end_step]
    else:
        edge = jump.fit_step if jump.fit_step is not None else steps[0]
        late = []
    early = [s for s in steps if s <= edge]
    before = max(early[-1] if early else steps[0], initial)
    after = late[0] if late else steps[-1]
    return {"initial": initial, "before": before, "after": after}


def _at(series: pd.Series, step: int) -> float:
    """The value at the latest index <= step (the first value when step precedes every index)."""
    earlier = series[series.index <= step]
    return float(earlier.iloc[-1] if len(earlier) else series.iloc[0])


def first_crossing_step(steps: Sequence[int], values: Sequence[float], threshold: float) -> int | None:
    """The first of ``steps`` whose value is >= ``threshold`` with every later finite value >= it too (a size
    that has grown past a distance for good); None if never. NaN values (a size not reached on the grid, hence
    beyond it) count as above."""
    v = np.asarray(values, dtype=float)
    above = np.isnan(v) | (v >= threshold)
    below = np.flatnonzero(~above)
    first = 0 if below.size == 0 else int(below[-1]) + 1
    return int(steps[first]) if first < len(v) else None


# ------------------------------------------------------------------------------------------------ the config
def _grid(top: float, spacing: float) -> tuple[float, ...]:
    return tuple(round(i * spacing, 4) for i in range(int(round(top / spacing)) + 1))


@dataclass(frozen=True)
class GrokkingConfig(ExperimentConfig):
    """Omnigrok's MNIST set-up (Liu et al. 2023, their notebook), which the paper's Fig. 7 follows; netdyn's
    choices where the paper is silent are said below."""

    data: DataSpec = field(default_factory=lambda: DataSpec("mnist5k", train_size=1000, normalize="none"))
    """1,000 training digits with inputs in [0, 1]. At small: a class-stratified subset of mnist5k's 5,000
    bundled digits (not the first 1,000 of the official set, which is not shipped); test: the official 10,000."""
    width: int = 200
    """Neurons per hidden layer (784-200-200-10)."""
    depth: int = 2
    """Hidden layers."""
    init_scale: float = 8.0
    """Every initial weight and bias multiplied by this (Omnigrok's alpha)."""
    optimizer: str = "adamw"
    """AdamW, as Omnigrok."""
    lr: float = 1e-3
    """Learning rate."""
    weight_decay: float = 0.01
    """Decoupled weight decay."""
    batch_size: int = 200
    """Minibatch size."""
    steps: int = 100_000
    """Optimiser steps."""
    loss: str = "mse"
    """MSE on one-hot targets."""
    dtype: str = "float64"
    """Training precision (Omnigrok trains in float64)."""
    eval_every: str = "log:81"
    """Evaluation points of the accuracy curves (16 per decade; holds every checkpoint)."""
    checkpoint_every: str = "log:41"
    """Checkpoints (8 per decade): the basins are measured at each, the stages are picked among them."""
    evolution_eps: tuple[float, ...] = _grid(3.0, 0.1)
    """Noise grid of the sample basin measured at every checkpoint (its size against steps)."""
    evolution_repeats: int = 2
    """Noise draws per sample and amplitude at every checkpoint."""
    shown_eps: tuple[float, ...] = (0.2, 0.4, 0.6, 1.0, 1.5)
    """Amplitudes whose noised-sample accuracy is drawn against steps (Fig. 7a)."""
    stage_eps: tuple[float, ...] = _grid(3.0, 0.1)
    """Noise grid of the sample- and weight-basin curves at the three stages (Fig. 7b)."""
    stage_repeats: int = 5
    """Noise draws per sample and amplitude at the stages."""
    basin_samples: int = 1000
    """Training samples the basins use (all 1,000)."""
    fit_threshold: float = 1.0
    """Training accuracy that counts as fitted (every training sample right)."""
    chance_margin: float = 0.1
    """'Before learning' = train and test accuracy within this of chance."""
    classes: tuple[int, ...] = (1, 2, 3)
    """Classes of the local-field projections (the output neurons of the first two are the axes)."""


class Grokking(Experiment[GrokkingConfig]):
    name = "grokking"
    figure = "Fig. 7"
    shows = "784-200-200-10 ReLU (Omnigrok MNIST, init x8): delayed generalisation against sample/weight basins"
    claim = (
        "In a shallow 784-200-200-10 ReLU net trained after Omnigrok's MNIST set-up, test accuracy jumps long "
        "after training accuracy reaches 100% (grokking). The paper explains it with attraction basins: test "
        "samples are noisy variations of training samples, and the jump comes when the basins of the training "
        "samples in sample space have grown past the test samples' distance; the weight-space transition comes "
        "slightly later in eps. Before the jump, test samples' output local fields lie far from the training "
        "samples'; after it they overlap, and the training classes converge to small separated regions."
    )
    columns = {
        "history": ("member", "seed", "step", "split", "bn_mode", "loss", "accuracy"),
        "noised_accuracy": ("member", "seed", "step", "eps", "accuracy", "ci_low", "ci_high"),
        "basin_size": ("member", "seed", "step", "kind", "clean_accuracy", "size_mid", "size_half"),
        "stages": ("member", "seed", "stage", "step", "train_accuracy", "test_accuracy", "sample_size_mid",
                   "sample_size_half", "weight_size_mid", "weight_size_half"),
        "stage_basins": ("member", "seed", "stage", "step", "kind", "eps", "accuracy", "ci_low", "ci_high"),
        "nearest_train_distance": ("sample", "label", "distance"),
        "local_fields": ("member", "seed", "stage", "step", "split", "label", "h_a", "h_b"),
        "local_fields_summary": ("member", "seed", "stage", "step", "label", "test_in_train_fraction"),
        "jump": ("member", "seed", "fit_step", "start_step", "start_level", "onset_step", "mid_step", "end_step",
                 "plateau_step", "plateau_level", "rise", "delay"),
    }
    nullable = {
        "basin_size": ("size_mid", "size_half"),
        "stages": ("sample_size_mid", "sample_size_half", "weight_size_mid", "weight_size_half"),
        "local_fields_summary": ("test_in_train_fraction",),
        "nearest_train_distance": ("distance",),
        "jump": ("fit_step", "onset_step", "mid_step", "end_step", "delay"),
    }
    scales = {
        "smoke": GrokkingConfig(
            seeds=2,
            data=DataSpec("mnist5k", train_size=200, test_size=200, normalize="none"),
            width=32, steps=100, eval_every="log:11", checkpoint_every="log:6",
            evolution_eps=_grid(2.0, 0.5), shown_eps=(0.5, 1.0), stage_eps=_grid(2.0, 0.5), stage_repeats=2,
            basin_samples=100,
        ),
        "small": GrokkingConfig(),
        "paper": GrokkingConfig(data=DataSpec("mnist", train_size=1000, normalize="none")),
    }
    measured = {
        "smoke": "15 s (2 CPU cores, load ~4, 2026-11-30)",
        "small": "21.8 min (1306.0 s; 3 seeds, 1 torch thread, --jobs 2 on an idle 2-core CPU, 2026-12-06)",
    }

    def members(self, config: GrokkingConfig) -> list[Member]:
        members = []
        for seed in seeded(config):
            spec = RunSpec(
                model=ModelSpec(width=config.width, depth=config.depth, activation="relu",
                                init_scale=config.init_scale, seed=seed),
                data=config.data,
                train=config.train_config(seed),
            )
            params = {"seed": seed}
            members.append(Member(member_name(**params), spec, params))
        return members

    def _evolution_config(self, config: GrokkingConfig) -> AnalysisConfig:
        return AnalysisConfig(quantities=("sample_basin",), eps=config.evolution_eps,
                              repeats=config.evolution_repeats, basin_samples=config.basin_samples,
                              device=config.device)

    def _stage_config(self, config: GrokkingConfig) -> AnalysisConfig:
        return AnalysisConfig(quantities=("sample_basin", "weight_basin", "local_fields"), eps=config.stage_eps,
                              repeats=config.stage_repeats, basin_samples=config.basin_samples,
                              classes=config.classes, device=config.device)

    def tables(self, runs: ExperimentRuns, config: GrokkingConfig) -> dict[str, pd.DataFrame]:
        parts: dict[str, list[pd.DataFrame]] = {}

        def add(name: str, table: pd.DataFrame) -> None:
            parts.setdefault(name, []).append(table)

        live = [m for m in runs if not runs.diverged(m)]
        data = runs.data(live[0] if live else runs.members[0])
        num_classes = int(data.num_classes)
        chance = float(np.bincount(data.y_train.numpy(), minlength=num_classes).max() / len(data.y_train))
        for member in runs:
            history = runs.history(member)
            add("history", history)
            if member not in live:
                continue
            run = runs.run(member)
            steps = run.checkpoints()
            evolution = runs.analysis(member, self._evolution_config(config), steps="all")
            noised = evolution.tables["sample_basin"]
            add("noised_accuracy", with_params(noised, member))
            sizes = _sizes_by_step(noised, num_classes).assign(kind="sample")
            add("basin_size", with_params(sizes[["step", "kind", "clean_accuracy", "size_mid", "size_half"]], member))

            own = run.history
            jump = accuracy_jump(own, fit_threshold=config.fit_threshold)
            add("jump", with_params(jump_table([jump.to_dict()]), member))
            stages = grokking_stages(own, steps, jump, chance, config.chance_margin)
            at_stage = runs.analysis(member, self._stage_config(config), steps=sorted(set(stages.values())))
            train, test = curve(own, "train"), curve(own, "test")
            rows, curves = [], []
            for stage, step in stages.items():
                row = {"stage": stage, "step": step, "train_accuracy": _at(train, step),
                       "test_accuracy": _at(test, step)}
                for kind in ("sample", "weight"):
                    table = at_stage.tables[f"{kind}_basin"]
                    one = table[table["step"] == step].drop(columns="step")
                    row[f"{kind}_size_mid"], row[f"{kind}_size_half"] = curve_sizes(one, num_classes)
                    curves.append(one.assign(stage=stage, step=step, kind=kind))
                rows.append(row)
            add("stages", with_params(pd.DataFrame(rows), member))
            stage_curves = pd.concat(curves, ignore_index=True)
            add("stage_basins", with_params(
                stage_curves[["stage", "step", "kind", "eps", "accuracy", "ci_low", "ci_high"]], member))
            for name in ("local_fields", "local_fields_summary"):
                add(name, with_params(stage_rows(at_stage.tables[name], stages), member))
        tables = {name: pd.concat(frames, ignore_index=True) for name, frames in parts.items()}
        tables["nearest_train_distance"] = nearest_train_distance(data)
        return tables

    def figures(self, tables: dict[str, pd.DataFrame], config: GrokkingConfig) -> dict[str, Figure]:
        from netdyn.plots import dynamics

        figs: dict[str, Figure] = {}
        if "stages" not in tables:
            return figs
        seeds = sorted(set(tables["stages"]["seed"]))
        seed = seeds[0]
        note = f"seed {seed} of {len(seeds)}"
        one = {name: t[t["seed"] == seed] if "seed" in t.columns else t for name, t in tables.items()}
        stages = dict(zip(one["stages"]["stage"], one["stages"]["step"], strict=True))
        marks = {f"{STAGE_TITLES[s]} (step {int(step)})": int(step) for s, step in stages.items()}
        figs["fig7a_accuracy"] = dynamics.plot_noised_accuracy(
            one["history"], one["noised_accuracy"], eps=config.shown_eps, marks=marks,
        )
        distance = one["nearest_train_distance"]
        sizes = one["basin_size"].copy()
        sizes.loc[sizes["clean_accuracy"] < MIN_CLEAN_ACCURACY, ["size_mid", "size_half"]] = np.nan
        fig = dynamics.plot_size_evolution(sizes, one["history"], distance=distance, marks=marks)
        fig.axes[0].set_title("Sample-basin size against the test samples' distance to the training set\n"
                              f"(sizes drawn where the clean training accuracy is >= {MIN_CLEAN_ACCURACY:g}; {note})",
                              fontsize="medium")
        figs["fig7a_basin_size"] = fig
        figs["fig7b_basins"] = dynamics.plot_stage_basins(
            one["stage_basins"], distance=distance, titles={s: STAGE_TITLES[s] for s in STAGES},
        )
        for name in ("fig7a_accuracy", "fig7b_basins"):
            figs[name].suptitle(f"Omnigrok's MNIST net, {note}", fontsize="medium")
        figs["fig7cf_local_fields"] = dynamics.plot_stage_local_fields(
            one["local_fields"], stages=("before", "after"),
            titles=_field_titles(stages, found=bool(one["jump"]["end_step"].notna().any())),
            neurons=(config.classes[0], config.classes[1]), splits=("test", "train"),
        )
        figs["fig7cf_local_fields"].suptitle(f"Output local fields of classes {', '.join(map(str, config.classes))} "
                                             f"before and after the jump ({note})", fontsize="medium")
        return figs

    def summary(self, tables: dict[str, pd.DataFrame], config: GrokkingConfig) -> dict[str, Any]:
        out: dict[str, Any] = {}
        distance = tables["nearest_train_distance"]["distance"].dropna()
        d_median = float(distance.median())
        out["nearest_train_distance_median"] = d_median
        out["nearest_train_distance_q25"] = float(distance.quantile(0.25))
        out["nearest_train_distance_q75"] = float(distance.quantile(0.75))
        if "stages" not in tables:
            return out
        history = tables["history"]
        per_seed = []
        for seed in sorted(set(tables["stages"]["seed"])):
            jump = tables["jump"][tables["jump"]["seed"] == seed].iloc[0]
            stages = tables["stages"][tables["stages"]["seed"] == seed].set_index("stage")
            own = history[history["seed"] == seed]
            sizes = tables["basin_size"]
            sizes = sizes[(sizes["seed"] == seed) & (sizes["kind"] == "sample")].sort_values("step")
            crossing = first_crossing_step(sizes["step"].tolist(), sizes["size_half"].tolist(), d_median)
            final = own[own["step"] == own["step"].max()].set_index("split")["accuracy"]
            row = {
                "final_train_accuracy": float(final["train"]),
                "final_test_accuracy": float(final["test"]),
                **{f"jump_{k}": _clean(v, step=k.endswith("_step")) for k, v in jump.items()
                   if k not in ("member", "seed")},
                "delay_at_least_10x": bool(_clean(jump["delay"]) is not None and jump["delay"] >= 10),
                "sample_size_half_crosses_distance_step": crossing,
            }
            mid = _clean(jump["mid_step"])
            if crossing is not None and mid is not None:
                row["crossing_minus_jump_mid_log10_steps"] = math.log10(max(crossing, 1)) - math.log10(max(mid, 1))
            for stage in STAGES:
                for key in ("step", "train_accuracy", "test_accuracy", "sample_size_mid", "sample_size_half",
                            "weight_size_mid", "weight_size_half"):
                    row[f"{stage}_{key}"] = _clean(stages.loc[stage, key])
            before, after = row["before_sample_size_half"], row["after_sample_size_half"]
            row["basin_below_distance_before_jump"] = before is not None and before < d_median
            row["basin_above_distance_after_jump"] = after is None or after >= d_median
            lf = tables["local_fields_summary"]
            lf = lf[lf["seed"] == seed]
            for stage in ("before", "after"):
                row[f"{stage}_test_in_train_fraction"] = _clean(lf[lf["stage"] == stage]["test_in_train_fraction"]
                                                                .mean())
            per_seed.append(row)
        for key in per_seed[0]:
            values = [r[key] for r in per_seed]
            out[key] = values[0] if len(values) == 1 else values
        return out

    def criteria(self, config: GrokkingConfig) -> list[Criterion]:
        return grokking_criteria(config)


def _field_titles(stages: Mapping[str, int], found: bool) -> dict[str, str]:
    """Panel titles of the local fields: the stage around the jump, or, without a jump, what the step is."""
    if found:
        return {s: f"{STAGE_TITLES[s]} (step {int(stages[s])})" for s in ("before", "after")}
    return {"before": f"no jump found: at the fit or the first step (step {int(stages['before'])})",
            "after": f"no jump found: the last checkpoint (step {int(stages['after'])})"}


def _sizes_by_step(curves: pd.DataFrame, num_classes: int) -> pd.DataFrame:
    """The clean accuracy (eps = 0), size_mid and size_half of each step's basin curve."""
    rows = []
    for step, one in curves.groupby(curves["step"], sort=True):
        one = one.sort_values("eps")
        size_mid, size_half = curve_sizes(one, num_classes)
        rows.append({"step": int(step), "clean_accuracy": float(one["accuracy"].iloc[0]), "size_mid": size_mid,
                     "size_half": size_half})
    return pd.DataFrame(rows, columns=["step", "clean_accuracy", "size_mid", "size_half"])


def _clean(value: Any, step: bool = False) -> Any:
    """A table value as plain JSON: NaN -> None, numpy numbers -> Python, a step (``step=True``) as an int."""
    if value is None:
        return None
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return int(value) if step else value


# ------------------------------------------------------------------------------------------ criteria
# Written from the paper's text on Fig. 7 (section V, "Explaining the grokking and double decent effects") before
# any run used them; one value per seed. The net has no batch norm: nothing here depends on BN statistics.

MIN_DELAY = 10.0
"""How many times later than the fit the test accuracy must plateau to count as delayed (one decade on the
log-step axis the figure draws)."""


def _seed_rows(tables: Mapping[str, pd.DataFrame], name: str, seed: int) -> pd.DataFrame:
    table = tables.get(name)
    rows = table[table["seed"] == seed] if table is not None else None
    if rows is None or rows.empty:
        raise CannotEvaluate(f"no {name} rows of seed {seed} (it diverged or was not analysed)")
    return rows


def delay(tables: Mapping[str, pd.DataFrame], config: Any, seed: int) -> float:
    """plateau step / fit step of the test accuracy's jump (0 when the test accuracy has no jump)."""
    jump = _seed_rows(tables, "jump", seed).iloc[0]
    if pd.isna(jump["fit_step"]):
        raise CannotEvaluate("the training set is never fitted: no reference for a delay")
    return float(jump["delay"]) if pd.notna(jump["end_step"]) else 0.0


def _median_distance(tables: Mapping[str, pd.DataFrame]) -> float:
    distance = tables["nearest_train_distance"]["distance"].dropna()
    if distance.empty:
        raise CannotEvaluate("no test sample has a distance to the training set")
    return float(distance.median())


def _with_jump(tables: Mapping[str, pd.DataFrame], seed: int) -> None:
    if pd.isna(_seed_rows(tables, "jump", seed)["end_step"].iloc[0]):
        raise CannotEvaluate("the test accuracy has no jump: no stages just before and just after it")


def _stage_size(tables: Mapping[str, pd.DataFrame], seed: int, stage: str, kind: str) -> float:
    """A stage's basin size_half; a size not reached on the noise grid is beyond it: the grid's top, a lower
    bound."""
    _with_jump(tables, seed)
    stages = _seed_rows(tables, "stages", seed).set_index("stage")
    size = float(stages[f"{kind}_size_half"].astype(float)[stage])
    if not math.isnan(size):
        return size
    curves = _seed_rows(tables, "stage_basins", seed)
    return float(curves[(curves["stage"] == stage) & (curves["kind"] == kind)]["eps"].max())


def basin_over_distance(tables: Mapping[str, pd.DataFrame], config: Any, seed: int, *, stage: str) -> float:
    """The sample basin's size (accuracy halved) at ``stage`` over the test samples' median relative distance
    to their nearest training sample."""
    return _stage_size(tables, seed, stage, "sample") / _median_distance(tables)


def weight_over_sample(tables: Mapping[str, pd.DataFrame], config: Any, seed: int) -> float:
    """The smaller, over the stages just before and just after the jump, of the weight basin's size over the
    sample basin's (>= 1: the weight-space transition comes at larger eps)."""
    return min(_stage_size(tables, seed, stage, "weight") / _stage_size(tables, seed, stage, "sample")
               for stage in ("before", "after"))


def fields_test_in_train(tables: Mapping[str, pd.DataFrame], config: Any, seed: int, *, stage: str) -> float:
    """Mean over the projected classes of the share of test samples whose nearest training projection (output
    local fields of the classes' first two neurons) has their own label, at ``stage``."""
    _with_jump(tables, seed)
    rows = _seed_rows(tables, "local_fields_summary", seed)
    values = rows[rows["stage"] == stage]["test_in_train_fraction"].dropna()
    if values.empty:
        raise CannotEvaluate(f"no local fields at the stage {stage!r}")
    return float(values.mean())


def grokking_criteria(config: GrokkingConfig) -> list[Criterion]:
    """The criteria of ``grokking`` (see docs/verdicts.md)."""
    fields = ("mean over classes {classes} of the share of test samples whose nearest training sample in the "
              "plane of output local fields {pair} has their label, at the checkpoint {when} the jump"
              ).format(classes=", ".join(map(str, config.classes)), pair=f"(h_{config.classes[0]}, "
                       f"h_{config.classes[1]})", when="{when}")
    return [
        Criterion(
            "delayed_generalisation",
            "Fig. 7(a): 'a notable delay in test accuracy compared to training accuracy' (the grokking of this "
            "net in Omnigrok)",
            "step at which the test accuracy reaches its plateau over the first step with every training sample "
            "right (0 when the test accuracy has no jump)",
            ">=", MIN_DELAY, delay,
        ),
        Criterion(
            "basin_inside_test_distance_before_jump",
            "Fig. 7(b): just before grokking the sample-space transition (noised training samples) lies below "
            "the test samples' variation amplitude, so test samples fall outside the basins",
            "sample-basin size (noise amplitude halving the accuracy above chance) at the checkpoint just before "
            "the jump over the test samples' median relative distance to their nearest training sample",
            "<", 1.0, partial(basin_over_distance, stage="before"),
        ),
        Criterion(
            "basin_beyond_test_distance_after_jump",
            "Fig. 7(b): just after grokking the sample-space transition lies beyond the test samples' variation "
            "amplitude ('we can anticipate that grokking will occur for test samples')",
            "sample-basin size at the checkpoint just after the jump over the test samples' median relative "
            "distance to their nearest training sample (a size beyond the noise grid counts as the grid's top)",
            ">=", 1.0, partial(basin_over_distance, stage="after"),
        ),
        Criterion(
            "weight_transition_later",
            "Fig. 7(b): 'The transition for noised weights occurs slightly later' (read: at a larger noise "
            "amplitude than the noised samples')",
            "weight-basin size over sample-basin size, the smaller of the two at the checkpoints just before and "
            "just after the jump",
            ">=", 1.0, weight_over_sample,
        ),
        Criterion(
            "test_fields_mixed_before_jump",
            "Fig. 7(c, e): 'Before grokking, the projections of test samples are mixed and distributed across a "
            "vast region, far outside where the projections of training samples are distributed'",
            fields.format(when="just before") + " (mixed: fewer than half)",
            "<", 0.5, partial(fields_test_in_train, stage="before"),
        ),
        Criterion(
            "test_fields_overlap_after_jump",
            "Fig. 7(d, f): 'After grokking, the projections of test samples overlap with those of training "
            "samples, indicating that most test samples have fallen within the attraction basins'",
            fields.format(when="just after") + " (most: at least half)",
            ">=", 0.5, partial(fields_test_in_train, stage="after"),
        ),
    ]


EXPERIMENT = Grokking
