"""netdyn: network-dynamics analysis of deep neural networks.

Implements the framework of Lin, Zhang, Feng and Zhao, "An Analysis Framework for Understanding Deep Neural
Networks Based on Network Dynamics" (arXiv 2501.02436). Every public name is listed in ``__all__`` and
re-exported from the module that defines it; modules load on first use so that ``import netdyn`` stays light
(torch, pandas and matplotlib are imported only when a name that needs them is touched).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from netdyn._version import __version__

_EXPORTS: dict[str, str] = {
    # errors
    "NetdynError": "netdyn.errors",
    "DatasetError": "netdyn.errors",
    "ConfigError": "netdyn.errors",
    "ModelError": "netdyn.errors",
    "RunError": "netdyn.errors",
    "StorageError": "netdyn.errors",
    "DivergedError": "netdyn.errors",
    # data
    "DataSpec": "netdyn.data",
    "Dataset": "netdyn.data",
    "load_dataset": "netdyn.data",
    "list_datasets": "netdyn.data",
    "read_idx": "netdyn.data",
    "write_idx": "netdyn.data",
    # models
    "MLP": "netdyn.models",
    "ConvNet": "netdyn.models",
    "ResNet": "netdyn.models",
    "ViT": "netdyn.models",
    "ModelSpec": "netdyn.models",
    "Trace": "netdyn.models",
    "register_transfer_function": "netdyn.models",
    # training
    "TrainConfig": "netdyn.training",
    "TrainResult": "netdyn.training",
    "train": "netdyn.training",
    "train_population": "netdyn.training",
    # analysis (see docs/quantities.md)
    "QUANTITIES": "netdyn.analysis",
    "Quantity": "netdyn.analysis",
    "Analysis": "netdyn.orchestration",
    "AnalysisConfig": "netdyn.analysis",
    "BasinCurve": "netdyn.analysis",
    "LocalFields": "netdyn.analysis",
    "analyze": "netdyn.orchestration",
    "analyze_checkpoints": "netdyn.orchestration",
    "bn_perturbation": "netdyn.analysis",
    "class_geometry": "netdyn.analysis",
    "fit_probe": "netdyn.analysis",
    "local_fields": "netdyn.analysis",
    "lmap_accuracy": "netdyn.analysis",
    "lmap_matrix": "netdyn.analysis",
    "lp_accuracy": "netdyn.analysis",
    "nearest_train_distance": "netdyn.analysis",
    "network_accuracy": "netdyn.analysis",
    "neuron_mode_census": "netdyn.analysis",
    "neuron_modes": "netdyn.analysis",
    "rpd": "netdyn.analysis",
    "rpd_summary": "netdyn.analysis",
    "sample_basin": "netdyn.analysis",
    "weight_basin": "netdyn.analysis",
    # monitoring a user's own training loop, and the transitions in a run's dynamics
    "Monitor": "netdyn.monitor",
    "detect_transitions": "netdyn.transitions",
    # run folders and whole runs
    "RunFolder": "netdyn.store",
    "load_run": "netdyn.orchestration",
    "load_analysis": "netdyn.orchestration",
    "RunSpec": "netdyn.orchestration",
    "RunResult": "netdyn.orchestration",
    "run": "netdyn.orchestration",
    "run_population": "netdyn.orchestration",
    # beyond one run
    "sweep": "netdyn.sweeps",
    "load_sweep": "netdyn.sweeps",
    "recommend": "netdyn.recommendation",
    "prune_run": "netdyn.prune",
    "compare": "netdyn.comparison",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'netdyn' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


if TYPE_CHECKING:  # pragma: no cover - static analysers see the real imports
    from netdyn.analysis import (  # noqa: F401
        QUANTITIES,
        AnalysisConfig,
        BasinCurve,
        LocalFields,
        Quantity,
        bn_perturbation,
        class_geometry,
        fit_probe,
        lmap_accuracy,
        lmap_matrix,
        local_fields,
        lp_accuracy,
        nearest_train_distance,
        network_accuracy,
        neuron_mode_census,
        neuron_modes,
        rpd,
        rpd_summary,
        sample_basin,
        weight_basin,
    )
    from netdyn.comparison import compare  # noqa: F401
    from netdyn.data import Dataset, DataSpec, list_datasets, load_dataset, read_idx, write_idx  # noqa: F401
    from netdyn.errors import (  # noqa: F401
        ConfigError,
        DatasetError,
        DivergedError,
        ModelError,
        NetdynError,
        RunError,
        StorageError,
    )
    from netdyn.models import MLP, ConvNet, ModelSpec, ResNet, Trace, ViT, register_transfer_function  # noqa: F401
    from netdyn.monitor import Monitor  # noqa: F401
    from netdyn.orchestration import (  # noqa: F401
        Analysis,
        RunResult,
        RunSpec,
        analyze,
        analyze_checkpoints,
        load_analysis,
        load_run,
        run,
        run_population,
    )
    from netdyn.prune import prune_run  # noqa: F401
    from netdyn.recommendation import recommend  # noqa: F401
    from netdyn.store import RunFolder  # noqa: F401
    from netdyn.sweeps import load_sweep, sweep  # noqa: F401
    from netdyn.training import TrainConfig, TrainResult, train, train_population  # noqa: F401
    from netdyn.transitions import detect_transitions  # noqa: F401
