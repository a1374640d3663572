"""A model pruned at a cut: the trunk up to the cut, then one ``nn.Linear`` (``netdyn prune``; see
docs/any-network.md#l-map-tails).

:class:`Pruned` holds the original model (the trunk's weights are its own), the cut's name and the Linear that
replaces the tail: the L-map's ``M_l x^l + c_l`` on the cut's flattened activations. Its forward runs only the
trunk, a ``torch.fx`` graph of the cut's ancestors, so the layers after the cut cost nothing. A run folder keeps it
as the original model's weights, the Linear's and the cut's name, and rebuilds it from those.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.fx as fx
from torch import nn

from netdyn.errors import ModelError
from netdyn.models.adapter import read_network


def _trunk(model: nn.Module, input_shape: Sequence[int], cut: str) -> fx.GraphModule:
    """The graph of ``model`` up to the cut named ``cut`` (its output is the cut's value)."""
    network = read_network(model, input_shape, [cut])
    graph_module = network.graph_module
    target = next(n for n in graph_module.graph.nodes if n.name == network.cut(1).node)
    needed: set[fx.Node] = set()
    stack = [target]
    while stack:
        node = stack.pop()
        if node not in needed:
            needed.add(node)
            stack.extend(node.all_input_nodes)
    graph = fx.Graph()
    env: dict[fx.Node, fx.Node] = {}
    for node in graph_module.graph.nodes:
        if node in needed:
            env[node] = graph.node_copy(node, lambda a: env[a])
    graph.output(env[target])
    return fx.GraphModule(graph_module, graph)


class Pruned(nn.Module):
    """The trunk of ``model`` up to ``cut``, its activations flattened, then ``linear`` (the collapsed tail).

    ``input_shape`` is how one sample is fed to ``model``; the pruned model takes the same input as ``model``.
    Its state dict is the original model's (``model.*``) and the Linear's (``linear.*``): the layers after the
    cut are kept there but never run. :attr:`trunk_parameters` counts only the parameters the forward uses.
    """

    def __init__(self, model: nn.Module, cut: str, linear: nn.Linear, input_shape: Sequence[int]) -> None:
        super().__init__()
        self.model = model
        self.linear = linear
        self.cut = cut
        self.input_shape = tuple(int(s) for s in input_shape)
        # kept outside the module tree: it shares the original's submodules, which the state dict holds once
        self.__dict__["_trunk"] = _trunk(model, self.input_shape, cut)

    @property
    def trunk(self) -> fx.GraphModule:
        """The graph of the original model up to the cut."""
        trunk: fx.GraphModule = self.__dict__["_trunk"]
        return trunk

    @property
    def trunk_parameters(self) -> int:
        """The parameters the pruned forward uses: the trunk's and the Linear's."""
        return sum(p.numel() for p in self.trunk.parameters()) + sum(p.numel() for p in self.linear.parameters())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The Linear of the cut's flattened activations on ``x`` (the original model's input)."""
        features = self.trunk(x)
        if not isinstance(features, torch.Tensor):
            raise ModelError(f"the cut {self.cut!r} does not hold one tensor")
        return self.linear(features.flatten(1))

    def extra_repr(self) -> str:
        """The cut and the Linear's shape."""
        return f"cut={self.cut!r}, input_shape={self.input_shape}"
