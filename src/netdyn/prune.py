"""Pruning the linear tail (see docs/runs.md#beyond-one-run): the layers after a cut replaced by one affine map.

The cut is the earliest layer l whose linear replacement keeps the test accuracy within a tolerance; the layers
after it are replaced by that one affine map.

Two replacements, both affine in x^l:

* ``lmap`` (see docs/quantities.md#l-map): the network's own tail with every transfer function after l set to the
  identity, ``h^L = M_l x^l + c_l`` (``lmap_matrix``). Nothing is fitted: it is the network's own weights, folded. Where
  a residual skip crosses the cut (layer l+1 receives x^{l-1}; ``S_l`` nonzero) the map also needs x^{l-1}, which
  an MLP's output block cannot take: such cuts are skipped (``skip_crosses`` in the scan table), and the earliest
  cut where no skip crosses is used. The LP has no such cuts.
* ``lp`` (see docs/quantities.md#lp): the ridge map from x^l to the network's own logits, fitted on the training set
  (``fit_probe``); it becomes effective earlier than the L-map (the paper's Fig. 3a).

The pruned model is an ordinary :class:`~netdyn.models.MLP` of depth l whose output block holds the affine map,
so it saves as a run folder of its own that ``netdyn.load_run(...).model()`` and ``netdyn analyze`` open. Cuts run
over l = 1..L-2: l = L-1 would leave the network as it is, and a map from the input itself (l = 0) would be a
network without hidden layers, which an MLP is not. "Effective", as in docs/quantities.md#l-map, is judged on the test
split, so the pruned model's test accuracy is not an unbiased estimate; its training accuracy is reported beside it.
"""

from __future__ import annotations

import copy
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import nn

from netdyn import _io
from netdyn.analysis.network import EFFECTIVE_TOLERANCE
from netdyn.data.samples import DataLike
from netdyn.errors import ConfigError, ModelError, NetdynError, RunError
from netdyn.models import MLP
from netdyn.models.adapter import read_network
from netdyn.models.pruned import Pruned

METHODS = ("lmap", "lp")
SCAN_COLUMNS = ["layer", "replacement_test_accuracy", "replacement_train_accuracy", "skip_crosses", "effective",
                "pruned_test_accuracy", "chosen"]
TABLE_COLUMNS = ["model", "depth", "parameters", "train_accuracy", "test_accuracy", "inference_ms"]


@dataclass
class PrunedNetwork:
    """The outcome of :func:`prune_network`: the pruned net, where it was cut, and the evidence."""

    net: nn.Module
    """Layers 1..layer of the original, then one affine output block (a netdyn MLP); for any other model a
    :class:`~netdyn.models.pruned.Pruned`: the trunk up to the cut, then one Linear."""
    layer: int
    """The cut: x^layer feeds the affine map."""
    method: str
    network_accuracy: float
    """The original network's test accuracy."""
    scan: pd.DataFrame
    """One row per candidate cut: ``layer, replacement_test_accuracy, replacement_train_accuracy, skip_crosses,
    effective, pruned_test_accuracy, chosen``."""


def _check(method: str, tolerance: float) -> None:
    if method not in METHODS:
        raise ConfigError(f"prune method must be one of {', '.join(METHODS)}, got {method!r}")
    if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float)) or not 0 <= tolerance < 1:
        raise ConfigError(f"tolerance is an accuracy difference in [0, 1) (0.005 = half a point), got {tolerance!r}")


def parameter_count(net: torch.nn.Module) -> int:
    """Trainable parameters (batch-norm running statistics are buffers, not counted)."""
    return sum(p.numel() for p in net.parameters())


def linear_tail(
    net: MLP, data: DataLike, l: int, method: str = "lmap", ridge: float = 1e-6
) -> tuple[torch.Tensor, torch.Tensor]:
    """The affine map ``(W [C, N_l], b [C])`` that replaces the layers after l.

    It is the L-map's ``(M_l, c_l)`` or the LP's transposed ``(A_l^T, a_l)``. For the L-map, a skip crossing the cut
    is a ConfigError.
    """
    from netdyn.analysis import fit_probe, lmap_matrix

    if method == "lmap":
        m, c, s = lmap_matrix(net, l, with_skip=True)
        if s.numel() and s.abs().max() > 0:
            raise ConfigError(f"a residual skip crosses the cut after layer {l}: its L-map also needs x^{l - 1}")
        return m, c
    a_mat, intercept = fit_probe(net, data, l, ridge=ridge)
    return a_mat.T.contiguous(), intercept


