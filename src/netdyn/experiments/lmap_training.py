"""``lmap-training`` (paper Fig. 10): L-map pruning accuracy of the later layers during training.

One BN ReLU MLP of depth 21 (the paper's 23-layer net) trains with evaluation points and checkpoints on the same
dense log schedule. At every checkpoint the analysis scores the L-map of every layer on the training set; the
figure sets the later layers' L-map accuracy beside the training accuracy, with the grokking point marked.

Definitions (netdyn's; the paper names the grokking point without defining it):

- The *rise step* of an accuracy curve of the history is the first evaluation step at which it has covered half
  of its rise: accuracy >= a0 + (max - a0) / 2, a0 its value at step 0.
- The *learning step* is the rise step of the training accuracy under batch statistics (what the optimiser
  sees); the *grokking point* is the rise step of the test accuracy under running statistics (how the network
  is evaluated). Their ratio is the *lag*; the test accuracy's jump is late (grokking) when the lag is at least
  ``min_lag``.
- A layer's L-map *has converged* at the first checkpoint, counted from the reference's own rise step on,
  from which on its training-set accuracy stays at least the reference minus 0.005 (the tolerance of
  docs/quantities.md#l-map), for two references: the network's own training accuracy at that checkpoint (running
  statistics, the ones the L-map folds in) and the training accuracy under batch statistics recorded at the same step.
  (Before its rise a reference sits at chance, where an L-map agreeing with it says nothing.)
- The *linear tail* at a checkpoint starts at the first layer from which on L-map pruning is effective on the
  training set (``effective_layer`` with ``rule="from"`` against the network's training accuracy).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from netdyn.analysis.config import AnalysisConfig
from netdyn.analysis.network import EFFECTIVE_TOLERANCE, effective_index, effective_layer, is_effective
from netdyn.data.spec import DataSpec
from netdyn.experiments.base import Experiment, ExperimentConfig, ExperimentRuns, Member, member_name, seeded
from netdyn.experiments.criteria import CannotEvaluate, Criterion
from netdyn.experiments.residual import VARIANTS
from netdyn.models.spec import ModelSpec
from netdyn.orchestration import RunSpec

if TYPE_CHECKING:
    from matplotlib.figure import Figure

REFERENCES = {
    "network": "network training accuracy (running statistics)",
    "training_batch": "training accuracy (batch statistics)",
}
"""The accuracies an L-map's convergence is measured against (``reference`` column of ``convergence``)."""
MODES = ("running", "batch")
"""The BN statistics the L-map is analysed with (``bn_mode`` column): running, and the training set's own."""
STATISTICS = {"running": "BN running statistics", "batch": "BN batch statistics (the training set's own)"}


def rise_index(accuracy: np.ndarray) -> int | None:
    """The index of the first value >= a0 + (max - a0) / 2 (a0 the first value); None without a rise."""
    if not len(accuracy):
        return None
    top = np.nanmax(accuracy)
    if not top > accuracy[0]:
        return None
    return int(np.flatnonzero(accuracy >= accuracy[0] + (top - accuracy[0]) / 2)[0])


def rise_step(history: pd.DataFrame, split: str, bn_mode: str) -> int | None:
    """The first evaluation step at which the (split, bn_mode) accuracy of ``history`` reaches
    a0 + (max - a0) / 2 (a0: its first evaluation); None without rows or without a rise."""
    rows = history[(history["split"] == split) & (history["bn_mode"] == bn_mode)].sort_values("step")
    index = rise_index(rows["accuracy"].to_numpy(float))
    return None if index is None else int(rows["step"].to_numpy()[index])


def grokking_point(history: pd.DataFrame, min_lag: float) -> dict[str, Any]:
    """Learning step, grokking point, their lag and whether the lag makes it grokking (module docstring).
    Without batch-statistics rows the learning step falls back to the running-statistics training accuracy."""
    modes = set(history.loc[history["split"] == "train", "bn_mode"])
    learn = rise_step(history, "train", "batch" if "batch" in modes else "running")
    grok = rise_step(history, "test", "running")
    lag = None if learn is None or grok is None or learn == 0 else grok / learn
    return {"learning_step": learn, "grokking_step": grok, "grokking_lag": lag,
            "grokking": lag is not None and lag >= min_lag}


