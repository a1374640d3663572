"""The torch.fx reading of a model (see docs/any-network.md).

Tracing with torchvision's node names, capturing node values, the graph's transfer functions, gates, pools and
residual adds, and the default and named cuts.
"""

from __future__ import annotations

import inspect
import operator
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.fx as fx
from torch import nn

from netdyn.errors import ModelError
from netdyn.models.adapter import _registry
from netdyn.models.adapter._registry import (
    _ADDS,
    _AVG_POOL_FUNCTIONS,
    _AVG_POOL_MODULES,
    _MAX_POOL_FUNCTIONS,
    _MAX_POOL_MODULES,
    _MULS,
    OPAQUE_MODULES,
    evaluating,
)


class _NamingTracer(fx.Tracer):
    """``fx.Tracer`` that names nodes as torchvision's feature extraction does and records module calls."""

    def __init__(self) -> None:
        python_functions = tuple(f for f in _registry._TRANSFER_FUNCTIONS if inspect.isfunction(f))
        super().__init__(autowrap_functions=python_functions)
        self.current = ""
        self.qualnames: dict[fx.Node, str] = {}
        self.scopes: dict[fx.Node, str] = {}
        #: module path -> (input node, output node) of each of its calls, in call order
        self.calls: dict[str, list[tuple[Any, fx.Node]]] = {}

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        leaves = (*_registry._TRANSFER_MODULES, *OPAQUE_MODULES)
        return isinstance(m, leaves) or super().is_leaf_module(m, module_qualified_name)

    def call_module(self, m: nn.Module, forward: Callable[..., Any], args: tuple[Any, ...],
                    kwargs: dict[str, Any]) -> Any:
        old = self.current
        path = self.path_of_module(m)
        self.current = path
        try:
            if self.is_leaf_module(m, path):
                out = self.create_proxy("call_module", path, args, kwargs)
            else:
                out = forward(*args, **kwargs)
        finally:
            self.current = old
        if isinstance(out, fx.Proxy):
            first = args[0].node if args and isinstance(args[0], fx.Proxy) else None
            self.calls.setdefault(path, []).append((first, out.node))
        return out

    def create_proxy(self, kind: str, target: Any, args: tuple[Any, ...], kwargs: dict[str, Any],
                     name: str | None = None, type_expr: Any | None = None,
                     proxy_factory_fn: Callable[[fx.Node], fx.Proxy] | None = None) -> fx.Proxy:
        proxy = super().create_proxy(kind, target, args, kwargs, name, type_expr, proxy_factory_fn)
        self.qualnames[proxy.node] = self._qualname(proxy.node)
        self.scopes[proxy.node] = self.current
        return proxy

    def _qualname(self, node: fx.Node) -> str:
        # torchvision.models.feature_extraction.NodePathTracer._get_node_qualname, with escaped patterns
        name = self.current
        if node.op != "call_module":
            name = f"{name}.{node.name}" if name else node.name
        if re.match(r".+_[0-9]+$", name) is not None:
            name = name.rsplit("_", 1)[0]
        for existing in reversed(self.qualnames.values()):
            if re.match(rf"{re.escape(name)}(_[0-9]+)?$", existing) is not None:
                postfix = existing[len(name):]
                return f"{name}_{int(postfix[1:]) + 1 if postfix else 1}"
        return name


class _Capture(fx.Interpreter):
    """Runs the graph, keeping a clone of each wanted node's value the moment it is computed.

    An in-place ReLU later in the graph would overwrite it otherwise. Stops once all are in when the logits are not
    wanted.
    """

    def __init__(self, module: fx.GraphModule, wanted: set[str], stop: bool) -> None:
        super().__init__(module, garbage_collect_values=True)
        self.wanted = wanted
        self.stop = stop
        self.values: dict[str, Any] = {}

    def run_node(self, n: fx.Node) -> Any:
        out = super().run_node(n)
        if n.name in self.wanted:
            self.values[n.name] = out.clone() if isinstance(out, torch.Tensor) else out
            if self.stop and len(self.values) == len(self.wanted):
                raise _Captured
        return out


class _Captured(Exception):
    pass


def _transfer_name(node: fx.Node, modules: dict[str, nn.Module]) -> str | None:
    """The name of the transfer function a node applies, or None when it applies none."""
    if node.op == "call_module":
        return _registry._TRANSFER_MODULES.get(type(modules[str(node.target)]))
    if node.op == "call_function":
        try:
            return _registry._TRANSFER_FUNCTIONS.get(node.target)  # type: ignore[arg-type]
        except TypeError:  # an unhashable target
            return None
    if node.op == "call_method":
        return _registry._TRANSFER_METHODS.get(str(node.target))
    return None


def _is_op(node: fx.Node, functions: tuple[Any, ...], methods: tuple[str, ...]) -> bool:
    if node.op == "call_function":
        return any(node.target is f for f in functions)
    return node.op == "call_method" and node.target in methods