def truncated_network(net: MLP, l: int, weight: torch.Tensor, bias: torch.Tensor) -> MLP:
    """Layers 1..l of ``net`` (weights and batch-norm statistics copied) with the output block ``W x^l + b``.

    A residual net cut below layer 3 has no skip left and is built as a plain one; a net without biases gets them
    (zero in the hidden layers), since the affine map has an intercept.
    """
    spec = net.spec
    if not 1 <= l <= net.depth:
        raise ConfigError(f"a cut keeps layers 1..l with l in 1..{net.depth}, got {l}")

    def first(value: Any) -> Any:
        return value[:l] if isinstance(value, tuple) else value

    widths = spec.widths[:l]
    pruned_spec = replace(
        spec,
        depth=l,
        width=widths[0] if len(set(widths)) == 1 else tuple(widths),
        activation=first(spec.activation),
        batchnorm=first(spec.batchnorm),
        residual=spec.residual if l >= 3 else "none",
        bias=True,
        seed=0,  # every parameter is copied below: never draw from (and advance) torch's global generator
    )
    pruned = MLP.from_spec(pruned_spec)
    pruned.spec = replace(pruned.spec, seed=None)
    ref = net.block(1).linear.weight
    pruned.to(device=ref.device, dtype=ref.dtype)
    with torch.no_grad():
        for j in range(1, l + 1):
            source, target = net.block(j), pruned.block(j)
            target.linear.weight.copy_(source.linear.weight)
            if source.linear.bias is not None:
                target.linear.bias.copy_(source.linear.bias)
            else:
                target.linear.bias.zero_()
            if source.bn is not None and target.bn is not None:  # the copy has batch norm where the net has
                target.bn.load_state_dict(source.bn.state_dict())
        out = pruned.block(l + 1).linear
        out.weight.copy_(weight.to(out.weight))
        out.bias.copy_(bias.to(out.bias))
    return pruned.eval()


def prune_network(
    net: nn.Module,
    data: DataLike,
    method: str = "lmap",
    tolerance: float = EFFECTIVE_TOLERANCE,
    ridge: float = 1e-6,
    *,
    input_shape: Sequence[int] | None = None,
    cuts: Sequence[str] | None = None,
) -> PrunedNetwork:
    """The earliest cut l whose pruned network keeps the test accuracy within ``tolerance`` of ``net``'s.

    Candidates are scanned in order of l (1..L-2) with the replacement's accuracy (``lmap_accuracy`` /
    ``lp_accuracy``); a candidate within the tolerance is built and its own test accuracy measured, and the first
    that stays within the tolerance is returned. None does: NetdynError with the best candidate's numbers.

    Any other model than a netdyn MLP (docs/any-network.md; ``input_shape`` and ``cuts`` as for ``analyze``) is pruned
    by its L-map at an affine tail only: the pruned model is a :class:`~netdyn.models.pruned.Pruned`, the trunk up to
    the cut followed by one ``nn.Linear`` (M_l, c_l) on the cut's flattened activations. Cuts whose tail is not affine
    are passed over (the scan's ``tail``); where no cut has an affine tail, a ModelError names the kinds found.
    """
    from netdyn.analysis._common import is_own_network

    _check(method, tolerance)
    if is_own_network(net, input_shape, cuts):
        return _prune_mlp(net, data, method, tolerance, ridge)
    return _prune_any(net, data, method, tolerance, input_shape, cuts)