def converged_step(steps: np.ndarray, accuracy: np.ndarray, reference: np.ndarray,
                   tolerance: float = EFFECTIVE_TOLERANCE) -> int | None:
    """The first step, from the reference's rise on, from which on ``accuracy >= reference - tolerance`` at
    every later step (arrays aligned and sorted by step; the rule "from" of ``effective_layer`` over steps
    instead of layers); None if it fails at the last step or the reference never rises. Before its rise the
    reference sits at its starting level (chance), where agreeing with it means nothing."""
    start = rise_index(reference)
    if start is None:
        return None
    at = effective_index(is_effective(accuracy, reference, tolerance)[start:], "from")
    return None if at is None else int(steps[start + at])


def convergence_table(lmap: pd.DataFrame, network: pd.DataFrame, history: pd.DataFrame,
                      layers: list[int], split: str = "train") -> pd.DataFrame:
    """For each layer of ``layers`` and each reference of :data:`REFERENCES`: the step at which the L-map's
    ``split`` accuracy (tables of one run over checkpoints) has converged to the reference."""
    refs = {
        "network": network.loc[network["split"] == split, ["step", "accuracy"]],
        "training_batch": history.loc[(history["split"] == split) & (history["bn_mode"] == "batch"),
                                      ["step", "accuracy"]],
    }
    rows = []
    for layer in layers:
        own = lmap.loc[(lmap["split"] == split) & (lmap["layer"] == layer), ["step", "accuracy"]]
        for name, ref in refs.items():
            both = own.merge(ref, on="step", suffixes=("", "_ref")).sort_values("step")
            step = None if both.empty else converged_step(
                both["step"].to_numpy(), both["accuracy"].to_numpy(float), both["accuracy_ref"].to_numpy(float)
            )
            rows.append({"layer": layer, "reference": name, "converged_step": step})
    out = pd.DataFrame(rows, columns=["layer", "reference", "converged_step"])
    return out.astype({"converged_step": "Int64"})


def tail_table(lmap: pd.DataFrame, network: pd.DataFrame, split: str = "train") -> pd.DataFrame:
    """Per checkpoint: the first layer from which on L-map pruning is effective on ``split`` (the start of the
    linear tail; ``effective_layer`` with ``rule="from"`` against the network's accuracy at that checkpoint)."""
    rows = []
    acc = network[network["split"] == split].set_index("step")["accuracy"]
    for step, part in lmap.groupby(lmap["step"], sort=True):
        start = effective_layer(part, float(acc[step]), rule="from", split=split)
        rows.append({"step": int(step), "lmap_effective_from": start})
    return pd.DataFrame(rows, columns=["step", "lmap_effective_from"]).astype({"lmap_effective_from": "Int64"})


@dataclass(frozen=True)
class LmapTrainingConfig(ExperimentConfig):
    """A deep BN ReLU MLP checkpointed densely (the paper gives the depth, not the training settings: those
    below are netdyn's choices)."""

    depth: int = 21
    """Hidden layers (the paper's 23-layer net)."""
    width: int = 256
    """Neurons per hidden layer (modest for a CPU; the paper's deep nets are 1024 wide)."""
    residual: str = "none"
    """No residual connections (the paper's text names none for this figure)."""
    optimizer: str = "adam"
    """Optimiser (the paper does not say; Adam as in its Fig. 6)."""
    lr: float = 1e-3
    """Learning rate (Adam's default)."""
    batch_size: int = 100
    """Minibatch size (also the batch of the batch-statistics evaluation)."""
    epochs: float = 20
    """Training length in epochs."""
    schedule: str = "log:40"
    """Evaluation points and checkpoints, at the same steps: dense and log-spaced, so the early jump of the
    running-statistics accuracy is resolved."""
    layers: tuple[int, ...] = (11, 14, 17, 19, 20)
    """The later layers whose L-map accuracy the figure and the convergence table follow."""
    min_lag: float = 3.0
    """The test accuracy's rise counts as grokking when it comes at least this many times later than the
    training accuracy's (a clear delay on the log time axis)."""