def _data_dependent(graph: fx.Graph) -> set[fx.Node]:
    """The nodes whose value depends on the model's input (the placeholder and its descendants)."""
    dependent: set[fx.Node] = set()
    for node in graph.nodes:
        if node.op == "placeholder" or any(a in dependent for a in node.all_input_nodes):
            dependent.add(node)
    return dependent


def _ancestors(node: fx.Node) -> set[fx.Node]:
    seen: set[fx.Node] = set()
    stack = list(node.all_input_nodes)
    while stack:
        n = stack.pop()
        if n not in seen:
            seen.add(n)
            stack.extend(n.all_input_nodes)
    return seen


def _is_gate(node: fx.Node, dependent: set[fx.Node]) -> bool:
    """A transfer function whose output multiplies another data-dependent tensor (x * sigmoid(x), SwiGLU)."""
    for user in node.users:
        if _is_op(user, _MULS, ("mul", "mul_")):
            others = [a for a in user.all_input_nodes if a is not node]
            if any(a in dependent for a in others):
                return True
    return False


def _is_pool(node: fx.Node, modules: dict[str, nn.Module], kinds: tuple[type, ...],
             functions: tuple[Any, ...]) -> bool:
    if node.op == "call_module":
        return isinstance(modules[str(node.target)], kinds)
    return _is_op(node, functions, ())


def _has_max_pool(graph_module: nn.Module) -> bool:
    if not isinstance(graph_module, fx.GraphModule):
        return False
    modules = dict(graph_module.named_modules())
    return any(_is_pool(n, modules, _MAX_POOL_MODULES, _MAX_POOL_FUNCTIONS) for n in graph_module.graph.nodes)


def _residual_adds(graph: fx.Graph, dependent: set[fx.Node]) -> list[fx.Node]:
    """Adds that join a tensor to one of its own descendants."""
    return [node for node in _joining_adds(graph, dependent)
            if (terms := [a for a in node.all_input_nodes if a in dependent])
            and (terms[0] in _ancestors(terms[1]) or terms[1] in _ancestors(terms[0]))]


def _joining_adds(graph: fx.Graph, dependent: set[fx.Node]) -> list[fx.Node]:
    """Adds of two data-dependent tensors (a residual add, or a projection shortcut's ``out += downsample(x)``)."""
    return [node for node in graph.nodes if _is_op(node, _ADDS, ("add", "add_"))
            and len([a for a in node.all_input_nodes if a in dependent]) == 2]


def _block_adds(traced: _Traced, graph: fx.Graph, dependent: set[fx.Node]) -> list[fx.Node]:
    """A residual model's block joins.

    Its residual adds, and every other add of two data-dependent tensors inside a block (a child of a ModuleList /
    Sequential), such as the projection shortcut of a ResNet stage's first block, whose two terms both descend
    from the block's input rather than one from the other.
    """
    residual = _residual_adds(graph, dependent)
    if not residual:
        return []
    return [node for node in _joining_adds(graph, dependent)
            if node in residual or _block_of(traced.model, traced.scopes.get(node, ""))]


@dataclass
class _Traced:
    """What tracing gives: the graph module, torchvision-style node names, scopes and module calls."""

    model: nn.Module
    graph_module: fx.GraphModule
    qualnames: dict[fx.Node, str]
    scopes: dict[fx.Node, str]
    calls: dict[str, list[tuple[Any, fx.Node]]]
    placeholder: fx.Node
    logits: fx.Node

    @property
    def modules(self) -> dict[str, nn.Module]:
        return dict(self.graph_module.named_modules())

    def order(self) -> dict[fx.Node, int]:
        return {n: i for i, n in enumerate(self.graph_module.graph.nodes)}


class _Untraceable(ModelError):
    """torch.fx failed on the model's forward (the forward-hook path may still read it)."""


def _trace(model: nn.Module) -> _Traced:
    """Trace ``model`` in evaluation mode, its arguments with defaults fixed to them; one clear ModelError."""
    tracer = _NamingTracer()
    try:
        signature = inspect.signature(model.forward)
        fixed = list(signature.parameters.items())[1:]  # the first argument is the input, the rest keep defaults
        concrete = {name: p.default for name, p in fixed if p.default is not inspect.Parameter.empty}
        with evaluating(model):
            graph = tracer.trace(model, concrete_args=concrete or None)
    except Exception as exc:  # tracing runs the user's forward: anything it raises means "cannot trace"
        reason = (str(exc).strip().splitlines() or [""])[0]
        raise _Untraceable(f"netdyn cannot read {type(model).__name__}: torch.fx failed to trace its forward "
                           f"({type(exc).__name__}: {reason})") from exc
    placeholder = _drop_fixed_arguments(graph, type(model).__name__)
    (result,) = [n for n in graph.nodes if n.op == "output"]
    logits = result.args[0]
    if not isinstance(logits, fx.Node) or logits not in _data_dependent(graph):
        raise ModelError(f"netdyn reads models that return one tensor of logits; {type(model).__name__} "
                         f"returns {type(logits).__name__}")
    graph_module = fx.GraphModule(model, graph)
    return _Traced(model, graph_module, tracer.qualnames, tracer.scopes, tracer.calls, placeholder, logits)


