"""Any ``nn.Module`` read as a graph of cuts and tails (see docs/any-network.md).

:func:`read_network` traces a model with ``torch.fx`` and names its nodes the way torchvision's
``get_graph_node_names`` does (a module's name means its output; a module called twice gives ``name`` and
``name_1``; a function called inside module ``m`` is ``m.relu``). A *cut* is a node: layer 0 is the input,
layers 1..L-1 the chosen cuts in execution order, layer L the logits. The *tail* of a cut is every node that is
neither the cut nor one of its ancestors, with its elementwise transfer functions replaced by the identity: the
L-map of docs/quantities.md#l-map for any graph.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.fx as fx
from torch import nn

from netdyn.errors import ConfigError, ModelError
from netdyn.models.adapter._affine import AFFINE_TOLERANCE, AffineFit, fit_affine
from netdyn.models.adapter._constant_variant import _held_statistics
from netdyn.models.adapter._fx import (
    _Capture,
    _Captured,
    _data_dependent,
    _default_cuts,
    _has_max_pool,
    _named_cuts,
    _residual_adds,
    _trace,
    _Traced,
    _Untraceable,
)
from netdyn.models.adapter._hooks import (
    PROBE_SAMPLES,
    HookedModel,
    _hooked_block_cuts,
    _hooked_default_cuts,
    _hooked_named_cuts,
    _input_name,
    _observe,
    _probe_input,
)
from netdyn.models.adapter._registry import evaluating
from netdyn.models.adapter._tails import build_tail

TailKind = Literal["affine", "piecewise_linear", "nonlinear"]

#: Samples per pass when ``Network.constant_variant`` takes its means.
_STATISTICS_ROWS = 512

#: How a network was read (``Network.path``): a torch.fx graph, or forward hooks where tracing fails.
ReadPath = Literal["fx", "hooks"]
READ_PATHS: tuple[str, ...] = ("auto", "fx", "hooks")
#: What a tail does with LayerNorm and softmax attention (see docs/any-network.md): keep them, or hold their scale and
#: pattern at their training-set means (``Network.constant_variant``).
LmapVariant = Literal["keep", "constant"]
LMAP_VARIANTS: tuple[LmapVariant, ...] = ("keep", "constant")


@dataclass(frozen=True)
class Cut:
    """Layer ``layer`` of a :class:`Network`: the output of graph node ``node``, known by ``name``."""

    layer: int
    name: str
    node: str


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


def _read_hooked(model: nn.Module, shape: tuple[int, ...], cuts: Sequence[str] | None) -> Network:
    """:func:`read_network` through forward hooks (see :class:`HookedModel`)."""
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


def _check_shape(input_shape: Sequence[int]) -> tuple[int, ...]:
    try:
        shape = tuple(int(s) for s in input_shape)
    except (TypeError, ValueError):
        raise ConfigError(f"input_shape must be a sequence of sizes, got {input_shape!r}") from None
    if not shape or any(s < 1 for s in shape) or any(s != t for s, t in zip(shape, input_shape, strict=True)):
        raise ConfigError(f"input_shape must be positive whole sizes, got {input_shape!r}")
    return shape