def _prune_mlp(net: MLP, data: DataLike, method: str, tolerance: float, ridge: float) -> PrunedNetwork:
    """:func:`prune_network` of a netdyn MLP: the pruned model is an MLP of depth l."""
    from netdyn.analysis import lmap_accuracy, lp_accuracy, network_accuracy
    from netdyn.analysis._common import samples_for

    data = samples_for(net, data)
    net = net.eval()
    if net.depth < 2:
        raise NetdynError(
            f"a depth-{net.depth} network has nothing to prune: its only hidden layer feeds the output directly"
        )
    candidates = list(range(1, net.depth))
    reference = float(network_accuracy(net, data).set_index("split")["accuracy"]["test"])
    measure = lmap_accuracy if method == "lmap" else lambda n, d, layers: lp_accuracy(n, d, layers, ridge=ridge)
    table = measure(net, data, layers=candidates).pivot(index="layer", columns="split", values="accuracy")
    rows, chosen = [], None
    for l in candidates:
        crosses = method == "lmap" and net.block(l + 1).skip is not None
        replaced = float(table["test"].loc[l])
        effective = replaced >= reference - tolerance
        row = {"layer": l, "replacement_test_accuracy": replaced,
               "replacement_train_accuracy": float(table["train"].loc[l]), "skip_crosses": crosses,
               "effective": effective, "pruned_test_accuracy": float("nan"), "chosen": False}
        if chosen is None and effective and not crosses:
            weight, bias = linear_tail(net, data, l, method, ridge)
            candidate = truncated_network(net, l, weight, bias)
            measured = float(network_accuracy(candidate, data).set_index("split")["accuracy"]["test"])
            row["pruned_test_accuracy"] = measured
            if measured >= reference - tolerance:
                chosen, row["chosen"] = (l, candidate), True
        rows.append(row)
    scan = pd.DataFrame(rows, columns=SCAN_COLUMNS)
    if chosen is None:
        usable = scan[~scan["skip_crosses"]]
        best = usable.iloc[usable["replacement_test_accuracy"].argmax()] if len(usable) else None
        detail = (
            f"the best, after layer {int(best['layer'])}, reaches {best['replacement_test_accuracy']:.4f}"
            if best is not None else "every cut is crossed by a residual skip"
        )
        raise NetdynError(
            f"no {method} tail keeps the test accuracy within {tolerance:g} of the network's {reference:.4f} "
            f"at any layer 1..{net.depth - 1} ({detail}); nothing was pruned"
        )
    return PrunedNetwork(net=chosen[1], layer=chosen[0], method=method, network_accuracy=reference, scan=scan)


def _test_accuracy(model: nn.Module, data: DataLike, input_shape: Sequence[int]) -> float:
    from netdyn.analysis import network_accuracy

    return float(network_accuracy(model, data, input_shape=input_shape).set_index("split")["accuracy"]["test"])


def _prune_any(
    model: nn.Module,
    data: DataLike,
    method: str,
    tolerance: float,
    input_shape: Sequence[int] | None,
    cuts: Sequence[str] | None,
) -> PrunedNetwork:
    """:func:`prune_network` of any model the adapter reads: its L-map at the earliest effective affine tail."""
    from netdyn.analysis import lmap_accuracy
    from netdyn.analysis._common import model_samples

    if method != "lmap":
        raise ConfigError(f"the {method} method prunes netdyn MLPs; prune a {type(model).__name__} with lmap")
    model = model.eval()
    samples, shape = model_samples(model, data, input_shape)
    network = read_network(model, shape, cuts)
    candidates = list(range(1, network.n_layers - 1))
    if not candidates:
        raise NetdynError(f"{type(model).__name__} has one cut: nothing lies between it and the output to prune")
    reference = _test_accuracy(model, samples, shape)
    table = lmap_accuracy(model, samples, layers=candidates, input_shape=shape, cuts=cuts)
    accuracy = table.pivot(index="layer", columns="split", values="accuracy")
    kinds = table.groupby("layer")["tail"].first()
    rows: list[dict[str, Any]] = []
    chosen = None
    for l in candidates:
        kind, replaced = str(kinds[l]), float(accuracy["test"].loc[l])
        crosses, effective = len(network.tail_inputs(l)) > 1, replaced >= reference - tolerance
        measured = float("nan")
        if chosen is None and effective and not crosses and kind == "affine":
            candidate = collapsed(model, samples, l, shape, cuts, network.cuts[l].name)
            measured = _test_accuracy(candidate, samples, shape)
            if measured >= reference - tolerance:
                chosen = (l, candidate)
        rows.append({"layer": l, "replacement_test_accuracy": replaced,
                     "replacement_train_accuracy": float(accuracy["train"].loc[l]), "skip_crosses": crosses,
                     "effective": effective, "pruned_test_accuracy": measured,
                     "chosen": chosen is not None and chosen[0] == l, "cut": network.cuts[l].name, "tail": kind})
    scan = pd.DataFrame(rows, columns=[*SCAN_COLUMNS, "cut", "tail"])
    if chosen is None:
        raise _nothing_pruned(model, scan, reference, tolerance)
    return PrunedNetwork(net=chosen[1], layer=chosen[0], method=method, network_accuracy=reference, scan=scan)


