"""``double-descent`` (paper Fig. 8; its text cites Fig. 6b): the test loss of deep BN nets rises before it
falls, and the paper places the rise near the maximum rate of change of the later layers' RPD gradient.

The deep BN ReLU nets of ``structure`` (its :func:`~netdyn.experiments.structure.member_specs`), evaluated
with running and with batch statistics (``bn_eval="both"``). At every checkpoint the RPD summary of every
hidden layer; at the last one the L-map pruning accuracy, whose first effective layer names the "later layers"
(from it to the last hidden layer). The experiment shows the test loss against steps beside the rate of change
per log-step of those layers' RPD gradient, the loss bump's maximum and the rate's maximum marked and their
distance in decades of steps reported, and the test loss and accuracy under both evaluation modes.

The bump, the rates and their maximum are the pure functions below, on history-like tables (``step`` and a
value), so that a transition detector can reuse them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from netdyn.analysis.config import AnalysisConfig
from netdyn.analysis.network import effective_layer
from netdyn.data.spec import DataSpec
from netdyn.errors import ConfigError
from netdyn.experiments.base import Experiment, ExperimentRuns, Member, with_params
from netdyn.experiments.grokking import curve
from netdyn.experiments.structure import StructureConfig, member_specs

MODES = ("running", "batch")


# ------------------------------------------------------------------------------------------------- definitions
@dataclass(frozen=True)
class LossBump:
    """A rise and fall of a loss curve in time (see :func:`loss_bump`)."""

    valley_step: int
    """The step of the lowest loss before the peak."""
    valley_level: float
    peak_step: int | None
    """The bump's maximum (None: the curve never rises above an earlier minimum)."""
    peak_level: float
    after_step: int | None
    """The step of the lowest loss after the peak (None: no step follows it)."""
    after_level: float

    @property
    def rise(self) -> float:
        """peak_level - valley_level (0 without a peak)."""
        return self.peak_level - self.valley_level if self.peak_step is not None else 0.0

    @property
    def relative_rise(self) -> float:
        """rise / valley_level."""
        return self.rise / self.valley_level if self.valley_level > 0 else math.nan

    @property
    def descends_again(self) -> bool:
        """Whether the loss falls after the peak by at least half the rise (the second descent)."""
        return self.peak_step is not None and self.after_step is not None and (
            self.peak_level - self.after_level >= self.rise / 2)

    def to_dict(self) -> dict[str, Any]:
        return {"valley_step": self.valley_step, "valley_level": self.valley_level, "peak_step": self.peak_step,
                "peak_level": self.peak_level, "after_step": self.after_step, "after_level": self.after_level,
                "rise": self.rise, "relative_rise": self.relative_rise, "descends_again": self.descends_again}


def loss_bump(history: pd.DataFrame, split: str = "test", bn_mode: str | None = None,
              min_relative_rise: float = 0.02) -> LossBump:
    """The largest rise of ``split``'s loss above its earlier minimum: the bump of double descent in time.

    For each evaluated step t, rise(t) = loss(t) - min over s <= t of loss(s). The peak is the first step of
    the largest rise; the valley the step of the minimum before it; ``after`` the minimum after it. A largest
    rise below ``min_relative_rise`` x the valley's loss counts as no bump (``peak_step`` None; the valley is
    then the overall minimum). ``bn_mode`` picks the evaluation mode (see
    :func:`netdyn.experiments.grokking.curve`).
    """
    loss = curve(history, split, metric="loss", bn_mode=bn_mode)
    values = loss.to_numpy(float)
    steps = loss.index.to_numpy()
    running_min = np.minimum.accumulate(values)
    rise = values - running_min
    peak = int(np.argmax(rise))
    valley = int(np.argmin(values[: peak + 1]))
    if rise[peak] <= min_relative_rise * max(values[valley], 1e-300) or peak == 0:
        low = int(np.argmin(values))
        return LossBump(int(steps[low]), float(values[low]), None, float("nan"), None, float("nan"))
    if peak + 1 < len(values):
        after = peak + 1 + int(np.argmin(values[peak + 1:]))
        after_step, after_level = int(steps[after]), float(values[after])
    else:
        after_step, after_level = None, float("nan")
    return LossBump(int(steps[valley]), float(values[valley]), int(steps[peak]), float(values[peak]), after_step,
                    after_level)


