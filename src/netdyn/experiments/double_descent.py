"""``double-descent`` (paper Fig. 8; its text cites Fig. 6b): the test loss of deep BN nets rises before it
falls, and the paper places the rise near the maximum rate of change of the later layers' RPD gradient.

The deep BN ReLU nets of ``structure`` (its :func:`~netdyn.experiments.structure.member_specs`), evaluated
with running and with batch statistics (``bn_eval="both"``). At every checkpoint the RPD summary of every
hidden layer; at the last one the L-map pruning accuracy, whose first effective layer names the "later layers"
(from it to the last hidden layer). The experiment shows the test loss against steps beside the rate of change
per log-step of those layers' RPD gradient, the loss bump's maximum and the rate's maximum marked and their
distance in decades of steps reported, and the test loss and accuracy under both evaluation modes.

The bump, the rates and their maximum are pure functions of :mod:`netdyn.transitions` on history-like tables
(``step`` and a value), shared with the transition detector.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from netdyn.analysis.config import AnalysisConfig
from netdyn.analysis.network import effective_layer
from netdyn.data.spec import DataSpec
from netdyn.experiments.base import Experiment, ExperimentRuns, Member, with_params
from netdyn.experiments.structure import StructureConfig, member_specs
from netdyn.transitions import later_layers, log_distance, log_rate, loss_bump, rate_maximum

if TYPE_CHECKING:
    from matplotlib.figure import Figure

MODES = ("running", "batch")


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


class DoubleDescent(Experiment[DoubleDescentConfig]):
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
        "descent": ("member", "variant", "depth", "seed", "bn_mode", "lmap_effective_earliest", "valley_step",
                    "valley_level", "peak_step", "peak_level", "rise", "relative_rise", "rate_max_step",
                    "rate_max", "log10_distance"),
    }
    nullable = {
        "descent": ("lmap_effective_earliest", "peak_step", "peak_level", "after_step", "after_level", "relative_rise",
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
        "small": "2.0 min (120 s; idle 2-core CPU, 2 torch threads, 2026-11-30)",
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
            accuracy = float(final.tables["network"].set_index("split")["accuracy"]["test"])
            hidden = range(1, member.spec.model.depth + 1)
            later = later_layers(final.tables["lmap"], accuracy, hidden)
            effective = effective_layer(final.tables["lmap"], accuracy, rule="earliest")
            summary = runs.analysis(member, self._rpd_config(config), steps="all").tables["rpd_summary"]
            gradient = summary[["step", "layer", "gradient"]].assign(later=summary["layer"].isin(later))
            add("rpd_gradient", with_params(gradient, member))
            rates = [log_rate(gradient[gradient["layer"] == layer], "gradient").assign(layer=layer)
                     for layer in later]
            rate = pd.concat(rates, ignore_index=True)
            add("gradient_rate", with_params(rate[["layer", "step_low", "step_high", "step", "rate"]], member))
            mean = gradient[gradient["later"]].groupby("step", as_index=False)[["gradient"]].mean()
            mean_rate = log_rate(mean, "gradient")
            add("gradient_rate_mean", with_params(mean_rate, member))
            peak = rate_maximum(mean_rate)
            rows = []
            for mode in MODES:
                bump = loss_bump(own, bn_mode=mode, min_relative_rise=config.min_relative_rise)
                rows.append({
                    "bn_mode": mode, "lmap_effective_earliest": effective, **bump.to_dict(),
                    "rate_max_step": peak[0] if peak else None, "rate_max": peak[1] if peak else None,
                    "log10_distance": log_distance(bump.peak_step, peak[0] if peak else None),
                })
            add("descent", with_params(pd.DataFrame(rows), member))
        tables = {name: pd.concat(frames, ignore_index=True) for name, frames in parts.items()}
        if "descent" in tables:
            tables["descent"] = tables["descent"].astype({"lmap_effective_earliest": float, "peak_step": float,
                                                          "after_step": float, "rate_max_step": float,
                                                          "rate_max": float})
        return tables

    def figures(self, tables: dict[str, pd.DataFrame], config: DoubleDescentConfig) -> dict[str, Figure]:
        from netdyn import plots
        from netdyn.plots import dynamics

        figs: dict[str, Figure] = {}
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
            effective = row["lmap_effective_earliest"]
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
        for row in tables["descent"].to_dict("records"):
            key = f"depth{row['depth']}" + (f"_seed{row['seed']}" if row["seed"] else "") + f"_{row['bn_mode']}"
            for name in ("peak_step", "valley_step", "relative_rise", "descends_again", "rate_max_step",
                         "log10_distance"):
                value = row[name]
                if isinstance(value, (float, np.floating)) and math.isnan(value):
                    value = None
                elif name in ("peak_step", "valley_step"):
                    value = int(value)  # evaluated steps (the rate's step is a geometric midpoint)
                out[f"{key}_{name}"] = value
            if row["bn_mode"] == "running":
                effective = row["lmap_effective_earliest"]
                out[f"depth{row['depth']}_lmap_effective_earliest"] = None if math.isnan(effective) else int(effective)
        return out


EXPERIMENT = DoubleDescent