class LmapTraining(Experiment[LmapTrainingConfig]):
    name = "lmap-training"
    figure = "Fig. 10"
    shows = "L-map pruning accuracy (training set) of the later layers of a depth-21 BN net over training"
    claim = (
        "In a 23-layer DNN (depth 21), the L-map pruning accuracy on the training set of the later layers, "
        "followed over training time, converges rapidly to the training accuracy shortly after the grokking "
        "point: the phase before grokking gradually removes network (weight) noise."
    )
    measured = {
        "smoke": "16 s (2 CPU cores shared with other jobs, load ~13, 2026-11-30)",
        "small": "7.3 min (438.4 s; 3 seeds, 1 torch thread, --jobs 2 on an idle 2-core CPU, 2026-12-06)",
    }
    columns = {
        "history": ("member", "variant", "depth", "seed", "step", "split", "bn_mode", "loss", "accuracy"),
        "lmap": ("variant", "depth", "seed", "bn_mode", "step", "layer", "split", "accuracy"),
        "network": ("variant", "depth", "seed", "bn_mode", "step", "split", "accuracy"),
        "convergence": ("variant", "depth", "seed", "bn_mode", "layer", "reference", "converged_step"),
        "tail": ("variant", "depth", "seed", "bn_mode", "step", "lmap_effective_from"),
    }
    nullable = {"convergence": ("converged_step",), "tail": ("lmap_effective_from",)}
    scales = {
        "smoke": LmapTrainingConfig(
            seeds=2,
            data=DataSpec("mnist5k", train_size=500, test_size=200), depth=5, width=16, epochs=3,
            schedule="log:6", layers=(2, 3, 4),
        ),
        "small": LmapTrainingConfig(),
        "paper": LmapTrainingConfig(data=DataSpec("mnist"), width=1024, batch_size=300, epochs=20, schedule="log:60"),
    }

    def members(self, config: LmapTrainingConfig) -> list[Member]:
        members = []
        for seed in seeded(config):
            spec = RunSpec(
                model=ModelSpec(width=config.width, depth=config.depth, batchnorm=True, residual=config.residual,
                                seed=seed),
                data=config.data,
                train=config.train_config(
                    seed, eval_every=config.schedule, checkpoint_every=config.schedule, bn_eval="both"
                ),
            )
            params = {"variant": VARIANTS[config.residual], "depth": config.depth, "seed": seed}
            members.append(Member(member_name(**params), spec, params))
        return members

    def tables(self, runs: ExperimentRuns, config: LmapTrainingConfig) -> dict[str, pd.DataFrame]:
        """The L-map and the network's accuracy at every checkpoint under both BN statistics (``bn_mode``: the
        running ones, and the training set's own, ``AnalysisConfig.bn_mode="batch"``), the convergence and tail
        tables of each."""
        parts: dict[str, list[pd.DataFrame]] = {"network": [], "lmap": []}
        for mode in MODES:
            analysis = AnalysisConfig(quantities=("lmap",), basins=False, bn_mode=mode, device=config.device)
            for name, table in runs.tables(("network", "lmap"), analysis, steps="all").items():
                parts[name].append(table.assign(bn_mode=mode))
        tables = {name: pd.concat(frames, ignore_index=True) for name, frames in parts.items()}
        tables["history"] = pd.concat([runs.history(m) for m in runs], ignore_index=True)
        convergence, tail = [], []
        for member in runs:
            if runs.diverged(member):
                continue
            history = tables["history"][tables["history"]["member"] == member.name]
            for mode in MODES:
                own = {name: tables[name][(tables[name]["member"] == member.name) & (tables[name]["bn_mode"] == mode)]
                       for name in ("lmap", "network")}
                params = {"member": member.name, **member.params, "bn_mode": mode}
                conv = convergence_table(own["lmap"], own["network"], history, list(config.layers))
                convergence.append(conv.assign(**params)[[*params, *conv.columns]])
                ends = tail_table(own["lmap"], own["network"])
                tail.append(ends.assign(**params)[[*params, *ends.columns]])
        tables["convergence"] = pd.concat(convergence, ignore_index=True)
        tables["tail"] = pd.concat(tail, ignore_index=True)
        return tables

    def figures(self, tables: dict[str, pd.DataFrame], config: LmapTrainingConfig) -> dict[str, Figure]:
        """Fig. 10 under each BN statistics (the L-map and the network's checkpoint accuracy with the running
        statistics, then with the training set's own), for the first seed (said in the title): the L-map curves
        of one run cross at its own grokking point, which a median over seeds would blur."""
        from netdyn.plots.pruning import plot_lmap_training

        seeds = sorted(set(tables["history"]["seed"]))
        figs: dict[str, Figure] = {}
        for mode in MODES:
            one = {name: table[(table["seed"] == seeds[0])
                               & ((table["bn_mode"] == mode) if name != "history" else True)]
                   for name, table in tables.items()}
            history = one["history"]
            learn = rise_step(history, "train", "batch" if "batch" in set(history["bn_mode"]) else "running")
            grok = rise_step(history, "test", mode)
            fig = plot_lmap_training(one["lmap"], history, layers=config.layers, network=one["network"],
                                     grokking_step=grok, tail=one["tail"],
                                     chance_until=_or_never(rise_step(history, "train", mode)), bn_mode=mode)
            lag = "" if grok is None or not learn else f", {grok / learn:.1f}x the training accuracy's rise"
            fig.suptitle(f"BN ReLU MLP, depth {config.depth} (the paper's {config.depth + 2}-layer net), width "
                         f"{config.width}, seed {seeds[0]} of {len(seeds)}\nL-map with {STATISTICS[mode]}\n"
                         f"grokking point: the test accuracy's rise ({mode} statistics){lag}", fontsize="medium")
            figs["fig10_lmap_training" + ("" if mode == "running" else "_batch")] = fig
        return figs

    def summary(self, tables: dict[str, pd.DataFrame], config: LmapTrainingConfig) -> dict[str, Any]:
        out: dict[str, Any] = {"depth": config.depth, "paper_layers": config.depth + 2, "layers": list(config.layers)}
        history = tables["history"][tables["history"]["seed"] == 0]
        last = history[history["step"] == history["step"].max()]
        for row in last.to_dict("records"):
            out[f"final_{row['split']}_accuracy_{row['bn_mode']}"] = float(row["accuracy"])
        point = grokking_point(history, config.min_lag)
        out.update(point)
        out["running_train_rise_step"] = rise_step(history, "train", "running")
        conv = tables["convergence"][(tables["convergence"]["seed"] == 0)
                                     & (tables["convergence"]["bn_mode"] == "running")]
        grok = point["grokking_step"]
        for name in REFERENCES:
            rows = conv[conv["reference"] == name]
            converged = {int(r["layer"]): (None if pd.isna(r["converged_step"]) else int(r["converged_step"]))
                         for r in rows.to_dict("records")}
            out[f"lmap_converged_step_vs_{name}"] = converged
            known = [s for s in converged.values() if s is not None]
            out[f"lmap_converged_after_grokking_ratio_vs_{name}"] = (
                float(np.median(known)) / grok if known and len(known) == len(converged) and grok else None
            )
        tail = tables["tail"][(tables["tail"]["seed"] == 0) & (tables["tail"]["bn_mode"] == "running")]
        tail = tail.sort_values("step")
        starts = [None if pd.isna(v) else int(v) for v in tail["lmap_effective_from"]]
        steps = tail["step"].to_numpy()
        out["lmap_tail_start_final"] = starts[-1]
        if grok is not None and grok in steps:
            i = int(np.flatnonzero(steps == grok)[0])
            out["lmap_tail_start_at_grokking"] = starts[i]
            out["lmap_tail_start_after_grokking"] = {int(s): v for s, v in zip(steps[i:i + 4], starts[i:i + 4],
                                                                                strict=True)}
        return out

    def criteria(self, config: LmapTrainingConfig) -> list[Criterion]:
        return lmap_training_criteria(config)


