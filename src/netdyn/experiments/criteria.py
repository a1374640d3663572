"""How a verdict is made (see docs/verdicts.md): criteria declared before anything runs, evaluated on every seed.

Each experiment declares its :class:`Criterion` list in code (``Experiment.criteria(config)``): a name, the
paper's statement it tests, the quantity measured, a rule with its threshold, and the ``measure`` that reads the
value of one seed off the experiment's tables. :func:`evaluate_criteria` applies each to every seed; a seed whose
value cannot be measured (too few steps, NaN) gets the reason instead and counts as not passing. A criterion
*holds* when it passes in at least two thirds of the seeds, and :func:`verdict` follows one rule for every
experiment: **reproduced** when every deciding criterion holds, **partly** when some do, **not reproduced** when
none does. A criterion changed after a result is a new criterion (``since`` its date, ``revises`` naming the
first): it is evaluated and shown beside the first but never decides. A criterion that holds only under BN
running statistics (``running_only``) counts like the others and is marked so in its label and the verdict line.
"""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from netdyn.errors import ConfigError

RULES = (">=", ">", "<=", "<", "between", "true", "false")
"""The rules a criterion's value is checked by: compared with ``threshold`` (``between``: within the
``(low, high)`` pair, both ends included), or a truth value (``true``, ``false``: no threshold)."""

VERDICTS = ("reproduced", "partly", "not reproduced")
"""The verdicts :func:`verdict` gives."""

RUNNING_ONLY_MARK = "[running BN statistics only]"
"""Appended to the label of a criterion measured under BN running statistics only."""

Measure = Callable[[Mapping[str, pd.DataFrame], Any, int], "float | bool | None"]
"""``measure(tables, config, seed)``: the value of one seed (None or NaN: cannot be evaluated)."""


class CannotEvaluate(Exception):
    """Raised by a criterion's ``measure`` when the tables cannot give a value for a seed; the message is the
    reason the summary and the report show (e.g. "the test loss never rises: no bump to locate")."""


@dataclass(frozen=True)
class Criterion:
    """One claim of the paper, turned into a measured value and a rule with its threshold."""

    name: str
    """Short snake_case name, unique within its experiment (``lp_before_lmap``)."""
    statement: str
    """The paper's claim it tests, quoted or paraphrased, with the figure (``"Fig. 3(a): ..."``)."""
    quantity: str
    """What is measured, in words (which table, which layers, which seeds' rows)."""
    rule: str
    """One of :data:`RULES`."""
    threshold: float | tuple[float, float] | None
    """The value the rule compares with; a ``(low, high)`` pair for ``between``; None for ``true`` / ``false``."""
    measure: Measure = field(repr=False, compare=False)
    """``measure(tables, config, seed) -> float | bool``; raises :class:`CannotEvaluate` with the reason when the
    seed's tables give no value."""
    running_only: bool = False
    """Measured under BN running statistics only (marked in the label and the verdict line)."""
    since: str | None = None
    """The date (``YYYY-MM-DD``) a criterion was changed after a result: such a criterion never decides."""
    revises: str | None = None
    """The name of the first criterion this one changes (listed beside it; needs ``since``)."""

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[a-z][a-z0-9_]*", self.name):
            raise ConfigError(f"criterion name {self.name!r} must be snake_case")
        if self.rule not in RULES:
            raise ConfigError(f"criterion {self.name}: rule {self.rule!r} is not one of {', '.join(RULES)}")
        if self.rule == "between":
            if not (isinstance(self.threshold, tuple) and len(self.threshold) == 2
                    and self.threshold[0] <= self.threshold[1]):  # fmt: skip
                raise ConfigError(f"criterion {self.name}: 'between' needs a (low, high) threshold")
        elif self.rule in ("true", "false"):
            if self.threshold is not None:
                raise ConfigError(f"criterion {self.name}: rule {self.rule!r} takes no threshold")
        elif not isinstance(self.threshold, int | float) or isinstance(self.threshold, bool):
            raise ConfigError(f"criterion {self.name}: rule {self.rule!r} needs a number as threshold")
        if self.since is not None and not re.fullmatch(r"\d{4}-\d{2}-\d{2}", self.since):
            raise ConfigError(f"criterion {self.name}: since must be a date YYYY-MM-DD, got {self.since!r}")
        if self.revises is not None and self.since is None:
            raise ConfigError(f"criterion {self.name}: a criterion that revises {self.revises} needs its date (since)")

    @property
    def decides(self) -> bool:
        """Whether the criterion counts in the verdict (only criteria stated before any result do)."""
        return self.since is None

    @property
    def label(self) -> str:
        """The name as tables and the verdict line show it (running-only criteria marked)."""
        return f"{self.name} {RUNNING_ONLY_MARK}" if self.running_only else self.name

    @property
    def rule_text(self) -> str:
        """The rule in words: ``>= 0.9``, ``between 0.1 and 0.3``, ``true``."""
        if isinstance(self.threshold, tuple):  # "between"
            low, high = self.threshold
            return f"between {low:g} and {high:g}"
        if self.threshold is None:  # "true" / "false"
            return self.rule
        return f"{self.rule} {self.threshold:g}"

    def check(self, value: float | bool) -> bool:
        """Whether ``value`` passes the rule."""
        if self.rule == "true":
            return bool(value)
        if self.rule == "false":
            return not bool(value)
        x = float(value)
        if isinstance(self.threshold, tuple):  # "between" (__post_init__ pairs the rule with its threshold)
            low, high = self.threshold
            return low <= x <= high
        if self.threshold is None:  # pragma: no cover - "true"/"false" returned above
            raise ConfigError(f"criterion {self.name}: rule {self.rule!r} needs a threshold")
        t = float(self.threshold)
        return {">=": x >= t, ">": x > t, "<=": x <= t, "<": x < t}[self.rule]

    def evaluate(self, tables: Mapping[str, pd.DataFrame], config: Any, seed: int) -> SeedResult:
        """The value of one seed and whether it passes (or the reason it cannot be evaluated)."""
        try:
            value = self.measure(tables, config, seed)
        except CannotEvaluate as exc:
            return SeedResult(seed, None, False, str(exc) or "cannot be evaluated")
        value = _plain(value)
        if value is None:
            return SeedResult(seed, None, False, "no value")
        if isinstance(value, float) and math.isnan(value):
            return SeedResult(seed, None, False, "the value is NaN")
        return SeedResult(seed, value, self.check(value), None)


