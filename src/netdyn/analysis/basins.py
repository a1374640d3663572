"""Attraction basins (see docs/quantities.md#attraction-basins), and two companions of the paper's grokking argument.

A basin says how far a training sample, or the weights, can be pushed before the network stops classifying the
sample as its label.

Method, where the definition (docs/quantities.md#attraction-basins) leaves the choice open:

* **Noise design (common random numbers).** One Gaussian direction is drawn per (sample, repeat) in a sample
  basin and per (layer, parameter, repeat) in a weight basin, and the same direction is scaled along the whole
  eps grid. Each repeat is then a ray from the clean point: curves are smooth in eps, a sample's accuracy over
  repeats is nearly monotone, and its basin radius is well defined. Points of one curve are therefore not
  independent of each other; each point's interval is still valid on its own.
* **Reproducibility.** Directions are drawn in float32 (then cast to the network's dtype) from generators on
  the network's device, seeded from ``seed``: the same seed gives the same curve on one device whatever the
  dtype and chunk budget; CPU and CUDA draw different streams. Sample noise comes in streams of 256 samples
  each, so it does not depend on how the work is chunked.
* **Interval (95 %).** The hits form a samples x repeats table, a crossed two-factor design: a sample is hard
  or easy for every repeat, and in a weight basin a repeat (one perturbed network) is good or bad for every
  sample. The variance of the mean accuracy comes from the two-way random-effects ANOVA (variance components
  of samples, repeats and residual from the mean squares, truncated at 0), its degrees of freedom from
  Satterthwaite's approximation. The interval is Wilson's score interval on the effective number of trials
  p(1-p)/var, shrunk by (z/t_df)^2 for the few degrees of freedom (Korn & Graubard, 1998), and capped at the
  number of trials. With independent noise per sample (a sample basin) this is close to Wilson over all
  trials; with five perturbed networks (a weight basin) the repeat component dominates and the interval widens
  accordingly. Where every trial agrees (accuracy 0 or 1) it is Wilson's interval over the samples, each
  counted once. Samples are treated as a sample of the data distribution, repeats as a sample of the noise.
* **Sizes.** ``size_mid`` / ``size_half`` are the first eps where the curve is <= (acc(0) + 1/C)/2 or
  acc(0)/2, interpolated linearly between the grid points around the crossing (0 if the clean accuracy is
  already there). The curve always starts at eps = 0 (prepended to an explicit grid that lacks it).
* **Per-sample radius.** The first eps where the sample's accuracy over repeats is below 1/2, interpolated
  like the sizes; 0 for a sample misclassified clean, ``inf`` (right-censored: beyond the grid) if it never
  falls.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import pandas as pd
import torch
from torch import fx, nn
from torch.func import functional_call

from netdyn.analysis._common import (
    CutLayers,
    cut_layers,
    is_own_network,
    make_generator,
    net_device,
    net_dtype,
    samples_for,
    seeded_subset,
    walk,
)
from netdyn.data.samples import DataLike, SampleSet, as_samples, check_labels
from netdyn.errors import ConfigError
from netdyn.models import MLP, StackedMLP, fold_batchnorm
from netdyn.models.adapter import Network, evaluating
from netdyn.models.stacked import batchnorm_tensors

DEFAULT_CHUNK_BUDGET = 512 << 20  # bytes one forward pass of perturbed copies may take on an accelerator
CPU_CHUNK_BUDGET = 64 << 20  # on a CPU, where smaller passes stay in cache and run faster
CPU_SAMPLES = 2000  # default n_samples when the network is on a CPU
GRID_TENTHS = (30, 120)  # default grid: eps = i / 10 up to 3.0, extended by blocks of 30 up to 12.0
NOISE_BLOCK = 256  # samples per noise stream
CURVE_COLUMNS = ["eps", "accuracy", "ci_low", "ci_high"]
PER_SAMPLE_COLUMNS = ["sample", "label", "radius"]
_WEIGHT, _BIAS, _BN_WEIGHT, _BN_BIAS = range(4)  # parameter kinds of a layer, for the weight-noise seeds
_KIND_NAMES = {_WEIGHT: "linear.weight", _BIAS: "linear.bias", _BN_WEIGHT: "bn.weight", _BN_BIAS: "bn.bias"}
_MAX_SEED = 2**62


@dataclass
class BasinCurve:
    """Accuracy of noised training samples (or of the samples under noised weights) against the noise amplitude.

    ``curve`` has the columns ``eps, accuracy, ci_low, ci_high`` (95% interval, see the module docstring);
    ``size_mid`` and ``size_half`` are the eps where the accuracy falls to (acc(0) + 1/C)/2 and to acc(0)/2
    (NaN if never on the grid); ``per_sample`` (``sample, label, radius``) is filled by
    ``sample_basin(per_sample=True)``. ``kind`` is ``"sample"`` or ``"weight"``; ``settings`` records the
    options used.
    """

    kind: str
    curve: pd.DataFrame
    size_mid: float
    size_half: float
    per_sample: pd.DataFrame | None = None
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def clean_accuracy(self) -> float:
        """Accuracy at eps = 0."""
        return float(self.curve["accuracy"].iloc[0])


# ------------------------------------------------------------------------------------------- grid and tallies
def default_eps_blocks() -> list[np.ndarray]:
    """The default grid in its blocks: 0..3 (31 points), then 3.1..6, 6.1..9, 9.1..12.

    Each block after the first is evaluated only while ``size_half`` has not been reached.
    """
    first, last = GRID_TENTHS
    blocks = [np.arange(0, first + 1) / 10]
    for start in range(first, last, first):
        blocks.append(np.arange(start + 1, start + first + 1) / 10)
    return blocks


def _check_eps(eps: Any) -> np.ndarray:
    grid = np.asarray(eps, dtype=np.float64).reshape(-1)
    if grid.size == 0 or not np.all(np.isfinite(grid)) or np.any(grid < 0):
        raise ConfigError("eps must be a non-empty list of finite amplitudes >= 0")
    if np.any(np.diff(grid) <= 0):
        raise ConfigError("eps must be strictly increasing")
    return grid if grid[0] == 0 else np.concatenate([[0.0], grid])


@dataclass
class _Tally:
    """Hits on an eps grid.

    ``correct[e, s]`` = repeats in which sample s was classified as its label at eps e, ``by_repeat[e, r]`` =
    samples that repeat r classified as their label.
    """

    eps: np.ndarray
    correct: np.ndarray
    by_repeat: np.ndarray

    @property
    def accuracy(self) -> np.ndarray:
        return self.correct.sum(1) / (self.correct.shape[1] * self.by_repeat.shape[1])

    def concat(self, other: _Tally) -> _Tally:
        return _Tally(
            np.concatenate([self.eps, other.eps]),
            np.concatenate([self.correct, other.correct]),
            np.concatenate([self.by_repeat, other.by_repeat]),
        )


def _run_grid(evaluate: Callable[[np.ndarray], Any], eps: Any) -> Any:
    """Evaluate an explicit grid as given, or the default grid block by block until ``size_half`` is reached.

    ``evaluate(block)`` returns an object with ``.accuracy`` and ``.concat(other)`` (a :class:`_Tally`).
    """
    if eps is not None:
        return evaluate(_check_eps(eps))
    blocks = default_eps_blocks()
    tally = evaluate(blocks[0])
    grid = blocks[0]
    for block in blocks[1:]:
        acc = np.asarray(tally.accuracy)
        if not math.isnan(_first_crossing(grid, acc, acc[0] / 2)):
            break
        tally = tally.concat(evaluate(block))
        grid = np.concatenate([grid, block])
    return tally


def _first_crossing(eps: np.ndarray, values: np.ndarray, threshold: float) -> float:
    """First eps where ``values`` <= threshold, linearly interpolated from the grid point before; NaN if never."""
    where = np.flatnonzero(values <= threshold)
    if where.size == 0:
        return float("nan")
    i = int(where[0])
    if i == 0:
        return float(eps[0])
    a0, a1 = values[i - 1], values[i]
    return float(eps[i - 1] + (a0 - threshold) / (a0 - a1) * (eps[i] - eps[i - 1]))


def curve_sizes(curve: pd.DataFrame, num_classes: int) -> tuple[float, float]:
    """(size_mid, size_half) of a basin curve table (``eps, accuracy, ...``), NaN where not reached, silently.

    These are the sizes a ``BasinCurve`` carries, recovered from its table alone.
    """
    eps, acc = curve["eps"].to_numpy(float), curve["accuracy"].to_numpy(float)
    acc0 = float(acc[0])
    return _first_crossing(eps, acc, (acc0 + 1 / num_classes) / 2), _first_crossing(eps, acc, acc0 / 2)


def _basin_sizes(eps: np.ndarray, acc: np.ndarray, num_classes: int, kind: str = "") -> tuple[float, float]:
    """(size_mid, size_half) of a curve starting at eps = 0; warns for each size not reached on the grid."""
    acc0 = float(acc[0])
    sizes = []
    for name, threshold, label in (
        ("size_mid", (acc0 + 1 / num_classes) / 2, "(acc(0) + 1/C)/2"),
        ("size_half", acc0 / 2, "acc(0)/2"),
    ):
        size = _first_crossing(eps, acc, threshold)
        if math.isnan(size):
            warnings.warn(
                f"{kind} basin: accuracy never fell to {label} = {threshold:.3f} on eps up to {eps[-1]:g}; "
                f"{name} is NaN",
                RuntimeWarning,
                stacklevel=3,
            )
        sizes.append(size)
    return sizes[0], sizes[1]


def _interval(correct: np.ndarray, by_repeat: np.ndarray, level: float = 0.95) -> tuple[np.ndarray, ...]:
    """Accuracy and its interval per eps from the samples x repeats hit counts (see the module docstring)."""
    from scipy import stats  # scikit-learn's own dependency; imported here to keep ``import netdyn`` light

    correct = np.asarray(correct, dtype=np.float64)
    by_repeat = np.asarray(by_repeat, dtype=np.float64)
    n, repeats = correct.shape[1], by_repeat.shape[1]
    trials = n * repeats
    p = correct.sum(1) / trials
    ss_rows = repeats * ((correct / repeats - p[:, None]) ** 2).sum(1)
    ss_cols = n * ((by_repeat / n - p[:, None]) ** 2).sum(1)
    with np.errstate(divide="ignore", invalid="ignore"):
        if n > 1 and repeats > 1:
            ss_err = np.clip(trials * p * (1 - p) - ss_rows - ss_cols, 0, None)  # hits are 0/1
            ms_rows, ms_cols = ss_rows / (n - 1), ss_cols / (repeats - 1)
            ms_err = ss_err / ((n - 1) * (repeats - 1))
            parts = [  # variance of the mean from samples, repeats, residual, with their degrees of freedom
                (np.clip(ms_rows - ms_err, 0, None) / trials, n - 1),
                (np.clip(ms_cols - ms_err, 0, None) / trials, repeats - 1),
                (ms_err / trials, (n - 1) * (repeats - 1)),
            ]
        elif n > 1:
            parts = [(ss_rows / (n - 1) / n, n - 1)]
        elif repeats > 1:
            parts = [(ss_cols / (repeats - 1) / repeats, repeats - 1)]
        else:
            parts = [(np.zeros_like(p), 1)]
        var = sum(v for v, _ in parts)
        df = var**2 / sum(v**2 / d for v, d in parts)
        n_eff = np.where(var > 0, p * (1 - p) / var, n)  # no spread seen: count each sample once
    df = np.where(np.isfinite(df) & (df > 0), df, np.inf)
    z = stats.norm.ppf(0.5 + level / 2)
    t = np.where(np.isinf(df), z, stats.t.ppf(0.5 + level / 2, np.minimum(df, 1e12)))
    n_eff = np.clip(n_eff * (z / t) ** 2, 1, trials)
    centre = (p + z**2 / (2 * n_eff)) / (1 + z**2 / n_eff)
    half = z / (1 + z**2 / n_eff) * np.sqrt(p * (1 - p) / n_eff + z**2 / (4 * n_eff**2))
    return p, np.clip(centre - half, 0, 1), np.clip(centre + half, 0, 1)


def _curve_table(tally: _Tally) -> pd.DataFrame:
    acc, low, high = _interval(tally.correct, tally.by_repeat)
    # Wilson's interval holds p; clipping guards only float rounding at the ends
    low, high = np.minimum(low, acc), np.maximum(high, acc)
    table = {"eps": tally.eps, "accuracy": acc, "ci_low": low, "ci_high": high}
    return pd.DataFrame(table, columns=CURVE_COLUMNS)


def _radii(tally: _Tally) -> np.ndarray:
    """Each sample's basin radius (see the module docstring)."""
    share = tally.correct / tally.by_repeat.shape[1]  # [E, n]
    below = share < 0.5
    first = below.argmax(0)
    never = ~below.any(0)
    radius = np.empty(share.shape[1])
    radius[never] = np.inf
    at_start = ~never & (first == 0)
    radius[at_start] = tally.eps[0]
    i = np.flatnonzero(~never & (first > 0))
    if i.size:
        j = first[i]
        a0, a1 = share[j - 1, i], share[j, i]
        e0, e1 = tally.eps[j - 1], tally.eps[j]
        radius[i] = e0 + (a0 - 0.5) / (a0 - a1) * (e1 - e0)
    return radius