# ------------------------------------------------------------------------------------------ criteria
# Written from the paper's text on Fig. 10 (conclusion 7) before any rerun used them. The L-map folds in the BN
# statistics it is given: each claim is measured with running statistics (marked running-only) and with batch
# statistics (the training set's own, AnalysisConfig.bn_mode="batch"), the grokking point under the same statistics.


def _or_never(step: int | None) -> float:
    """A rise step, or infinity for a curve that never rises (the figure's chance phase never ends)."""
    return float("inf") if step is None else float(step)


def _history(tables: Mapping[str, pd.DataFrame], seed: int) -> pd.DataFrame:
    history = tables["history"]
    rows = history[history["seed"] == seed]
    if rows.empty:
        raise CannotEvaluate(f"no history of seed {seed}")
    return rows


def _grokking_step(tables: Mapping[str, pd.DataFrame], seed: int, mode: str) -> int:
    step = rise_step(_history(tables, seed), "test", mode)
    if step is None:
        raise CannotEvaluate(f"the test accuracy under {mode} statistics never rises: no grokking point")
    return step


def grokking_lag(tables: Mapping[str, pd.DataFrame], config: LmapTrainingConfig, seed: int, *, mode: str) -> float:
    """The test accuracy's rise step under ``mode`` over the training accuracy's under batch statistics."""
    learn = rise_step(_history(tables, seed), "train", "batch")
    if learn is None:
        raise CannotEvaluate("the training accuracy under batch statistics never rises")
    return _grokking_step(tables, seed, mode) / max(learn, 1)


