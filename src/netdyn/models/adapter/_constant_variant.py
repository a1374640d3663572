"""``lmap_variant="constant"`` (see docs/any-network.md): LayerNorm scales and softmax patterns held at their means.

On the fx path: each LayerNorm's scale and each softmax's output held at its training-set mean in a tail, the
statistics that give them, and the refusal of fused attention. The hook path's modes
(:mod:`netdyn.models.adapter._hooks`) use the same pieces.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn

from netdyn.errors import ModelError
from netdyn.models.adapter._fx import _is_op
from netdyn.models.adapter._registry import OPAQUE_MODULES

_LAYER_NORM_FUNCTIONS: tuple[Callable[..., Any], ...] = (F.layer_norm, torch.layer_norm)
_SOFTMAX_FUNCTIONS: tuple[Callable[..., Any], ...] = (F.softmax, torch.softmax)
_FUSED_ATTENTION_FUNCTIONS: tuple[Callable[..., Any], ...] = (F.scaled_dot_product_attention,
                                                              F.multi_head_attention_forward)
_LAYER_NORM_SIGNATURE = inspect.signature(F.layer_norm)


def layer_norm_call(args: Sequence[Any], kwargs: dict[str, Any]) -> tuple[Any, Any, Any, Any, float]:
    """(input, normalized_shape, weight, bias, eps) of a functional layer-norm call's arguments."""
    bound = _LAYER_NORM_SIGNATURE.bind(*args[:5], **{k: v for k, v in kwargs.items() if k != "cudnn_enable"})
    bound.apply_defaults()
    a = bound.arguments
    return a["input"], a["normalized_shape"], a["weight"], a["bias"], float(a["eps"])


def _is_layer_norm(node: fx.Node, modules: dict[str, nn.Module]) -> bool:
    if node.op == "call_module":
        return isinstance(modules[str(node.target)], nn.LayerNorm)
    return _is_op(node, _LAYER_NORM_FUNCTIONS, ())


def _is_softmax(node: fx.Node, modules: dict[str, nn.Module]) -> bool:
    if node.op == "call_module":
        return isinstance(modules[str(node.target)], nn.Softmax)
    return _is_op(node, _SOFTMAX_FUNCTIONS, ("softmax",))


def fused_attention(module_or_function: Any, name: str) -> str | None:
    """How to name a fused attention op (one that holds no pattern to replace), None for anything else."""
    if isinstance(module_or_function, OPAQUE_MODULES):
        return f"{type(module_or_function).__name__} {name!r} (fused multi-head attention)"
    if any(module_or_function is f for f in _FUSED_ATTENTION_FUNCTIONS):
        return f"{getattr(module_or_function, '__name__', name)} (fused attention)"
    return None


def fused_attention_error(what: str) -> ModelError:
    """The one line ``lmap_variant="constant"`` gives for a tail through fused attention ``what``."""
    return ModelError(f"lmap_variant='constant' holds each attention pattern at its training-set mean, but the tail "
                      f"goes through {what}, whose pattern is never formed; write attention with an explicit "
                      "softmax, or use lmap_variant='keep'")


def _held_node(graph: fx.Graph, node: fx.Node, env: dict[fx.Node, fx.Node], modules: dict[str, nn.Module],
               constants: dict[str, torch.Tensor], held: list[tuple[fx.Node, int, torch.Tensor]]) -> fx.Node | None:
    """The tail's copy of a LayerNorm or softmax node, held at its training-set statistics; None for other nodes.

    A fused attention op is a :class:`ModelError`. The constants are attached afterwards (:func:`_holding`).
    """
    op = modules[str(node.target)] if node.op == "call_module" else node.target
    if (what := fused_attention(op, str(node.target))) is not None:
        raise fused_attention_error(what)
    if _is_layer_norm(node, modules):
        if isinstance(op, nn.LayerNorm):
            def attr(name: str) -> fx.Node | None:
                return graph.get_attr(f"{node.target}.{name}") if getattr(op, name) is not None else None

            x, shape, weight, bias = env[node.all_input_nodes[0]], tuple(op.normalized_shape), attr("weight"), attr(
                "bias")
        else:
            x, shape, weight, bias, _ = layer_norm_call(fx.map_arg(node.args, lambda a: env[a]),
                                                        fx.map_arg(node.kwargs, lambda a: env[a]))
        copy_ = graph.call_function(held_layer_norm, (x, shape, weight, bias, None))
        held.append((copy_, 4, constants[node.name]))
        return copy_
    if _is_softmax(node, modules):
        copy_ = graph.call_function(held_pattern, (env[node.all_input_nodes[0]], None))
        held.append((copy_, 1, constants[node.name]))
        return copy_
    return None


