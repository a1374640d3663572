"""The network: :class:`MLP` with explicit layer blocks, and :class:`Trace`, its per-layer values on a batch."""

from netdyn.models.activations import ACTIVATIONS, Gauss, gauss
from netdyn.models.mlp import BN_MODES, MLP, LayerBlock, Trace
from netdyn.models.spec import INITS, RESIDUALS, ModelSpec

__all__ = ["ACTIVATIONS", "BN_MODES", "INITS", "MLP", "RESIDUALS", "Gauss", "LayerBlock", "ModelSpec", "Trace", "gauss"]
