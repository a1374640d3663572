"""What the network adapter recognises in a model, and how a tail sets it aside.

The transfer functions (module, functional and method forms; :func:`register_transfer_function` adds to them),
pooling, adds and multiplies, the opaque library blocks torch.fx cannot see into, :class:`Linearising` (every
transfer function the identity) and :func:`evaluating` (evaluation mode for a block). The registries are the one
shared copy: the other modules of the adapter read them as ``_registry._TRANSFER_MODULES`` (and so on) at call
time, so that replacing one (a test's monkeypatch) acts everywhere.
"""

from __future__ import annotations

import contextlib
import operator
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from netdyn.errors import ConfigError
from netdyn.models.activations import ACTIVATIONS, Gauss, gauss

_TRANSFER_MODULES: dict[type, str] = {
    nn.ReLU: "relu",
    nn.GELU: "gelu",
    nn.Tanh: "tanh",
    nn.Sigmoid: "sigmoid",
    nn.LeakyReLU: "leaky_relu",
    nn.ELU: "elu",
    nn.SiLU: "silu",
    nn.Identity: "linear",  # netdyn's own ``linear`` transfer function in module form (MLP.from_sequential)
    Gauss: "gauss",
}
_TRANSFER_FUNCTIONS: dict[Callable[..., Any], str] = {
    F.relu: "relu",
    F.relu_: "relu",
    torch.relu: "relu",
    torch.relu_: "relu",
    F.gelu: "gelu",
    torch.tanh: "tanh",
    F.tanh: "tanh",
    torch.sigmoid: "sigmoid",
    F.sigmoid: "sigmoid",
    F.leaky_relu: "leaky_relu",
    F.leaky_relu_: "leaky_relu",
    F.elu: "elu",
    F.elu_: "elu",
    F.silu: "silu",
    gauss: "gauss",
    ACTIVATIONS["linear"]: "linear",
}
_TRANSFER_METHODS = {"relu": "relu", "relu_": "relu", "tanh": "tanh", "tanh_": "tanh", "sigmoid": "sigmoid",
                     "sigmoid_": "sigmoid"}

_MAX_POOL_MODULES: tuple[type, ...] = (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AdaptiveMaxPool1d,
                                       nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d)
_AVG_POOL_MODULES: tuple[type, ...] = (nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d, nn.AdaptiveAvgPool1d,
                                       nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d)
_MAX_POOL_FUNCTIONS: tuple[Callable[..., Any], ...] = (F.max_pool1d, F.max_pool2d, F.max_pool3d,
                                                       F.adaptive_max_pool1d, F.adaptive_max_pool2d,
                                                       F.adaptive_max_pool3d)
_AVG_POOL_FUNCTIONS: tuple[Callable[..., Any], ...] = (F.avg_pool1d, F.avg_pool2d, F.avg_pool3d,
                                                       F.adaptive_avg_pool1d, F.adaptive_avg_pool2d,
                                                       F.adaptive_avg_pool3d)
_ADDS = (operator.add, operator.iadd, torch.add)
_MULS = (operator.mul, operator.imul, torch.mul)

#: Library blocks whose forward torch.fx cannot see into (fast paths, data-dependent checks): each is one leaf
#: node, cut at its output, its transfer functions linearised in a tail by :class:`Linearising`.
OPAQUE_MODULES: tuple[type[nn.Module], ...] = (nn.TransformerEncoderLayer, nn.TransformerDecoderLayer,
                                               nn.MultiheadAttention, nn.TransformerEncoder, nn.TransformerDecoder,
                                               nn.Transformer)


def register_transfer_function(fn_or_module_type: Callable[..., Any] | type[nn.Module], name: str) -> None:
    """Teach the network adapter an elementwise transfer function it does not know.

    ``fn_or_module_type`` is a module class (each of its instances is a transfer function: a cut by default, the
    identity in a tail) or a function of one tensor. A plain Python function is recognised where a model calls
    it by its global name (torch.fx wraps it as one op); a function that handles ``__torch_function__`` (as
    ``torch.nn.functional.relu`` does) is recognised wherever it is called.
    """
    if not isinstance(name, str) or not name:
        raise ConfigError(f"a transfer function needs a non-empty name, got {name!r}")
    if isinstance(fn_or_module_type, type):
        if not issubclass(fn_or_module_type, nn.Module):
            raise ConfigError(f"a transfer function's type must be an nn.Module class, got {fn_or_module_type!r}")
        _TRANSFER_MODULES[fn_or_module_type] = name
    elif callable(fn_or_module_type):
        _TRANSFER_FUNCTIONS[fn_or_module_type] = name
    else:
        raise ConfigError(f"register_transfer_function takes a function or an nn.Module class, "
                          f"got {type(fn_or_module_type).__name__}")


def is_transfer_call(func: Any) -> bool:
    """Whether a function a TorchFunctionMode sees is an elementwise transfer function (functional or method form)."""
    try:
        if func in _TRANSFER_FUNCTIONS:
            return True
    except TypeError:  # an unhashable callable
        return False
    name = getattr(func, "__name__", None)
    return name in _TRANSFER_METHODS and getattr(torch.Tensor, str(name), None) is func


class Linearising(TorchFunctionMode):
    """Under this mode every elementwise transfer function returns its input while ``active`` (see docs/any-network.md).

    It sees the functional and method forms wherever they are called, inside library blocks too (a mode disables
    ``nn.TransformerEncoderLayer``'s fused fast path, so its GELU is called and linearised); module forms call them.
    """

    def __init__(self, active: bool = True) -> None:
        super().__init__()
        self.active = active

    def __torch_function__(self, func: Any, types: Any, args: Sequence[Any] = (),
                           kwargs: dict[str, Any] | None = None) -> Any:
        kwargs = kwargs or {}
        if self.active and is_transfer_call(func):
            return args[0] if args else next(iter(kwargs.values()))
        return func(*args, **kwargs)


def _linearised_call(module: nn.Module, *args: Any, **kwargs: Any) -> Any:
    """An opaque library block called with its transfer functions linearised (its node in a tail)."""
    with Linearising():
        return module(*args, **kwargs)


@contextlib.contextmanager
def evaluating(*modules: nn.Module) -> Iterator[None]:
    """Every module in evaluation mode inside the block, each submodule's own mode restored after it."""
    modes = [(m, m.training) for module in modules for m in module.modules()]
    for module in modules:
        module.eval()
    try:
        yield
    finally:
        for m, mode in modes:
            m.training = mode