def held_layer_norm(x: torch.Tensor, normalized_shape: Sequence[int], weight: torch.Tensor | None,
                    bias: torch.Tensor | None, scale: torch.Tensor) -> torch.Tensor:
    """Layer norm with its scale held: ``(x - mean_x) * scale * weight + bias``, affine in ``x``."""
    dims = tuple(range(-len(normalized_shape), 0))
    y = (x - x.mean(dims, keepdim=True)) * scale
    if weight is not None:
        y = y * weight
    return y if bias is None else y + bias


def held_pattern(x: torch.Tensor, pattern: torch.Tensor) -> torch.Tensor:
    """A softmax held at its mean output ``pattern`` ([1, ...]), one copy per sample of ``x``."""
    return pattern.expand(x.shape[0], *pattern.shape[1:]).clone()


def _holding(tail: fx.GraphModule, held: Sequence[tuple[fx.Node, int, torch.Tensor]]) -> fx.GraphModule:
    """The tail with each held statistic as a buffer of its own, read by the node that holds it."""
    for i, (node, index, value) in enumerate(held):
        name = f"_held_{i}"
        tail.register_buffer(name, value.clone())
        with tail.graph.inserting_before(node):
            node.update_arg(index, tail.graph.get_attr(name))
    if held:
        tail.recompile()
    return tail


class HeldSums:
    """Running sums of LayerNorm scales (1/std) and softmax outputs over batches, per position (float64)."""

    def __init__(self) -> None:
        self.sums: dict[str, torch.Tensor] = {}
        self.counts: dict[str, int] = {}

    def _add(self, key: str, per_sample: torch.Tensor) -> None:
        total = per_sample.double().sum(0, keepdim=True)
        self.sums[key] = self.sums[key] + total if key in self.sums else total
        self.counts[key] = self.counts.get(key, 0) + per_sample.shape[0]

    def add_layer_norm(self, key: str, x: torch.Tensor, n_dims: int, eps: float) -> None:
        """Add the scales 1/std of a layer norm's input ``x`` over its last ``n_dims`` dimensions."""
        dims = tuple(range(-n_dims, 0))
        self._add(key, torch.rsqrt(x.double().var(dims, unbiased=False, keepdim=True) + eps))

    def add_pattern(self, key: str, y: torch.Tensor) -> None:
        """Add a softmax's outputs ``y``."""
        self._add(key, y)

    def means(self, dtype: torch.dtype) -> dict[str, torch.Tensor]:
        """The means so far, in ``dtype``, each with a leading axis of 1."""
        return {k: (total / self.counts[k]).to(dtype) for k, total in self.sums.items()}


class _Statistics(fx.Interpreter):
    """Runs the graph, adding each LayerNorm's scale and each softmax's output to ``sums``."""

    def __init__(self, module: fx.GraphModule, sums: HeldSums) -> None:
        super().__init__(module, garbage_collect_values=True)
        self.modules = dict(module.named_modules())
        self.sums = sums

    def run_node(self, n: fx.Node) -> Any:
        out = super().run_node(n)
        if _is_layer_norm(n, self.modules):
            module = self.modules.get(str(n.target))
            if isinstance(module, nn.LayerNorm):
                self.sums.add_layer_norm(n.name, self.env[n.all_input_nodes[0]], len(module.normalized_shape),
                                         module.eps)
            else:
                args, kwargs = self.fetch_args_kwargs_from_env(n)
                x, shape, _, _, eps = layer_norm_call(args, kwargs)
                self.sums.add_layer_norm(n.name, x, len(shape), eps)
        elif _is_softmax(n, self.modules):
            self.sums.add_pattern(n.name, out)
        return out


def _held_statistics(graph_module: fx.GraphModule, batches: Iterable[torch.Tensor]) -> dict[str, torch.Tensor]:
    """Every LayerNorm node's mean scale and every softmax node's mean output over the batches, by node name."""
    sums = HeldSums()
    dtype = torch.get_default_dtype()
    for x in batches:
        _Statistics(graph_module, sums).run(x)
        dtype = x.dtype
    return sums.means(dtype)