def log_rate(table: pd.DataFrame, value: str, x: str = "step") -> pd.DataFrame:
    """The rate of change of ``value`` per decade of ``x`` between consecutive points: columns ``step_low,
    step_high, step, rate``, rate = (v_high - v_low) / (log10 step_high - log10 step_low), placed at the
    geometric mean of the two steps. Points at step <= 0 (the initial network) have no log-step and are
    left out; ``table`` holds one row per step."""
    if table[x].duplicated().any():
        raise ConfigError(f"log_rate: several rows per {x}: filter the table to one layer / run first")
    rows = table[table[x] > 0].sort_values(x)
    s = rows[x].to_numpy(float)
    v = rows[value].to_numpy(float)
    if len(s) < 2:
        return pd.DataFrame(columns=["step_low", "step_high", "step", "rate"])
    rate = np.diff(v) / np.diff(np.log10(s))
    return pd.DataFrame({"step_low": s[:-1].astype(int), "step_high": s[1:].astype(int),
                         "step": np.sqrt(s[:-1] * s[1:]), "rate": rate})


def rate_maximum(rates: pd.DataFrame) -> tuple[float, float] | None:
    """(step, rate) of the largest rate of a :func:`log_rate` table (the first on ties; an increase, not the
    largest magnitude); None for an empty table."""
    finite = rates[np.isfinite(rates["rate"].to_numpy(float))]
    if finite.empty:
        return None
    row = finite.loc[finite["rate"].idxmax()]
    return float(row["step"]), float(row["rate"])


def later_layers(lmap: pd.DataFrame, network_test_accuracy: float, hidden: Sequence[int]) -> list[int]:
    """The hidden layers from the first effective L-map layer on (SPEC 5.1: test accuracy within 0.005 of the
    network's); the last hidden layer alone when no layer is effective. Layer 0 (the input) is not a hidden
    layer: an effective L-map at 0 gives every hidden layer."""
    hidden = sorted(int(h) for h in hidden)
    first = effective_layer(lmap, network_test_accuracy)
    if first is None:
        return hidden[-1:]
    return [h for h in hidden if h >= first]


def log_distance(step_a: float | None, step_b: float | None) -> float:
    """log10(step_a) - log10(step_b) (steps below 1 count as 1); NaN when either is missing."""
    if step_a is None or step_b is None:
        return math.nan
    return math.log10(max(step_a, 1.0)) - math.log10(max(step_b, 1.0))


# ---------------------------------------------------------------------------------------------------- config
@dataclass(frozen=True)
class DoubleDescentConfig(StructureConfig):
    """The deep BN ReLU nets of ``structure`` (same training choices), checkpointed densely in time."""

    depths: tuple[int, ...] = (2, 6, 10)
    """Depths trained (the paper: the bump shows in sufficiently deep nets)."""
    residuals: tuple[str, ...] = ("none",)
    """Plain nets only (the residual nets' two-layer oscillation would blur the rate)."""
    eval_every: str = "log:49"
    """Evaluation points of the loss curves (16 per decade; holds every checkpoint)."""
    checkpoint_every: str = "log:25"
    """Checkpoints, each analysed (8 per decade)."""
    bn_eval: str = "both"
    """Evaluate with running and with batch statistics (batches of batch_size)."""
    max_samples: int = 2000
    """Training samples of the RPD (a seeded subset)."""
    min_relative_rise: float = 0.02
    """A loss rise below this fraction of the valley's loss is no bump."""