def collapsed(
    model: nn.Module, data: DataLike, l: int, input_shape: Sequence[int], cuts: Sequence[str] | None, cut: str
) -> Pruned:
    """``model`` up to its cut l, then one Linear holding the tail's L-map (M_l, c_l).

    See docs/quantities.md#l-map and docs/any-network.md#l-map-tails.

    A tail that is not affine is a ModelError naming its kind (``lmap_matrix``'s).
    """
    from netdyn.analysis import lmap_matrix

    matrix, constant = lmap_matrix(model, l, data=data, input_shape=input_shape, cuts=cuts)
    ref = next(iter(model.parameters()), matrix)
    linear = nn.Linear(matrix.shape[1], matrix.shape[0]).to(device=ref.device, dtype=ref.dtype)
    with torch.no_grad():
        linear.weight.copy_(matrix)
        linear.bias.copy_(constant)
    return Pruned(copy.deepcopy(model), cut, linear, input_shape).eval()


def _nothing_pruned(model: nn.Module, scan: pd.DataFrame, reference: float, tolerance: float) -> NetdynError:
    """Why no cut of a model could be pruned: no affine tail (a ModelError naming the kinds), or none effective."""
    usable = scan[(scan["tail"] == "affine") & ~scan["skip_crosses"]]
    if usable.empty:
        kinds = ", ".join(f"{row.cut}: {row.tail}" for row in scan.itertuples())
        return ModelError(f"no cut of {type(model).__name__} has an affine tail to collapse into one Linear "
                          f"({kinds}); prune takes affine tails only")
    best = usable.iloc[usable["replacement_test_accuracy"].argmax()]
    return NetdynError(
        f"no affine L-map tail keeps the test accuracy within {tolerance:g} of the network's {reference:.4f} (the "
        f"best, after cut {best['cut']}, reaches {best['replacement_test_accuracy']:.4f}); nothing was pruned"
    )


def inference_time(
    net: nn.Module, x: torch.Tensor, min_seconds: float = 0.2, min_repeats: int = 5,
    input_shape: Sequence[int] | None = None,
) -> float:
    """Median wall time (seconds) of one forward pass of ``net`` over ``x``, without gradient, after a warm-up.

    ``x`` is fed as ``x.reshape(-1, *input_shape)`` (flattened without ``input_shape``).
    """
    net = net.eval()
    ref = next(iter(net.parameters()))
    x = (x.flatten(1) if input_shape is None else x.reshape(-1, *input_shape)).to(ref)
    times: list[float] = []
    with torch.no_grad():
        net(x)
        while len(times) < min_repeats or sum(times) < min_seconds:
            start = time.perf_counter()
            net(x)
            times.append(time.perf_counter() - start)
            if len(times) >= 10_000:
                break
    return statistics.median(times)


@dataclass
class PruneResult:
    """What :func:`prune_run` did: the pruned run folder, the cut, before/after numbers and the scan."""

    folder: Path
    layer: int
    method: str
    table: pd.DataFrame
    """``model`` (original, pruned), ``depth, parameters, train_accuracy, test_accuracy, inference_ms``."""
    scan: pd.DataFrame


def _describe(net: nn.Module, data: Any, name: str, input_shape: Sequence[int] | None = None,
              depth: int | None = None) -> dict[str, Any]:
    """One row of the before/after table.

    A model that is not an MLP gives its depth in cuts and, pruned, counts only the parameters its forward uses.
    """
    from netdyn.analysis import network_accuracy

    shape = {} if input_shape is None else {"input_shape": input_shape}
    acc = network_accuracy(net, data, **shape).set_index("split")["accuracy"]
    parameters = net.trunk_parameters if isinstance(net, Pruned) else parameter_count(net)
    return {"model": name, "depth": net.depth if isinstance(net, MLP) else depth, "parameters": parameters,
            "train_accuracy": float(acc["train"]), "test_accuracy": float(acc["test"]),
            "inference_ms": 1e3 * inference_time(net, data.x_test, input_shape=input_shape)}


def _target(out: Path) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise RunError(f"{out} already exists: choose another --out for the pruned run")


