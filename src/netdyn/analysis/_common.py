"""Small pieces every analysis module shares: layer selection, device handling, seeded subsets, splits."""

from __future__ import annotations

import dataclasses
import numbers
from collections.abc import Generator, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import torch

from netdyn.data.samples import DataLike, SampleSet, as_samples, check_fits
from netdyn.errors import ConfigError, ModelError
from netdyn.models import MLP

if TYPE_CHECKING:
    from netdyn.analysis.config import AnalysisConfig

SPLITS = ("train", "test")


def resolve_layers(net: MLP, layers: Sequence[int] | None, *, hidden_only: bool = False) -> list[int]:
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


def check_config_fits(config: AnalysisConfig, net: MLP, num_classes: int) -> None:
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
    """Fraction of samples whose largest output is their label (SPEC section 1)."""
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
