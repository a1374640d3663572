"""Small pieces every analysis module shares: layer selection, device handling, seeded subsets, splits."""

from __future__ import annotations

import dataclasses
import functools
import math
import numbers
from collections.abc import Callable, Generator, Iterator, Sequence
from contextlib import closing
from typing import TYPE_CHECKING, Any, ParamSpec, Protocol, TypeGuard, TypeVar

import numpy as np
import torch
from torch import nn

from netdyn.data.samples import DataLike, SampleSet, as_samples, check_fits
from netdyn.errors import ConfigError, ModelError
from netdyn.models import MLP
from netdyn.models.adapter import Network, evaluating, read_network

#: What a solver raises when it fails on extreme but finite values (no convergence, a matrix that is not
#: positive definite, an overflow numpy was told to raise on).
NUMERICAL_FAILURES = (torch.linalg.LinAlgError, np.linalg.LinAlgError, FloatingPointError)

_P = ParamSpec("_P")
_R = TypeVar("_R")


def numerically_guarded(name: str) -> Callable[[Callable[_P, _R]], Callable[_P, _R]]:
    """Turn a numerical failure inside the decorated analysis function into one :class:`ModelError` line that
    names ``name``, instead of a solver's traceback."""

    def decorate(fn: Callable[_P, _R]) -> Callable[_P, _R]:
        @functools.wraps(fn)
        def guarded(*args: _P.args, **kwargs: _P.kwargs) -> _R:
            try:
                return fn(*args, **kwargs)
            except NUMERICAL_FAILURES as exc:
                what = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                raise ModelError(
                    f"{name}: its linear algebra failed on this network's values ({what}); are its weights or "
                    "activations extreme?"
                ) from None

        return guarded

    return decorate

if TYPE_CHECKING:
    from netdyn.analysis.config import AnalysisConfig

SPLITS = ("train", "test")


class HasLayers(Protocol):
    @property
    def n_layers(self) -> int: ...


def resolve_layers(net: HasLayers, layers: Sequence[int] | None, *, hidden_only: bool = False) -> list[int]:
    """The layers a function reports on: default 0..L-1 (1..L-1 with ``hidden_only``), validated."""
    low = 1 if hidden_only else 0
    valid = range(low, net.n_layers)
    if layers is None:
        return list(valid)
    if any(isinstance(l, bool) or not isinstance(l, numbers.Integral) for l in layers):
        raise ConfigError(f"layers takes whole numbers, got {list(layers)!r}")
    chosen = sorted({int(l) for l in layers})
    bad = [l for l in chosen if l not in valid]
    if bad:
        raise ConfigError(
            f"layers {bad} are out of range: this network's layers here are {low}..{net.n_layers - 1}"
        )
    return chosen


def net_device(net: MLP) -> torch.device:
    return next(net.parameters()).device


def net_dtype(net: MLP) -> torch.dtype:
    return next(net.parameters()).dtype


