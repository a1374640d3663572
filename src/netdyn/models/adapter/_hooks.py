"""The forward-hook path, for a model torch.fx cannot trace.

The probe that observes one forward, the cuts it finds (module calls), :class:`HookedModel` and its tails
(:class:`HookedTail`: the model rerun with the cut's output replaced and what follows linearised).
"""

from __future__ import annotations

import contextlib
import functools
import inspect
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from netdyn.errors import ConfigError, ModelError
from netdyn.models.activations import Gauss
from netdyn.models.adapter import _registry
from netdyn.models.adapter._constant_variant import (
    HeldSums,
    fused_attention,
    fused_attention_error,
    held_layer_norm,
    held_pattern,
    layer_norm_call,
)
from netdyn.models.adapter._fx import _block_of, _Captured
from netdyn.models.adapter._registry import (
    _AVG_POOL_MODULES,
    _MAX_POOL_MODULES,
    OPAQUE_MODULES,
    Linearising,
    evaluating,
    is_transfer_call,
)

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
                      if isinstance(m, tuple(_registry._TRANSFER_MODULES)) and type(m) not in _MODE_SEEN]
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
        elif isinstance(call.module, tuple(_registry._TRANSFER_MODULES)):
            following = next((c for c in calls[i + 1:] if c.leaf), None)
            pooled = (following is not None and isinstance(following.module, pools)
                      and following.first_input is call.output)
            chosen.append(following if pooled and following is not None else call)
    if not chosen:
        known = ", ".join(sorted({t.__name__ for t in _registry._TRANSFER_MODULES}))
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
