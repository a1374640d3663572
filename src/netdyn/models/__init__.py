"""The network: :class:`MLP` with explicit layer blocks, :class:`Trace`, its per-layer values on a batch, the vision
families :class:`ConvNet`, :class:`ResNet` and :class:`ViT`, and the adapter that reads any ``nn.Module`` as cuts
and tails (:func:`read_network`)."""

from netdyn.models.activations import ACTIVATIONS, Gauss, gauss
from netdyn.models.adapter import Cut, Network, read_network, register_transfer_function
from netdyn.models.mlp import BN_MODES, MLP, LayerBlock, Trace
from netdyn.models.spec import INITS, RESIDUALS, ModelSpec
from netdyn.models.stacked import StackedMLP, fold_batchnorm, fold_block, stacked_forward
from netdyn.models.vision import ConvNet, ResNet, ViT

__all__ = [
    "ACTIVATIONS",
    "BN_MODES",
    "ConvNet",
    "Cut",
    "INITS",
    "MLP",
    "RESIDUALS",
    "ResNet",
    "Gauss",
    "LayerBlock",
    "ModelSpec",
    "Network",
    "StackedMLP",
    "Trace",
    "ViT",
    "fold_batchnorm",
    "fold_block",
    "gauss",
    "read_network",
    "register_transfer_function",
    "stacked_forward",
]
