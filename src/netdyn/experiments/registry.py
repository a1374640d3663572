"""The registry of the paper's experiments: ``EXPERIMENTS`` maps each name to its
:class:`~netdyn.experiments.base.Experiment` class (what ``netdyn reproduce`` and the runner look names up in)."""

from __future__ import annotations

import importlib
from typing import Any

from netdyn.experiments.base import Experiment

#: The modules holding the experiments, in the order ``netdyn reproduce all`` runs them (the paper's order, then
#: the experiments beyond the paper).
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
    "structure_families",
)


def _registry() -> dict[str, type[Experiment[Any]]]:
    registry: dict[str, type[Experiment[Any]]] = {}
    for module in _MODULES:
        found = importlib.import_module(f"netdyn.experiments.{module}")
        # a module holds one experiment (EXPERIMENT) or several sharing code (EXPERIMENTS, in their order)
        for cls in getattr(found, "EXPERIMENTS", None) or (found.EXPERIMENT,):
            registry[cls.name] = cls
    return registry


EXPERIMENTS: dict[str, type[Experiment[Any]]] = _registry()