class DoubleDescent(Experiment):
    name = "double-descent"
    figure = "Fig. 8 (text: Fig. 6b)"
    shows = "deep BN nets: test-loss bump in time vs the maximum rate of change of the later layers' RPD gradient"
    claim = (
        "In deep BN networks the test loss can rise slightly before it falls again during training (double "
        "descent in time), more so in deeper nets. The paper attributes the rise to an extreme phase of "
        "order-preserving learning: it comes near the maximum rate of change of the RPD gradient of the later "
        "layers, when weight vectors accumulate in a few directions and test and training structure mismatch; "
        "the mismatch relaxes after the grokking jump as non-order-preserving neurons are activated."
    )
    columns = {
        "history": ("member", "variant", "depth", "seed", "step", "split", "bn_mode", "loss", "accuracy"),
        "rpd_gradient": ("member", "variant", "depth", "seed", "step", "layer", "gradient", "later"),
        "gradient_rate": ("member", "variant", "depth", "seed", "layer", "step_low", "step_high", "step", "rate"),
        "gradient_rate_mean": ("member", "variant", "depth", "seed", "step_low", "step_high", "step", "rate"),
        "descent": ("member", "variant", "depth", "seed", "bn_mode", "effective_layer", "valley_step",
                    "valley_level", "peak_step", "peak_level", "rise", "relative_rise", "rate_max_step",
                    "rate_max", "log10_distance"),
    }
    nullable = {
        "descent": ("effective_layer", "peak_step", "peak_level", "after_step", "after_level", "relative_rise",
                    "rate_max_step", "rate_max", "log10_distance"),
        "gradient_rate": ("rate",),
        "gradient_rate_mean": ("rate",),
    }
    scales = {
        "smoke": DoubleDescentConfig(
            data=DataSpec("mnist5k", train_size=500, test_size=200), width=32, depths=(3,), epochs=3,
            eval_every="log:9", checkpoint_every="log:5", max_samples=300,
        ),
        "small": DoubleDescentConfig(),
        "paper": DoubleDescentConfig(data=DataSpec("mnist"), width=1024, depths=(2, 6, 10), batch_size=300,
                                     epochs=20),
    }
    measured = {
        "smoke": "16 s (2 CPU cores, load ~4, 2026-11-30)",
        "small": "25 min (2 CPU cores shared with other jobs, load 10-18, torch 1 thread; training 17 min; "
                 "2026-11-30)",
    }

    def members(self, config: DoubleDescentConfig) -> list[Member]:
        return member_specs(config)

    def _rpd_config(self, config: DoubleDescentConfig) -> AnalysisConfig:
        return AnalysisConfig(quantities=("rpd",), max_samples=config.max_samples, device=config.device)

    def _lmap_config(self, config: DoubleDescentConfig) -> AnalysisConfig:
        return AnalysisConfig(quantities=("lmap",), device=config.device)

    def tables(self, runs: ExperimentRuns, config: DoubleDescentConfig) -> dict[str, pd.DataFrame]:
        parts: dict[str, list[pd.DataFrame]] = {}

        def add(name: str, table: pd.DataFrame) -> None:
            parts.setdefault(name, []).append(table)

        for member in runs:
            add("history", runs.history(member))
            if runs.diverged(member):
                continue
            own = runs.run(member).history
            final = runs.analysis(member, self._lmap_config(config), steps="last")
            accuracy = float(final.tables["network"].set_index("split").loc["test", "accuracy"])
            hidden = range(1, member.spec.model.depth + 1)
            later = later_layers(final.tables["lmap"], accuracy, hidden)
            effective = effective_layer(final.tables["lmap"], accuracy)
            summary = runs.analysis(member, self._rpd_config(config), steps="all").tables["rpd_summary"]
            gradient = summary[["step", "layer", "gradient"]].assign(later=summary["layer"].isin(later))
            add("rpd_gradient", with_params(gradient, member))
            rates = [log_rate(gradient[gradient["layer"] == layer], "gradient").assign(layer=layer)
                     for layer in later]
            rate = pd.concat(rates, ignore_index=True)
            add("gradient_rate", with_params(rate[["layer", "step_low", "step_high", "step", "rate"]], member))
            mean = gradient[gradient["later"]].groupby("step", as_index=False)["gradient"].mean()
            mean_rate = log_rate(mean, "gradient")
            add("gradient_rate_mean", with_params(mean_rate, member))
            peak = rate_maximum(mean_rate)
            rows = []
            for mode in MODES:
                bump = loss_bump(own, bn_mode=mode, min_relative_rise=config.min_relative_rise)
                rows.append({
                    "bn_mode": mode, "effective_layer": effective, **bump.to_dict(),
                    "rate_max_step": peak[0] if peak else None, "rate_max": peak[1] if peak else None,
                    "log10_distance": log_distance(bump.peak_step, peak[0] if peak else None),
                })
            add("descent", with_params(pd.DataFrame(rows), member))
        tables = {name: pd.concat(frames, ignore_index=True) for name, frames in parts.items()}
        if "descent" in tables:
            tables["descent"] = tables["descent"].astype({"effective_layer": float, "peak_step": float,
                                                          "after_step": float, "rate_max_step": float,
                                                          "rate_max": float})
        return tables

    def figures(self, tables: dict[str, pd.DataFrame], config: DoubleDescentConfig) -> dict[str, Any]:
        from netdyn import plots
        from netdyn.plots import dynamics

        figs: dict[str, Any] = {}
        history = tables["history"]
        seed = int(history["seed"].min())
        if "descent" not in tables:
            return figs
        descent = tables["descent"]
        for depth in sorted(set(descent["depth"])):
            pick = {name: t[(t["depth"] == depth) & (t["seed"] == seed)] for name, t in tables.items()
                    if name != "rpd_gradient"}
            row = pick["descent"].set_index("bn_mode").loc["running"]
            own = pick["history"]
            loss_peak = None
            if not math.isnan(row["peak_step"]):
                loss_peak = (float(row["peak_step"]), float(row["peak_level"]))
            rate_peak = None
            if not math.isnan(row["rate_max_step"]):
                rate_peak = (float(row["rate_max_step"]), float(row["rate_max"]))
            fig = dynamics.plot_loss_and_rate(own, pick["gradient_rate"], pick["gradient_rate_mean"],
                                              loss_peak=loss_peak, rate_peak=rate_peak)
            effective = row["effective_layer"]
            start = "last hidden layer" if math.isnan(effective) else f"layers >= {int(effective)}"
            fig.axes[0].set_title(f"Depth {depth}: test loss (running-statistics bump marked) and the rate of the "
                                  f"RPD gradient ({start})", fontsize="medium")
            figs[f"fig8b_loss_vs_rpd_rate_depth{depth}"] = fig
        deepest = max(set(history["depth"]))
        own = history[(history["depth"] == deepest) & (history["seed"] == seed)]
        fig = plots.plot_training(own.drop(columns=["member", "variant", "depth", "seed"]))
        fig.suptitle(f"Depth {deepest}: test and training loss and accuracy, running vs batch statistics")
        figs["fig8_training_bn_modes"] = fig
        return figs

    def summary(self, tables: dict[str, pd.DataFrame], config: DoubleDescentConfig) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if "descent" not in tables:
            return out
        for row in tables["descent"].itertuples():
            key = f"depth{row.depth}" + (f"_seed{row.seed}" if row.seed else "") + f"_{row.bn_mode}"
            for name in ("peak_step", "valley_step", "relative_rise", "descends_again", "rate_max_step",
                         "log10_distance"):
                value = getattr(row, name)
                if isinstance(value, (float, np.floating)) and math.isnan(value):
                    value = None
                elif name in ("peak_step", "valley_step"):
                    value = int(value)  # evaluated steps (the rate's step is a geometric midpoint)
                out[f"{key}_{name}"] = value
            if row.bn_mode == "running":
                out[f"depth{row.depth}_effective_layer"] = None if math.isnan(row.effective_layer) else int(
                    row.effective_layer)
        return out


EXPERIMENT = DoubleDescent