# ----------------------------------------------------------------------------------------------- shared setup
def _gaussian(seed: int, shape: Sequence[int], device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """Standard normal noise from a generator of its own, drawn in float32 so every dtype sees one draw."""
    gen = torch.Generator(device=device).manual_seed(int(seed))
    return torch.randn(tuple(shape), generator=gen, device=device, dtype=torch.float32).to(dtype)


def _draw_seeds(gen: torch.Generator, shape: Sequence[int]) -> np.ndarray:
    return torch.randint(0, _MAX_SEED, tuple(shape), generator=gen, device=gen.device).cpu().numpy()


def _check_count(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ConfigError(f"{name} must be an integer >= 1, got {value!r}")
    return int(value)


def _training_subset(
    device: torch.device, data: SampleSet, n_samples: int | None, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Indices, inputs and labels of the training samples a basin is measured on (the network on ``device``)."""
    x, y = data.x_train.flatten(1), data.y_train
    total = x.shape[0]
    if total == 0:
        raise ConfigError("the dataset has no training samples")
    if n_samples is None:
        n_samples = total if device.type != "cpu" else CPU_SAMPLES
    idx = seeded_subset(total, _check_count(n_samples, "n_samples"), gen)
    if idx is None:
        return torch.arange(total), x, y
    return idx, x[idx], y[idx]


def _chunk_budget(device: torch.device, chunk_budget: int | None) -> int:
    if chunk_budget is None:
        return CPU_CHUNK_BUDGET if device.type == "cpu" else DEFAULT_CHUNK_BUDGET
    return _check_count(chunk_budget, "chunk_budget")


def _settings(eps: Any, repeats: int, n: int, seed: Any, num_classes: int, **extra: Any) -> dict[str, Any]:
    return {
        "eps": "default" if eps is None else "explicit",
        "repeats": repeats,
        "n_samples": n,
        "seed": int(seed) if isinstance(seed, (int, np.integer)) else None,  # None: a Generator was passed
        "num_classes": int(num_classes),
        **extra,
    }


# ----------------------------------------------------------------------------------------------- sample basin
def _clean_layer(net: MLP, x: torch.Tensor, layer: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(x^layer, x^{layer-1}) of a batch, computed clean in running mode."""
    steps = walk(net, x)
    prev = None
    try:
        for l, x_l, _ in steps:
            if l == layer:
                return x_l, prev
            prev = x_l
    finally:
        steps.close()
    raise AssertionError("unreachable: layer was validated")  # pragma: no cover


class _Rest(Protocol):
    """The network from a layer onward, as a sample basin perturbs it: what it reads there, and the run from there."""

    device: torch.device
    dtype: torch.dtype
    width: int
    """Features of the perturbed layer (flattened)."""
    row_bytes: int
    """Bytes one perturbed copy of a sample takes on its way to the logits."""

    def clean(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The layer's clean values [ns, width] for samples x, and the other values the rest reads (skips)."""
        ...

    def run(self, batch: torch.Tensor, extras: list[torch.Tensor], copies: int) -> torch.Tensor:
        """Logits of ``batch`` ([copies * ns, width]: ``copies`` perturbed copies of ns samples, copy-major)."""
        ...


class _MLPRest:
    """A netdyn MLP from layer ``layer`` on (its own path: ``run_from`` in running mode)."""

    def __init__(self, net: MLP, layer: int) -> None:
        self.net, self.layer = net, layer
        self.device, self.dtype = net_device(net), net_dtype(net)
        widths = net.widths
        self.skip = layer + 1 < net.n_layers and net.blocks[layer].skip is not None
        self.width = widths[layer]
        row_width = widths[layer] * (2 if self.skip else 1) + 4 * max(widths[layer + 1 :])
        self.row_bytes = torch.finfo(self.dtype).bits // 8 * row_width

    def clean(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        x_l, x_prev = _clean_layer(self.net, x, self.layer)
        return x_l, [x_prev] if self.skip and x_prev is not None else []

    def run(self, batch: torch.Tensor, extras: list[torch.Tensor], copies: int) -> torch.Tensor:
        prev = None
        if extras:  # layer l + 1 joins x^{l-1}
            prev = extras[0].expand(copies, *extras[0].shape).reshape(-1, extras[0].shape[-1])
        return self.net.run_from(self.layer, batch, prev, bn_mode="running")


class _AfterCut(fx.Interpreter):
    """Runs a traced graph from a cut on, nothing linearised.

    The cut and the skips crossing it take given values; the cut's other data-dependent ancestors (the trunk)
    are not run.
    """

    def __init__(self, module: fx.GraphModule, given: dict[str, torch.Tensor], trunk: set[str]) -> None:
        super().__init__(module, garbage_collect_values=True)
        self.given, self.trunk = given, trunk

    def run_node(self, n: fx.Node) -> Any:
        if n.name in self.given:
            return self.given[n.name]
        if n.name in self.trunk:
            return None
        return super().run_node(n)


def _after_cut(graph: fx.Graph, cut: str) -> tuple[tuple[str, ...], set[str]]:
    """What the graph after a cut reads from before it, and the trunk.

    The first are node names, the cut's first, then the skips crossing the cut; the trunk is the names of the cut's
    node and of its ancestors that depend on the input (not rerun).
    """
    dependent: set[fx.Node] = set()
    for n in graph.nodes:
        if n.op == "placeholder" or any(a in dependent for a in n.all_input_nodes):
            dependent.add(n)
    node = next(n for n in graph.nodes if n.name == cut)
    seen, stack = {node}, [node]
    while stack:
        for a in stack.pop().all_input_nodes:
            if a not in seen:
                seen.add(a)
                stack.append(a)
    trunk = seen & dependent
    inputs = [node]
    for n in graph.nodes:
        if n not in trunk:
            inputs += [a for a in n.all_input_nodes if a in trunk and a not in inputs]
    return tuple(n.name for n in inputs), {n.name for n in trunk}


class _CutRest:
    """Any model from cut ``layer`` on (see docs/any-network.md), in evaluation mode.

    From the input it is the model itself; from a hidden cut, the traced graph after the cut (nothing linearised).
    """

    def __init__(self, reader: CutLayers, layer: int) -> None:
        self.network, self.layer = reader.network, layer
        self.device, self.dtype = reader.device, reader.dtype
        self.width = reader.widths[layer]
        self.inputs: tuple[str, ...] = ()
        self.trunk: set[str] = set()
        if layer:  # a model read through forward hooks has no graph: a ModelError that says so
            self.inputs, self.trunk = _after_cut(self.network.graph_module.graph, self.network.cut(layer).node)
        self.shape: tuple[int, ...] = self.network.input_shape
        self.row_bytes = reader.dtype.itemsize * (2 * self.width + 4 * max(reader.widths))

    def clean(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        if not self.layer:
            return x.flatten(1).to(device=self.device, dtype=self.dtype), []
        values = self.network.capture(x, self.inputs, logits=False)
        x_l = values[self.inputs[0]]
        self.shape = tuple(x_l.shape[1:])
        return x_l.flatten(1), [values[name] for name in self.inputs[1:]]

    def run(self, batch: torch.Tensor, extras: list[torch.Tensor], copies: int) -> torch.Tensor:
        model = self.network.model
        with evaluating(model, self.network.graph_module):
            if not self.layer:
                return model(batch.reshape(-1, *self.shape))
            given = {self.inputs[0]: batch.reshape(-1, *self.shape)}
            for name, value in zip(self.inputs[1:], extras, strict=True):
                given[name] = value.expand(copies, *value.shape).reshape(-1, *value.shape[1:])
            return _AfterCut(self.network.graph_module, given, self.trunk).run()


def _sample_tally(
    rest: _Rest, x: torch.Tensor, y: torch.Tensor, eps: np.ndarray, repeats: int, block_seeds: np.ndarray,
    budget: int,
) -> _Tally:
    device, dtype = rest.device, rest.dtype
    n, n_eps = x.shape[0], len(eps)
    rows = max(1, budget // rest.row_bytes)
    block_rows = NOISE_BLOCK * repeats
    blocks_per_pass = max(1, rows // (block_rows * n_eps))
    eps_per_pass = n_eps if blocks_per_pass > 1 else max(1, min(n_eps, rows // block_rows))
    eps_t = torch.as_tensor(eps, dtype=dtype, device=device)
    labels = y.to(device)
    correct = torch.zeros(n_eps, n, dtype=torch.int32, device=device)
    by_repeat = torch.zeros(n_eps, repeats, dtype=torch.int64, device=device)
    step = blocks_per_pass * NOISE_BLOCK
    for s0 in range(0, n, step):
        s1 = min(n, s0 + step)
        x_l, extras = rest.clean(x[s0:s1])
        directions = []
        for b0 in range(s0, s1, NOISE_BLOCK):
            nb = min(NOISE_BLOCK, s1 - b0)
            xi = _gaussian(block_seeds[b0 // NOISE_BLOCK], (repeats, nb, rest.width), device, dtype)
            directions.append(xi / torch.linalg.vector_norm(xi, dim=-1, keepdim=True))
        delta = torch.cat(directions, 1) * torch.linalg.vector_norm(x_l, dim=-1, keepdim=True)  # [R, ns, w]
        hits_label = labels[s0:s1]
        for e0 in range(0, n_eps, eps_per_pass):
            e = eps_t[e0 : e0 + eps_per_pass]
            batch = (x_l + e[:, None, None, None] * delta).reshape(-1, rest.width)
            logits = rest.run(batch, extras, len(e) * repeats)
            hit = logits.argmax(1).view(len(e), repeats, s1 - s0) == hits_label
            correct[e0 : e0 + len(e), s0:s1] = hit.sum(1, dtype=torch.int32)
            by_repeat[e0 : e0 + len(e)] += hit.sum(2)
    return _Tally(eps, correct.cpu().numpy(), by_repeat.cpu().numpy())


def _check_layer(layer: Any, n_layers: int) -> int:
    if isinstance(layer, bool) or not isinstance(layer, (int, np.integer)) or not 0 <= layer < n_layers:
        raise ConfigError(f"layer must be in 0..{n_layers - 1} (the layer perturbed), got {layer!r}")
    return int(layer)


def _sample_rest(
    net: MLP | nn.Module, data: DataLike, layer: int, input_shape: Sequence[int] | None, cuts: Sequence[str] | None,
) -> tuple[_Rest, SampleSet, dict[str, Any]]:
    """The network from the perturbed layer on, the data as a fitting sample set, and settings to record."""
    if is_own_network(net, input_shape, cuts):
        samples = samples_for(net, data)
        return _MLPRest(net, _check_layer(layer, net.n_layers)), samples, {}
    reader, samples, _ = cut_layers(net, data, None, input_shape, cuts)
    layer = _check_layer(layer, reader.n_layers)
    return _CutRest(reader, layer), samples, {"cut": reader.network.cut(layer).name}


def sample_basin(
    net: MLP | nn.Module,
    data: DataLike,
    eps: Sequence[float] | np.ndarray | None = None,
    repeats: int = 5,
    n_samples: int | None = None,
    layer: int = 0,
    per_sample: bool = False,
    seed: int | torch.Generator = 0,
    chunk_budget: int | None = None,
    *,
    input_shape: Sequence[int] | None = None,
    cuts: Sequence[str] | None = None,
) -> BasinCurve:
    """Attraction basin in sample space: accuracy of x~ = x + eps ||x|| xi / ||xi||, xi ~ N(0, I).

    See docs/quantities.md#attraction-basins.

    ``eps=None`` is the default grid (0..3 by 0.1, extended by blocks of 3 up to 12 while ``size_half`` is not
    reached); an explicit grid is used as given (with 0 prepended if missing). ``repeats`` noise draws per
    sample; ``n_samples`` training samples (a seeded subset; default all on a GPU, 2,000 on a CPU).
    ``layer=l`` perturbs x^l of the clean forward pass and runs the rest of the network from there.
    ``per_sample=True`` adds each sample's radius. Many (eps, repeat) copies go through the network in one
    batch of about ``chunk_budget`` bytes (default 512 MiB on an accelerator, 64 MiB on a CPU). See the module
    docstring for the noise design, the interval and the radius.

    Any other ``nn.Module`` than a netdyn :class:`MLP` is read through the network adapter (see docs/any-network.md):
    ``layer`` is a cut (``cuts`` names them, ``input_shape`` is how a sample is fed), its activations are perturbed
    flattened, relative to each sample's norm there, and the rest of the model runs as it is (nothing
    linearised), in evaluation mode (batch norm on its running statistics, as for the MLP); ``settings`` records
    the ``cut``.
    """
    repeats = _check_count(repeats, "repeats")
    rest, data, named = _sample_rest(net, data, layer, input_shape, cuts)
    budget = _chunk_budget(rest.device, chunk_budget)
    gen = make_generator(seed)
    idx, x, y = _training_subset(rest.device, data, n_samples, gen)
    block_seeds = _draw_seeds(gen, (math.ceil(len(idx) / NOISE_BLOCK),))
    with torch.no_grad():
        tally = _run_grid(lambda grid: _sample_tally(rest, x, y, grid, repeats, block_seeds, budget), eps)
    curve = _curve_table(tally)
    size_mid, size_half = _basin_sizes(tally.eps, curve["accuracy"].to_numpy(), data.num_classes, "sample")
    samples = None
    if per_sample:
        samples = pd.DataFrame(
            {"sample": idx.numpy(), "label": y.numpy(), "radius": _radii(tally)}, columns=PER_SAMPLE_COLUMNS
        )
    settings = _settings(eps, repeats, len(idx), seed, data.num_classes, layer=int(layer), **named)
    return BasinCurve("sample", curve, size_mid, size_half, samples, settings)


# ----------------------------------------------------------------------------------------------- weight basin
def _param_noise(param: torch.Tensor, seed: int) -> torch.Tensor:
    """||p|| * Xi / ||Xi|| for one parameter tensor (Frobenius norms), Xi drawn from ``seed``."""
    xi = _gaussian(seed, param.shape, param.device, param.dtype)
    return torch.linalg.vector_norm(param) * xi / torch.linalg.vector_norm(xi)


def _layer_params(net: MLP, l: int) -> dict[int, torch.Tensor]:
    """Layer l's perturbable parameters by kind."""
    block = net.block(l)
    params = {_WEIGHT: block.linear.weight}
    if block.linear.bias is not None:
        params[_BIAS] = block.linear.bias
    if block.bn is not None:
        params[_BN_WEIGHT], params[_BN_BIAS] = block.bn.weight, block.bn.bias
    return params


def _perturbed_kinds(net: MLP, l: int, layers: set[int], include_bias: bool, include_bn: bool) -> set[int]:
    if l not in layers:
        return set()
    kinds = {_WEIGHT}
    if include_bias:
        kinds.add(_BIAS)
    if include_bn:
        kinds |= {_BN_WEIGHT, _BN_BIAS}
    return kinds & set(_layer_params(net, l))


def _perturbed_tensors(
    net: MLP, eps: torch.Tensor, reps: torch.Tensor, seeds: np.ndarray, layers: set[int],
    include_bias: bool, include_bn: bool,
) -> dict[str, torch.Tensor]:
    """The perturbed parameters of K networks, one per (eps[k], reps[k]).

    They are stacked ``[K, ...]`` by state-dict name (what :class:`~netdyn.models.StackedMLP` and
    :func:`~netdyn.models.stacked_forward` read; the parameters left out are the net's own).
    """
    unique, position = torch.unique(reps, return_inverse=True)
    tensors = {}
    for l in range(1, net.n_layers + 1):
        params = _layer_params(net, l)
        for kind in _perturbed_kinds(net, l, layers, include_bias, include_bn):
            p = params[kind]
            noise = torch.stack([_param_noise(p, seeds[l - 1, kind, r]) for r in unique.tolist()])
            stacked = noise[position].mul_(eps.view(-1, *([1] * p.dim()))).add_(p)  # a fresh [K, ...]
            tensors[f"blocks.{l - 1}.{_KIND_NAMES[kind]}"] = stacked
    return tensors


def _weight_tally(
    net: MLP, x: torch.Tensor, y: torch.Tensor, eps: np.ndarray, repeats: int, seeds: np.ndarray,
    layers: set[int], include_bias: bool, include_bn: bool, budget: int,
) -> _Tally:
    device, dtype = net_device(net), net_dtype(net)
    n, n_eps = x.shape[0], len(eps)
    elt = torch.finfo(dtype).bits // 8
    stacked_numel = sum(net.block(l).linear.weight.numel() + 2 * net.widths[l] for l in layers)
    per_net = max(1, min(n_eps * repeats, budget // 2 // (stacked_numel * elt)))
    row_bytes = elt * (net.widths[0] + 4 * max(net.widths[1:]))
    # repeat-major pairs: one chunk of networks shares few noise directions
    pair_eps = torch.arange(n_eps, device=device).repeat(repeats)
    pair_rep = torch.arange(repeats, device=device).repeat_interleave(n_eps)
    eps_t = torch.as_tensor(eps, dtype=dtype, device=device)
    labels = y.to(device)
    correct = torch.zeros(n_eps, n, dtype=torch.int32, device=device)
    by_repeat = torch.zeros(n_eps, repeats, dtype=torch.int64, device=device)
    stacked = StackedMLP(net)
    for k0 in range(0, n_eps * repeats, per_net):
        pe, pr = pair_eps[k0 : k0 + per_net], pair_rep[k0 : k0 + per_net]
        # batch norm folded once per chunk of networks, not once per chunk of samples
        folded = stacked.fold(_perturbed_tensors(net, eps_t[pe], pr, seeds, layers, include_bias, include_bn))
        step = max(1, budget // 2 // (len(pe) * row_bytes))
        for s0 in range(0, n, step):
            xb = x[s0 : s0 + step].to(device=device, dtype=dtype)
            logits = stacked.forward(folded, xb, bn_mode="folded")  # [K, C, ns]
            hit = logits.argmax(-2) == labels[s0 : s0 + step]
            correct[:, s0 : s0 + step].index_add_(0, pe, hit.to(torch.int32))
            by_repeat.index_put_((pe, pr), hit.sum(1), accumulate=True)
    return _Tally(eps, correct.cpu().numpy(), by_repeat.cpu().numpy())


def weight_basin(
    net: MLP | nn.Module,
    data: DataLike,
    eps: Sequence[float] | np.ndarray | None = None,
    repeats: int = 5,
    n_samples: int | None = None,
    layers: Sequence[int] | None = None,
    include_bias: bool = False,
    include_bn: bool = False,
    seed: int | torch.Generator = 0,
    chunk_budget: int | None = None,
    *,
    include_embedding: bool = False,
    input_shape: Sequence[int] | None = None,
    cuts: Sequence[str] | None = None,
) -> BasinCurve:
    """Attraction basin in weight space: accuracy on the clean training samples under noised weights.

    See docs/quantities.md#attraction-basins.

    The accuracy is measured with BN in running mode, when every weight matrix becomes
    W^l + eps ||W^l||_F Xi^l / ||Xi^l||_F.

    ``include_bias`` perturbs each bias vector the same way (scaled by its own norm), ``include_bn`` the
    batch-norm weight and bias vectors; ``layers`` (1..L) restricts the noise to those layers. Grid, repeats,
    samples and seed as in :func:`sample_basin`. K perturbed networks run at once as stacked weights
    ([K, out, in], BN folded per network), K and the sample chunks sized to ``chunk_budget`` bytes (default as
    in :func:`sample_basin`). Noise directions are shared along the eps grid, one per (layer, parameter,
    repeat), and do not depend on ``include_bias`` / ``include_bn`` / ``layers``.

    Any other ``nn.Module`` than a netdyn :class:`MLP` is read through the network adapter (see docs/any-network.md).
    Every weight tensor (a parameter of two or more dimensions: linear weights, conv kernels, patch embeddings; the
    query, key and value thirds of ``nn.MultiheadAttention``'s stacked ``in_proj_weight`` each on its own, its output
    projection) is perturbed relative to its own Frobenius norm. ``include_bias`` adds the biases (the stacked
    ``in_proj_bias`` by thirds too), ``include_bn`` the parameters of every normalisation layer (batch, layer,
    group norm; a loose one-dimensional parameter that is no bias counts as one), ``include_embedding`` the
    embedding tables, position embeddings and class tokens (``nn.Embedding``, or a parameter whose name holds
    ``emb``, ``token`` or starts with ``pos``). Layer l (1..L) holds the parameters first used after cut l-1,
    up to and including cut l (layer L: up to the logits). The model runs in evaluation mode (batch norm on its
    running statistics, as for the MLP), one perturbed copy at a time through ``torch.func.functional_call``:
    the model itself is never modified. ``settings["perturbed"]`` lists the tensors perturbed. A netdyn MLP's
    ``nn.Sequential`` twin draws the MLP's noise for its weights and biases, so its curve is the MLP's.
    """
    plan: _WeightPlan
    if is_own_network(net, input_shape, cuts):
        data = samples_for(net, data)
        plan = _MLPWeights(net, bool(include_bias), bool(include_bn))
    else:
        reader, data, _ = cut_layers(net, data, None, input_shape, cuts)
        plan = _ModelWeights(reader, bool(include_bias), bool(include_bn), bool(include_embedding))
    repeats = _check_count(repeats, "repeats")
    chosen = _check_weight_layers(layers, plan.n_layers)
    extra = plan.select(chosen)
    budget = _chunk_budget(plan.device, chunk_budget)
    gen = make_generator(seed)
    idx, x, y = _training_subset(plan.device, data, n_samples, gen)
    seeds = _draw_seeds(gen, (*plan.seed_shape, repeats))
    with torch.no_grad():
        tally = _run_grid(lambda grid: plan.tally(x, y, grid, repeats, seeds, chosen, budget), eps)
    curve = _curve_table(tally)
    size_mid, size_half = _basin_sizes(tally.eps, curve["accuracy"].to_numpy(), data.num_classes, "weight")
    settings = _settings(
        eps, repeats, len(idx), seed, data.num_classes,
        layers=sorted(chosen), include_bias=bool(include_bias), include_bn=bool(include_bn), **extra,
    )
    return BasinCurve("weight", curve, size_mid, size_half, None, settings)


def _check_weight_layers(layers: Sequence[int] | None, n_layers: int) -> set[int]:
    if layers is None:
        return set(range(1, n_layers + 1))
    chosen = {int(l) for l in layers}
    if not chosen or any(not 1 <= l <= n_layers for l in chosen):
        raise ConfigError(f"weight_basin layers must be a non-empty subset of 1..{n_layers}, got {list(layers)}")
    return chosen


class _WeightPlan(Protocol):
    """How a weight basin perturbs one kind of network: its layers, its seeds, its tally."""

    device: torch.device
    n_layers: int
    seed_shape: tuple[int, ...]
    """Shape of the noise seeds before the repeats."""

    def select(self, layers: set[int]) -> dict[str, Any]:
        """Check that ``layers`` hold something to perturb; the settings this adds to the curve's."""
        ...

    def tally(
        self, x: torch.Tensor, y: torch.Tensor, eps: np.ndarray, repeats: int, seeds: np.ndarray, layers: set[int],
        budget: int,
    ) -> _Tally: ...


class _MLPWeights:
    """A netdyn MLP's weight basin: its own stacked path, seeds per (layer, parameter kind)."""

    def __init__(self, net: MLP, include_bias: bool, include_bn: bool) -> None:
        self.net, self.include_bias, self.include_bn = net, include_bias, include_bn
        self.device, self.n_layers = net_device(net), net.n_layers
        self.seed_shape: tuple[int, ...] = (net.n_layers, 4)

    def select(self, layers: set[int]) -> dict[str, Any]:
        return {}

    def tally(
        self, x: torch.Tensor, y: torch.Tensor, eps: np.ndarray, repeats: int, seeds: np.ndarray, layers: set[int],
        budget: int,
    ) -> _Tally:
        return _weight_tally(self.net, x, y, eps, repeats, seeds, layers, self.include_bias, self.include_bn, budget)


_NORM_MODULES: tuple[type[nn.Module], ...] = (
    nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm, nn.LocalResponseNorm, nn.RMSNorm,
)
_EMBEDDING_MODULES: tuple[type[nn.Module], ...] = (nn.Embedding, nn.EmbeddingBag)
_STACKED_QKV = ("in_proj_weight", "in_proj_bias")  # nn.MultiheadAttention's q, k, v projections, stacked by rows
_QKV = ("q", "k", "v")


@dataclass(frozen=True)
class _Piece:
    """A tensor a weight basin perturbs relative to its own norm: a parameter, or a third of a stacked q/k/v one.

    Its noise seed is ``seeds[unit, slot, repeat]``: ``unit`` counts the modules holding parameters (those with
    a weight tensor first, in module order: a netdyn MLP's twin numbers its layers as the MLP does), ``slot``
    the pieces within the module (a Linear's weight 0, bias 1, as the MLP's kinds).
    """

    name: str
    rows: slice | None
    kind: str
    unit: int
    slot: int

    @property
    def label(self) -> str:
        if self.rows is None:
            return self.name
        return f"{self.name}[{_QKV[self.rows.start // (self.rows.stop - self.rows.start)]}]"

    def of(self, tensor: torch.Tensor) -> torch.Tensor:
        return tensor if self.rows is None else tensor[self.rows]


def _parameter_kind(module: nn.Module, name: str, param: torch.Tensor) -> str:
    """``weight``, ``bias``, ``norm`` or ``embedding``: which switch of :func:`weight_basin` perturbs it."""
    if isinstance(module, _NORM_MODULES):
        return "norm"
    if isinstance(module, _EMBEDDING_MODULES):
        return "embedding"
    lowered = name.lower()
    if "bias" in lowered:
        return "bias"
    if "emb" in lowered or "token" in lowered or lowered.startswith("pos"):
        return "embedding"
    return "weight" if param.ndim >= 2 else "norm"


def _weight_pieces(model: nn.Module) -> list[_Piece]:
    """Every parameter of ``model`` as the pieces a weight basin may perturb (a shared parameter once)."""
    seen: set[int] = set()
    owners: list[list[tuple[str, slice | None, str]]] = []
    for module_name, module in model.named_modules():
        entries: list[tuple[str, slice | None, str]] = []
        for name, param in module.named_parameters(recurse=False):
            if id(param) in seen:
                continue
            seen.add(id(param))
            full, kind = f"{module_name}.{name}" if module_name else name, _parameter_kind(module, name, param)
            if isinstance(module, nn.MultiheadAttention) and name in _STACKED_QKV:
                third = param.shape[0] // 3
                entries += [(full, slice(i * third, (i + 1) * third), kind) for i in range(3)]
            else:
                entries.append((full, None, kind))
        if entries:
            owners.append(entries)
    ordered = [e for e in owners if any(k == "weight" for *_, k in e)]
    ordered += [e for e in owners if all(k != "weight" for *_, k in e)]
    return [_Piece(name, rows, kind, unit, slot)
            for unit, entries in enumerate(ordered) for slot, (name, rows, kind) in enumerate(entries)]


def _parameter_layers(network: Network, names: Iterable[str]) -> dict[str, int]:
    """The layer (1..L) of each parameter: the cut after which the graph first uses it, plus one."""
    cut_nodes = {c.node for c in network.cuts[1:]}
    names = list(names)
    found: dict[str, int] = {}
    layer = 1
    for node in network.graph_module.graph.nodes:
        if node.op == "call_module":
            prefix = f"{node.target}."
            for name in names:
                if name.startswith(prefix):
                    found.setdefault(name, layer)
        elif node.op == "get_attr" and str(node.target) in names:
            found.setdefault(str(node.target), layer)
        if node.name in cut_nodes:
            layer += 1
    return found


class _ModelWeights:
    """Any model's weight basin: every selected tensor noised by its own norm, one copy at a time.

    See docs/any-network.md.
    """

    def __init__(self, reader: CutLayers, include_bias: bool, include_bn: bool, include_embedding: bool) -> None:
        self.network, self.model = reader.network, reader.network.model
        self.device, self.n_layers = reader.device, reader.n_layers
        self.kinds = {"weight"} | {kind for kind, on in (("bias", include_bias), ("norm", include_bn),
                                                         ("embedding", include_embedding)) if on}
        self.pieces = _weight_pieces(self.model)
        self._layer_of: dict[str, int] | None = None
        units = max((p.unit for p in self.pieces), default=-1) + 1
        self.seed_shape: tuple[int, ...] = (units, max([4] + [p.slot + 1 for p in self.pieces]))
        self.row_bytes = reader.dtype.itemsize * 4 * max(reader.widths)

    def chosen(self, layers: set[int]) -> list[_Piece]:
        pieces = [p for p in self.pieces if p.kind in self.kinds]
        if len(layers) == self.n_layers:
            return pieces
        if self._layer_of is None:  # layers are read on the graph: a model read through hooks has none
            self._layer_of = _parameter_layers(self.network, {p.name for p in self.pieces})
        return [p for p in pieces if self._layer_of.get(p.name) in layers]

    def select(self, layers: set[int]) -> dict[str, Any]:
        chosen = self.chosen(layers)
        if not chosen:
            raise ConfigError(f"weight_basin: {type(self.model).__name__} has no parameter of the kinds asked for "
                              f"({', '.join(sorted(self.kinds))}) in layers {sorted(layers)}")
        return {"perturbed": [p.label for p in chosen]}

    def tally(
        self, x: torch.Tensor, y: torch.Tensor, eps: np.ndarray, repeats: int, seeds: np.ndarray, layers: set[int],
        budget: int,
    ) -> _Tally:
        params = dict(self.model.named_parameters())
        pieces = self.chosen(layers)
        n, n_eps = x.shape[0], len(eps)
        step = max(1, budget // self.row_bytes)
        labels = y.to(self.device)
        correct = torch.zeros(n_eps, n, dtype=torch.int32, device=self.device)
        by_repeat = torch.zeros(n_eps, repeats, dtype=torch.int64, device=self.device)
        with evaluating(self.model):
            for r in range(repeats):
                noise = [(p, _param_noise(p.of(params[p.name]), seeds[p.unit, p.slot, r])) for p in pieces]
                for e in range(n_eps):
                    perturbed = _perturbed_parameters(params, noise, eps[e])
                    for s0 in range(0, n, step):
                        logits = functional_call(self.model, perturbed, (self.network.feed(x[s0 : s0 + step]),))
                        hit = logits.argmax(1) == labels[s0 : s0 + step]
                        correct[e, s0 : s0 + step] += hit.to(torch.int32)
                        by_repeat[e, r] += hit.sum()
        return _Tally(eps, correct.cpu().numpy(), by_repeat.cpu().numpy())


def _perturbed_parameters(
    params: Mapping[str, torch.Tensor], noise: list[tuple[_Piece, torch.Tensor]], eps: float
) -> dict[str, torch.Tensor]:
    """Fresh tensors p + eps * noise for the perturbed parameters (a stacked q/k/v one third by third)."""
    out: dict[str, torch.Tensor] = {}
    for piece, delta in noise:
        param = params[piece.name]
        scaled = (delta * torch.as_tensor(eps, dtype=delta.dtype, device=delta.device)).add_(piece.of(param))
        if piece.rows is None:
            out[piece.name] = scaled
        else:
            out.setdefault(piece.name, param.detach().clone())[piece.rows] = scaled
    return out


# ------------------------------------------------------------------------------------------------- companions
def nearest_train_distance(
    data: DataLike, device: torch.device | str | None = None, chunk_budget: int = DEFAULT_CHUNK_BUDGET
) -> pd.DataFrame:
    """Each test sample's distance to its nearest training sample, relative: columns ``sample, label, distance``.

    The Euclidean distance is divided by the test sample's norm (NaN for an all-zero test sample).

    Computed in float64 on ``device`` (default: the CPU, where the data live), test samples in chunks whose
    distance matrix fits ``chunk_budget`` bytes; the nearest neighbour is found with ||a||^2 + ||b||^2 - 2 a.b
    and its distance then recomputed directly.
    """
    data = as_samples(data)
    check_labels(data)
    dev = torch.device(device) if device is not None else torch.device("cpu")
    train = data.x_train.flatten(1).to(device=dev, dtype=torch.float64)
    test = data.x_test.flatten(1).to(device=dev, dtype=torch.float64)
    if train.shape[0] == 0:
        raise ConfigError("nearest_train_distance needs at least one training sample")
    if train.shape[1] != test.shape[1]:
        raise ConfigError(f"train samples have {train.shape[1]} features but test samples {test.shape[1]}")
    train_sq = (train**2).sum(1)
    step = max(1, chunk_budget // (3 * 8 * train.shape[0]))
    distance = torch.empty(test.shape[0], dtype=torch.float64, device=dev)
    with torch.no_grad():
        for s0 in range(0, test.shape[0], step):
            a = test[s0 : s0 + step]
            d2 = torch.addmm(train_sq[None, :] + (a**2).sum(1, keepdim=True), a, train.T, alpha=-2)
            nearest = d2.argmin(1)
            distance[s0 : s0 + step] = torch.linalg.vector_norm(a - train[nearest], dim=1)
        norm = torch.linalg.vector_norm(test, dim=1)
        relative = torch.where(norm > 0, distance / norm, torch.full_like(norm, float("nan")))
    labels = data.y_test.cpu().numpy()
    table = {"sample": np.arange(test.shape[0]), "label": labels, "distance": relative.cpu().numpy()}
    return pd.DataFrame(table, columns=["sample", "label", "distance"])


def bn_perturbation(
    net: MLP | nn.Module,
    data: DataLike,
    batch_size: int,
    n_batches: int | None = None,
    seed: int | torch.Generator = 0,
    *,
    input_shape: Sequence[int] | None = None,
    cuts: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Per batch-norm layer, ||W~_batch - W~_run||_F / ||W~_run||_F: columns ``layer, eps_equivalent``.

    W~ = [W | b] is the layer's Linear and batch norm folded into one affine map, with the running statistics
    or with the (biased) mean and variance of a^l over a training batch of ``batch_size``, the batch
    propagated in batch mode up to that layer. Batches are consecutive slices of seeded permutations of the
    training set (full batches only, as many epochs as ``n_batches`` needs; default one epoch) and the ratio
    is averaged over them: the weight perturbation that evaluating with running instead of batch statistics
    amounts to, comparable with a weight basin's eps. Empty for a network without batch norm.

    Any other ``nn.Module`` than a netdyn :class:`MLP` is read through the network adapter (see docs/any-network.md):
    one row per batch-norm module (``layer, module, eps_equivalent``; layer as in :func:`weight_basin`), W the Linear or
    convolution whose output it normalises (a kernel's rows are its output channels; the identity where no such
    module feeds it), the statistics per channel over the batch and its positions, every batch norm before it in
    batch mode. The model's running statistics are left as they were.
    """
    if not is_own_network(net, input_shape, cuts):
        return _model_bn_perturbation(net, data, batch_size, n_batches, seed, input_shape, cuts)
    data = samples_for(net, data)
    x = data.x_train.flatten(1)
    batch_size, n_batches = _check_batches(x.shape[0], batch_size, n_batches)
    bn_layers = [l for l in net.hidden_layers if net.block(l).bn is not None]
    if not bn_layers:
        empty = {"layer": pd.Series([], dtype="int64"), "eps_equivalent": pd.Series([], dtype="float64")}
        return pd.DataFrame(empty)
    gen = make_generator(seed)
    with torch.no_grad():
        folds = {l: _RowFold.of(bn, net.block(l).linear) for l in bn_layers if (bn := net.block(l).bn) is not None}
        totals = dict.fromkeys(bn_layers, 0.0)
        for batch in _training_batches(x, batch_size, n_batches, gen):
            for l, a in _bn_local_fields(net, batch, bn_layers):
                totals[l] += folds[l].distance(a.double())
    return pd.DataFrame(
        {"layer": bn_layers, "eps_equivalent": [totals[l] / n_batches for l in bn_layers]},
        columns=["layer", "eps_equivalent"],
    )


def _check_batches(total: int, batch_size: int, n_batches: int | None) -> tuple[int, int]:
    batch_size = _check_count(batch_size, "batch_size")
    if not 2 <= batch_size <= total:
        raise ConfigError(f"batch_size must be in 2..{total} (the training set size), got {batch_size}")
    return batch_size, total // batch_size if n_batches is None else _check_count(n_batches, "n_batches")


_FOLDED_MODULES = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


def _model_folds(network: Network) -> dict[str, tuple[int, _RowFold]]:
    """Each batch norm of a traced model (with running statistics) by module name: its layer and its fold."""
    modules = dict(network.model.named_modules())
    cut_nodes = {c.node for c in network.cuts[1:]}
    folds: dict[str, tuple[int, _RowFold]] = {}
    layer = 1
    for node in network.graph_module.graph.nodes:
        bn = modules.get(str(node.target)) if node.op == "call_module" else None
        if isinstance(bn, nn.modules.batchnorm._BatchNorm) and bn.running_mean is not None:
            feeder = node.args[0]
            affine = modules.get(str(feeder.target)) if isinstance(feeder, fx.Node) and feeder.op == "call_module" \
                else None
            folds.setdefault(str(node.target), (layer, _RowFold.of(bn, affine if isinstance(affine, _FOLDED_MODULES)
                                                                   else None)))
        if node.name in cut_nodes:
            layer += 1
    return folds


def _batch_norm_inputs(model: nn.Module, x: torch.Tensor, names: Sequence[str]) -> dict[str, torch.Tensor]:
    """The input of each named batch norm on batch x [n, ...], as [rows, channels] (a conv map's positions rows).

    Every batch norm runs in batch mode on copies of its running statistics: the model's are left as they were.
    """
    modules = dict(model.named_modules())
    seen: dict[str, torch.Tensor] = {}

    def keep(name: str) -> Callable[[nn.Module, tuple[Any, ...]], None]:
        def hook(_: nn.Module, args: tuple[Any, ...]) -> None:
            seen.setdefault(name, args[0].detach().movedim(1, -1).flatten(0, -2).double())

        return hook

    hooks = [modules[name].register_forward_pre_hook(keep(name)) for name in names]
    bns = [m for m in modules.values() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    copies = {f"{n}.{b}": t.clone() for n, m in modules.items() if m in bns for b, t in m.named_buffers(recurse=False)}
    try:
        with evaluating(model):
            for bn in bns:
                bn.train()
            functional_call(model, copies, (x,))
    finally:
        for hook in hooks:
            hook.remove()
    return seen


def _model_bn_perturbation(
    model: nn.Module, data: DataLike, batch_size: int, n_batches: int | None, seed: int | torch.Generator,
    input_shape: Sequence[int] | None, cuts: Sequence[str] | None,
) -> pd.DataFrame:
    reader, samples, _ = cut_layers(model, data, None, input_shape, cuts)
    x = samples.x_train.flatten(1)
    batch_size, n_batches = _check_batches(x.shape[0], batch_size, n_batches)
    gen = make_generator(seed)
    with torch.no_grad():
        folds = _model_folds(reader.network)
        totals = dict.fromkeys(folds, 0.0)
        for batch in _training_batches(x, batch_size, n_batches, gen) if folds else ():
            for name, a in _batch_norm_inputs(model, reader.network.feed(batch), list(folds)).items():
                totals[name] += folds[name][1].distance(a)
    table = {"layer": pd.Series([layer for layer, _ in folds.values()], dtype="int64"),
             "module": pd.Series(list(folds), dtype="object"),
             "eps_equivalent": pd.Series([totals[name] / n_batches for name in folds], dtype="float64")}
    return pd.DataFrame(table, columns=["layer", "module", "eps_equivalent"])


@dataclass
class _RowFold:
    """One batch-norm layer's Linear and batch norm folded on the Linear's row norms (float64).

    Folding scales whole rows (``W~ = diag(g) W``), so the Frobenius distance between two folds of the layer,
    ``||[W~_a - W~_b | b~_a - b~_b]||``, is the distance between the folds of the row norms ``[out, 1]``: the
    ``out x in`` matrices are never formed.
    """

    row_norms: torch.Tensor
    bias: torch.Tensor | None
    eps: float
    bn_weight: torch.Tensor
    bn_bias: torch.Tensor
    running: torch.Tensor
    """The fold with the running statistics, ``[g ||W_i|| | b~]`` flattened."""

    @classmethod
    def of(cls, bn: nn.modules.batchnorm._BatchNorm, linear: nn.Module | None) -> _RowFold:
        """The fold of ``bn`` after ``linear``.

        ``linear`` is a Linear or a convolution (a row per output channel), or None for the identity.
        """
        mean, var, bn_weight, bn_bias = (t.double() for t in batchnorm_tensors(bn))
        bias = None
        if linear is None:
            row_norms = torch.ones(mean.shape[0], 1, dtype=torch.float64, device=mean.device)
        else:
            weight, linear_bias = linear.weight, linear.bias
            assert isinstance(weight, torch.Tensor)
            row_norms = torch.linalg.vector_norm(weight.double().flatten(1), dim=1, keepdim=True)
            bias = linear_bias.double() if isinstance(linear_bias, torch.Tensor) else None
        fold = cls(row_norms, bias, bn.eps, bn_weight, bn_bias, torch.empty(0, dtype=torch.float64))
        fold.running = fold.folded(mean, var)
        return fold

    def folded(self, mean: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
        """``[g ||W_i|| | b~]`` flattened, folded with the statistics ``mean`` and ``var``."""
        w, b = fold_batchnorm(self.row_norms, self.bias, mean, var, self.eps, self.bn_weight, self.bn_bias)
        return torch.cat([w.flatten(), b])

    def distance(self, a: torch.Tensor) -> float:
        """||W~_batch - W~_run||_F / ||W~_run||_F, W~_batch folded with the (biased) statistics of a^l ``[n, out]``."""
        batch = self.folded(a.mean(0), a.var(0, unbiased=False))
        return (torch.linalg.vector_norm(batch - self.running) / torch.linalg.vector_norm(self.running)).item()


def _training_batches(x: torch.Tensor, batch_size: int, n_batches: int, gen: torch.Generator) -> Iterator[torch.Tensor]:
    """``n_batches`` full batches: consecutive slices of seeded permutations of the training set, epoch by epoch."""
    total = x.shape[0]
    per_epoch = total // batch_size
    done = 0
    while done < n_batches:
        order = torch.randperm(total, generator=gen)
        for k in range(min(per_epoch, n_batches - done)):
            yield x[order[k * batch_size : (k + 1) * batch_size]]
        done += min(per_epoch, n_batches - done)


def _bn_local_fields(net: MLP, batch: torch.Tensor, bn_layers: Sequence[int]) -> Iterator[tuple[int, torch.Tensor]]:
    """``(l, a^l)`` of a batch for the batch-norm layers, propagated in batch mode up to the last of them."""
    steps = walk(net, batch, bn_mode="batch")
    prev = None
    try:
        for l, x_l, _ in steps:
            if l in bn_layers:
                yield l, net.block(l).linear(prev)
            if l == bn_layers[-1]:
                break
            prev = x_l
    finally:
        steps.close()
