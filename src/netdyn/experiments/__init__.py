"""The paper's experiments (SPEC section 6), one module each, and the registry that ``netdyn reproduce`` and
the tests read: ``EXPERIMENTS`` maps each name to its :class:`~netdyn.experiments.base.Experiment` class.

>>> from netdyn.experiments import run_experiment
>>> result = run_experiment("structure", scale="smoke", out="reproductions/structure-smoke")  # doctest: +SKIP
"""

from __future__ import annotations

import importlib

from netdyn.experiments.base import SCALES, Experiment, ExperimentConfig, ExperimentRuns, Member
from netdyn.experiments.runner import ExperimentResult, list_experiments, run_all, run_experiment

#: The modules holding the experiments, in the order ``netdyn reproduce all`` runs them (the paper's order).
_MODULES = (
    "shallow",
    "structure",
    "depth_width",
    "basins_depth_width",
    "basins_hparams",
    "grokking",
    "bn_grokking",
    "double_descent",
    "residual",
    "lmap_training",
    "depth_100",
)


def _registry() -> dict[str, type[Experiment]]:
    registry: dict[str, type[Experiment]] = {}
    for module in _MODULES:
        cls = importlib.import_module(f"netdyn.experiments.{module}").EXPERIMENT
        registry[cls.name] = cls
    return registry


EXPERIMENTS: dict[str, type[Experiment]] = _registry()

__all__ = [
    "EXPERIMENTS",
    "SCALES",
    "Experiment",
    "ExperimentConfig",
    "ExperimentResult",
    "ExperimentRuns",
    "Member",
    "list_experiments",
    "run_all",
    "run_experiment",
]
