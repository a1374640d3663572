"""Any ``nn.Module`` read as a graph of cuts and tails (SPEC section 10).

:func:`read_network` traces a model with ``torch.fx`` and names its nodes the way torchvision's
``get_graph_node_names`` does (a module's name means its output; a module called twice gives ``name`` and
``name_1``; a function called inside module ``m`` is ``m.relu``). A *cut* is a node: layer 0 is the input,
layers 1..L-1 the chosen cuts in execution order, layer L the logits. The *tail* of a cut is every node that is
neither the cut nor one of its ancestors, with its elementwise transfer functions replaced by the identity: the
L-map of SPEC 5.1 for any graph.
"""

from __future__ import annotations

import contextlib
import copy
import inspect
import math
import operator
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeGuard

import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn

from netdyn.errors import ConfigError, ModelError
from netdyn.models.activations import ACTIVATIONS, Gauss, gauss

TailKind = Literal["affine", "piecewise_linear", "nonlinear"]

#: Relative error under which a tail counts as affine (SPEC 10: checked in float64 on data).
AFFINE_TOLERANCE = 1e-6
#: Samples the affine check draws from the data (seeded).
AFFINE_SAMPLES = 256

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


class _NamingTracer(fx.Tracer):
    """``fx.Tracer`` that names nodes as torchvision's feature extraction does and records module calls."""

    def __init__(self) -> None:
        python_functions = tuple(f for f in _TRANSFER_FUNCTIONS if inspect.isfunction(f))
        super().__init__(autowrap_functions=python_functions)
        self.current = ""
        self.qualnames: dict[fx.Node, str] = {}
        self.scopes: dict[fx.Node, str] = {}
        #: module path -> (input node, output node) of each of its calls, in call order
        self.calls: dict[str, list[tuple[Any, fx.Node]]] = {}

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return isinstance(m, tuple(_TRANSFER_MODULES)) or super().is_leaf_module(m, module_qualified_name)

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


@dataclass(frozen=True)
class Cut:
    """Layer ``layer`` of a :class:`Network`: the output of graph node ``node``, known by ``name``."""

    layer: int
    name: str
    node: str


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