def prune_run(
    run: str | Path,
    out: str | Path | None = None,
    method: str = "lmap",
    tolerance: float = EFFECTIVE_TOLERANCE,
    step: int | str = "last",
    root: str | Path | None = None,
    *,
    data: DataLike | None = None,
    into: nn.Module | None = None,
) -> PruneResult:
    """Prune a run folder's network at ``step`` and save the pruned model as a run folder of its own.

    ``out`` defaults to ``RUN-pruned-METHOD`` beside the run. The folder appears whole or not at all (it is written
    under a temporary name and renamed): config.json (the pruned model, the run's data and training, and
    ``pruned_from``), one checkpoint at the same step, summary.json, and ``metrics/prune.parquet`` (before and
    after: parameters, accuracies, measured inference time) and ``metrics/prune_scan.parquet`` (every cut).

    A user's model (a Monitor's or the Lightning callback's folder) is rebuilt by its recorded factory, or loaded
    ``into`` the model given, and read as recorded (``input_shape``, ``cuts``); ``data`` replaces the recorded
    data set (needed where the folder records none). Its pruned folder keeps the original's weights, the Linear
    and the cut's name (``pruned`` in config.json), so that ``load_run(out).model()`` rebuilds the
    :class:`~netdyn.models.pruned.Pruned` model by the same factory (``model(into=original)`` otherwise).
    """
    from netdyn.orchestration import load_run

    _check(method, tolerance)
    source = load_run(run)
    out = Path(out) if out is not None else source.path.parent / f"{source.path.name}-pruned-{method}"
    _target(out)
    _io.check_writable_folder(out, "pruned run folder")
    try:
        at = source.resolve_step(step)
    except RunError as exc:  # a step the run does not have: the argument is wrong, not the folder
        if not source.checkpoints():
            raise
        raise ConfigError(f"--checkpoint: {exc}") from None
    net = source.model(at, into=into)
    data = data if data is not None else source.dataset(root=root)
    reading = source.reading if source.user_model or not isinstance(net, MLP) else {"input_shape": None, "cuts": None}
    pruned = prune_network(net, data, method=method, tolerance=tolerance, input_shape=reading["input_shape"],
                           cuts=reading["cuts"])
    shape = pruned.net.input_shape if isinstance(pruned.net, Pruned) else None
    depth_before = None if isinstance(net, MLP) else len(pruned.scan) + 1
    label = f"pruned ({method} after layer {pruned.layer})"
    table = pd.DataFrame([_describe(net, data, "original", shape, depth_before),
                          _describe(pruned.net, data, label, shape, pruned.layer)], columns=TABLE_COLUMNS)
    provenance = {"run": str(source.path.resolve()), "step": at, "method": method, "layer": pruned.layer,
                  "tolerance": tolerance, "depth_before": int(table.iloc[0]["depth"]),
                  "depth_after": int(table.iloc[1]["depth"])}
    config = source.config
    record = {"netdyn_version": config.get("netdyn_version"), **_model_record(pruned.net, config),
              "data": config.get("data"), "train": config.get("train"), "analysis": None, "pruned_from": provenance}
    after = table.iloc[1]
    summary = {"steps": at, "total_steps": at, "diverged": False, "diverged_step": None,
               "train_accuracy": float(after["train_accuracy"]), "test_accuracy": float(after["test_accuracy"]),
               "parameters": int(after["parameters"]), "parameters_before": int(table.iloc[0]["parameters"]),
               "pruned_from": provenance}
    _write_pruned(out, record, at, pruned, table, summary)
    return PruneResult(folder=out, layer=pruned.layer, method=method, table=table, scan=pruned.scan)


def _model_record(net: nn.Module, config: dict[str, Any]) -> dict[str, Any]:
    """The pruned model in config.json: an MLP's spec, or the original user model's record and the cut."""
    from netdyn.store import user_model_record

    if isinstance(net, MLP):
        return {"model": net.spec.to_dict()}
    if not isinstance(net, Pruned):
        raise TypeError(f"a pruned model is an MLP or a Pruned, got {type(net).__name__}")
    record = user_model_record(net.model, config.get("model_factory"), config.get("model_args") or None,
                               net.input_shape, None)
    record["model_class"] = config.get("model_class") or record["model_class"]
    record["pruned"] = {"cut": net.cut, "features": net.linear.in_features, "classes": net.linear.out_features}
    return record


def _write_pruned(out: Path, record: dict[str, Any], at: int, pruned: PrunedNetwork, table: pd.DataFrame,
                  summary: dict[str, Any]) -> None:
    """The pruned run folder, whole or not at all (written under a temporary name, then renamed)."""
    from netdyn.store import RunFolder

    provenance = summary["pruned_from"]
    out.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".part", dir=out.parent))
    try:
        folder = RunFolder(scratch)
        folder.write_record(record)
        folder.save_checkpoint(at, pruned.net, None, {"pruned_from": provenance})
        folder.write_table("prune", table)
        folder.write_table("prune_scan", pruned.scan)
        folder.write_summary(summary)
        os.chmod(scratch, 0o755)
        _target(out)
        if out.is_dir():
            out.rmdir()
        os.replace(scratch, out)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
