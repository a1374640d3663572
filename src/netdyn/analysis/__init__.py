"""The framework's quantities (SPEC section 5), one module each, and ``analyze`` which composes them.

Every function takes ``(net, data, ...)`` and returns a tidy table (or a small result object holding them);
none of them plots, prints, saves or picks a device. ``QUANTITIES`` is the registry that ``analyze``, the
figures, the report and the contract test iterate.
"""

from netdyn.analysis.analyze import Analysis, analyze, analyze_checkpoints
from netdyn.analysis.basins import (
    BasinCurve,
    bn_perturbation,
    nearest_train_distance,
    sample_basin,
    weight_basin,
)
from netdyn.analysis.config import EFFECTIVE_TOLERANCE, AnalysisConfig
from netdyn.analysis.fields import LocalFields, local_fields
from netdyn.analysis.geometry import class_geometry
from netdyn.analysis.lmap import lmap_accuracy, lmap_matrix
from netdyn.analysis.modes import neuron_mode_census, neuron_modes
from netdyn.analysis.network import effective_layer, network_accuracy
from netdyn.analysis.probes import fit_probe, lp_accuracy
from netdyn.analysis.quantities import QUANTITIES, AnalysisContext, Quantity
from netdyn.analysis.ranks import rpd, rpd_summary

__all__ = [
    "EFFECTIVE_TOLERANCE",
    "QUANTITIES",
    "Analysis",
    "AnalysisConfig",
    "AnalysisContext",
    "Quantity",
    "effective_layer",
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
