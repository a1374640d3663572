"""The framework's quantities (see docs/quantities.md), one module each, and ``compute_quantities`` which composes them.

Every function takes ``(net, data, ...)`` and returns a tidy table (or a small result object holding them);
none of them plots, prints, saves or picks a device. ``QUANTITIES`` is the registry that ``compute_quantities``
(behind ``netdyn.analyze``), the monitor and the contract test iterate; figures and report sections register by
the same names in ``netdyn.plots.registry`` and ``netdyn.report.sections``.
"""

from netdyn.analysis.basins import (
    BasinCurve,
    bn_perturbation,
    nearest_train_distance,
    sample_basin,
    weight_basin,
)
from netdyn.analysis.compute import compute_quantities
from netdyn.analysis.config import AnalysisConfig
from netdyn.analysis.fields import LocalFields, local_fields
from netdyn.analysis.geometry import class_geometry
from netdyn.analysis.lmap import lmap_accuracy, lmap_matrix
from netdyn.analysis.modes import neuron_mode_census, neuron_modes
from netdyn.analysis.network import EFFECTIVE_TOLERANCE, effective_layer, network_accuracy
from netdyn.analysis.probes import fit_probe, lp_accuracy
from netdyn.analysis.quantities import QUANTITIES, AnalysisContext, Quantity
from netdyn.analysis.ranks import rpd, rpd_summary

__all__ = [
    "EFFECTIVE_TOLERANCE",
    "QUANTITIES",
    "AnalysisConfig",
    "AnalysisContext",
    "Quantity",
    "effective_layer",
    "BasinCurve",
    "LocalFields",
    "compute_quantities",
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