class Network:
    """A traced model read as cuts and tails; built by :func:`read_network`.

    ``cuts[l]`` is layer l for l = 0..L-1 (``cuts[0]`` the input); layer L is the logits. Tensors go in as the
    data store them, ``[P, d]``, and are fed to the model as ``x.reshape(-1, *input_shape)``.
    """

    def __init__(self, model: nn.Module, graph_module: fx.GraphModule, input_shape: tuple[int, ...],
                 cuts: list[Cut], residual: bool) -> None:
        self.model = model
        self.graph_module = graph_module
        self.input_shape = input_shape
        self.cuts = cuts
        self.residual = residual
        """Whether an add joins a tensor to one of its own descendants (default cuts: the blocks' outputs)."""
        self._tails: dict[str, tuple[fx.GraphModule, tuple[str, ...]]] = {}

    @property
    def n_layers(self) -> int:
        """L: the layer of the logits (the number of cuts, the input included)."""
        return len(self.cuts)

    def cut(self, key: int | str) -> Cut:
        """The cut of a layer (0..L-1) or of a name."""
        for c in self.cuts:
            if c.layer == key or c.name == key:
                return c
        raise ModelError(f"{key!r} is not a cut of this network; its cuts are "
                         + ", ".join(f"{c.layer}: {c.name}" for c in self.cuts))

    def _node(self, name: str) -> fx.Node:
        return next(n for n in self.graph_module.graph.nodes if n.name == name)

    def _reference(self) -> torch.Tensor | None:
        return next(iter(self.graph_module.parameters()), next(iter(self.graph_module.buffers()), None))

    def feed(self, x: torch.Tensor) -> torch.Tensor:
        """Samples ``[P, d]`` as the model's input: reshaped to ``input_shape``, on its device, in its dtype."""
        ref = self._reference()
        x = x.reshape(-1, *self.input_shape)
        return x if ref is None else x.to(device=ref.device, dtype=ref.dtype)

    def capture(self, x: torch.Tensor, nodes: Iterable[str], logits: bool = True) -> dict[str, Any]:
        """The values of graph nodes on samples ``x`` ([P, d]) in one pass, cloned (eval mode, no gradient).

        With ``logits``, the model's output too, under the key ``"logits"``.
        """
        wanted = set(nodes)
        interpreter = _Capture(self.graph_module, wanted, stop=not logits)
        with torch.no_grad(), evaluating(self.model, self.graph_module):
            try:
                out = interpreter.run(self.feed(x))
            except _Captured:
                out = None
        values = interpreter.values
        if logits:
            values["logits"] = out
        return values

    def activations(self, x: torch.Tensor, cut: int | str) -> torch.Tensor:
        """The activations of a cut on samples ``x`` ([P, d]): the trunk up to the cut, cloned."""
        node = self.cut(cut).node
        return self.capture(x, [node], logits=False)[node]

    def tail(self, cut: int | str) -> fx.GraphModule:
        """The L-map of a cut as a GraphModule (see :func:`build_tail`).

        It takes the cut's activations, then the tensors of :meth:`tail_inputs` that a skip carries across the
        cut, and returns the logits.
        """
        return self._tail(cut)[0]

    def tail_inputs(self, cut: int | str) -> tuple[str, ...]:
        """The graph nodes whose values :meth:`tail` takes, in order: the cut's node first."""
        return self._tail(cut)[1]

    def _tail(self, cut: int | str) -> tuple[fx.GraphModule, tuple[str, ...]]:
        node = self.cut(cut).node
        if node not in self._tails:
            self._tails[node] = build_tail(self.graph_module, self._node(node))
        return self._tails[node]

    def run_tail(self, cut: int | str, inputs: Sequence[Any]) -> torch.Tensor:
        """The tail of ``cut`` on its inputs, in evaluation mode without gradient.

        ``inputs`` are the values of :meth:`tail_inputs`, as :meth:`capture` gives them; they are cloned first
        (a tail may write in place).
        """
        tail = self.tail(cut)
        args = [v.clone() if isinstance(v, torch.Tensor) else v for v in inputs]
        with torch.no_grad(), evaluating(self.model, tail):
            return tail(*args)

    def tail_kind(self, cut: int | str, x: torch.Tensor, seed: int = 0) -> TailKind:
        """What the tail of ``cut`` is, checked on samples ``x`` ([P, d]).

        ``affine`` when the tail is its Jacobian at the data mean plus a constant, to ``AFFINE_TOLERANCE``
        relative, in float64 on a seeded subset of ``AFFINE_SAMPLES`` samples of ``x`` (:func:`fit_affine`);
        ``piecewise_linear`` when it is not but contains max-pooling; ``nonlinear`` otherwise.
        """
        return self.kind_of_fit(cut, fit_affine(self, cut, x, seed))

    def kind_of_fit(self, cut: int | str, fit: AffineFit) -> TailKind:
        """What the tail of ``cut`` is, given its affine fit (:meth:`tail_kind` without fitting again)."""
        if fit.error <= AFFINE_TOLERANCE:
            return "affine"
        return "piecewise_linear" if _has_max_pool(self.tail(cut)) else "nonlinear"


def _transfer_name(node: fx.Node, modules: dict[str, nn.Module]) -> str | None:
    """The name of the transfer function a node applies, or None when it applies none."""
    if node.op == "call_module":
        return _TRANSFER_MODULES.get(type(modules[str(node.target)]))
    if node.op == "call_function":
        try:
            return _TRANSFER_FUNCTIONS.get(node.target)  # type: ignore[arg-type]
        except TypeError:  # an unhashable target
            return None
    if node.op == "call_method":
        return _TRANSFER_METHODS.get(str(node.target))
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


def _has_max_pool(graph_module: fx.GraphModule) -> bool:
    modules = dict(graph_module.named_modules())
    return any(_is_pool(n, modules, _MAX_POOL_MODULES, _MAX_POOL_FUNCTIONS) for n in graph_module.graph.nodes)


