"""Figures: each function takes the tables of ``netdyn.analysis`` / training and returns a matplotlib Figure.

Nothing here computes a quantity: the functions select, sort and draw. Each takes an optional ``ax`` (an Axes
to draw into, or a sequence of Axes for the multi-panel ones) and builds a new Figure, outside pyplot,
otherwise.
"""

from netdyn.plots.basins import plot_basin, plot_local_fields
from netdyn.plots.layers import (
    plot_class_geometry,
    plot_layer_accuracy,
    plot_neuron_modes,
    plot_rho_distribution,
    plot_rpd,
    plot_rpd_summary,
)
from netdyn.plots.save import figure_bytes, save_figure
from netdyn.plots.training import plot_evolution, plot_training

__all__ = [
    "figure_bytes",
    "plot_basin",
    "plot_class_geometry",
    "plot_evolution",
    "plot_layer_accuracy",
    "plot_local_fields",
    "plot_neuron_modes",
    "plot_rho_distribution",
    "plot_rpd",
    "plot_rpd_summary",
    "plot_training",
    "save_figure",
]
