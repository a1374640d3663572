"""Tails and segments on the fx path, linearised copies of the graph.

The nodes after a cut (or between cuts) are copied into a new graph with ``Graph.node_copy``: transfer functions
become the identity (gates excepted), batch norm the affine map of its running statistics, dropout the identity, and
opaque library blocks run under :class:`Linearising`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeGuard

import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn

from netdyn.models.adapter._constant_variant import _held_node, _holding
from netdyn.models.adapter._fx import _ancestors, _data_dependent, _is_gate, _is_pool, _transfer_name
from netdyn.models.adapter._registry import (
    _AVG_POOL_FUNCTIONS,
    _AVG_POOL_MODULES,
    _MAX_POOL_FUNCTIONS,
    _MAX_POOL_MODULES,
    OPAQUE_MODULES,
    _linearised_call,
)


def _tail_nodes(graph: fx.Graph, cut: fx.Node) -> tuple[list[fx.Node], list[fx.Node]]:
    """The nodes of the tail (neither the cut nor a data-dependent ancestor of it) and its inputs.

    The inputs are the cut, then every other trunk node a tail node reads (a skip crossing the cut).
    """
    dependent = _data_dependent(graph)
    trunk = ({cut} | _ancestors(cut)) & dependent
    body = [n for n in graph.nodes if n not in trunk and n.op not in ("placeholder", "output")]
    (result,) = [n for n in graph.nodes if n.op == "output"]
    inputs = [cut]
    for n in [*body, result]:
        for a in n.all_input_nodes:
            if a in trunk and a not in inputs:
                inputs.append(a)
    return body, inputs


def build_tail(
    graph_module: fx.GraphModule, cut: fx.Node, constants: dict[str, torch.Tensor] | None = None
) -> tuple[fx.GraphModule, tuple[str, ...]]:
    """The tail of ``cut``: every node that is neither the cut nor one of its ancestors, linearised.

    The nodes are copied with ``Graph.node_copy``; each elementwise transfer function that is not a gate becomes
    the identity, batch norm the affine map of its running statistics, dropout the identity, and an opaque library
    block (``OPAQUE_MODULES``) is called under :class:`Linearising`. With ``constants`` (node name -> training-set
    mean, :meth:`Network.constant_variant`), each LayerNorm's scale and each softmax's output are held at theirs.
    Returns the GraphModule (inputs: the cut's value, then the skips crossing it) and the names of the nodes it
    takes.
    """
    body, inputs = _tail_nodes(graph_module.graph, cut)
    (result,) = [n for n in graph_module.graph.nodes if n.op == "output"]
    return _linearised_copy(graph_module, body, inputs, result.args[0], constants)


def build_segment(
    graph_module: fx.GraphModule, sources: Sequence[fx.Node], target: fx.Node
) -> tuple[fx.GraphModule, tuple[str, ...]]:
    """The part of the graph that computes ``target`` from ``sources``, linearised as a tail is.

    Its nodes are ``target`` and those of its ancestors that are neither a source nor a data-dependent ancestor of
    one; each elementwise transfer function among them becomes the identity, batch norm its running-statistics map
    (:func:`build_tail`). Returns the GraphModule (inputs: the sources' values, then those of the other trunk nodes
    it reads, such as a skip) and the names of the nodes it takes.
    """
    dependent = _data_dependent(graph_module.graph)
    known = set(sources).union(*(_ancestors(s) for s in sources)) & dependent
    wanted = {target} | _ancestors(target)
    body = [n for n in graph_module.graph.nodes
            if n in wanted and n not in known and n.op not in ("placeholder", "output")]
    inputs = list(sources)
    read = [a for n in body for a in n.all_input_nodes] + ([] if target in body else [target])
    for a in read:
        if a in known and a not in inputs:
            inputs.append(a)
    return _linearised_copy(graph_module, body, inputs, target)


def transfer_input(graph_module: fx.GraphModule, node: fx.Node) -> fx.Node:
    """The local field of a node: the input of the transfer function that produces it.

    Where ``node`` applies an elementwise transfer function (not a gate), its input; where ``node`` is the pooling
    directly after one (a default cut of a conv net), that transfer function's input; ``node`` itself otherwise
    (no transfer function produces it).
    """
    modules = dict(graph_module.named_modules())
    source = node
    pools = (_MAX_POOL_MODULES + _AVG_POOL_MODULES, _MAX_POOL_FUNCTIONS + _AVG_POOL_FUNCTIONS)
    if _is_pool(node, modules, *pools) and node.all_input_nodes:
        source = node.all_input_nodes[0]
    if _transfer_name(source, modules) is not None and not _is_gate(source, _data_dependent(graph_module.graph)):
        return source.all_input_nodes[0]
    return node


def _linearised_copy(
    graph_module: fx.GraphModule, body: Sequence[fx.Node], inputs: Sequence[fx.Node], result: Any,
    constants: dict[str, torch.Tensor] | None = None,
) -> tuple[fx.GraphModule, tuple[str, ...]]:
    """``body``'s nodes copied into a new graph that takes ``inputs`` and returns ``result``, linearised."""
    modules = dict(graph_module.named_modules())
    dependent = _data_dependent(graph_module.graph)
    graph = fx.Graph()
    env: dict[fx.Node, fx.Node] = {n: graph.placeholder(n.name) for n in inputs}
    held: list[tuple[fx.Node, int, torch.Tensor]] = []
    for node in body:
        if _transfer_name(node, modules) is not None and not _is_gate(node, dependent):
            env[node] = env[node.all_input_nodes[0]]
        elif node.op == "call_module" and isinstance(modules[str(node.target)], nn.modules.dropout._DropoutNd):
            env[node] = env[node.all_input_nodes[0]]
        elif node.op == "call_module" and _running_batchnorm(bn := modules[str(node.target)]):
            env[node] = _batchnorm_node(graph, str(node.target), bn, env[node.all_input_nodes[0]])
        elif constants is not None and (copy_ := _held_node(graph, node, env, modules, constants, held)) is not None:
            env[node] = copy_
        elif node.op == "call_module" and isinstance(modules[str(node.target)], OPAQUE_MODULES):
            args = fx.map_arg(node.args, lambda a: env[a])
            kwargs = fx.map_arg(node.kwargs, lambda a: env[a])
            env[node] = graph.call_function(_linearised_call, (graph.get_attr(str(node.target)), *args), kwargs)
        else:
            env[node] = graph.node_copy(node, lambda a: env[a])
    graph.output(env[result])
    return _holding(fx.GraphModule(graph_module, graph), held), tuple(n.name for n in inputs)


def _running_batchnorm(module: nn.Module) -> TypeGuard[nn.modules.batchnorm._BatchNorm]:
    return isinstance(module, nn.modules.batchnorm._BatchNorm) and module.running_mean is not None


def _batchnorm_node(tail: fx.Graph, target: str, bn: nn.modules.batchnorm._BatchNorm, x: fx.Node) -> fx.Node:
    """``F.batch_norm`` with the module's running statistics: its evaluation-mode affine map."""
    def attr(name: str) -> fx.Node | None:
        return tail.get_attr(f"{target}.{name}") if getattr(bn, name) is not None else None

    args: tuple[Any, ...] = (x, attr("running_mean"), attr("running_var"), attr("weight"), attr("bias"), False, 0.0,
                             bn.eps)
    return tail.call_function(F.batch_norm, args)
