"""Transitions in a run's recorded dynamics (see docs/TRANSITIONS.md).

The transitions are grokking, double descent in time, and the fastest change of the later layers' RPD gradient.

The definitions are small pure functions on history tables (``netdyn.train``'s columns ``step, split,
bn_mode, loss, accuracy``) and on per-step analysis tables (``step, layer, ...``): the reproductions of the
paper's Figs. 7 and 8 use them to pick stages and mark peaks, and :func:`detect_transitions` combines them into
flagged events, each with its evidence (the curve's values around it) and a confidence. Every step they return
is an evaluated (or analysed) step of the table.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from netdyn.analysis.network import effective_layer
from netdyn.errors import ConfigError
from netdyn.store import RunFolder

_TOLERANCE = 1e-9  # accuracies are fractions of counts: levels computed from them compare up to rounding


def curve(history: pd.DataFrame, split: str, metric: str = "accuracy", bn_mode: str | None = None) -> pd.Series:
    """One split's ``metric`` against the step: a Series indexed by step, sorted, one value per step.

    ``bn_mode`` picks the batch-norm evaluation mode (``running`` / ``batch``); it may be left None when the
    table holds one mode only (a net without batch norm records ``none``).
    """
    rows = history[history["split"] == split]
    if "bn_mode" in rows.columns:
        modes = pd.unique(rows["bn_mode"]).tolist()
        if bn_mode is not None:
            rows = rows[rows["bn_mode"] == bn_mode]
        elif len(modes) > 1:
            raise ConfigError(f"the history holds several bn_mode values {modes}: name one")
    if rows.empty:
        raise ConfigError(f"the history has no {split!r} rows" + (f" in bn_mode {bn_mode!r}" if bn_mode else ""))
    if rows["step"].duplicated().any():
        raise ConfigError(f"several {split!r} rows per step: filter the history to one run first")
    return rows.set_index("step")[metric].sort_index().astype(float)


def fit_step(history: pd.DataFrame, threshold: float = 1.0, bn_mode: str | None = None) -> int | None:
    """The first evaluated step at which the training accuracy is >= ``threshold``; None if it never gets there.

    ``threshold`` 1.0 means every training sample classified right.
    """
    train = curve(history, "train", bn_mode=bn_mode)
    hit = train[train >= threshold - _TOLERANCE]
    return int(hit.index[0]) if len(hit) else None


def plateau(history: pd.DataFrame, split: str = "test", tail: int = 5, tolerance: float = 0.01,
            bn_mode: str | None = None) -> tuple[int, float]:
    """(step, level) of the accuracy's final plateau.

    level = the median accuracy over the last ``tail`` evaluation points; step = the first evaluated step from
    which the accuracy never again falls below level - ``tolerance`` (so a curve still creeping up reaches its
    plateau late, and a dip after an early high resets it).
    """
    acc = curve(history, split, bn_mode=bn_mode)
    level = float(np.median(acc.to_numpy()[-tail:]))
    below = np.flatnonzero(acc.to_numpy() < level - tolerance)
    first = 0 if below.size == 0 else int(below[-1]) + 1
    return int(acc.index[min(first, len(acc) - 1)]), level


@dataclass(frozen=True)
class Jump:
    """The test accuracy's rise after the training set is fitted (see :func:`accuracy_jump`)."""

    fit_step: int | None
    """First step with training accuracy >= the fit threshold (None: never)."""
    start_step: int
    """The foot of the rise: the first step of the accuracy's minimum at or after ``fit_step`` (or after the
    first evaluated step without one)."""
    start_level: float
    """Accuracy at ``start_step``."""
    plateau_step: int
    """See :func:`plateau`."""
    plateau_level: float
    """See :func:`plateau`."""
    onset_step: int | None = None
    """Last step in [start_step, end_step] with accuracy <= start + low x rise (None: no jump)."""
    mid_step: int | None = None
    """First step in [onset_step, end_step] with accuracy >= start + rise / 2 (None: no jump)."""
    end_step: int | None = None
    """First step after start_step with accuracy >= start + high x rise (None: no jump)."""

    @property
    def rise(self) -> float:
        """plateau_level - start_level."""
        return self.plateau_level - self.start_level

    @property
    def found(self) -> bool:
        """Whether the rise was large enough to count as a jump."""
        return self.end_step is not None

    @property
    def delay(self) -> float:
        """How many times later the accuracy plateaus than the training set is fitted: plateau_step / fit_step.

        NaN without a fit step; a fit at step 0 counts as step 1.
        """
        if self.fit_step is None:
            return math.nan
        return self.plateau_step / max(self.fit_step, 1)

    def to_dict(self) -> dict[str, Any]:
        """The fields and derived numbers as one table row (missing steps as None)."""
        return {
            "fit_step": self.fit_step, "start_step": self.start_step, "start_level": self.start_level,
            "onset_step": self.onset_step, "mid_step": self.mid_step, "end_step": self.end_step,
            "plateau_step": self.plateau_step, "plateau_level": self.plateau_level, "rise": self.rise,
            "delay": self.delay,
        }


