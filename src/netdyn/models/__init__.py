"""The network: :class:`MLP` with explicit layer blocks, and :class:`Trace`, its per-layer values on a batch."""

from netdyn.models.activations import ACTIVATIONS, Gauss, gauss
from netdyn.models.mlp import BN_MODES, MLP, LayerBlock, Trace
from netdyn.models.spec import INITS, RESIDUALS, ModelSpec
from netdyn.models.stacked import StackedMLP, fold_batchnorm, fold_block, stacked_forward

__all__ = [
    "ACTIVATIONS",
    "BN_MODES",
    "INITS",
    "MLP",
    "RESIDUALS",
    "Gauss",
    "LayerBlock",
    "ModelSpec",
    "StackedMLP",
    "Trace",
    "fold_batchnorm",
    "fold_block",
    "gauss",
    "stacked_forward",
]