def split_tensors(data: SampleSet, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(x, y) of a Dataset's split, checked against nothing but presence."""
    if split not in SPLITS:
        raise ConfigError(f"split must be 'train' or 'test', got {split!r}")
    return getattr(data, f"x_{split}"), getattr(data, f"y_{split}")


def check_network(net: Any) -> MLP:
    """``net`` itself when it is a netdyn :class:`MLP`; a :class:`ModelError` saying how to convert it otherwise."""
    if not isinstance(net, MLP):
        raise ModelError(
            f"the analysis takes a netdyn MLP, got {type(net).__name__}; convert an nn.Sequential of Linear, "
            "BatchNorm1d and activation modules with netdyn.MLP.from_sequential(seq)"
        )
    return net


def samples_for(net: MLP, data: DataLike) -> SampleSet:
    """``data`` as a sample set that fits ``net`` (input width, labels among its outputs), else ConfigError;
    ``net`` not an MLP is a ModelError."""
    check_network(net)
    samples = as_samples(data, num_classes=net.widths[-1])
    check_fits(samples, net.widths[0], net.widths[-1])
    return samples


def check_config_fits(config: AnalysisConfig, net: HasLayers, num_classes: int) -> None:
    """An :class:`~netdyn.analysis.AnalysisConfig` whose layers or classes the network at hand does not have is a
    ConfigError naming the valid range (never a silent substitution). The default classes (1, 2, 3) mean "the
    first classes there are" on a data set with fewer."""
    if config.layers is not None:
        resolve_layers(net, config.layers)
    default = next(f.default for f in dataclasses.fields(config) if f.name == "classes")
    if tuple(config.classes) == default:
        return
    bad = [c for c in config.classes if not 0 <= c < num_classes]
    if bad:
        raise ConfigError(f"classes {bad} are out of range: this data set's classes are 0..{num_classes - 1}")


def make_generator(seed: int | torch.Generator) -> torch.Generator:
    if isinstance(seed, torch.Generator):
        return seed
    return torch.Generator().manual_seed(int(seed))


def seeded_subset(n: int, max_samples: int | None, seed: int | torch.Generator = 0) -> torch.Tensor | None:
    """Sorted indices of a seeded random subset of ``max_samples`` out of n, or None to take all."""
    if max_samples is None or max_samples >= n:
        return None
    perm = torch.randperm(n, generator=make_generator(seed))[:max_samples]
    return torch.sort(perm).values


def take(t: torch.Tensor, idx: torch.Tensor | None) -> torch.Tensor:
    return t if idx is None else t[idx]


def walk(
    net: MLP, x: torch.Tensor, bn_mode: str = "running"
) -> Generator[tuple[int, torch.Tensor, torch.Tensor | None], None, None]:
    """``net.iter_layers`` in evaluation mode, with the net's mode restored afterwards."""
    was_training = net.training
    net.eval()
    try:
        yield from net.iter_layers(x, bn_mode=bn_mode)
    finally:
        net.train(was_training)


def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Fraction of samples whose largest output is their label (see docs/quantities.md#conventions)."""
    if logits.shape[0] == 0:
        return float("nan")
    return (logits.argmax(1) == labels.to(logits.device)).double().mean().item()


#: Bytes of working memory one chunk of samples may take in the streaming analyses (tests lower it).
CHUNK_BUDGET = 1 << 28


def chunk_rows(n: int, bytes_per_row: int, budget: int | None = None) -> int:
    """Samples per chunk so that one chunk's working values fit ``budget`` bytes (``CHUNK_BUDGET``)."""
    budget = CHUNK_BUDGET if budget is None else budget
    return max(1, min(max(n, 1), budget // max(1, bytes_per_row)))


def iter_chunks(n: int, size: int) -> Iterator[slice]:
    """Consecutive slices of ``size`` rows covering 0..n."""
    for start in range(0, n, size):
        yield slice(start, min(start + size, n))


# ------------------------------------------------------------------ any network (see docs/any-network.md)
class LayerReader(Protocol):
    """How a streaming analysis reads a network's layers: a netdyn MLP's walk, or the adapter's cuts."""

    @property
    def n_layers(self) -> int: ...

    @property
    def widths(self) -> list[int]: ...

    @property
    def device(self) -> torch.device: ...

    @property
    def dtype(self) -> torch.dtype: ...

    @property
    def names(self) -> list[str] | None: ...

    def walk(self, x: torch.Tensor) -> Generator[tuple[int, torch.Tensor], None, None]: ...


@dataclasses.dataclass
class MLPLayers:
    """A netdyn MLP's layers, read by its own walk (every layer 0..L, the logits last)."""

    net: MLP

    @property
    def n_layers(self) -> int:
        return self.net.n_layers

    @property
    def widths(self) -> list[int]:
        return self.net.widths

    @property
    def device(self) -> torch.device:
        return net_device(self.net)

    @property
    def dtype(self) -> torch.dtype:
        return net_dtype(self.net)

    @property
    def names(self) -> list[str] | None:
        return None

    def walk(self, x: torch.Tensor) -> Generator[tuple[int, torch.Tensor], None, None]:
        with closing(walk(self.net, x)) as layers:
            for l, x_l, _ in layers:
                yield l, x_l


@dataclasses.dataclass
class CutLayers:
    """Any model's cuts, read through the network adapter: one pass per chunk yields the chosen cuts'
    flattened activations in layer order, then the logits (layer L)."""

    network: Network
    widths: list[int]
    chosen: list[int]
    device: torch.device
    dtype: torch.dtype
    shapes: list[tuple[int, ...]] = dataclasses.field(default_factory=list)
    """Each cut's activations of one sample as the model holds them ([C, H, W] for a conv cut)."""

    @property
    def n_layers(self) -> int:
        return self.network.n_layers

    @property
    def names(self) -> list[str] | None:
        return [c.name for c in self.network.cuts]

    def walk(self, x: torch.Tensor) -> Generator[tuple[int, torch.Tensor], None, None]:
        cuts = self.network.cuts
        values = self.network.capture(x, [cuts[l].node for l in self.chosen])
        for l in sorted(self.chosen):
            yield l, values.pop(cuts[l].node).flatten(1)
        yield self.n_layers, values["logits"]


def is_own_network(
    net: Any, input_shape: Sequence[int] | None = None, cuts: Sequence[str] | None = None
) -> TypeGuard[MLP]:
    """Whether ``net`` takes netdyn's own MLP code path (an :class:`MLP` with no ``input_shape`` or ``cuts``)."""
    return isinstance(net, MLP) and input_shape is None and cuts is None


def _model_reference(model: nn.Module) -> torch.Tensor | None:
    return next(iter(model.parameters()), next(iter(model.buffers()), None))


def model_logits(model: nn.Module, x: torch.Tensor, input_shape: Sequence[int]) -> torch.Tensor:
    """Any model's own output on samples [P, d], fed as ``x.reshape(-1, *input_shape)``, in evaluation mode."""
    ref = _model_reference(model)
    x = x.reshape(-1, *input_shape)
    if ref is not None:
        x = x.to(device=ref.device, dtype=ref.dtype)
    with torch.no_grad(), evaluating(model):
        out = model(x)
    if not isinstance(out, torch.Tensor) or out.ndim != 2 or out.shape[0] != x.shape[0]:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ModelError(f"netdyn reads models whose output is logits [samples, classes]; {type(model).__name__} "
                         f"returns {shape}")
    return out


def model_samples(
    model: nn.Module, data: DataLike, input_shape: Sequence[int] | None
) -> tuple[SampleSet, tuple[int, ...]]:
    """``data`` as a sample set that fits any model, and the shape one sample is fed in: ``input_shape``, else the
    data's own ``input_shape`` (with one channel in front of an image set's (H, W)). One sample runs through the
    model to learn its number of classes."""
    if not isinstance(model, nn.Module):
        raise ModelError(f"the analysis takes a torch.nn.Module, got {type(model).__name__}")
    samples = as_samples(data)
    if input_shape is not None:
        shape = tuple(int(s) for s in input_shape)
    else:
        shape = tuple(getattr(samples, "input_shape", None) or samples.x_train.shape[1:])
        if len(shape) == 2:  # an image set's (H, W): one channel, as a conv net takes it (see docs/any-network.md)
            shape = (1, *shape)
    d = samples.x_train.flatten(1).shape[1]
    if math.prod(shape) != d:
        raise ConfigError(f"input_shape {shape} holds {math.prod(shape)} values but the samples have {d} features")
    probe = samples.x_train[:1] if samples.x_train.shape[0] else samples.x_test[:1]
    num_classes = model_logits(model, probe, shape).shape[1] if probe.shape[0] else int(samples.num_classes)
    check_fits(samples, d, num_classes)
    return samples, shape


def cut_layers(
    model: nn.Module,
    data: DataLike,
    layers: Sequence[int] | None,
    input_shape: Sequence[int] | None,
    cuts: Sequence[str] | None,
) -> tuple[CutLayers, SampleSet, list[int]]:
    """Any model read through the adapter: its reader, the data as a fitting sample set, and the chosen layers."""
    samples, shape = model_samples(model, data, input_shape)
    network = read_network(model, shape, cuts)
    chosen = resolve_layers(network, layers)
    probe = samples.x_train[:1] if samples.x_train.shape[0] else samples.x_test[:1]
    values = network.capture(probe, [c.node for c in network.cuts])
    shapes = [tuple(values[c.node].shape[1:]) for c in network.cuts]
    widths = [math.prod(shape) for shape in shapes] + [values["logits"].shape[1]]
    ref = values["logits"]
    return CutLayers(network, widths, chosen, ref.device, ref.dtype, shapes), samples, chosen


def with_cuts(table: Any, reader: LayerReader) -> Any:
    """A table with the ``cut`` column after ``layer`` (the cut's name) when the reader names its layers."""
    names = reader.names
    if names is None:
        return table
    table.insert(list(table.columns).index("layer") + 1, "cut", [names[int(l)] for l in table["layer"]])
    return table
