"""A cut's units, their contributions and their linear references, for any model read by the adapter (see
docs/any-network.md).

A *unit* (the "neuron" of the RPD and the neuron modes, docs/quantities.md) is one output of the affine map that
produces the cut: a unit of a linear layer, a channel of a conv layer (its positions are the unit's positions), a unit
of a transformer's MLP summed over its tokens. The unit axis is found from the nearest affine map upstream of the cut:
``nn.Linear`` / ``F.linear`` index their outputs along the last axis, ``nn.ConvNd`` / ``F.convNd`` along axis 1 (also
the default).

*Contributions* are gradient x input of the linearised tail (:meth:`Network.tail`: transfer functions become the
identity, batch norm its running statistics, gates kept) with respect to the cut's activations, per output class,
computed with ``torch.func.vjp`` in float64 and summed over each unit's positions. For an affine tail they are
exactly ``M_l[k, i] x_i`` (see docs/quantities.md#rpd).

The *linear reference* of a cut (docs/any-network.md#units-rpd-and-neuron-modes) is its value computed from the local
field of the previous cut (the input of the transfer function that produces it,
:func:`~netdyn.models.adapter.transfer_input`) with every transfer function from there to the cut replaced by the
identity (:func:`~netdyn.models.adapter.build_segment`).

*No privileged basis.* A model is read as a transformer when it is residual (an add joins a tensor to one of its
descendants) and normalises with LayerNorm / RMSNorm or computes attention (softmax, ``scaled_dot_product_attention``,
``nn.MultiheadAttention``). In such a model a cut that no transfer function produces (directly or through the pooling
after it) is part of its residual stream, which a rotation absorbed by the weights leaves unchanged: its units are
not individually meaningful, and RPD and neuron modes are NaN there with :data:`NO_PRIVILEGED_BASIS` as the reason.
A ResNet has no LayerNorm or attention, and its block outputs end in a ReLU anyway: it keeps RPD per channel.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from typing import Any

import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn

from netdyn.analysis._common import chunk_rows, iter_chunks
from netdyn.models.adapter import AFFINE_TOLERANCE, Network, build_segment, evaluating, fit_affine, transfer_input

NO_PRIVILEGED_BASIS = (
    "no privileged basis: a transformer's residual stream (a rotation absorbed by the weights changes nothing); "
    "RPD and neuron modes are measured at its activation cuts"
)

_MIXING_MODULES: tuple[type, ...] = (nn.LayerNorm, nn.RMSNorm, nn.MultiheadAttention)
_TOKEN_MIXERS: tuple[Callable[..., Any], ...] = (F.layer_norm, F.rms_norm, F.softmax, torch.softmax,
                                                F.scaled_dot_product_attention)
_LAST_AXIS: tuple[Callable[..., Any], ...] = (F.linear,)
_CHANNEL_AXIS: tuple[Callable[..., Any], ...] = (F.conv1d, F.conv2d, F.conv3d)


def _node(network: Network, layer: int) -> fx.Node:
    name = network.cut(layer).node
    return next(n for n in network.graph_module.graph.nodes if n.name == name)


def _is_transformer(network: Network) -> bool:
    """Residual, with LayerNorm / RMSNorm or attention somewhere in the graph."""
    if not network.residual:
        return False
    modules = dict(network.graph_module.named_modules())
    for n in network.graph_module.graph.nodes:
        if n.op == "call_module" and isinstance(modules[str(n.target)], _MIXING_MODULES):
            return True
        if n.op == "call_function" and any(n.target is f for f in _TOKEN_MIXERS):
            return True
        if n.op == "call_method" and n.target == "softmax":
            return True
    return False


def no_privileged_basis(network: Network, layer: int) -> bool:
    """Whether cut ``layer`` is a transformer's residual stream (see the module's docstring for the rule)."""
    node = _node(network, layer)
    return _is_transformer(network) and transfer_input(network.graph_module, node) is node


def unit_axis(network: Network, layer: int) -> int:
    """The axis of cut ``layer``'s activations (batch axis included) that indexes its units.

    -1 where the nearest affine map upstream (following each node's first data-dependent input) is a linear layer,
    1 where it is a convolution, and 1 where none is found.
    """
    modules = dict(network.graph_module.named_modules())
    node: fx.Node | None = _node(network, layer)
    while node is not None and node.op != "placeholder":
        if node.op == "call_module":
            module = modules[str(node.target)]
            if isinstance(module, nn.Linear):
                return -1
            if isinstance(module, nn.modules.conv._ConvNd):
                return 1
        elif node.op == "call_function" and any(node.target is f for f in _LAST_AXIS + _CHANNEL_AXIS):
            return -1 if any(node.target is f for f in _LAST_AXIS) else 1
        node = next((a for a in node.all_input_nodes if a.op != "get_attr"), None)
    return 1


def as_units(values: torch.Tensor, axis: int) -> torch.Tensor:
    """Activations [P, *shape] as [P, units, positions] (positions 1 for a linear layer's units)."""
    if values.ndim == 2:
        return values.unsqueeze(-1)
    moved = values.movedim(axis, 1)
    return moved.reshape(moved.shape[0], moved.shape[1], -1)


# ------------------------------------------------------------------------------------------ values by chunks
def _samples_per_chunk(network: Network, layer: int, n: int, factor: int) -> int:
    probe = network.activations(torch.zeros(1, *network.input_shape).flatten(1), layer)
    return chunk_rows(n, 8 * probe[0].numel() * factor)


def activations_and_reference(network: Network, layer: int, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Cut ``layer``'s activations and linear reference on samples ``x`` ([P, d]), in the model's dtype, [P, *shape].

    The reference is computed from the previous cut's local field with every transfer function up to this cut
    linearised (docs/any-network.md#units-rpd-and-neuron-modes; for a netdyn-style MLP the reference of
    docs/quantities.md#neuron-modes). Skips crossing into the segment keep their true values. One pass of the model per
    chunk gives both.
    """
    graph_module = network.graph_module
    node = _node(network, layer)
    segment, names = build_segment(graph_module, [transfer_input(graph_module, _node(network, layer - 1))], node)
    size = _samples_per_chunk(network, layer, x.shape[0], 4)
    values, references = [], []
    for rows in iter_chunks(x.shape[0], size):
        captured = network.capture(x[rows], {*names, node.name}, logits=False)
        values.append(captured[node.name])
        with torch.no_grad(), evaluating(segment):
            references.append(segment(*[captured[n] for n in names]))
    return torch.cat(values), torch.cat(references)


def element_contributions(network: Network, layer: int, x: torch.Tensor, use: str = "output") -> torch.Tensor:
    """Gradient x input of cut ``layer``'s linearised tail, per class: float64 [C, P, *shape].

    Entry [k, mu, ...] is the contribution of that activation of sample mu to the tail's output k. With
    ``use="field"`` the input is the cut's local field carried to the cut with its transfer function linearised
    (the field itself at a transfer function's output, its pooling where pooling follows; the cut itself where no
    transfer function produces it), and the gradient that of the tail there: M_l[k] h^l for an affine tail.
    """
    return torch.cat(list(_contribution_chunks(network, layer, x, use)), dim=1)


def unit_contributions(network: Network, layer: int, x: torch.Tensor, use: str = "output") -> torch.Tensor:
    """:func:`element_contributions` summed over each unit's positions: float64 [C, P, units]."""
    axis = unit_axis(network, layer)
    parts = []
    for chunk in _contribution_chunks(network, layer, x, use):
        if chunk.ndim > 3:
            moved = chunk.movedim(axis if axis < 0 else axis + 1, 2)
            chunk = moved.reshape(*moved.shape[:3], -1).sum(-1)
        parts.append(chunk)
    return torch.cat(parts, dim=1)


def _contribution_chunks(network: Network, layer: int, x: torch.Tensor, use: str) -> Iterator[torch.Tensor]:
    """:func:`element_contributions` by chunks of samples.

    Where the tail passes the affine check (:func:`~netdyn.models.adapter.fit_affine` on ``x``), its gradient is
    the same matrix M_l at every sample and one Jacobian serves them all; otherwise one vector-Jacobian product
    per class and chunk gives each sample's own gradient.
    """
    fit = fit_affine(network, layer, x)
    names = list(network.tail_inputs(layer))
    contribute: Callable[[list[Any]], torch.Tensor]
    if fit.error <= AFFINE_TOLERANCE:
        matrix = fit.matrices[0]
        names = names[:1]

        def contribute(inputs: list[Any]) -> torch.Tensor:
            return matrix.view(-1, 1, *inputs[0].shape[1:]) * inputs[0]
    else:
        tail = copy.deepcopy(network.tail(layer)).double()

        def contribute(inputs: list[Any]) -> torch.Tensor:
            return _class_gradients(tail, inputs) * inputs[0]

    segment, field_names = _field_segment(network, layer) if use == "field" else (None, ())
    wanted = set(field_names) | set(names)
    size = _samples_per_chunk(network, layer, x.shape[0], 16)
    for rows in iter_chunks(x.shape[0], size):
        captured = network.capture(x[rows], wanted, logits=False)
        inputs = [_double(captured[n]) for n in names]
        if segment is not None:
            with torch.no_grad(), evaluating(segment):
                inputs[0] = segment(*[_double(captured[n]) for n in field_names])
        yield contribute(inputs)


def _field_segment(network: Network, layer: int) -> tuple[fx.GraphModule, tuple[str, ...]]:
    node = _node(network, layer)
    segment, names = build_segment(network.graph_module, [transfer_input(network.graph_module, node)], node)
    return copy.deepcopy(segment).double(), names


def _double(value: Any) -> Any:
    return value.double() if isinstance(value, torch.Tensor) and value.is_floating_point() else value


def _class_gradients(tail: nn.Module, inputs: list[Any]) -> torch.Tensor:
    """The gradient of each output class of the tail with respect to its first input, at each sample [C, B, ...].

    The samples do not interact in evaluation mode, so one vector-Jacobian product per class serves the batch.
    """
    def run(value: torch.Tensor) -> torch.Tensor:
        return tail(value, *[v.clone() if isinstance(v, torch.Tensor) else v for v in inputs[1:]])

    with evaluating(tail):
        linearised = torch.func.vjp(run, inputs[0].clone())
        out, pullback = linearised[0], linearised[1]
        basis = torch.eye(out.shape[1], dtype=out.dtype, device=out.device)
        gradients = [pullback(basis[k].expand_as(out))[0] for k in range(out.shape[1])]
    return torch.stack(gradients).detach()
