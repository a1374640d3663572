"""The framework's quantities (SPEC section 5), one module each, and ``analyze`` which composes them.

Every function takes ``(net, data, ...)`` and returns a tidy table (or a small result object holding them);
none of them plots, prints, saves or picks a device.
"""

from netdyn.analysis.analyze import Analysis, AnalysisConfig, analyze, analyze_checkpoints, network_accuracy
from netdyn.analysis.basins import (
    BasinCurve,
    bn_perturbation,
    nearest_train_distance,
    sample_basin,
    weight_basin,
)
from netdyn.analysis.fields import LocalFields, local_fields
from netdyn.analysis.geometry import class_geometry
from netdyn.analysis.lmap import lmap_accuracy, lmap_matrix
from netdyn.analysis.modes import neuron_mode_census, neuron_modes
from netdyn.analysis.probes import fit_probe, lp_accuracy
from netdyn.analysis.ranks import rpd, rpd_summary

__all__ = [
    "Analysis",
    "AnalysisConfig",
    "BasinCurve",
    "LocalFields",
    "analyze",
    "analyze_checkpoints",
    "bn_perturbation",
    "class_geometry",
    "fit_probe",
    "local_fields",
    "lmap_accuracy",
    "lmap_matrix",
    "lp_accuracy",
    "nearest_train_distance",
    "network_accuracy",
    "neuron_mode_census",
    "neuron_modes",
    "rpd",
    "rpd_summary",
    "sample_basin",
    "weight_basin",
]