def _residual_adds(graph: fx.Graph, dependent: set[fx.Node]) -> list[fx.Node]:
    """Adds that join a tensor to one of its own descendants."""
    adds = []
    for node in graph.nodes:
        if not _is_op(node, _ADDS, ("add", "add_")):
            continue
        terms = [a for a in node.all_input_nodes if a in dependent]
        if len(terms) == 2 and (terms[0] in _ancestors(terms[1]) or terms[1] in _ancestors(terms[0])):
            adds.append(node)
    return adds


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
        raise ModelError(f"netdyn cannot read {type(model).__name__}: torch.fx failed to trace its forward "
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
    """The default cuts (SPEC 10) and whether the model is residual."""
    adds = _residual_adds(traced.graph_module.graph, dependent)
    if adds:
        return _block_cuts(traced, adds), True
    modules = traced.modules
    chosen: list[tuple[str, fx.Node]] = []
    for node in traced.graph_module.graph.nodes:
        if _transfer_name(node, modules) is None or _is_gate(node, dependent):
            continue
        users = list(node.users)
        if len(users) == 1 and _is_pool(users[0], modules, _MAX_POOL_MODULES + _AVG_POOL_MODULES,
                                        _MAX_POOL_FUNCTIONS + _AVG_POOL_FUNCTIONS):
            node = users[0]
        chosen.append((traced.qualnames[node], node))
    if not chosen:
        known = ", ".join(sorted({t.__name__ for t in _TRANSFER_MODULES}))
        raise ModelError(f"{type(traced.model).__name__} applies no transfer function netdyn knows ({known}, "
                         "their functional and method forms); add yours with "
                         "netdyn.register_transfer_function(fn_or_module_type, name), or pass cuts=[...]")
    return chosen, False


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


def read_network(model: nn.Module, input_shape: Sequence[int], cuts: Sequence[str] | None = None) -> Network:
    """Read any traceable ``nn.Module`` as a :class:`Network` of cuts (SPEC section 10).

    ``input_shape`` is one sample's shape as the model takes it (``(1, 28, 28)`` for an image net). Default cuts:
    every elementwise transfer function's output (the pooled output where pooling follows directly); for a
    residual model (an add joins a tensor to one of its own descendants), the stem's output and the output of
    each block holding such an add. ``cuts`` takes node names (as torchvision's ``get_graph_node_names`` gives
    them) or module names (the output of the module's last call). A model torch.fx cannot trace, a name that
    names nothing, or a model with no transfer function netdyn knows is a :class:`ModelError`.
    """
    if not isinstance(model, nn.Module):
        raise ModelError(f"netdyn reads torch.nn.Module models, got {type(model).__name__}")
    shape = _check_shape(input_shape)
    traced = _trace(model)
    dependent = _data_dependent(traced.graph_module.graph)
    if cuts is None:
        chosen, residual = _default_cuts(traced, dependent)
    else:
        if isinstance(cuts, str):
            raise ConfigError(f"cuts takes a list of names, got the string {cuts!r}")
        chosen, residual = _named_cuts(traced, list(cuts), dependent), bool(_residual_adds(
            traced.graph_module.graph, dependent))
    order = traced.order()
    if any(node is traced.logits for _, node in chosen):
        raise ModelError(f"the logits are layer L, not a cut: cut before {traced.qualnames[traced.logits]!r}")
    unique: dict[fx.Node, str] = {}
    for name, node in sorted(chosen, key=lambda c: order[c[1]]):
        unique.setdefault(node, name)
    unique.pop(traced.placeholder, None)
    layers = [Cut(0, traced.qualnames[traced.placeholder], traced.placeholder.name)]
    layers += [Cut(l, name, node.name) for l, (node, name) in enumerate(unique.items(), start=1)]
    return Network(model, traced.graph_module, shape, layers, residual)


def _check_shape(input_shape: Sequence[int]) -> tuple[int, ...]:
    try:
        shape = tuple(int(s) for s in input_shape)
    except (TypeError, ValueError):
        raise ConfigError(f"input_shape must be a sequence of sizes, got {input_shape!r}") from None
    if not shape or any(s < 1 for s in shape) or any(s != t for s, t in zip(shape, input_shape, strict=True)):
        raise ConfigError(f"input_shape must be positive whole sizes, got {input_shape!r}")
    return shape


# ---------------------------------------------------------------------------------------------- tails
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


def build_tail(graph_module: fx.GraphModule, cut: fx.Node) -> tuple[fx.GraphModule, tuple[str, ...]]:
    """The tail of ``cut``: every node that is neither the cut nor one of its ancestors, linearised.

    The nodes are copied with ``Graph.node_copy``; each elementwise transfer function that is not a gate becomes
    the identity, batch norm the affine map of its running statistics, dropout the identity. Returns the
    GraphModule (inputs: the cut's value, then the skips crossing it) and the names of the nodes it takes.
    """
    body, inputs = _tail_nodes(graph_module.graph, cut)
    (result,) = [n for n in graph_module.graph.nodes if n.op == "output"]
    return _linearised_copy(graph_module, body, inputs, result.args[0])


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
    graph_module: fx.GraphModule, body: Sequence[fx.Node], inputs: Sequence[fx.Node], result: Any
) -> tuple[fx.GraphModule, tuple[str, ...]]:
    """``body``'s nodes copied into a new graph that takes ``inputs`` and returns ``result``, linearised."""
    modules = dict(graph_module.named_modules())
    dependent = _data_dependent(graph_module.graph)
    graph = fx.Graph()
    env: dict[fx.Node, fx.Node] = {n: graph.placeholder(n.name) for n in inputs}
    for node in body:
        if _transfer_name(node, modules) is not None and not _is_gate(node, dependent):
            env[node] = env[node.all_input_nodes[0]]
        elif node.op == "call_module" and isinstance(modules[str(node.target)], nn.modules.dropout._DropoutNd):
            env[node] = env[node.all_input_nodes[0]]
        elif node.op == "call_module" and _running_batchnorm(bn := modules[str(node.target)]):
            env[node] = _batchnorm_node(graph, str(node.target), bn, env[node.all_input_nodes[0]])
        else:
            env[node] = graph.node_copy(node, lambda a: env[a])
    graph.output(env[result])
    return fx.GraphModule(graph_module, graph), tuple(n.name for n in inputs)


