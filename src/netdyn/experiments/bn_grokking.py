"""``bn-grokking`` (paper Fig. 8; its text cites Fig. 6): the late jump of deep BN nets' test accuracy comes
from evaluating with running batch-norm statistics.

The deep BN ReLU nets of ``structure`` (its :func:`~netdyn.experiments.structure.member_specs`), evaluated at
every evaluation point with running statistics and with the statistics of each batch of the training batch
size (``bn_eval="both"``). The experiment shows the test accuracy of both modes against steps (the paper: with
batch statistics the late jump disappears), ``bn_perturbation`` (the weight perturbation that running
statistics amount to) beside the weight-basin size at the same checkpoints (the paper: the perturbation is
comparable with the weight basin, so samples fall outside their basins until the running statistics settle),
and the output local fields of classes 1, 2, 3 before and after the running-mode jump.

The jump is :func:`netdyn.experiments.grokking.accuracy_jump` of each mode's test accuracy, taken from the
first step (no fit reference: these nets fit their training set only at the end); the lag between the modes
is the distance of their half-rise steps in decades of steps.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from netdyn.analysis.basins import curve_sizes
from netdyn.analysis.config import AnalysisConfig
from netdyn.data.spec import DataSpec
from netdyn.experiments.base import Experiment, ExperimentRuns, Member, with_params
from netdyn.experiments.criteria import CannotEvaluate, Criterion, rank_correlation
from netdyn.experiments.grokking import first_crossing_step, grokking_stages, stage_rows
from netdyn.experiments.structure import StructureConfig, member_specs
from netdyn.transitions import accuracy_jump, jump_table

if TYPE_CHECKING:
    from matplotlib.figure import Figure

MODES = ("running", "batch")


def mode_lag(running_mid_step: float | None, batch_mid_step: float | None) -> float:
    """How many decades of steps the running-statistics jump comes after the batch-statistics one:
    log10(running mid step) - log10(batch mid step), the half-rise steps of :class:`Jump` (steps below 1 count
    as 1); NaN when either mode has no jump (None or NaN)."""
    if running_mid_step is None or batch_mid_step is None:
        return math.nan
    # a NaN step stays NaN through max (NaN first) and log10
    return math.log10(max(float(running_mid_step), 1.0)) - math.log10(max(float(batch_mid_step), 1.0))


def perturbation_crossing_step(table: pd.DataFrame, reference: float) -> int | None:
    """The first checkpoint step from which the BN perturbation (``eps_equivalent``, one row per ``step``) stays
    below ``reference`` (a weight-basin size) for good; None if it never does. The paper's mechanism puts the
    running-statistics jump there: before it, running statistics push the samples out of their weight-space
    basins."""
    rows = table.sort_values("step")
    return first_crossing_step(rows["step"].tolist(), (-rows["eps_equivalent"]).tolist(), -reference)


@dataclass(frozen=True)
class BNGrokkingConfig(StructureConfig):
    """The deep BN ReLU nets of ``structure`` (same training choices), recorded densely enough in time to see
    the jump, with the analysis of every checkpoint."""

    depths: tuple[int, ...] = (2, 6, 10)
    """Depths trained (the paper: the jump grows with depth; depth 10 = its 12-layer net)."""
    residuals: tuple[str, ...] = ("none",)
    """Plain nets only (the paper treats plain and residual alike; residual adds its two-layer oscillation)."""
    eval_every: str = "log:49"
    """Evaluation points of the accuracy curves (16 per decade; holds every checkpoint)."""
    checkpoint_every: str = "log:25"
    """Checkpoints, each analysed (8 per decade)."""
    bn_eval: str = "both"
    """Evaluate with running and with batch statistics (batches of batch_size, the training batch size)."""
    basin_eps: tuple[float, ...] = (0.0, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0, 1.5, 2.0, 3.0)
    """Weight-noise grid of the weight basin at every checkpoint (dense at small eps, where the BN
    perturbation of a trained net lies; up to 3, since these nets keep half their accuracy beyond 1)."""
    basin_min_accuracy: float = 0.5
    """The figure draws a checkpoint's weight-basin size only where its clean (running-statistics) training
    accuracy is at least this: a basin around a net at chance has no meaning."""
    repeats: int = 3
    """Perturbed networks per amplitude."""
    basin_samples: int = 500
    """Training samples the weight basin is measured on (a seeded subset)."""
    classes: tuple[int, ...] = (1, 2, 3)
    """Classes of the local-field projections (the output neurons of the first two are the axes)."""
    min_rise: float = 0.05
    """A test-accuracy rise smaller than this is no jump."""


class BNGrokking(Experiment[BNGrokkingConfig]):
    name = "bn-grokking"
    figure = "Fig. 8 (text: Fig. 6)"
    shows = "deep BN nets: test accuracy with running vs batch statistics, BN perturbation vs weight basin"
    claim = (
        "In deep BN networks the late jump of the test accuracy (their grokking) comes from evaluating with "
        "running batch-norm statistics: they differ from the current batch's, a weight perturbation comparable with "
        "the small weight-space basin, so samples fall outside their basins until the statistics settle. "
        "Evaluated with batch statistics instead, the jump disappears. Before the jump the test samples' output "
        "local fields lie far from the training samples'; after it they overlap."
    )
    columns = {
        "history": ("member", "variant", "depth", "seed", "step", "split", "bn_mode", "loss", "accuracy"),
        "jump": ("member", "variant", "depth", "seed", "bn_mode", "start_step", "start_level", "onset_step",
                 "mid_step", "end_step", "plateau_step", "plateau_level", "rise"),
        "bn_perturbation": ("member", "variant", "depth", "seed", "step", "layer", "eps_equivalent"),
        "weight_basin": ("member", "variant", "depth", "seed", "step", "eps", "accuracy", "ci_low", "ci_high"),
        "bn_vs_basin": ("member", "variant", "depth", "seed", "step", "eps_equivalent", "eps_equivalent_max",
                        "clean_accuracy", "size_mid", "size_half"),
        "local_fields": ("member", "variant", "depth", "seed", "stage", "step", "split", "label", "h_a", "h_b",
                         "bn_mode"),
        "local_fields_summary": ("member", "variant", "depth", "seed", "stage", "step", "label",
                                 "test_in_train_fraction", "bn_mode"),
    }
    nullable = {
        "jump": ("fit_step", "onset_step", "mid_step", "end_step", "delay"),
        "bn_vs_basin": ("size_mid", "size_half"),
        "local_fields_summary": ("test_in_train_fraction",),
    }
    scales = {
        "smoke": BNGrokkingConfig(
            seeds=2,
            data=DataSpec("mnist5k", train_size=500, test_size=200), width=32, depths=(3,), epochs=3,
            eval_every="log:9", checkpoint_every="log:5", basin_eps=(0.0, 0.1, 0.5), repeats=2, basin_samples=100,
        ),
        "small": BNGrokkingConfig(),
        "paper": BNGrokkingConfig(data=DataSpec("mnist"), width=1024, depths=(2, 6, 10), batch_size=300,
                                  epochs=20, basin_samples=2000),
    }
    measured = {
        "smoke": "14 s (2 CPU cores, load ~4, 2026-11-30)",
        "small": "7.0 min (419.1 s; 3 seeds, 1 torch thread, --jobs 2 on an idle 2-core CPU, 2026-12-06)",
    }

    def members(self, config: BNGrokkingConfig) -> list[Member]:
        return member_specs(config)

    def _analysis_config(self, config: BNGrokkingConfig) -> AnalysisConfig:
        return AnalysisConfig(quantities=("bn_perturbation", "weight_basin"), eps=config.basin_eps,
                              repeats=config.repeats, basin_samples=config.basin_samples,
                              bn_batch_size=config.batch_size, device=config.device)

    def _fields_config(self, config: BNGrokkingConfig, mode: str = "running") -> AnalysisConfig:
        return AnalysisConfig(quantities=("local_fields",), classes=config.classes, bn_mode=mode,
                              device=config.device)

    def tables(self, runs: ExperimentRuns, config: BNGrokkingConfig) -> dict[str, pd.DataFrame]:
        parts: dict[str, list[pd.DataFrame]] = {}

        def add(name: str, table: pd.DataFrame) -> None:
            parts.setdefault(name, []).append(table)

        live = [m for m in runs if not runs.diverged(m)]
        deepest = max((m.params["depth"] for m in live), default=None)
        for member in runs:
            add("history", runs.history(member))
            if member not in live:
                continue
            run = runs.run(member)
            own = run.history
            jumps = {mode: accuracy_jump(own, fit_threshold=None, bn_mode=mode, min_rise=config.min_rise)
                     for mode in MODES}
            add("jump", with_params(jump_table([{"bn_mode": m, **j.to_dict()} for m, j in jumps.items()]), member))
            data = runs.data(member)
            num_classes = int(data.num_classes)
            analysis = runs.analysis(member, self._analysis_config(config), steps="all")
            perturbation = analysis.tables["bn_perturbation"]
            basin = analysis.tables["weight_basin"]
            add("bn_perturbation", with_params(perturbation[["step", "layer", "eps_equivalent"]], member))
            add("weight_basin", with_params(basin[["step", "eps", "accuracy", "ci_low", "ci_high"]], member))
            rows = []
            for step, curve in basin.groupby(basin["step"], sort=True):
                curve = curve.sort_values("eps")
                size_mid, size_half = curve_sizes(curve, num_classes)
                eps = perturbation[perturbation["step"] == step]["eps_equivalent"]
                rows.append({"step": int(step), "eps_equivalent": float(eps.mean()),
                             "eps_equivalent_max": float(eps.max()),
                             "clean_accuracy": float(curve["accuracy"].iloc[0]),
                             "size_mid": size_mid, "size_half": size_half})
            add("bn_vs_basin", with_params(pd.DataFrame(rows), member))
            if member.params["depth"] != deepest:
                continue
            chance = float(np.bincount(data.y_train.numpy(), minlength=num_classes).max() / len(data.y_train))
            stages = grokking_stages(own, run.checkpoints(), jumps["running"], chance, bn_mode="running")
            chosen = {s: stages[s] for s in ("before", "after")}
            for mode in MODES:  # the fields under running statistics, and under the training set's own
                fields = runs.analysis(member, self._fields_config(config, mode), steps=sorted(set(chosen.values())))
                for name in ("local_fields", "local_fields_summary"):
                    add(name, with_params(stage_rows(fields.tables[name], chosen).assign(bn_mode=mode), member))
        return {name: pd.concat(frames, ignore_index=True) for name, frames in parts.items()}

    def figures(self, tables: dict[str, pd.DataFrame], config: BNGrokkingConfig) -> dict[str, Figure]:
        """Fig. 8c (test accuracy under both BN statistics with the training accuracy under both), the BN
        perturbation beside the weight basin, and the deepest net's local fields before and after the
        running-statistics jump under each statistics; each for the first seed, said in the title (a jump's
        timing is one run's: a median over seeds would smooth it)."""
        from netdyn.plots import dynamics

        figs: dict[str, Figure] = {}
        history = tables["history"]
        seeds = sorted(set(history["seed"]))
        seed = seeds[0]
        note = f"seed {seed} of {len(seeds)}"
        fig = dynamics.plot_accuracy_by_mode(history[history["seed"] == seed], by="depth")
        fig.axes[0].set_title(f"Accuracy with running vs batch batch-norm statistics, training accuracy under both "
                              f"({note})", fontsize="medium")
        figs["fig8c_accuracy_bn_modes"] = fig
        if "bn_vs_basin" in tables:
            table = tables["bn_vs_basin"]
            table = table[table["seed"] == seed].copy()
            formed = table["clean_accuracy"] >= config.basin_min_accuracy
            table.loc[~formed, ["size_mid", "size_half"]] = np.nan
            fig = dynamics.plot_perturbation_vs_basin(table, by="depth")
            fig.axes[0].set_title("Batch-norm perturbation vs weight-basin size\n(sizes drawn where the clean "
                                  f"running-statistics accuracy is >= {config.basin_min_accuracy:g}; {note})",
                                  fontsize="medium")
            figs["fig8_perturbation_vs_basin"] = fig
        if "local_fields" in tables:
            for mode in MODES:
                fig = _fields_figure(tables, config, seed, mode)
                fig.suptitle(f"Output local fields, classes {', '.join(map(str, config.classes))}, evaluated with "
                             f"BN {mode} statistics ({note})", fontsize="medium")
                figs["fig8ad_local_fields" + ("" if mode == "running" else "_batch")] = fig
        return figs

    def summary(self, tables: dict[str, pd.DataFrame], config: BNGrokkingConfig) -> dict[str, Any]:
        out: dict[str, Any] = {}
        history = tables["history"]
        jumps = tables.get("jump")
        if jumps is None:
            return out
        for (depth, seed), rows in jumps.groupby(["depth", "seed"], sort=True):
            key = f"depth{depth}" + (f"_seed{seed}" if seed else "")
            by_mode = {row["bn_mode"]: row for row in rows.to_dict("records")}
            own = history[(history["depth"] == depth) & (history["seed"] == seed)]
            final = own[own["step"] == own["step"].max()]
            for mode in MODES:
                j = by_mode[mode]
                out[f"{key}_{mode}_jump_mid_step"] = _num(j["mid_step"])
                out[f"{key}_{mode}_jump_rise"] = float(j["rise"])
                test = final[(final["split"] == "test") & (final["bn_mode"] == mode)]["accuracy"]
                out[f"{key}_{mode}_final_test_accuracy"] = float(test.iloc[0])
            lag = mode_lag(_num(by_mode["running"]["mid_step"]), _num(by_mode["batch"]["mid_step"]))
            out[f"{key}_lag_log10_steps"] = None if math.isnan(lag) else lag
            batch_mid = _num(by_mode["batch"]["mid_step"])
            if batch_mid is not None:
                test = own[own["split"] == "test"]
                at = test[test["step"] <= batch_mid].sort_values("step").groupby("bn_mode")["accuracy"].last()
                out[f"{key}_running_test_accuracy_at_batch_mid"] = float(at.get("running", math.nan))
                out[f"{key}_batch_test_accuracy_at_batch_mid"] = float(at.get("batch", math.nan))
            bvb = tables["bn_vs_basin"]
            bvb = bvb[(bvb["depth"] == depth) & (bvb["seed"] == seed)].sort_values("step")
            run_j = by_mode["running"]
            if _num(run_j["onset_step"]) is not None:
                before = bvb[bvb["step"] <= run_j["onset_step"]].iloc[-1]
                after = bvb[bvb["step"] >= run_j["end_step"]].iloc[0]
                for name, row in (("before", before), ("after", after)):
                    out[f"{key}_{name}_jump_step"] = int(row["step"])
                    out[f"{key}_{name}_jump_bn_perturbation"] = float(row["eps_equivalent"])
                    out[f"{key}_{name}_jump_weight_size_half"] = _num(row["size_half"])
                    out[f"{key}_{name}_jump_clean_running_accuracy"] = float(row["clean_accuracy"])
            last = bvb.iloc[-1]
            out[f"{key}_final_bn_perturbation"] = float(last["eps_equivalent"])
            out[f"{key}_final_weight_size_half"] = _num(last["size_half"])
            out[f"{key}_final_weight_size_mid"] = _num(last["size_mid"])
            reference = _num(last["size_half"])
            if reference is not None:
                crossing = perturbation_crossing_step(bvb, reference)
                out[f"{key}_bn_perturbation_below_final_basin_step"] = crossing
                mid = _num(run_j["mid_step"])
                if crossing is not None and mid is not None:
                    out[f"{key}_crossing_minus_running_mid_log10_steps"] = (
                        math.log10(max(crossing, 1)) - math.log10(max(mid, 1)))
        lags = [(int(d), out.get(f"depth{d}_lag_log10_steps")) for d in sorted(set(jumps["depth"]))]
        finite = [(d, v) for d, v in lags if v is not None and not math.isnan(v)]
        if len(finite) > 1:
            out["lag_grows_with_depth"] = all(b[1] >= a[1] for a, b in zip(finite, finite[1:], strict=False))
        if "local_fields_summary" in tables:
            lf = tables["local_fields_summary"]
            lf = lf[lf["bn_mode"] == "running"]
            for stage in ("before", "after"):
                out[f"deepest_{stage}_test_in_train_fraction"] = float(lf[lf["stage"] == stage]
                                                                       ["test_in_train_fraction"].mean())
        return out

    def criteria(self, config: BNGrokkingConfig) -> list[Criterion]:
        return bn_grokking_criteria(config)


def _fields_figure(tables: dict[str, pd.DataFrame], config: BNGrokkingConfig, seed: int, mode: str) -> Figure:
    """The deepest net's local fields (test and train) before and after its running-statistics jump, under
    ``mode``."""
    from netdyn.plots import dynamics

    points = tables["local_fields"]
    points = points[(points["seed"] == seed) & (points["bn_mode"] == mode)]
    steps = points.groupby("stage")["step"].first().to_dict()
    depth = int(points["depth"].iloc[0])
    jumps = tables["jump"]
    running = jumps[(jumps["depth"] == depth) & (jumps["seed"] == seed) & (jumps["bn_mode"] == "running")]
    found = bool(running["end_step"].notna().any())
    titles = {s: f"depth {depth}, {s} the running-statistics jump (step {steps[s]})" if found
              else f"depth {depth}, no running-statistics jump found (step {steps[s]})" for s in ("before", "after")}
    return dynamics.plot_stage_local_fields(
        points.drop(columns=["member", "variant", "depth", "seed", "step", "bn_mode"]), stages=("before", "after"),
        titles=titles, neurons=(config.classes[0], config.classes[1]), splits=("test", "train"))


def _num(value: Any) -> Any:
    """A table number as plain JSON (NaN -> None; whole floats -> int)."""
    if value is None:
        return None
    value = float(value)
    if math.isnan(value):
        return None
    return int(value) if value.is_integer() else value


# ------------------------------------------------------------------------------------------ criteria
# Written from the paper's text on its Fig. 6 (printed as Fig. 8) and on the grokking of Fig. 3(g) (section V,
# "Explaining the grokking and double decent effects") before any run used them. Each claim about what the
# network does is measured under BN running statistics (marked running-only) and under batch statistics.

MIN_LAG = 3.0
"""How many times later than the training accuracy's rise the test accuracy must rise to count as a late jump
(grokking); the same factor as ``lmap-training``'s ``min_lag`` and the transition detector's ``min_delay``."""
MIN_GAP = 0.1
"""Training minus test accuracy that counts as the training samples being classified while the test samples are
not."""
MIN_TREND = 0.5
"""A Spearman correlation with depth that counts as a trend."""


def _member_history(tables: Mapping[str, pd.DataFrame], seed: int, depth: int) -> pd.DataFrame:
    history = tables["history"]
    rows = history[(history["seed"] == seed) & (history["depth"] == depth)]
    if rows.empty:
        raise CannotEvaluate(f"no history of the depth-{depth} net of seed {seed}")
    return rows


def _deepest(config: BNGrokkingConfig) -> int:
    return max(config.depths)


def late_jump_decades(
    tables: Mapping[str, pd.DataFrame], config: BNGrokkingConfig, seed: int, *, mode: str, depth: int | None = None
) -> float:
    """log10 of how many times later the test accuracy (under ``mode``) passes half its rise than the training
    accuracy under batch statistics (what the optimiser sees) does; 0 when the test accuracy has no jump."""
    history = _member_history(tables, seed, _deepest(config) if depth is None else depth)
    train = accuracy_jump(history, "train", fit_threshold=None, bn_mode="batch", min_rise=config.min_rise)
    if train.mid_step is None:
        raise CannotEvaluate("the training accuracy under batch statistics never rises")
    test = accuracy_jump(history, "test", fit_threshold=None, bn_mode=mode, min_rise=config.min_rise)
    if test.mid_step is None:
        return 0.0
    return math.log10(max(test.mid_step, 1) / max(train.mid_step, 1))


def late_jump_trend(tables: Mapping[str, pd.DataFrame], config: BNGrokkingConfig, seed: int) -> float:
    """Spearman correlation of the running-statistics late jump (decades) with depth."""
    values = {}
    for depth in config.depths:
        try:
            values[depth] = late_jump_decades(tables, config, seed, mode="running", depth=depth)
        except CannotEvaluate:
            continue
    return rank_correlation(pd.Series(list(values), dtype=float), pd.Series(list(values.values()), dtype=float),
                            "depths")


def _running_jump(tables: Mapping[str, pd.DataFrame], config: BNGrokkingConfig, seed: int) -> pd.Series:
    jumps = tables.get("jump")
    if jumps is None:
        raise CannotEvaluate("no jump table (every member diverged)")
    rows = jumps[(jumps["seed"] == seed) & (jumps["depth"] == _deepest(config)) & (jumps["bn_mode"] == "running")]
    if rows.empty:
        raise CannotEvaluate(f"no jump of the deepest net of seed {seed}")
    row = rows.iloc[0]
    if pd.isna(row["end_step"]):
        raise CannotEvaluate("the test accuracy under running statistics has no jump")
    return row


def training_ahead(tables: Mapping[str, pd.DataFrame], config: BNGrokkingConfig, seed: int, *, mode: str) -> float:
    """Training minus test accuracy under ``mode`` at the last evaluation at or before the onset of the
    running-statistics test jump (deepest net)."""
    onset = float(_running_jump(tables, config, seed)["onset_step"])
    history = _member_history(tables, seed, _deepest(config))
    rows = history[(history["bn_mode"] == mode) & (history["step"] <= onset)].sort_values("step")
    if rows.empty:
        raise CannotEvaluate(f"no evaluation under {mode} statistics before the jump")
    last = rows[rows["step"] == rows["step"].iloc[-1]].set_index("split")["accuracy"]
    return float(last["train"] - last["test"])


def perturbation_over_basin(
    tables: Mapping[str, pd.DataFrame], config: BNGrokkingConfig, seed: int, *, when: str
) -> float:
    """Mean BN perturbation over the trained net's weight-basin size (size_half at the last checkpoint), at the
    last checkpoint at or before the running-statistics jump's onset (``when="before"``) or the first at or
    after its end (``"after"``); deepest net."""
    jump = _running_jump(tables, config, seed)
    table = tables.get("bn_vs_basin")
    rows = None if table is None else table[(table["seed"] == seed) & (table["depth"] == _deepest(config))]
    if rows is None or rows.empty:
        raise CannotEvaluate("no BN perturbation of the deepest net")
    rows = rows.sort_values("step")
    reference = rows["size_half"].iloc[-1]
    if pd.isna(reference):
        raise CannotEvaluate("the trained net's weight basin is not reached on the noise grid")
    picked = (rows[rows["step"] <= jump["onset_step"]].tail(1) if when == "before"
              else rows[rows["step"] >= jump["end_step"]].head(1))
    if picked.empty:
        raise CannotEvaluate(f"no checkpoint {when} the jump")
    return float(picked["eps_equivalent"].iloc[0] / reference)


def fields_test_in_train(
    tables: Mapping[str, pd.DataFrame], config: BNGrokkingConfig, seed: int, *, stage: str, mode: str
) -> float:
    """Mean over the projected classes of the share of test samples whose nearest training projection has
    their own label, at ``stage`` ("before" / "after" the running-statistics jump), fields under ``mode``."""
    _running_jump(tables, config, seed)
    table = tables.get("local_fields_summary")
    if table is None:
        raise CannotEvaluate("no local fields (every member diverged)")
    if "bn_mode" in table.columns:
        table = table[table["bn_mode"] == mode]
    elif mode != "running":
        raise CannotEvaluate(f"no local fields under {mode} statistics")
    values = table[(table["seed"] == seed) & (table["stage"] == stage)]["test_in_train_fraction"].dropna()
    if values.empty:
        raise CannotEvaluate(f"no local fields of seed {seed} {stage} the jump")
    return float(values.mean())


def _field_criteria(config: BNGrokkingConfig) -> list[Criterion]:
    pair = f"(h_{config.classes[0]}, h_{config.classes[1]})"
    classes = ", ".join(map(str, config.classes))
    out = []
    for mode in MODES:
        shared = (f"mean over classes {classes} of the share of test samples whose nearest training sample in the "
                  f"plane of output local fields {pair} (evaluated with BN {mode} statistics) has their label, "
                  "deepest net, at the checkpoint {when} the running-statistics jump")
        out += [
            Criterion(
                f"test_fields_far_before_jump_{mode}",
                "Fig. 6(a) (printed as 8a): 'before grokking, the projections of test samples are far from the "
                "projections of training samples, implying that the test samples are outside the attraction "
                "basins'",
                shared.format(when="just before") + " (far: fewer than half)",
                "<", 0.5, partial(fields_test_in_train, stage="before", mode=mode), running_only=mode == "running",
            ),
            Criterion(
                f"test_fields_overlap_after_jump_{mode}",
                "Fig. 6(d) (printed as 8d): 'After grokking, however, the projections of test and training samples "
                "overlap, indicating that most test samples have fallen into the attraction basins'",
                shared.format(when="just after") + " (most: at least half)",
                ">=", 0.5, partial(fields_test_in_train, stage="after", mode=mode), running_only=mode == "running",
            ),
        ]
    return out


def bn_grokking_criteria(config: BNGrokkingConfig) -> list[Criterion]:
    """The criteria of ``bn-grokking`` (see docs/verdicts.md)."""
    lag = (f"log10 of (the step where the deepest net's test accuracy, evaluated with BN {{mode}} statistics, "
           "passes half its rise) over (the same step of the training accuracy under batch statistics); 0 when "
           f"the test accuracy has no rise of at least {config.min_rise:g}")
    gap = ("training minus test accuracy, both evaluated with BN {mode} statistics, at the last evaluation at or "
           "before the onset of the deepest net's running-statistics test jump")
    perturbation = ("mean over BN layers of the BN perturbation (running against batch statistics as a relative "
                    "weight change) over the trained deepest net's weight-basin size (size_half at the last "
                    "checkpoint), at the {when}")
    return [
        Criterion(
            "late_jump_running",
            "Fig. 3(g) and Fig. 6(c) (printed as 8c): deep BN nets grok, their test accuracy jumping late, when "
            "evaluated in evaluation mode (running statistics)",
            lag.format(mode="running") + f" (late: at least {MIN_LAG:g}x)",
            ">=", math.log10(MIN_LAG), partial(late_jump_decades, mode="running"), running_only=True,
        ),
        Criterion(
            "no_late_jump_batch",
            "Fig. 6(c) (printed as 8c): with the statistics of the current mini-batch during evaluation, 'the "
            "grokking disappears'",
            lag.format(mode="batch") + f" (no late jump: under {MIN_LAG:g}x)",
            "<", math.log10(MIN_LAG), partial(late_jump_decades, mode="batch"),
        ),
        Criterion(
            "late_jump_grows_with_depth_running",
            "Fig. 3(g): the grokking becomes 'increasingly pronounced as the number of hidden layers increases'",
            "Spearman correlation with depth of the running-statistics late jump (decades, as late_jump_running) "
            "over the trained depths",
            ">=", MIN_TREND, late_jump_trend, running_only=True,
        ),
        *[Criterion(
            f"training_ahead_before_jump_{mode}",
            "Fig. 6(a) (printed as 8a): before the jump the test samples lie outside the attraction basins of the "
            "training samples, which the net already classifies",
            gap.format(mode=mode) + f" (at least {MIN_GAP:g})",
            ">=", MIN_GAP, partial(training_ahead, mode=mode), running_only=mode == "running",
        ) for mode in MODES],
        Criterion(
            "perturbation_beyond_basin_before_jump",
            "Section V: the running statistics are 'a significant perturbation to the weights', comparable with "
            "the small weight-space basin, so samples fall outside their basins until the statistics settle",
            perturbation.format(when="last checkpoint at or before the running-statistics jump's onset")
            + " (beyond the basin: at least 1)",
            ">=", 1.0, partial(perturbation_over_basin, when="before"),
        ),
        Criterion(
            "perturbation_inside_basin_after_jump",
            "Section V: once the running statistics settle the perturbation lies inside the weight basin and the "
            "test samples fall into their basins (the jump)",
            perturbation.format(when="first checkpoint at or after the running-statistics jump's end")
            + " (inside: below 1)",
            "<", 1.0, partial(perturbation_over_basin, when="after"),
        ),
        *_field_criteria(config),
    ]


EXPERIMENT = BNGrokking
