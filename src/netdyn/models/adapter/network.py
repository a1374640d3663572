"""Any ``nn.Module`` read as a graph of cuts and tails (see docs/any-network.md).

:func:`read_network` traces a model with ``torch.fx`` and names its nodes the way torchvision's
``get_graph_node_names`` does (a module's name means its output; a module called twice gives ``name`` and
``name_1``; a function called inside module ``m`` is ``m.relu``). A *cut* is a node: layer 0 is the input,
layers 1..L-1 the chosen cuts in execution order, layer L the logits. The *tail* of a cut is every node that is
neither the cut nor one of its ancestors, with its elementwise transfer functions replaced by the identity: the
L-map of docs/quantities.md#l-map for any graph.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import inspect
import math
import operator
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeGuard

import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from netdyn.errors import ConfigError, ModelError
from netdyn.models.activations import ACTIVATIONS, Gauss, gauss

TailKind = Literal["affine", "piecewise_linear", "nonlinear"]

#: Relative error under which a tail counts as affine (docs/any-network.md: checked in float64 on data).
AFFINE_TOLERANCE = 1e-6
#: Samples the affine check draws from the data (seeded).
AFFINE_SAMPLES = 256
#: Samples per pass when ``Network.constant_variant`` takes its means.
_STATISTICS_ROWS = 512

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
#: How a network was read (``Network.path``): a torch.fx graph, or forward hooks where tracing fails.
ReadPath = Literal["fx", "hooks"]
READ_PATHS: tuple[str, ...] = ("auto", "fx", "hooks")
#: What a tail does with LayerNorm and softmax attention (see docs/any-network.md): keep them, or hold their scale and
#: pattern at their training-set means (``Network.constant_variant``).
LmapVariant = Literal["keep", "constant"]
LMAP_VARIANTS: tuple[LmapVariant, ...] = ("keep", "constant")


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
        return isinstance(m, (*_TRANSFER_MODULES, *OPAQUE_MODULES)) or super().is_leaf_module(m, module_qualified_name)

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
    """A model read as cuts and tails; built by :func:`read_network`.

    ``cuts[l]`` is layer l for l = 0..L-1 (``cuts[0]`` the input); layer L is the logits. Tensors go in as the
    data store them, ``[P, d]``, and are fed to the model as ``x.reshape(-1, *input_shape)``. ``path`` says how the
    model was read: ``"fx"``, a torch.fx graph (cuts are its nodes), or ``"hooks"``, forward hooks where tracing
    fails (cuts are module outputs; :class:`HookedModel` says what that path cannot see). ``variant`` is
    what the tails do with LayerNorm and softmax attention (:meth:`constant_variant`).
    """

    def __init__(self, model: nn.Module, graph_module: fx.GraphModule | None, input_shape: tuple[int, ...],
                 cuts: list[Cut], residual: bool, hooks: HookedModel | None = None,
                 constants: dict[str, torch.Tensor] | None = None) -> None:
        self.model = model
        self._graph_module = graph_module
        self.input_shape = input_shape
        self.cuts = cuts
        self.residual = residual
        """Whether an add joins a tensor to one of its own descendants (default cuts: the blocks' outputs)."""
        self._hooks = hooks
        self._constants = constants
        self._tails: dict[str, tuple[nn.Module, tuple[str, ...]]] = {}

    @property
    def path(self) -> ReadPath:
        """How the model was read: ``"fx"`` (traced) or ``"hooks"`` (forward hooks, where tracing fails)."""
        return "fx" if self._hooks is None else "hooks"

    @property
    def variant(self) -> LmapVariant:
        """``"keep"`` (LayerNorm and attention stay in the tails) or ``"constant"`` (:meth:`constant_variant`)."""
        return "keep" if self._constants is None else "constant"

    @property
    def graph_module(self) -> fx.GraphModule:
        """The traced graph; a model read through forward hooks has none (:class:`ModelError`)."""
        if self._graph_module is None:
            raise ModelError(f"{type(self.model).__name__} was read through forward hooks (torch.fx cannot trace "
                             "it), so it has no graph; this needs one")
        return self._graph_module

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
        module = self.model if self._graph_module is None else self._graph_module
        return next(iter(module.parameters()), next(iter(module.buffers()), None))

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
        if self._hooks is not None:
            with torch.no_grad(), evaluating(self.model):
                return self._hooks.capture(self.feed(x), wanted, logits)
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

    def tail(self, cut: int | str) -> nn.Module:
        """The L-map of a cut as a module (a GraphModule on the fx path, see :func:`build_tail`).

        It takes the cut's activations, then the tensors of :meth:`tail_inputs` that a skip carries across the
        cut (on the hook path: the model's input, which it reruns), and returns the logits.
        """
        return self._tail(cut)[0]

    def tail_inputs(self, cut: int | str) -> tuple[str, ...]:
        """The nodes whose values :meth:`tail` takes, in order: the cut's node first."""
        return self._tail(cut)[1]

    def tail_variables(self, cut: int | str) -> int:
        """How many of :meth:`tail_inputs`, from the first, the tail is a map of (the L-map's variables).

        All of them on the fx path (the cut and the skips crossing it); on the hook path only the cut, the
        model's input being what the rerun reads as it is.
        """
        return 1 if self._hooks is not None else len(self.tail_inputs(cut))

    def _tail(self, cut: int | str) -> tuple[nn.Module, tuple[str, ...]]:
        node = self.cut(cut).node
        if node not in self._tails:
            if self._hooks is not None:
                self._tails[node] = self._hooks.tail(node, self._constants)
            else:
                self._tails[node] = build_tail(self.graph_module, self._node(node), self._constants)
        return self._tails[node]

    def constant_variant(self, x: torch.Tensor) -> Network:
        """This network with ``lmap_variant="constant"`` tails, the statistics taken on samples ``x``.

        See docs/any-network.md.

        In every tail each LayerNorm's scale (1/std) and each explicit softmax attention pattern are replaced by
        their means over ``x`` ([P, d], the training set), per position, as batch norm's running statistics
        replace a batch's: ``(h - mean_h) * mean(1/std) * weight + bias`` (the centering is linear and stays),
        and the pattern a constant ``[heads, T, T]``. The tail becomes affine. Attention computed by one fused op
        (``nn.MultiheadAttention``, ``scaled_dot_product_attention``) has no pattern to hold: a tail through it is
        a :class:`ModelError` naming it.
        """
        if x.shape[0] == 0:
            raise ConfigError("lmap_variant='constant' needs training samples to take its means on")
        batches = (self.feed(x[part]) for part in (slice(i, i + _STATISTICS_ROWS)
                                                   for i in range(0, x.shape[0], _STATISTICS_ROWS)))
        with torch.no_grad(), evaluating(self.model):
            if self._hooks is not None:
                constants = self._hooks.statistics(batches)
            else:
                constants = _held_statistics(self.graph_module, batches)
        return Network(self.model, self._graph_module, self.input_shape, self.cuts, self.residual, self._hooks,
                       constants)

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
        max_pool = (self._hooks.max_pool_after(self.cut(cut).node) if self._hooks is not None
                    else _has_max_pool(self.tail(cut)))
        return "piecewise_linear" if max_pool else "nonlinear"


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
        known = ", ".join(sorted({t.__name__ for t in _TRANSFER_MODULES}))
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


def read_network(model: nn.Module, input_shape: Sequence[int], cuts: Sequence[str] | None = None, *,
                 path: str = "auto") -> Network:
    """Read any ``nn.Module`` as a :class:`Network` of cuts (see docs/any-network.md).

    ``input_shape`` is one sample's shape as the model takes it (``(1, 28, 28)`` for an image net). Default cuts:
    every elementwise transfer function's output (the pooled output where pooling follows directly) and every
    opaque library block's (``OPAQUE_MODULES``); for a residual model (an add joins a tensor to one of its own
    descendants), the stem's output and the output of each block holding such an add. ``cuts`` takes node names
    (as torchvision's ``get_graph_node_names`` gives them) or module names (the output of the module's last call).

    ``path="auto"`` traces the model with torch.fx and, where tracing fails (data-dependent control flow such as
    ``if x.sum() > 0:``), reads it through forward hooks instead (:class:`HookedModel`); ``"fx"`` or
    ``"hooks"`` takes that path only. ``Network.path`` says which ran. A model neither path reads, a name that
    names nothing, or a model with no transfer function netdyn knows is a :class:`ModelError`.
    """
    if not isinstance(model, nn.Module):
        raise ModelError(f"netdyn reads torch.nn.Module models, got {type(model).__name__}")
    if path not in READ_PATHS:
        raise ConfigError(f"path must be one of {', '.join(map(repr, READ_PATHS))}, got {path!r}")
    shape = _check_shape(input_shape)
    if isinstance(cuts, str):
        raise ConfigError(f"cuts takes a list of names, got the string {cuts!r}")
    if path == "hooks":
        return _read_hooked(model, shape, cuts)
    try:
        traced = _trace(model)
    except _Untraceable as untraceable:
        if path == "fx":
            raise
        try:
            return _read_hooked(model, shape, cuts)
        except ModelError as hooked:
            raise ModelError(f"{untraceable}, and reading it through forward hooks failed too: {hooked}") from None
    return _read_traced(traced, shape, cuts)


def _read_traced(traced: _Traced, shape: tuple[int, ...], cuts: Sequence[str] | None) -> Network:
    """:func:`read_network` on the fx path, once the model is traced."""
    model = traced.model
    dependent = _data_dependent(traced.graph_module.graph)
    if cuts is None:
        chosen, residual = _default_cuts(traced, dependent)
    else:
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


# ------------------------------------------------------------------- lmap_variant="constant" (see docs/any-network.md)
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


def _running_batchnorm(module: nn.Module) -> TypeGuard[nn.modules.batchnorm._BatchNorm]:
    return isinstance(module, nn.modules.batchnorm._BatchNorm) and module.running_mean is not None


def _batchnorm_node(tail: fx.Graph, target: str, bn: nn.modules.batchnorm._BatchNorm, x: fx.Node) -> fx.Node:
    """``F.batch_norm`` with the module's running statistics: its evaluation-mode affine map."""
    def attr(name: str) -> fx.Node | None:
        return tail.get_attr(f"{target}.{name}") if getattr(bn, name) is not None else None

    args: tuple[Any, ...] = (x, attr("running_mean"), attr("running_var"), attr("weight"), attr("bias"), False, 0.0,
                             bn.eps)
    return tail.call_function(F.batch_norm, args)


# ------------------------------------------------------------------------------- the forward-hook path

#: Samples in the probe batch that the model is read on (seeded normal values).
PROBE_SAMPLES = 4

_ADD_CALLS = frozenset({torch.add, torch.Tensor.add, torch.Tensor.add_, torch.Tensor.__add__, torch.Tensor.__radd__,
                   torch.Tensor.__iadd__})
_MUL_CALLS = frozenset({torch.mul, torch.Tensor.mul, torch.Tensor.mul_, torch.Tensor.__mul__, torch.Tensor.__rmul__,
                   torch.Tensor.__imul__})
_LAYER_NORM_CALLS = frozenset({F.layer_norm, torch.layer_norm})
_SOFTMAX_CALLS = frozenset({F.softmax, torch.softmax, torch.Tensor.softmax})
#: Module types whose forward calls a transfer function the mode sees; other registered types get hooks.
_MODE_SEEN = frozenset({nn.ReLU, nn.GELU, nn.Tanh, nn.Sigmoid, nn.LeakyReLU, nn.ELU, nn.SiLU, nn.Identity, Gauss})


def _among(func: Any, calls: frozenset[Any]) -> bool:
    """Whether a function a TorchFunctionMode sees is one of ``calls`` (False for an unhashable callable)."""
    try:
        return func in calls
    except TypeError:
        return False


def _tensors_in(value: Any) -> list[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (tuple, list)):
        return [t for v in value for t in _tensors_in(v)]
    if isinstance(value, dict):
        return [t for v in value.values() for t in _tensors_in(v)]
    return []


def _first_output(value: Any) -> Any:
    """A module's output as a cut sees it: the tensor, or the first element of a tuple (``nn.MultiheadAttention``)."""
    return value[0] if isinstance(value, tuple) and value else value


def _call_key(path: str, index: int) -> str:
    return path if index == 0 else f"{path}_{index}"


def _is_max_pool(func: Any) -> bool:
    return "max_pool" in str(getattr(func, "__name__", ""))


@dataclass
class _Call:
    """One module call of the probe, in completion order."""

    path: str
    index: int
    module: nn.Module
    leaf: bool
    first_input: Any
    output: Any

    @property
    def key(self) -> str:
        return _call_key(self.path, self.index)


@dataclass
class _Probe:
    """What one observed forward shows: module calls, residual adds' scopes, max-pool times, gates."""

    calls: list[_Call] = field(default_factory=list)
    stack: list[str] = field(default_factory=list)
    residual_scopes: list[str] = field(default_factory=list)
    #: scopes of every add of two data-dependent tensors (a projection shortcut's add included)
    join_scopes: list[str] = field(default_factory=list)
    #: number of calls completed when each max-pool ran
    max_pools: list[int] = field(default_factory=list)
    #: indices (in call order) of the transfer functions whose output multiplies another data-dependent tensor
    gates: set[int] = field(default_factory=set)


class _Observing(TorchFunctionMode):
    """Follows each tensor's data-dependent ancestry through the probe's ops; records residual adds and gates."""

    def __init__(self, probe: _Probe, root: torch.Tensor) -> None:
        super().__init__()
        self.probe = probe
        self.ancestry: dict[int, frozenset[int]] = {id(root): frozenset()}
        self.alive: list[torch.Tensor] = [root]  # ids stay unique while the tensors live
        self.transfer_outputs: dict[int, int] = {}
        self.transfers = 0

    def __torch_function__(self, func: Any, types: Any, args: Sequence[Any] = (),
                           kwargs: dict[str, Any] | None = None) -> Any:
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        inputs = [t for t in _tensors_in((args, kwargs)) if id(t) in self.ancestry]
        if _is_max_pool(func):
            self.probe.max_pools.append(len(self.probe.calls))
        if _among(func, _ADD_CALLS) and len(inputs) == 2:
            scope = self.probe.stack[-1] if self.probe.stack else ""
            self.probe.join_scopes.append(scope)
            if self._joins(*inputs):
                self.probe.residual_scopes.append(scope)
        if _among(func, _MUL_CALLS) and len(inputs) == 2:
            for t in inputs:
                if id(t) in self.transfer_outputs:
                    self.probe.gates.add(self.transfer_outputs[id(t)])
        if is_transfer_call(func):
            for t in _tensors_in(out):
                self.transfer_outputs[id(t)] = self.transfers
            self.transfers += 1
        if inputs:
            ancestry = frozenset().union(*(self.ancestry[id(t)] | {id(t)} for t in inputs))
            for t in _tensors_in(out):
                self.ancestry[id(t)] = ancestry | self.ancestry.get(id(t), frozenset())
                self.alive.append(t)
        return out

    def _joins(self, a: torch.Tensor, b: torch.Tensor) -> bool:
        return a is not b and (id(a) in self.ancestry[id(b)] or id(b) in self.ancestry[id(a)])


@contextlib.contextmanager
def _registered(hooks: Iterable[Callable[[], Any]]) -> Iterator[None]:
    """Hooks registered by the callables, removed on the way out."""
    handles = []
    try:
        for register in hooks:
            handles.append(register())
        yield
    finally:
        for handle in handles:
            handle.remove()


def _observe(model: nn.Module, x: torch.Tensor) -> tuple[_Probe, Any]:
    """Run the model once on ``x`` under observation: the probe and the model's output."""
    probe = _Probe()
    counts: Counter[str] = Counter()

    def enter(path: str, module: nn.Module, args: tuple[Any, ...]) -> None:
        probe.stack.append(path)

    def leave(path: str, module: nn.Module, args: tuple[Any, ...], out: Any) -> None:
        probe.stack.pop()
        if isinstance(module, _MAX_POOL_MODULES):
            probe.max_pools.append(len(probe.calls))
        index = counts[path]
        counts[path] += 1
        probe.calls.append(_Call(path, index, module, not any(True for _ in module.children()),
                                 args[0] if args else None, _first_output(out)))

    modules = [(p, m) for p, m in model.named_modules() if p]
    registrations = [functools.partial(m.register_forward_pre_hook, functools.partial(enter, p)) for p, m in modules]
    registrations += [functools.partial(m.register_forward_hook, functools.partial(leave, p)) for p, m in modules]
    with _registered(registrations), _Observing(probe, x), torch.no_grad(), evaluating(model):
        out = model(x)
    return probe, out


class _TailMode(Linearising):
    """The hook path's tail mode: transfer functions are the identity once the cut has run (gates excepted).

    With ``constants``, the layer norms and softmaxes after the cut are held at their means.
    """

    def __init__(self, active: bool, gates: set[int], constants: dict[str, torch.Tensor] | None) -> None:
        super().__init__(active)
        self.gates = gates
        self.constants = constants
        self.counts: Counter[str] = Counter()

    def _count(self, kind: str) -> int:
        self.counts[kind] += 1
        return self.counts[kind] - 1

    def __torch_function__(self, func: Any, types: Any, args: Sequence[Any] = (),
                           kwargs: dict[str, Any] | None = None) -> Any:
        kwargs = kwargs or {}
        if is_transfer_call(func):
            index = self._count("transfer")  # every call counts, so that the indices are the probe's
            if self.active and index not in self.gates:
                return args[0] if args else next(iter(kwargs.values()))
            return func(*args, **kwargs)
        if self.constants is not None:
            held = self._held(func, args, kwargs)
            if held is not None:
                return held
        return func(*args, **kwargs)

    def _held(self, func: Any, args: Sequence[Any], kwargs: dict[str, Any]) -> torch.Tensor | None:
        assert self.constants is not None
        if _among(func, _LAYER_NORM_CALLS):
            key = f"layer_norm_{self._count('layer_norm')}"
            if self.active:
                x, shape, weight, bias, _ = layer_norm_call(args, kwargs)
                return held_layer_norm(x, shape, weight, bias, self.constants[key].to(x.dtype))
        elif _among(func, _SOFTMAX_CALLS):
            key = f"softmax_{self._count('softmax')}"
            if self.active:
                x = args[0] if args else kwargs["input"]
                return held_pattern(x, self.constants[key].to(x.dtype))
        elif self.active and (what := fused_attention(func, str(getattr(func, "__name__", func)))) is not None:
            raise fused_attention_error(what)
        return None


class _Gathering(TorchFunctionMode):
    """Adds each layer norm's scale and each softmax's output to ``sums``, keyed by call order."""

    def __init__(self, sums: HeldSums) -> None:
        super().__init__()
        self.sums = sums
        self.counts: Counter[str] = Counter()

    def __torch_function__(self, func: Any, types: Any, args: Sequence[Any] = (),
                           kwargs: dict[str, Any] | None = None) -> Any:
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if _among(func, _LAYER_NORM_CALLS):
            x, shape, _, _, eps = layer_norm_call(args, kwargs)
            shape = [shape] if isinstance(shape, int) else shape
            self.sums.add_layer_norm(f"layer_norm_{self.counts['layer_norm']}", x, len(shape), eps)
            self.counts["layer_norm"] += 1
        elif _among(func, _SOFTMAX_CALLS):
            self.sums.add_pattern(f"softmax_{self.counts['softmax']}", out)
            self.counts["softmax"] += 1
        return out


class HookedTail(nn.Module):
    """The tail of a cut on the hook path: the model rerun on ``x``, the cut's output replaced, the rest linearised.

    The cut's output is replaced by ``value``. For the input cut (``path`` None) the model runs on ``value``.
    """

    def __init__(self, model: nn.Module, path: str | None, index: int, gates: set[int],
                 constants: dict[str, torch.Tensor] | None) -> None:
        super().__init__()
        self.model = model
        self.path = path
        self.index = index
        self.gates = gates
        self.constants = constants

    def forward(self, value: torch.Tensor, x: torch.Tensor | None = None) -> Any:
        """The logits, the cut's output being ``value`` (the model's input ``x``)."""
        mode = _TailMode(self.path is None, self.gates, self.constants)
        if self.path is None:
            with self._registered_identities(mode), mode:
                return self.model(value)
        calls = [0]

        def replace(module: nn.Module, args: tuple[Any, ...], out: Any) -> Any:
            calls[0] += 1
            if calls[0] - 1 != self.index:
                return None
            mode.active = True
            return (value, *out[1:]) if isinstance(out, tuple) else value

        target = self.model.get_submodule(self.path)
        with _registered([functools.partial(target.register_forward_hook, replace)]), \
                self._registered_identities(mode), mode:
            return self.model(x)

    def _registered_identities(self, mode: _TailMode) -> contextlib.AbstractContextManager[None]:
        """Hooks that make a registered transfer-function module (one the mode cannot see into) the identity."""
        stash: list[Any] = []

        def enter(module: nn.Module, args: tuple[Any, ...]) -> Any:
            if not mode.active:
                return None
            stash.append(args[0])
            return (args[0].clone(), *args[1:])  # the module may write in place

        def leave(module: nn.Module, args: tuple[Any, ...], out: Any) -> Any:
            return stash.pop() if mode.active and stash else None

        registered = [m for m in self.model.modules()
                      if isinstance(m, tuple(_TRANSFER_MODULES)) and type(m) not in _MODE_SEEN]
        return _registered([functools.partial(m.register_forward_pre_hook, enter) for m in registered]
                       + [functools.partial(m.register_forward_hook, leave) for m in registered])


@dataclass
class HookedModel:
    """A model read through forward hooks (``Network.path == "hooks"``): one that torch.fx cannot trace.

    See docs/any-network.md.

    Tracing fails on data-dependent control flow (``if x.sum() > 0:``). This path runs the model instead, once on a
    seeded probe batch, with a forward hook on every module and a ``TorchFunctionMode`` that follows which tensor each
    op derives from. A cut is the output of a module call, named as torch.fx names call nodes (``act`` for the first
    call of module ``act``, ``act_1`` for its second; a module called twice is two cuts), and its value is cloned the
    moment the hook sees it. Default cuts: the outputs of transfer-function modules (the pooled output where a pooling
    module reads one directly) and of opaque library blocks (``OPAQUE_MODULES``); for a residual model, where an add
    joins a tensor to one of its own descendants, the stem's output and the outputs of the blocks holding those adds
    (the children of the deepest ``ModuleList`` / ``Sequential``), as on the fx path.

    The tail of a cut reruns the whole model on the samples' input with the cut's output replaced by the given tensor
    (a forward hook that returns it) and every transfer function called after it the identity: module, functional or
    method form through :class:`Linearising`, a registered module type through hooks that
    return its input. A transfer function whose output the probe saw multiplied by another data-dependent tensor is a
    gate and is kept. Batch norm and dropout run in evaluation mode (running statistics, identity). With
    ``lmap_variant="constant"`` each layer-norm call and each softmax after the cut is held at its training-set mean,
    counted in call order.

    What a run cannot see, this path cannot either:

    - the cuts, the call order and the gates are those of the probe batch; a batch whose forward takes another branch
      and skips a cut is a :class:`ModelError` naming it;
    - "after the cut" means later in execution order, not "not an ancestor of the cut": an op the forward runs before
      the cut but that does not feed it is not linearised (on the fx path it is);
    - a skip crossing the cut is recomputed from the input by the rerun as the model computes it (not linearised),
      so a cut inside a residual block has a tail that is affine in the cut but not in the input: its check reports it
      ``nonlinear``; the default cuts (block outputs) have no such skip;
    - only a module's output can be a cut: a stem whose output comes from a functional call (``F.relu(self.stem(x))``)
      gives no stem cut, and an activation called only in functional form gives no default cut.
    """

    model: nn.Module
    input_key: str
    calls: dict[str, tuple[str, int]]
    """cut key -> (module path, call index)"""
    positions: dict[str, int]
    """cut key -> how many calls had completed when it was computed"""
    max_pools: list[int]
    gates: set[int]

    def capture(self, x: torch.Tensor, wanted: set[str], logits: bool) -> dict[str, Any]:
        """The wanted cuts' values on the model's input ``x`` (cloned), and the logits under ``"logits"``."""
        values: dict[str, Any] = {}
        if self.input_key in wanted:
            values[self.input_key] = x.clone()
        by_path: dict[str, dict[int, str]] = {}
        for key in wanted - {self.input_key}:
            if key not in self.calls:
                raise ModelError(f"{key!r} is not a cut of {type(self.model).__name__} read through forward hooks")
            path, index = self.calls[key]
            by_path.setdefault(path, {})[index] = key
        counts: Counter[str] = Counter()

        def keep(path: str, module: nn.Module, args: tuple[Any, ...], out: Any) -> None:
            key = by_path[path].get(counts[path])
            counts[path] += 1
            if key is not None:
                value = _first_output(out)
                values[key] = value.clone() if isinstance(value, torch.Tensor) else value
                if not logits and len(values) == len(wanted):
                    raise _Captured

        registrations = [functools.partial(self.model.get_submodule(p).register_forward_hook,
                                           functools.partial(keep, p)) for p in by_path]
        out = None
        with _registered(registrations), contextlib.suppress(_Captured):
            out = self.model(x)
        missing = sorted(wanted - set(values))
        if missing:
            raise ModelError(f"{type(self.model).__name__}'s forward did not compute cut(s) {', '.join(missing)} on "
                             "this batch: it took another branch than on the batch it was read on")
        if logits:
            values["logits"] = out
        return values

    def tail(self, node: str, constants: dict[str, torch.Tensor] | None) -> tuple[nn.Module, tuple[str, ...]]:
        """The tail of a cut and the names of the values it takes (the cut's, then the model's input)."""
        if node == self.input_key:
            return HookedTail(self.model, None, 0, self.gates, constants), (node,)
        path, index = self.calls[node]
        return HookedTail(self.model, path, index, self.gates, constants), (node, self.input_key)

    def max_pool_after(self, node: str) -> bool:
        """Whether a max-pool ran after the cut in the probe."""
        start = 0 if node == self.input_key else self.positions[node]
        return any(t >= start for t in self.max_pools)

    def statistics(self, batches: Iterable[torch.Tensor]) -> dict[str, torch.Tensor]:
        """The mean layer-norm scales and softmax outputs over the model's inputs ``batches``, by call order."""
        sums = HeldSums()
        dtype = torch.get_default_dtype()
        for x in batches:
            with _Gathering(sums):
                self.model(x)
            dtype = x.dtype
        return sums.means(dtype)


def _input_name(model: nn.Module) -> str:
    try:
        return next(iter(inspect.signature(model.forward).parameters))
    except (StopIteration, TypeError, ValueError):
        return "input"


def _probe_input(model: nn.Module, shape: tuple[int, ...]) -> torch.Tensor:
    ref = next(iter(model.parameters()), next(iter(model.buffers()), None))
    x = torch.randn(PROBE_SAMPLES, *shape, generator=torch.Generator().manual_seed(0))
    return x if ref is None else x.to(device=ref.device, dtype=ref.dtype)


def _read_hooked(model: nn.Module, shape: tuple[int, ...], cuts: Sequence[str] | None) -> Network:
    """:func:`~netdyn.models.read_network` through forward hooks (see the module's docstring)."""
    name = type(model).__name__
    try:
        probe, out = _observe(model, _probe_input(model, shape))
    except Exception as exc:  # the probe runs the user's forward: anything it raises means "cannot run"
        reason = (str(exc).strip().splitlines() or [""])[0]
        raise ModelError(f"{name}'s forward fails on a batch of shape {(PROBE_SAMPLES, *shape)} "
                         f"({type(exc).__name__}: {reason})") from None
    if not isinstance(out, torch.Tensor) or out.ndim != 2:
        what = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ModelError(f"netdyn reads models that return one tensor of logits [samples, classes]; {name} returns "
                         f"{what}")
    calls = [c for c in probe.calls if isinstance(c.output, torch.Tensor)]
    residual = bool(probe.residual_scopes)
    if cuts is not None:
        chosen = _hooked_named_cuts(model, calls, list(cuts))
    else:
        blocks = _hooked_block_cuts(model, calls, probe.join_scopes) if residual else []
        chosen = blocks or _hooked_default_cuts(model, calls)
    for call in chosen:
        if call.output is out:
            raise ModelError(f"the logits are layer L, not a cut: cut before {call.key!r}")
    position = {c.key: i + 1 for i, c in enumerate(probe.calls)}
    ordered = sorted({c.key: c for c in chosen}.values(), key=lambda c: position[c.key])
    input_key = _input_name(model)
    layers = [Cut(0, input_key, input_key)] + [Cut(l, c.key, c.key) for l, c in enumerate(ordered, start=1)]
    hooked = HookedModel(model, input_key, {c.key: (c.path, c.index) for c in calls},
                         {c.key: position[c.key] for c in calls}, probe.max_pools, probe.gates)
    return Network(model, None, shape, layers, residual, hooked)


def _inside(path: str, opaque: Sequence[str]) -> bool:
    return any(path.startswith(f"{p}.") for p in opaque)


def _hooked_default_cuts(model: nn.Module, calls: list[_Call]) -> list[_Call]:
    """Transfer-function modules' and opaque blocks' outputs (the pooled output where a pool reads one directly)."""
    opaque = [c.path for c in calls if isinstance(c.module, OPAQUE_MODULES)]
    pools = (*_MAX_POOL_MODULES, *_AVG_POOL_MODULES)
    chosen = []
    for i, call in enumerate(calls):
        if _inside(call.path, opaque):
            continue
        if isinstance(call.module, OPAQUE_MODULES):
            chosen.append(call)
        elif isinstance(call.module, tuple(_TRANSFER_MODULES)):
            following = next((c for c in calls[i + 1:] if c.leaf), None)
            pooled = (following is not None and isinstance(following.module, pools)
                      and following.first_input is call.output)
            chosen.append(following if pooled and following is not None else call)
    if not chosen:
        known = ", ".join(sorted({t.__name__ for t in _TRANSFER_MODULES}))
        raise ModelError(f"{type(model).__name__} calls no transfer-function module netdyn knows ({known}); read "
                         "through forward hooks, only modules can be cuts: add yours with "
                         "netdyn.register_transfer_function(module_type, name), or pass cuts=[...]")
    return chosen


def _hooked_block_cuts(model: nn.Module, calls: list[_Call], scopes: list[str]) -> list[_Call]:
    """The stem's output (where a module computes it), then the last call of each block holding a join.

    A join is an add of two data-dependent tensors: a residual add, or a projection shortcut's.
    """
    blocks = list(dict.fromkeys(b for b in (_block_of(model, s) for s in scopes) if b))
    chosen = []
    firsts = []
    for block in blocks:
        block_calls = [c for c in calls if c.path == block]
        if block_calls:
            chosen.append(block_calls[-1])
            firsts.append(block_calls[0])
    if firsts:
        first = min(firsts, key=calls.index)
        stem = next((c for c in calls if c.output is first.first_input and c is not first), None)
        if stem is not None:
            chosen.append(stem)
    return chosen


def _hooked_named_cuts(model: nn.Module, calls: list[_Call], names: list[str]) -> list[_Call]:
    """Cuts a user names: call keys (``act``, ``act_1``) or a block's name (its last call).

    As on the fx path, a leaf module's name is its first call.
    """
    keys = {c.key: c for c in calls}
    keys.update({c.path: c for c in calls if not c.leaf})  # completion order: the last call wins
    chosen = []
    for name in names:
        if not isinstance(name, str):
            raise ConfigError(f"cuts takes names, got {name!r}")
        call = keys.get(name)
        if call is None:
            valid = ", ".join(keys)
            raise ModelError(f"cut {name!r} names no module call of {type(model).__name__}; valid names: {valid}")
        chosen.append(call)
    return chosen


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
    variables = network.tail_variables(cut)
    free = [i for i, v in enumerate(inputs[:variables]) if isinstance(v, torch.Tensor) and v.is_floating_point()]
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