def rank_correlation(x: pd.Series, y: pd.Series, what: str) -> float:
    """Spearman's rank correlation of ``y`` with ``x`` over ``what`` (a plural noun: "depths", "layers").

    A trend criterion's value; :class:`CannotEvaluate` with the reason when fewer than two points are given or
    either side is constant (no rank correlation is defined).
    """
    if len(x) < 2:
        raise CannotEvaluate(f"fewer than two {what} to correlate")
    if x.nunique() < 2 or y.nunique() < 2:
        raise CannotEvaluate(f"the value is the same at every {what.removesuffix('s')}: no rank correlation")
    return float(x.reset_index(drop=True).rank().corr(y.reset_index(drop=True).rank()))


def _plain(value: Any) -> float | bool | None:
    """A measured value as a JSON-ready Python bool or float (numpy and pandas scalars, NA as None)."""
    if value is None or value is pd.NA:
        return None
    if isinstance(value, bool) or type(value).__name__ == "bool_":
        return bool(value)
    return float(value)


@dataclass(frozen=True)
class SeedResult:
    """A criterion on one seed."""

    seed: int
    value: float | bool | None
    """The measured value (None when it cannot be evaluated)."""
    passes: bool
    """Whether the value passes the rule (False when it cannot be evaluated)."""
    reason: str | None = None
    """Why the seed cannot be evaluated (None when it could)."""


