"""The fully connected network of the paper (Eq. 1, and Eq. 2 for the residual variant), with its layers explicit.

Layers are numbered as in docs/quantities.md#conventions: layer 0 is the input, 1..L-1 are hidden, L is the output.
Block ``net.blocks[l - 1]`` computes layer l:

    a^l = W^l x^{l-1} + b^l,   z^l = BN(a^l) (or a^l),   h^l = z^l (+ x^{l-2} for a "pre" skip),
    x^l = f(h^l) (+ x^{l-2} for a "post" skip),

and the output block computes the logits h^L = W^L x^{L-1} + b^L. The analysis reads W^l, b^l, the BN
statistics and the skip pattern straight off the blocks.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import nn

from netdyn.errors import ConfigError, ModelError
from netdyn.models.activations import MODULE_ACTIVATIONS, get_activation
from netdyn.models.spec import ModelSpec, residual_mode

BN_MODES = ("train", "running", "batch")
DEFAULT_TRACE_BUDGET = 1 << 30  # bytes a trace may hold per chunk of samples


class LayerBlock(nn.Module):
    """Layer ``index`` of an :class:`MLP`: Linear, optional BatchNorm1d, transfer function, skip flag.

    ``activation`` is None for the output block. ``skip`` is None, ``"pre"`` (x^{l-2} joins the local field
    after batch norm) or ``"post"`` (x^{l-2} is added to the transfer function's output).
    """

    def __init__(
        self,
        index: int,
        in_features: int,
        out_features: int,
        activation: str | None,
        batchnorm: bool = False,
        skip: str | None = None,
        bias: bool = True,
        bn_eps: float = 1e-5,
        bn_momentum: float = 0.1,
    ) -> None:
        super().__init__()
        self.index = index
        self.linear = nn.Linear(in_features, out_features, bias=bias)
        self.bn = nn.BatchNorm1d(out_features, eps=bn_eps, momentum=bn_momentum) if batchnorm else None
        self.activation = activation
        self.skip = skip
        self._f = get_activation(activation) if activation is not None else None

    def normalize(self, a: torch.Tensor, bn_mode: str) -> torch.Tensor:
        """z^l from a^l: batch norm in the given mode (identity when the block has none)."""
        bn = self.bn
        if bn is None:
            return a
        if bn_mode == "train":
            return bn(a) if bn.training else _bn_running(bn, a)
        if bn_mode == "running":
            return _bn_running(bn, a)
        # "batch": the evaluated batch's own statistics, running statistics left untouched
        return F.batch_norm(a, None, None, bn.weight, bn.bias, True, 0.0, bn.eps)

    def transfer(self, h: torch.Tensor) -> torch.Tensor:
        """x^l from h^l: the block's transfer function (identity for the output block)."""
        return self._f(h) if self._f is not None else h

    def forward(
        self, x_prev: torch.Tensor, x_skip: torch.Tensor | None = None, bn_mode: str = "running"
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (h^l, x^l) from x^{l-1} (and x^{l-2} when the block has a skip)."""
        return self.join(self.normalize(self.linear(x_prev), bn_mode), x_skip)

    def join(self, z: torch.Tensor, x_skip: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(h^l, x^l) from z^l (the normalised local field) and x^{l-2}: the skip and the transfer function.

        This is the part of the block every functional forward pass (stacked networks, populations) shares.
        """
        if self.skip is None:
            return z, self.transfer(z)
        if x_skip is None:
            raise ModelError(f"layer {self.index} has a skip from layer {self.index - 2}: pass its output x_skip")
        if self.skip == "pre":
            h = z + x_skip
            return h, self.transfer(h)
        return z, self.transfer(z) + x_skip


def _bn_running(bn: nn.BatchNorm1d, a: torch.Tensor) -> torch.Tensor:
    return F.batch_norm(a, bn.running_mean, bn.running_var, bn.weight, bn.bias, False, 0.0, bn.eps)


@dataclass
class Trace:
    """Per-layer values of a network on a batch (see docs/runs.md#models).

    ``x[l]`` is x^l for l = 0..L-1 (``x[0]`` the input) and ``x[L]`` the output local fields h^L; ``h[l]`` is the
    input of layer l's transfer function for l = 1..L-1 and ``h[L]`` the output local fields; ``h[0]`` is None.
    Layers not asked for hold None.
    """

    x: list[torch.Tensor | None]
    h: list[torch.Tensor | None]

    @property
    def n_layers(self) -> int:
        """L, the index of the output layer."""
        return len(self.x) - 1

    @property
    def output(self) -> torch.Tensor | None:
        """The output local fields h^L (``x[L]``)."""
        return self.x[-1]


def _skip_pattern(residual: str, widths: Sequence[int]) -> list[str | None]:
    """Skip mode of each hidden layer 1..depth: layer l >= 3 with l odd receives x^{l-2} (none: no skips)."""
    skips: list[str | None] = []
    for l in range(1, len(widths) + 1):
        if residual != "none" and l >= 3 and l % 2 == 1:
            if widths[l - 1] != widths[l - 3]:
                raise ConfigError(
                    f"residual skip into layer {l} joins widths {widths[l - 3]} and {widths[l - 1]}: "
                    "skips connect equal widths only"
                )
            skips.append(residual)
        else:
            skips.append(None)
    return skips


@dataclass
class _SequentialLayer:
    """One Linear of a user's ``nn.Sequential`` with the batch norm and activation that follow it."""

    linear: nn.Linear
    bn: nn.BatchNorm1d | None = None
    activation: str | None = None


def _read_sequential(seq: nn.Sequential) -> list[_SequentialLayer]:
    """The layers of an ``nn.Sequential`` that :meth:`MLP.from_sequential` converts (ModelError otherwise)."""
    if not isinstance(seq, nn.Sequential):
        raise ModelError(f"from_sequential takes an nn.Sequential, got {type(seq).__name__}")
    modules = list(seq)
    if modules and isinstance(modules[0], nn.Flatten):
        modules = modules[1:]
    layers: list[_SequentialLayer] = []
    for position, module in enumerate(modules):
        _add_module(layers, module, f"module {position} ({type(module).__name__})")
    if len(layers) < 2:
        raise ModelError("from_sequential needs at least two Linear layers (one hidden, one output)")
    if layers[-1].bn is not None or layers[-1].activation is not None:
        raise ModelError("the last Linear is the output layer: nothing may follow it (logits are h^L)")
    for a, b in zip(layers, layers[1:], strict=False):
        if a.linear.out_features != b.linear.in_features:
            raise ModelError(f"Linear sizes do not chain: {a.linear.out_features} -> {b.linear.in_features}")
    if len({layer.linear.bias is not None for layer in layers}) != 1:
        raise ModelError("netdyn needs every Linear to have a bias, or none to")
    return layers


def _add_module(layers: list[_SequentialLayer], module: nn.Module, name: str) -> None:
    """Append a Linear as a new layer, or attach a batch norm or an activation to the last one."""
    if isinstance(module, nn.Linear):
        layers.append(_SequentialLayer(module))
        return
    if not layers:
        raise ModelError(f"{name} comes before the first Linear; the network must start with Linear")
    last = layers[-1]
    if isinstance(module, nn.BatchNorm1d):
        if last.bn is not None or last.activation is not None:
            raise ModelError(f"{name}: batch norm must follow a Linear directly")
        if not module.affine or not module.track_running_stats:
            raise ModelError(f"{name}: batch norm needs affine=True and track_running_stats=True")
        last.bn = module
    elif type(module) in MODULE_ACTIVATIONS:
        if last.activation is not None:
            raise ModelError(f"{name}: two activations in a row are not an MLP layer")
        last.activation = MODULE_ACTIVATIONS[type(module)]
    else:
        supported = ", ".join(sorted(t.__name__ for t in MODULE_ACTIVATIONS))
        raise ModelError(
            f"unsupported module in nn.Sequential: {name}; netdyn takes Linear, BatchNorm1d and {supported}"
        )


class MLP(nn.Module):
    """A fully connected network with explicit layer blocks (see docs/runs.md#models).

    ``width`` and ``activation`` may be sequences (one entry per hidden layer) for networks converted from a
    user's ``nn.Sequential``; ``batchnorm`` likewise. ``residual`` is False, True (= "pre") , "pre" or "post".
    ``init_scale`` multiplies every initial Linear weight and bias (batch-norm affine parameters keep 1 and 0).
    ``seed`` draws the initial parameters from a generator of its own; None uses torch's global generator.
    """

    def __init__(
        self,
        in_features: int,
        width: int | Sequence[int],
        depth: int,
        num_classes: int,
        activation: str | Sequence[str] = "relu",
        residual: bool | str = False,
        batchnorm: bool | Sequence[bool] = False,
        bias: bool = True,
        init: str = "default",
        init_scale: float = 1.0,
        seed: int | torch.Generator | None = None,
        bn_eps: float = 1e-5,
        bn_momentum: float = 0.1,
    ) -> None:
        super().__init__()

        def one_or_tuple(value: Any) -> Any:
            if isinstance(value, (str, bool)) or not isinstance(value, Sequence):
                return value
            return tuple(value)

        spec = ModelSpec(
            in_features=in_features,
            width=one_or_tuple(width),
            depth=depth,
            num_classes=num_classes,
            activation=one_or_tuple(activation),
            residual=residual_mode(residual),
            batchnorm=one_or_tuple(batchnorm),
            bias=bias,
            init=init,
            init_scale=init_scale,
            seed=None if isinstance(seed, torch.Generator) else seed,
            bn_eps=bn_eps,
            bn_momentum=bn_momentum,
        )
        skips = _skip_pattern(spec.residual, spec.widths)
        sizes = [in_features, *spec.widths]
        blocks = [
            LayerBlock(
                l,
                sizes[l - 1],
                sizes[l],
                spec.activations[l - 1],
                spec.batchnorms[l - 1],
                skips[l - 1],
                bias,
                bn_eps,
                bn_momentum,
            )
            for l in range(1, depth + 1)
        ]
        blocks.append(LayerBlock(depth + 1, sizes[-1], num_classes, None, False, None, bias))
        self.blocks = nn.ModuleList(blocks)
        self.spec = spec
        """The :class:`ModelSpec` that rebuilds this architecture (``seed`` None when a generator was given)."""
        self._init_parameters(init, init_scale, seed)

    # ------------------------------------------------------------------ construction
    def _init_parameters(self, init: str, scale: float, seed: int | torch.Generator | None) -> None:
        if isinstance(seed, torch.Generator):
            gen = seed
        elif seed is None:
            gen = None
        else:
            gen = torch.Generator().manual_seed(int(seed))
        with torch.no_grad():
            for block in self.layer_blocks:
                w, b = block.linear.weight, block.linear.bias
                fan_in = w.shape[1]
                if init == "default":  # nn.Linear's own rule, drawn from our generator
                    nn.init.kaiming_uniform_(w, a=math.sqrt(5), generator=gen)
                    if b is not None:
                        bound = 1 / math.sqrt(fan_in)
                        nn.init.uniform_(b, -bound, bound, generator=gen)
                else:
                    if init == "orthogonal":
                        nn.init.orthogonal_(w, generator=gen)
                    elif init == "kaiming":
                        nn.init.kaiming_normal_(w, nonlinearity="relu", generator=gen)
                    else:
                        nn.init.xavier_uniform_(w, generator=gen)
                    if b is not None:
                        b.zero_()
                if scale != 1.0:
                    w.mul_(scale)
                    if b is not None:
                        b.mul_(scale)

    @classmethod
    def from_spec(cls, spec: ModelSpec) -> MLP:
        """A freshly initialised network of ``spec`` (which must hold ``in_features`` and ``num_classes``)."""
        if spec.in_features is None or spec.num_classes is None:
            raise ConfigError("the model spec needs in_features and num_classes (see ModelSpec.resolve)")
        if spec.arch != "mlp":
            raise ConfigError(f"the spec's arch is {spec.arch}, not mlp: build it with netdyn.models.vision.spec_model")
        return cls(
            spec.in_features,
            spec.width,
            spec.depth,
            spec.num_classes,
            activation=spec.activation,
            residual=spec.residual,
            batchnorm=spec.batchnorm,
            bias=spec.bias,
            init=spec.init,
            init_scale=spec.init_scale,
            seed=spec.seed,
            bn_eps=spec.bn_eps,
            bn_momentum=spec.bn_momentum,
        )

    @classmethod
    def from_sequential(cls, seq: nn.Sequential) -> MLP:
        """Convert an ``nn.Sequential`` of Linear / BatchNorm1d / elementwise activations, copying its parameters.

        A hidden Linear with no activation after it becomes a ``linear`` layer. An unsupported module, a batch
        norm not directly after a Linear, or anything after the last Linear raises :class:`ModelError`.
        """
        layers = _read_sequential(seq)
        *hidden, out = layers
        bns = [layer.bn for layer in hidden if layer.bn is not None]
        net = cls(
            in_features=layers[0].linear.in_features,
            width=[layer.linear.out_features for layer in hidden],
            depth=len(hidden),
            num_classes=out.linear.out_features,
            activation=[layer.activation or "linear" for layer in hidden],
            batchnorm=[layer.bn is not None for layer in hidden],
            bias=out.linear.bias is not None,
            bn_eps=bns[0].eps if bns else 1e-5,
            bn_momentum=(bns[0].momentum if bns and bns[0].momentum is not None else 0.1),
            seed=0,  # the parameters are copied below: never draw from (and advance) the caller's global RNG
        )
        net.spec = replace(net.spec, seed=None)  # its weights are the copied ones, not a seed's
        ref = next(iter(seq.parameters()))
        net.to(device=ref.device, dtype=ref.dtype)
        with torch.no_grad():
            for l, layer in enumerate(layers, start=1):
                block = net.block(l)
                block.linear.load_state_dict(layer.linear.state_dict())
                if block.bn is not None and layer.bn is not None:
                    block.bn.load_state_dict(layer.bn.state_dict())
        net.train(seq.training)
        return net

    # ------------------------------------------------------------------ structure
    @property
    def n_layers(self) -> int:
        """L: the index of the output layer (depth + 1)."""
        return len(self.blocks)

    @property
    def depth(self) -> int:
        """The number of hidden layers, L - 1."""
        return len(self.blocks) - 1

    @property
    def hidden_layers(self) -> range:
        """The hidden layers' indices, 1..L-1."""
        return range(1, self.n_layers)

    @property
    def widths(self) -> list[int]:
        """Sizes of layers 0..L (input, hidden widths, classes)."""
        blocks = self.layer_blocks
        return [blocks[0].linear.in_features, *(b.linear.out_features for b in blocks)]

    @property
    def has_batchnorm(self) -> bool:
        """Whether any layer has batch norm."""
        return any(b.bn is not None for b in self.layer_blocks)

    @property
    def layer_blocks(self) -> list[LayerBlock]:
        """The blocks computing layers 1..L, in order (``blocks`` as a typed list)."""
        return cast("list[LayerBlock]", list(self.blocks))

    def block(self, l: int) -> LayerBlock:
        """The block computing layer l (1..L)."""
        if not 1 <= l <= self.n_layers:
            raise ConfigError(f"layer {l} is out of range 1..{self.n_layers}")
        return cast(LayerBlock, self.blocks[l - 1])

    def _param(self) -> torch.Tensor:
        return self.block(1).linear.weight

    # ------------------------------------------------------------------ evaluation
    def _resolve_bn_mode(self, bn_mode: str | None) -> str:
        if bn_mode is None:
            return "train" if self.training else "running"
        if bn_mode not in BN_MODES:
            raise ConfigError(f"bn_mode must be one of {', '.join(BN_MODES)}, got {bn_mode!r}")
        return bn_mode

    def forward(self, x: torch.Tensor, bn_mode: str | None = None) -> torch.Tensor:
        """Logits h^L. ``bn_mode`` None follows ``self.training``; "running" / "batch" override it."""
        mode = self._resolve_bn_mode(bn_mode)
        x = x.flatten(1)
        prev2: torch.Tensor | None = None
        for block in self.blocks:
            _, out = block(x, prev2 if block.skip else None, mode)
            prev2, x = x, out
        return x

    def run_from(
        self, l: int, x_l: torch.Tensor, x_lm1: torch.Tensor | None = None, bn_mode: str | None = "running"
    ) -> torch.Tensor:
        """Logits from layer l's output x^l onward (l = 0 is the plain forward pass).

        ``x_lm1`` (x^{l-1}) is needed only when layer l+1 has a skip, which joins x^{l-1}.
        """
        mode = self._resolve_bn_mode(bn_mode)
        if not 0 <= l < self.n_layers:
            raise ConfigError(f"run_from takes a layer in 0..{self.n_layers - 1}, got {l}")
        if l < self.n_layers - 1 and self.blocks[l].skip and x_lm1 is None:
            raise ConfigError(f"layer {l + 1} has a skip from layer {l - 1}: pass x_lm1")
        prev2, x = x_lm1, x_l
        for block in self.blocks[l:]:
            _, out = block(x, prev2 if block.skip else None, mode)
            prev2, x = x, out
        return x

    def iter_layers(
        self, x: torch.Tensor, bn_mode: str | None = "running"
    ) -> Iterator[tuple[int, torch.Tensor, torch.Tensor | None]]:
        """Walk the network once over the whole batch, yielding ``(l, x_l, h_l)`` for l = 0..L.

        Holds one layer at a time (two with skips). At l = L both values are the logits h^L. Runs without
        gradient; the caller moves ``x`` to the net's device and dtype or lets this do it.
        """
        mode = self._resolve_bn_mode(bn_mode)
        ref = self._param()
        with torch.no_grad():
            x = x.flatten(1).to(device=ref.device, dtype=ref.dtype)
            yield 0, x, None
            prev2: torch.Tensor | None = None
            for block in self.layer_blocks:
                h, out = block(x, prev2 if block.skip else None, mode)
                prev2, x = (x if self._needs_prev(block.index) else None), out
                yield block.index, x, h

    def _needs_prev(self, l: int) -> bool:
        """Whether x^{l-1} must be kept after computing layer l (layer l+1 has a skip)."""
        return l < self.n_layers and self.blocks[l].skip is not None

    def trace(
        self,
        x: torch.Tensor,
        layers: Sequence[int] | None = None,
        bn_mode: str | None = "running",
        chunk_size: int | None = None,
        memory_budget: int = DEFAULT_TRACE_BUDGET,
        keep_h: bool = True,
        device: torch.device | str | None = None,
    ) -> Trace:
        """Local fields and outputs of every layer for a batch (see docs/runs.md#models), computed in chunks.

        ``layers`` keeps only those layers (0..L). Chunks are sized so that one chunk's kept values fit
        ``memory_budget`` bytes; with ``bn_mode="batch"`` pass ``chunk_size`` = the batch the statistics
        should come from. The results are gathered on ``device`` (default: the net's device).
        """
        L = self.n_layers
        keep = set(range(L + 1)) if layers is None else {int(l) for l in layers}
        if any(not 0 <= l <= L for l in keep):
            raise ConfigError(f"trace layers must lie in 0..{L}, got {sorted(keep)}")
        ref = self._param()
        x = x.flatten(1)
        n = x.shape[0]
        if chunk_size is None:
            per_sample = sum(self.widths[l] * (2 if keep_h and 0 < l < L else 1) for l in keep) or 1
            per_sample = max(per_sample, max(self.widths)) * ref.element_size()
            chunk_size = max(1, min(n, memory_budget // per_sample))
        parts_x: dict[int, list[torch.Tensor]] = {l: [] for l in keep}
        parts_h: dict[int, list[torch.Tensor]] = {l: [] for l in keep if 0 < l < L and keep_h}
        out_device = torch.device(device) if device is not None else ref.device
        for start in range(0, max(n, 1), chunk_size):
            chunk = x[start : start + chunk_size]
            for l, x_l, h_l in self.iter_layers(chunk, bn_mode):
                if l in parts_x:
                    parts_x[l].append(x_l.to(out_device))
                if l in parts_h and h_l is not None:
                    parts_h[l].append(h_l.to(out_device))
        xs: list[torch.Tensor | None] = [None] * (L + 1)
        hs: list[torch.Tensor | None] = [None] * (L + 1)
        for l, chunks in parts_x.items():
            xs[l] = torch.cat(chunks) if chunks else None
        for l, chunks in parts_h.items():
            hs[l] = torch.cat(chunks) if chunks else None
        if L in keep:
            hs[L] = xs[L]
        return Trace(x=xs, h=hs)

    def extra_repr(self) -> str:
        """The sizes and settings that ``repr(net)`` shows."""
        s = self.spec
        return (
            f"in={s.in_features}, width={s.width}, depth={s.depth}, classes={s.num_classes}, "
            f"activation={s.activation}, residual={s.residual}, batchnorm={s.batchnorm}"
        )
