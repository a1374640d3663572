"""The paper's experiments (see docs/verdicts.md), one module each, and the registry that ``netdyn reproduce`` and
the tests read: ``EXPERIMENTS`` maps each name to its :class:`~netdyn.experiments.base.Experiment` class.

>>> from netdyn.experiments import run_experiment
>>> result = run_experiment("structure", scale="smoke", out="reproductions/structure-smoke")  # doctest: +SKIP
"""

from __future__ import annotations

from netdyn.experiments.base import SCALES, Experiment, ExperimentConfig, ExperimentRuns, Member
from netdyn.experiments.criteria import CannotEvaluate, Criterion
from netdyn.experiments.registry import EXPERIMENTS
from netdyn.experiments.runner import ExperimentResult, list_experiments, run_all, run_experiment
from netdyn.experiments.verdicts import verdict_markdown, verdict_table

__all__ = [
    "EXPERIMENTS",
    "SCALES",
    "CannotEvaluate",
    "Criterion",
    "Experiment",
    "ExperimentConfig",
    "ExperimentResult",
    "ExperimentRuns",
    "Member",
    "list_experiments",
    "run_all",
    "run_experiment",
    "verdict_markdown",
    "verdict_table",
]
