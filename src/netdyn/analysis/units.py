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
from collections.abc import Callable, Iterable, Iterator, Sequence
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


HELD_BYTES = 1 << 29
"""Bytes of activations and references that :func:`activations_references_contributions` holds at once."""


def activations_references_contributions(
    network: Network, layers: Sequence[int], x: torch.Tensor
) -> Iterator[tuple[int, torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Yield ``(l, activations, reference, contributions)`` of each cut in ``layers`` on samples ``x`` ([P, d]).

    The activations and the linear reference in the model's dtype, ``[P, *shape]``; the contributions as
    :func:`unit_contributions` gives them, float64 ``[C, P, units]``. The reference is computed from the previous
    cut's local field with every transfer function up to this cut linearised (for a netdyn-style MLP the reference
    of docs/quantities.md#neuron-modes); skips crossing into the segment keep their true values. What neuron modes
    take: one pass of the model per chunk gives all three for as many cuts as :data:`HELD_BYTES` holds.

    See docs/any-network.md#units-rpd-and-neuron-modes.
    """
    graph_module = network.graph_module
    for group in _groups(network, layers, 2 * x.shape[0]):
        nodes = {l: _node(network, l) for l in group}
        segments = {l: build_segment(graph_module, [transfer_input(graph_module, _node(network, l - 1))], nodes[l])
                    for l in group}
        also = {n.name for n in nodes.values()} | {n for _, names in segments.values() for n in names}
        held: dict[int, tuple[list[torch.Tensor], ...]] = {l: ([], [], []) for l in group}
        for chunks, captured in contributions_by_cut(network, group, x, also=also):
            for l, (segment, names) in segments.items():
                values, references, contributions = held[l]
                values.append(captured[nodes[l].name])
                contributions.append(chunks[l])
                with torch.no_grad(), evaluating(segment):
                    references.append(segment(*[_copy(captured[n]) for n in names]))
        for l in group:
            values, references, contributions = held.pop(l)
            yield l, torch.cat(values), torch.cat(references), torch.cat(contributions, dim=1)


def _groups(network: Network, layers: Sequence[int], rows: int) -> list[list[int]]:
    """``layers`` in consecutive groups whose ``rows`` samples of activations fit :data:`HELD_BYTES` together."""
    groups: list[list[int]] = []
    total = 0
    for l in layers:
        size = rows * _cut_bytes(network, l)
        if not groups or total + size > HELD_BYTES:
            groups.append([])
            total = 0
        groups[-1].append(l)
        total += size
    return groups


def _cut_bytes(network: Network, layer: int) -> int:
    """Bytes of one sample's activations at cut ``layer``."""
    probe = network.activations(torch.zeros(1, *network.input_shape).flatten(1), layer)
    return probe[0].numel() * probe.element_size()


def _cut_numel(network: Network, layer: int) -> int:
    return network.activations(torch.zeros(1, *network.input_shape).flatten(1), layer)[0].numel()


def _copy(value: Any) -> Any:
    """A captured value another cut's computation may also read, copied before a graph that could write in place."""
    return value.clone() if isinstance(value, torch.Tensor) else value


def contributions_by_cut(
    network: Network, layers: Sequence[int], x: torch.Tensor, use: str = "output", also: Iterable[str] = ()
) -> Iterator[tuple[dict[int, torch.Tensor], dict[str, Any]]]:
    """:func:`unit_contributions` of the cuts in ``layers`` by chunks of samples, one pass of the model per chunk.

    Each chunk's contributions come by layer, with the values the pass captured (the nodes of ``also`` among them).
    """
    if not layers:
        return
    parts = {l: _contributor(network, l, x, True) for l in layers}
    fields = {l: _field_segment(network, l) for l in layers} if use == "field" else {}
    wanted = set(also) | {n for _, names in parts.values() for n in names}
    wanted |= {n for _, names in fields.values() for n in names}
    per_row = sum(8 * 16 * _cut_numel(network, l) for l in layers)
    for rows in iter_chunks(x.shape[0], chunk_rows(x.shape[0], per_row)):
        captured = network.capture(x[rows], wanted, logits=False)
        chunks = {}
        for l, (contribute, names) in parts.items():
            inputs = [_double(captured[n]) for n in names]
            if l in fields:
                segment, field_names = fields[l]
                with torch.no_grad(), evaluating(segment):
                    inputs[0] = segment(*[_copy(_double(captured[n])) for n in field_names])
            chunks[l] = contribute(inputs)
        yield chunks, captured


def element_contributions(network: Network, layer: int, x: torch.Tensor, use: str = "output") -> torch.Tensor:
    """Gradient x input of cut ``layer``'s linearised tail, per class: float64 [C, P, *shape].

    Entry [k, mu, ...] is the contribution of that activation of sample mu to the tail's output k. With
    ``use="field"`` the input is the cut's local field carried to the cut with its transfer function linearised
    (the field itself at a transfer function's output, its pooling where pooling follows; the cut itself where no
    transfer function produces it), and the gradient that of the tail there: M_l[k] h^l for an affine tail.
    """
    return torch.cat([chunk for chunk, _ in _contribution_chunks(network, layer, x, use)], dim=1)


def unit_contributions(network: Network, layer: int, x: torch.Tensor, use: str = "output") -> torch.Tensor:
    """:func:`element_contributions` summed over each unit's positions: float64 [C, P, units]."""
    return torch.cat([chunk for chunk, _ in _contribution_chunks(network, layer, x, use, units=True)], dim=1)


def _unit_sums(chunk: torch.Tensor, axis: int) -> torch.Tensor:
    """Element contributions [C, B, *shape] summed over each unit's positions: [C, B, units]."""
    if chunk.ndim <= 3:
        return chunk
    moved = chunk.movedim(axis if axis < 0 else axis + 1, 2)
    return moved.reshape(*moved.shape[:3], -1).sum(-1)


def _contributor(
    network: Network, layer: int, x: torch.Tensor, units: bool
) -> tuple[Callable[[list[Any]], torch.Tensor], list[str]]:
    """How a chunk's contributions follow from its tail inputs (float64), and the tail inputs it reads.

    Where the tail passes the affine check (:func:`~netdyn.models.adapter.fit_affine` on ``x``), its gradient is
    the same matrix M_l at every sample and one Jacobian serves them all (with ``units``, a unit's sum over its
    positions is one matrix product, M_l's block of the unit times the unit's activations); otherwise one
    vector-Jacobian product per class and chunk gives each sample's own gradient.
    """
    fit = fit_affine(network, layer, x)
    names = list(network.tail_inputs(layer))
    axis = unit_axis(network, layer)
    if fit.error <= AFFINE_TOLERANCE:
        matrix = fit.matrices[0]
        blocks = as_units(matrix.view(-1, *network.activations(x[:1], layer).shape[1:]), axis)  # [C, units, pos]

        def affine(inputs: list[Any]) -> torch.Tensor:
            if units:
                return torch.einsum("kup,bup->kbu", blocks, as_units(inputs[0], axis))
            return matrix.view(-1, 1, *inputs[0].shape[1:]) * inputs[0]

        return affine, names[:1]
    tail = copy.deepcopy(network.tail(layer)).double()

    def per_sample(inputs: list[Any]) -> torch.Tensor:
        chunk = _class_gradients(tail, inputs) * inputs[0]
        return _unit_sums(chunk, axis) if units else chunk

    return per_sample, names


def _contribution_chunks(
    network: Network, layer: int, x: torch.Tensor, use: str, units: bool = False, also: Iterable[str] = ()
) -> Iterator[tuple[torch.Tensor, dict[str, Any]]]:
    """:func:`element_contributions` (with ``units``, :func:`unit_contributions`) by chunks of samples.

    Each chunk comes with the values the model's pass captured for it, the nodes of ``also`` among them.
    """
    contribute, names = _contributor(network, layer, x, units)
    segment, field_names = _field_segment(network, layer) if use == "field" else (None, ())
    wanted = set(field_names) | set(names) | set(also)
    size = _samples_per_chunk(network, layer, x.shape[0], 16)
    for rows in iter_chunks(x.shape[0], size):
        captured = network.capture(x[rows], wanted, logits=False)
        inputs = [_double(captured[n]) for n in names]
        if segment is not None:
            with torch.no_grad(), evaluating(segment):
                inputs[0] = segment(*[_double(captured[n]) for n in field_names])
        yield contribute(inputs), captured


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