def jump_table(records: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """Rows of :meth:`Jump.to_dict` (plus any other columns) as a table whose step columns are floats.

    A missing step is NaN, so that tables of many runs stack with one dtype.
    """
    steps = ("fit_step", "start_step", "onset_step", "mid_step", "end_step", "plateau_step")
    table = pd.DataFrame(list(records))
    return table.astype({c: "float64" for c in steps if c in table.columns})


def accuracy_jump(
    history: pd.DataFrame,
    split: str = "test",
    fit_threshold: float | None = 1.0,
    low: float = 0.1,
    high: float = 0.9,
    min_rise: float = 0.05,
    tail: int = 5,
    tolerance: float = 0.01,
    bn_mode: str | None = None,
    fit_bn_mode: str | None = None,
) -> Jump:
    """The jump of ``split``'s accuracy after the training accuracy reaches ``fit_threshold``.

    Definitions (all on evaluated steps): the reference step is :func:`fit_step` (the first evaluated step
    when the training set is never fitted, or when ``fit_threshold`` is None); the foot of the rise is the
    accuracy's minimum at or after it (``start``); the top is the plateau level of :func:`plateau` (``tail``,
    ``tolerance``); rise = top - foot. A rise below ``min_rise`` is no jump (onset, mid and end None).
    Otherwise ``end_step`` is the first step after the foot where the accuracy reaches foot + ``high`` x rise,
    ``onset_step`` the last step between the foot and ``end_step`` where it is still <= foot + ``low`` x rise,
    and ``mid_step`` the first step from the onset on where it reaches foot + rise / 2. ``bn_mode`` picks the
    evaluation mode of ``split``, ``fit_bn_mode`` that of the training accuracy (default: the same).
    """
    acc = curve(history, split, bn_mode=bn_mode)
    fitted = None
    if fit_threshold is not None:
        fitted = fit_step(history, fit_threshold, bn_mode=fit_bn_mode or bn_mode)
    after = acc[acc.index >= (fitted if fitted is not None else acc.index[0])]
    start_step = int(after.index.to_numpy()[after.argmin()])
    start_level = float(after.min())
    top_step, top = plateau(history, split, tail=tail, tolerance=tolerance, bn_mode=bn_mode)
    jump = Jump(fitted, start_step, start_level, top_step, top)
    rise = top - start_level
    if rise < min_rise:
        return jump
    rest = acc[acc.index >= start_step]
    reached = rest[rest >= start_level + high * rise - _TOLERANCE]
    if reached.empty:  # the plateau's median lies below the high mark: no clean jump
        return jump
    end = int(reached.index[0])
    span = rest[rest.index <= end]
    onset = int(span[span <= start_level + low * rise + _TOLERANCE].index[-1])
    mid = int(span[(span.index >= onset) & (span >= start_level + rise / 2 - _TOLERANCE)].index[0])
    return Jump(fitted, start_step, start_level, top_step, top, onset, mid, end)


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
        """The rise relative to the valley: rise / valley_level (NaN when the valley level is not positive)."""
        return self.rise / self.valley_level if self.valley_level > 0 else math.nan

    @property
    def descends_again(self) -> bool:
        """Whether the loss falls after the peak by at least half the rise (the second descent)."""
        return self.peak_step is not None and self.after_step is not None and (
            self.peak_level - self.after_level >= self.rise / 2)

    def to_dict(self) -> dict[str, Any]:
        """The fields and derived numbers as one table row."""
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
    """The rate of change of ``value`` per decade of ``x`` between consecutive points.

    Columns ``step_low, step_high, step, rate``, rate = (v_high - v_low) / (log10 step_high - log10 step_low),
    placed at the geometric mean of the two steps. Points at step <= 0 (the initial network) have no log-step and are
    left out; ``table`` holds one row per step.
    """
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
    """(step, rate) of the largest rate of a :func:`log_rate` table; None for an empty table.

    The first on ties; the largest increase, not the largest magnitude.
    """
    finite = rates[np.isfinite(rates["rate"].to_numpy(float))]
    if finite.empty:
        return None
    row = finite.loc[finite["rate"].idxmax()]
    return float(row["step"]), float(row["rate"])


def later_layers(lmap: pd.DataFrame, network_test_accuracy: float, hidden: Sequence[int]) -> list[int]:
    """The hidden layers from the first effective L-map layer on; the last hidden layer alone when none is effective.

    An effective L-map layer has a test accuracy within 0.005 of the network's (see docs/quantities.md#l-map). Layer 0
    (the input) is not a hidden layer: an effective L-map at 0 gives every hidden layer.
    """
    hidden = sorted(int(h) for h in hidden)
    first = effective_layer(lmap, network_test_accuracy, rule="earliest")
    if first is None:
        return hidden[-1:]
    return [h for h in hidden if h >= first]


def log_distance(step_a: float | None, step_b: float | None) -> float:
    """log10(step_a) - log10(step_b) (steps below 1 count as 1); NaN when either is missing."""
    if step_a is None or step_b is None:
        return math.nan
    return math.log10(max(step_a, 1.0)) - math.log10(max(step_b, 1.0))


# ------------------------------------------------------------------------------------------------- detector
EVENT_COLUMNS = ["event", "step", "confidence", "start_step", "end_step", "evidence"]
EVENTS = ("grokking", "double_descent", "rpd_rate_max", "bn_lag")


def _modes(history: pd.DataFrame) -> tuple[str | None, str | None]:
    """(mode of the test curve, mode of the training curve).

    Running statistics for the test accuracy (how a BN net is evaluated) and batch statistics for the training
    accuracy when recorded (how it is trained).
    """
    if "bn_mode" not in history.columns:
        return None, None
    modes = set(pd.unique(history["bn_mode"]))
    test = "running" if "running" in modes else (next(iter(modes)) if len(modes) == 1 else None)
    train = "batch" if "batch" in modes else test
    return test, train


def _values_around(series: pd.Series, step: float, n: int = 2) -> dict[str, float]:
    """The curve's values at the evaluated steps around ``step`` (its evidence)."""
    index = series.index.to_numpy()
    at = int(np.searchsorted(index, step))
    lo, hi = max(0, at - n), min(len(index), at + n + 1)
    return {str(int(s)): round(float(series.loc[s]), 6) for s in index[lo:hi]}


def _both_modes(history: pd.DataFrame) -> bool:
    """Whether the history holds a BN net's two evaluations (running and batch statistics)."""
    return "bn_mode" in history.columns and {"running", "batch"} <= set(pd.unique(history["bn_mode"]))


def _as_bn_lag(found: dict[str, Any], seen: str) -> dict[str, Any]:
    """A grokking or double-descent row seen under running statistics only, relabelled ``bn_lag``."""
    evidence = dict(found["evidence"])
    evidence["what"] = (f"{evidence['what']}; under batch statistics the test {seen}: the running statistics "
                        "trail the weights (bn_lag, not " + found["event"].replace("_", " ") + ")")
    evidence["seen_as"] = found["event"]
    return dict(found, event="bn_lag", evidence=evidence)


def _grokking(history: pd.DataFrame, min_delay: float, min_rise: float) -> dict[str, Any] | None:
    """A late jump of the test accuracy; ``bn_lag`` where it is seen under running statistics only."""
    test_mode, train_mode = _modes(history)
    found = _late_jump(history, min_delay, min_rise, test_mode, train_mode)
    if found is None or test_mode != "running" or not _both_modes(history):
        return found
    if _late_jump(history, min_delay, min_rise, "batch", train_mode) is not None:
        return found
    return _as_bn_lag(found, "accuracy has no such late jump")


def _late_jump(
    history: pd.DataFrame, min_delay: float, min_rise: float, test_mode: str | None, train_mode: str | None
) -> dict[str, Any] | None:
    train = accuracy_jump(history, "train", fit_threshold=None, bn_mode=train_mode, min_rise=min_rise)
    test = accuracy_jump(history, "test", fit_threshold=None, bn_mode=test_mode, min_rise=min_rise)
    if train.mid_step is None or test.mid_step is None:  # no jump (its steps are all None then)
        return None
    delay = test.mid_step / max(train.mid_step, 1)
    if delay < min_delay:
        return None
    test_curve = curve(history, "test", bn_mode=test_mode)
    train_curve = curve(history, "train", bn_mode=train_mode)
    confidence = min(1.0, math.log10(delay)) * min(1.0, test.rise / 0.3)
    return {
        "event": "grokking",
        "step": test.mid_step,
        "confidence": round(float(confidence), 3),
        "start_step": test.onset_step,
        "end_step": test.end_step,
        "evidence": {
            "what": f"test accuracy ({test_mode or 'one mode'}) rises {test.start_level:.3f} -> "
            f"{test.plateau_level:.3f} with its mid-rise at step {test.mid_step}, {delay:.1f}x later than the "
            f"training accuracy's ({train_mode or 'one mode'}) mid-rise at step {train.mid_step}",
            "delay": round(delay, 3),
            "test_accuracy": _values_around(test_curve, test.mid_step),
            "train_accuracy": _values_around(train_curve, train.mid_step),
            "test_accuracy_at_train_mid": round(float(test_curve[test_curve.index <= train.mid_step].iloc[-1]), 6),
        },
    }


def _double_descent(history: pd.DataFrame, min_relative_rise: float) -> dict[str, Any] | None:
    """A rise and fall of the test loss; ``bn_lag`` where it is seen under running statistics only."""
    test_mode, _ = _modes(history)
    found = _loss_bump_event(history, min_relative_rise, test_mode)
    if found is None or test_mode != "running" or not _both_modes(history):
        return found
    if _loss_bump_event(history, min_relative_rise, "batch") is not None:
        return found
    return _as_bn_lag(found, "loss has no such bump")


def _loss_bump_event(history: pd.DataFrame, min_relative_rise: float, test_mode: str | None) -> dict[str, Any] | None:
    bump = loss_bump(history, "test", bn_mode=test_mode)
    if bump.peak_step is None or bump.relative_rise < min_relative_rise or not bump.descends_again:
        return None
    loss = curve(history, "test", metric="loss", bn_mode=test_mode)
    return {
        "event": "double_descent",
        "step": bump.peak_step,
        "confidence": round(float(min(1.0, bump.relative_rise / 0.5)), 3),
        "start_step": bump.valley_step,
        "end_step": bump.after_step,
        "evidence": {
            "what": f"test loss ({test_mode or 'one mode'}) rises {bump.valley_level:.4g} -> {bump.peak_level:.4g} "
            f"(+{bump.relative_rise:.0%}) between steps {bump.valley_step} and {bump.peak_step}, then falls to "
            f"{bump.after_level:.4g} at step {bump.after_step}",
            "relative_rise": round(bump.relative_rise, 4),
            "test_loss": _values_around(loss, bump.peak_step),
        },
    }


def _rpd_rate(tables: dict[str, pd.DataFrame], ratio: float, min_rate: float) -> dict[str, Any] | None:
    summary = tables.get("rpd_summary")
    if summary is None or "step" not in summary.columns or summary["step"].nunique() < 3:
        return None
    last = int(summary["step"].max())
    hidden = sorted(int(h) for h in summary["layer"].unique())
    layers = hidden[-1:]
    lmap, network = tables.get("lmap"), tables.get("network")
    if lmap is not None and network is not None and "step" in lmap.columns:
        final = network[(network["step"] == last) & (network["split"] == "test")]
        if len(final):
            layers = later_layers(lmap[lmap["step"] == last], float(final["accuracy"].iloc[0]), hidden)
    gradient = summary[summary["layer"].isin(layers)].groupby("step", as_index=False)[["gradient"]].mean()
    rates = log_rate(gradient, "gradient")
    peak = rate_maximum(rates)
    if peak is None:
        return None
    step, rate = peak
    typical = float(np.median(np.abs(rates["rate"].to_numpy(float))))
    if rate < min_rate or rate < ratio * typical:
        return None
    row = rates.iloc[rates["rate"].argmax()]
    return {
        "event": "rpd_rate_max",
        "step": int(round(step)),
        "confidence": round(float(min(1.0, rate / (2 * ratio * max(typical, 1e-12)))), 3),
        "start_step": int(row["step_low"]),
        "end_step": int(row["step_high"]),
        "evidence": {
            "what": f"the RPD gradient of layers {layers[0]}..{layers[-1]} changes fastest between steps "
            f"{int(row['step_low'])} and {int(row['step_high'])}: {rate:.3g} per decade of steps, "
            f"{rate / max(typical, 1e-12):.1f}x the median rate",
            "layers": layers,
            "rate": round(rate, 4),
            "median_rate": round(typical, 4),
            "gradient": _values_around(gradient.set_index("step")["gradient"], step),
        },
    }


def detect_transitions(
    run: str | Path | RunFolder | dict[str, pd.DataFrame],
    *,
    min_delay: float = 3.0,
    min_rise: float = 0.1,
    min_relative_bump: float = 0.1,
    rate_ratio: float = 3.0,
    min_rate: float = 0.2,
) -> pd.DataFrame:
    """The transitions in a run's recorded dynamics: one row per event found.

    Columns ``event, step, confidence, start_step, end_step, evidence`` (evidence: JSON with a sentence and the
    curve's values around the step). ``run`` is a run folder (path or ``RunFolder``) or a dict of its tables
    (``history``, and for the RPD event ``rpd_summary`` over steps with ``lmap`` and ``network``, as
    ``netdyn analyze --checkpoint all`` or a monitor records them).

    * ``grokking``: the test accuracy (running statistics for a BN net) rises by at least ``min_rise`` and its
      mid-rise (:func:`accuracy_jump`) comes at least ``min_delay`` times later (in steps) than the training
      accuracy's (batch statistics where recorded: the accuracy the network is trained to). Confidence:
      min(1, log10 delay) x min(1, rise / 0.3).
    * ``double_descent``: the test loss rises above its earlier minimum by at least ``min_relative_bump`` of it
      and falls again by at least half the rise (:func:`loss_bump`). Confidence: min(1, relative rise / 0.5).
    * ``bn_lag``: for a net with batch norm whose history holds both evaluations, a late test-accuracy jump or a
      test-loss bump seen under running statistics only (under batch statistics the test curve has none): the
      running statistics trailing the weights, not grokking or double descent (its evidence says which it looked
      like, ``seen_as``).
    * ``rpd_rate_max``: the rate of change per decade of steps of the mean RPD gradient of the later layers
      (from the first effective L-map layer at the last step on; :func:`log_rate`) peaks at a rate of at least
      ``min_rate`` and ``rate_ratio`` times the median rate's magnitude. Confidence: peak / (2 x ratio x median).

    A run with none of these yields an empty table (with the columns).
    """
    tables = _tables_of(run)
    history = tables.get("history")
    if history is None or history.empty:
        raise ConfigError("detect_transitions needs a run's history table (step, split, bn_mode, loss, accuracy)")
    history = history[[c for c in ("step", "split", "bn_mode", "loss", "accuracy") if c in history.columns]]
    found = [
        _grokking(history, min_delay, min_rise),
        _double_descent(history, min_relative_bump),
        _rpd_rate(tables, rate_ratio, min_rate),
    ]
    rows = [dict(row, evidence=json.dumps(row["evidence"], sort_keys=True)) for row in found if row is not None]
    table = pd.DataFrame(rows, columns=EVENT_COLUMNS)
    return table.astype({"step": "int64", "confidence": "float64", "start_step": "float64", "end_step": "float64"})


def _tables_of(run: str | Path | RunFolder | dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    if isinstance(run, dict):
        return run
    folder = run if isinstance(run, RunFolder) else RunFolder.open_existing(run)
    names = [n for n in ("history", "rpd_summary", "lmap", "network") if n in folder.table_names()]
    return {name: folder.read_table(name) for name in names}