def convergence_over_grokking(
    tables: Mapping[str, pd.DataFrame], config: LmapTrainingConfig, seed: int, *, mode: str
) -> float:
    """Median over the followed layers of the step their L-map (training set, BN ``mode`` statistics) has
    converged to the network's own training accuracy (same statistics), over the grokking point (the test
    accuracy's rise step under ``mode``)."""
    table = tables.get("convergence")
    if table is None:
        raise CannotEvaluate("no convergence table (every member diverged)")
    rows = table[(table["seed"] == seed) & (table["reference"] == "network")]
    if "bn_mode" in rows.columns:
        rows = rows[rows["bn_mode"] == mode]
    elif mode != "running":
        raise CannotEvaluate(f"no L-map under {mode} statistics")
    rows = rows[rows["layer"].isin(config.layers)]
    if rows.empty:
        raise CannotEvaluate(f"no L-map convergence of seed {seed}")
    never = sorted(int(layer) for layer in rows.loc[rows["converged_step"].isna(), "layer"])
    if never:
        raise CannotEvaluate(f"the L-map of layer(s) {never} never converges to the training accuracy")
    return float(rows["converged_step"].astype(float).median()) / max(_grokking_step(tables, seed, mode), 1)


def lmap_training_criteria(config: LmapTrainingConfig) -> list[Criterion]:
    """The criteria of ``lmap-training`` (see docs/verdicts.md)."""
    layers = ", ".join(map(str, config.layers))
    out: list[Criterion] = []
    for mode in MODES:
        running = mode == "running"
        out += [
            Criterion(
                f"grokking_{mode}",
                "Fig. 10: the net has a grokking point, the test accuracy rising late",
                f"step at which the test accuracy (BN {mode} statistics) covers half its rise over the same step of "
                f"the training accuracy under batch statistics (late: at least min_lag = {config.min_lag:g})",
                ">=", config.min_lag, partial(grokking_lag, mode=mode), running_only=running,
            ),
            Criterion(
                f"lmap_converges_shortly_after_grokking_{mode}",
                "Fig. 10 / conclusion 7: 'the pruning accuracy [of the L-map on the training set, later layers] "
                "rapidly converges to the training accuracy shortly after the grokking point'",
                f"median over layers {layers} of the step from which on the L-map's training accuracy stays within "
                f"0.005 of the network's (both with BN {mode} statistics), over the grokking point under the same "
                f"statistics (shortly after: from 1 to min_lag = {config.min_lag:g} times it)",
                "between", (1.0, float(config.min_lag)), partial(convergence_over_grokking, mode=mode),
                running_only=running,
            ),
        ]
    return out


EXPERIMENT = LmapTraining