def _running_batchnorm(module: nn.Module) -> TypeGuard[nn.modules.batchnorm._BatchNorm]:
    return isinstance(module, nn.modules.batchnorm._BatchNorm) and module.running_mean is not None


def _batchnorm_node(tail: fx.Graph, target: str, bn: nn.modules.batchnorm._BatchNorm, x: fx.Node) -> fx.Node:
    """``F.batch_norm`` with the module's running statistics: its evaluation-mode affine map."""
    def attr(name: str) -> fx.Node | None:
        return tail.get_attr(f"{target}.{name}") if getattr(bn, name) is not None else None

    args: tuple[Any, ...] = (x, attr("running_mean"), attr("running_var"), attr("weight"), attr("bias"), False, 0.0,
                             bn.eps)
    return tail.call_function(F.batch_norm, args)


# ------------------------------------------------------------------------------------ affine check
@dataclass
class AffineFit:
    """A tail linearised at the data mean, and how far it is from the tail.

    ``matrices[i]`` ([C, D_i]) is its Jacobian in input i (the cut, then the skips), ``constant`` ([C]) =
    tail(mean) - sum_i M_i mean_i; ``error`` the largest deviation of ``sum_i M_i x_i + constant`` from the tail
    on the checked samples, relative to the tail's largest output.
    """

    matrices: list[torch.Tensor]
    constant: torch.Tensor
    error: float


def _double(value: Any) -> Any:
    return value.double() if isinstance(value, torch.Tensor) and value.is_floating_point() else value


def fit_affine(network: Network, cut: int | str, x: torch.Tensor, seed: int = 0) -> AffineFit:
    """The tail's Jacobian at the data mean (``torch.func.vjp``) and how well it reproduces the tail.

    Computed in float64 on a seeded subset of ``AFFINE_SAMPLES`` samples of ``x`` ([P, d]).
    """
    if x.shape[0] == 0:
        raise ConfigError("the affine check needs at least one sample")
    gen = torch.Generator().manual_seed(int(seed))
    index = torch.randperm(x.shape[0], generator=gen)[:AFFINE_SAMPLES]
    names = network.tail_inputs(cut)
    values = network.capture(x[index], names, logits=False)
    inputs = [_double(values[n]) for n in names]
    free = [i for i, v in enumerate(inputs) if isinstance(v, torch.Tensor) and v.is_floating_point()]
    tail64 = copy.deepcopy(network.tail(cut)).double()
    means = [inputs[i].mean(0, keepdim=True) for i in free]

    def run(*variables: torch.Tensor) -> torch.Tensor:
        args = list(inputs)
        for i, v in zip(free, variables, strict=True):
            args[i] = v
        return tail64(*args)

    with evaluating(tail64):
        linearised = torch.func.vjp(run, *means)
        at_mean, pullback = linearised[0], linearised[1]
        basis = torch.eye(at_mean.shape[1], dtype=at_mean.dtype, device=at_mean.device)
        rows = [pullback(basis[k][None]) for k in range(at_mean.shape[1])]
        matrices = [torch.stack([row[j].flatten() for row in rows]) for j in range(len(free))]
        constant = at_mean[0] - sum((m @ mu.flatten() for m, mu in zip(matrices, means, strict=True)),
                                    torch.zeros_like(at_mean[0]))
        with torch.no_grad():
            exact = tail64(*[v.clone() if isinstance(v, torch.Tensor) else v for v in inputs])
    predicted = constant + sum((inputs[i].flatten(1) @ m.T for i, m in zip(free, matrices, strict=True)),
                               torch.zeros_like(exact))
    scale = exact.abs().max().item()
    deviation = (predicted - exact).abs().max().item()
    error = deviation / scale if scale > 0 else (0.0 if deviation == 0 else math.inf)
    return AffineFit([m.detach() for m in matrices], constant.detach(), error)


def is_affine(network: Network, cut: int | str, x: torch.Tensor, seed: int = 0) -> bool:
    """Whether the tail of ``cut`` is affine on ``x`` (:func:`fit_affine`'s error within ``AFFINE_TOLERANCE``)."""
    return fit_affine(network, cut, x, seed).error <= AFFINE_TOLERANCE