@dataclass(frozen=True)
class CriterionResult:
    """A criterion evaluated on every seed."""

    criterion: Criterion
    seeds: tuple[SeedResult, ...]

    @property
    def seeds_passing(self) -> int:
        return sum(s.passes for s in self.seeds)

    @property
    def holds(self) -> bool:
        """Passes in at least two thirds of the seeds."""
        return len(self.seeds) > 0 and 3 * self.seeds_passing >= 2 * len(self.seeds)

    def spread(self) -> dict[str, float | None]:
        """Median, min and max of the numeric values that could be evaluated (None for truth values)."""
        values = [float(s.value) for s in self.seeds if s.value is not None and not isinstance(s.value, bool)]
        if not values:
            return {"median": None, "min": None, "max": None}
        return {"median": statistics.median(values), "min": min(values), "max": max(values)}

    def to_dict(self) -> dict[str, Any]:
        """The criterion's entry in ``summary.json``."""
        c = self.criterion
        return {
            "name": c.name,
            "label": c.label,
            "statement": c.statement,
            "quantity": c.quantity,
            "rule": c.rule,
            "threshold": list(c.threshold) if isinstance(c.threshold, tuple) else c.threshold,
            "rule_text": c.rule_text,
            "running_only": c.running_only,
            "decides": c.decides,
            "since": c.since,
            "revises": c.revises,
            "seeds": [s.seed for s in self.seeds],
            "values": [s.value for s in self.seeds],
            "passes": [s.passes for s in self.seeds],
            "reasons": [s.reason for s in self.seeds],
            **self.spread(),
            "seeds_passing": self.seeds_passing,
            "n_seeds": len(self.seeds),
            "holds": self.holds,
        }


def check_criteria(criteria: Sequence[Criterion], experiment: str = "experiment") -> None:
    """Names unique, and every ``revises`` naming an earlier criterion of the list (ConfigError otherwise)."""
    seen: set[str] = set()
    for c in criteria:
        if c.name in seen:
            raise ConfigError(f"{experiment}: criterion {c.name} is declared twice")
        if c.revises is not None and c.revises not in seen:
            raise ConfigError(f"{experiment}: criterion {c.name} revises {c.revises}, which is not declared before it")
        seen.add(c.name)


def evaluate_criteria(
    criteria: Sequence[Criterion], tables: Mapping[str, pd.DataFrame], config: Any, seeds: Iterable[int]
) -> list[CriterionResult]:
    """Every criterion on every seed, in the declared order."""
    check_criteria(criteria)
    chosen = list(seeds)
    return [CriterionResult(c, tuple(c.evaluate(tables, config, seed) for seed in chosen)) for c in criteria]


def verdict(results: Sequence[CriterionResult]) -> str | None:
    """``reproduced`` when every deciding criterion holds, ``partly`` when some do, ``not reproduced`` when none
    does; None when the experiment declares no deciding criterion."""
    deciding = [r for r in results if r.criterion.decides]
    if not deciding:
        return None
    holding = sum(r.holds for r in deciding)
    if holding == len(deciding):
        return "reproduced"
    return "partly" if holding else "not reproduced"


def verdict_line(results: Sequence[CriterionResult]) -> str:
    """One line: the verdict, how many deciding criteria hold, and which holding ones rest on running statistics
    only."""
    decided = verdict(results)
    if decided is None:
        return "no verdict: the experiment declares no criteria"
    deciding = [r for r in results if r.criterion.decides]
    line = f"{decided}: {sum(r.holds for r in deciding)} of {len(deciding)} criteria hold in >= 2/3 of the seeds"
    running = [r.criterion.name for r in deciding if r.holds and r.criterion.running_only]
    if running:
        line += f"; under BN running statistics only: {', '.join(running)}"
    return line


def criteria_table(results: Sequence[CriterionResult]) -> pd.DataFrame:
    """The report's table: one row per criterion, one column per seed (the value and pass / fail, or why it
    cannot be evaluated), then the median, min and max and the seeds passing."""
    rows = []
    for r in results:
        c = r.criterion
        row: dict[str, Any] = {"criterion": c.label, "rule": c.rule_text,
                               "decides": "yes" if c.decides else f"no (since {c.since})"}
        for s in r.seeds:
            row[f"seed {s.seed}"] = _seed_cell(s)
        row.update(r.spread())
        row["seeds passing"] = f"{r.seeds_passing}/{len(r.seeds)}"
        row["holds"] = r.holds
        rows.append(row)
    return pd.DataFrame(rows)


def _seed_cell(s: SeedResult) -> str:
    if s.value is None:
        return f"cannot be evaluated: {s.reason}"
    shown = str(s.value).lower() if isinstance(s.value, bool) else f"{s.value:.4g}"
    return f"{shown} {'pass' if s.passes else 'fail'}"


def statements_table(criteria: Sequence[Criterion]) -> pd.DataFrame:
    """What each criterion tests: the paper's statement and the measured quantity."""
    return pd.DataFrame(
        [{"criterion": c.label, "statement": c.statement, "quantity": c.quantity,
          "revises": "" if c.revises is None else f"{c.revises} (changed {c.since})"} for c in criteria]
    )  # fmt: skip