def _drop_fixed_arguments(graph: fx.Graph, model_name: str) -> fx.Node:
    """Remove the placeholders of the arguments fixed to their defaults; the one input placeholder is left."""
    placeholders = [n for n in graph.nodes if n.op == "placeholder"]
    if not placeholders:
        raise ModelError(f"{model_name}'s forward takes no input")
    for extra in placeholders[1:]:
        for user in list(extra.users):
            if not user.users and user.op == "call_function":  # the guard torch.fx adds for a fixed argument
                graph.erase_node(user)
        if extra.users:
            raise ModelError(f"netdyn feeds a model one tensor; {model_name}'s forward also takes {extra.name!r}")
        graph.erase_node(extra)
    graph.lint()
    return placeholders[0]


def _default_cuts(traced: _Traced, dependent: set[fx.Node]) -> tuple[list[tuple[str, fx.Node]], bool]:
    """The default cuts (see docs/any-network.md) and whether the model is residual."""
    adds = _block_adds(traced, traced.graph_module.graph, dependent)
    if adds:
        return _block_cuts(traced, adds), True
    modules = traced.modules
    chosen: list[tuple[str, fx.Node]] = []
    for node in traced.graph_module.graph.nodes:
        if (opaque := _opaque_output(node, modules)) is not None:
            chosen.append((traced.qualnames[opaque], opaque))
            continue
        if _transfer_name(node, modules) is None or _is_gate(node, dependent):
            continue
        users = list(node.users)
        if len(users) == 1 and _is_pool(users[0], modules, _MAX_POOL_MODULES + _AVG_POOL_MODULES,
                                        _MAX_POOL_FUNCTIONS + _AVG_POOL_FUNCTIONS):
            node = users[0]
        chosen.append((traced.qualnames[node], node))
    if not chosen:
        known = ", ".join(sorted({t.__name__ for t in _registry._TRANSFER_MODULES}))
        raise ModelError(f"{type(traced.model).__name__} applies no transfer function netdyn knows ({known}, "
                         "their functional and method forms); add yours with "
                         "netdyn.register_transfer_function(fn_or_module_type, name), or pass cuts=[...]")
    return chosen, False


def _opaque_output(node: fx.Node, modules: dict[str, nn.Module]) -> fx.Node | None:
    """The output of an opaque library block's node (its first element where it returns a tuple), else None."""
    if node.op != "call_module" or not isinstance(modules[str(node.target)], OPAQUE_MODULES):
        return None
    firsts = [u for u in node.users if u.op == "call_function" and u.target is operator.getitem and u.args[1] == 0]
    if isinstance(modules[str(node.target)], nn.MultiheadAttention):
        return firsts[0] if firsts else None
    return node


def _block_of(model: nn.Module, scope: str) -> str:
    """The child of the deepest ModuleList / Sequential holding module ``scope`` ("" when none does)."""
    parts = scope.split(".") if scope else []
    for i in range(len(parts) - 1, 0, -1):
        if isinstance(model.get_submodule(".".join(parts[:i])), (nn.ModuleList, nn.Sequential)):
            return ".".join(parts[: i + 1])
    return ""


def _block_cuts(traced: _Traced, adds: list[fx.Node]) -> list[tuple[str, fx.Node]]:
    """A residual model's cuts: the stem's output (the first block's input), then each residual block's output.

    The add itself is the cut where no block holds it or the block returns no single tensor.
    """
    chosen: list[tuple[str, fx.Node]] = []
    first_inputs: list[tuple[fx.Node, Any]] = []
    for add in adds:
        block = _block_of(traced.model, traced.scopes[add])
        calls = traced.calls.get(block) if block else None
        if not calls:
            chosen.append((traced.qualnames[add], add))
            continue
        chosen.append((block, calls[-1][1]))
        first_inputs.append((calls[0][1], calls[0][0]))
    if first_inputs:
        order = traced.order()
        _, stem = min(first_inputs, key=lambda call: order[call[0]])
        if isinstance(stem, fx.Node) and stem is not traced.placeholder:
            chosen.append((traced.qualnames[stem], stem))
    return chosen


def _named_cuts(traced: _Traced, names: Sequence[str], dependent: set[fx.Node]) -> list[tuple[str, fx.Node]]:
    """Cuts a user names: node names first, then module names (the output of the module's last call)."""
    nodes = {q: n for n, q in traced.qualnames.items() if n in dependent and n.op != "placeholder"}
    modules = {path: calls[-1][1] for path, calls in traced.calls.items() if path not in nodes}
    chosen = []
    for name in names:
        node = nodes.get(name, modules.get(name))
        if node is None:
            valid = ", ".join([*nodes, *modules])
            raise ModelError(f"cut {name!r} names no node or module of {type(traced.model).__name__}; "
                             f"valid names: {valid}")
        chosen.append((name, node))
    return chosen
