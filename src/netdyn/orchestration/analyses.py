"""Analysing a network or a run folder: ``analyze``, ``analyze_checkpoints`` and ``load_analysis``.

See docs/quantities.md#the-analysis-as-a-whole.

``analyze`` and ``analyze_checkpoints`` return an :class:`Analysis`, the framework's tables with ``.save``,
``.plot``, ``.to_html``; ``load_analysis`` reads one back.

The tables themselves come from ``netdyn.analysis.compute_quantities``; this layer places the network on the
analysis device, shows progress, and joins tables to figures (``netdyn.plots``) and the report
(``netdyn.report``).
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, overload

import pandas as pd
import torch
from torch import nn

from netdyn import _io
from netdyn._device import resolve_device
from netdyn._progress import progress_bar
from netdyn.analysis._common import check_config_fits
from netdyn.analysis.compute import Layers, compute_quantities, read_model
from netdyn.analysis.config import AnalysisConfig
from netdyn.analysis.quantities import selected, table_columns
from netdyn.data.samples import DataLike, SampleSet
from netdyn.errors import ConfigError, RunError
from netdyn.models.mlp import MLP
from netdyn.orchestration.display import analysis_html
from netdyn.plots import save_figure
from netdyn.plots.display import FigureSet
from netdyn.plots.registry import analysis_figures
from netdyn.report import render_report
from netdyn.report.sections import report_sections
from netdyn.store import RunFolder

ANALYSIS_FILE = "analysis.json"
ModelT = TypeVar("ModelT", bound=nn.Module)


@dataclass
class Analysis:
    """The framework's tables for one network (or, with a ``step`` column, for a run's checkpoints)."""

    tables: dict[str, pd.DataFrame]
    summary: dict[str, Any]
    config: AnalysisConfig = field(default_factory=AnalysisConfig)
    input_shape: tuple[int, ...] | None = None
    """How one sample was fed to a model that is not netdyn's own MLP (None for a netdyn MLP)."""
    cuts: tuple[str, ...] | None = None
    """The cuts such a model was read at, when they were named (None: its default cuts)."""

    @property
    def skipped(self) -> dict[str, str]:
        """The quantities that do not support the analysed model yet, with the reason (empty when none)."""
        return dict(self.summary.get("skipped_quantities") or {})

    def __getitem__(self, name: str) -> pd.DataFrame:
        """The table called ``name``."""
        return self.tables[name]

    @property
    def by_step(self) -> bool:
        """Whether the tables hold several checkpoints (a ``step`` column)."""
        return any("step" in t.columns for t in self.tables.values())

    def save(self, directory: str | Path) -> list[Path]:
        """Write every table as ``metrics/<name>.parquet`` and the summary as ``analysis.json`` under ``directory``."""
        directory = Path(directory)
        paths = [
            _io.write_parquet(directory / "metrics" / f"{name}.parquet", table) for name, table in self.tables.items()
        ]
        record = {"summary": _io.jsonable(self.summary), "config": self.config.to_dict(), "tables": sorted(self.tables),
                  "input_shape": _io.jsonable(self.input_shape), "cuts": _io.jsonable(self.cuts)}
        paths.append(_io.write_json(directory / ANALYSIS_FILE, record))
        return paths

    def figures(self) -> FigureSet:
        """The figures of these tables, by name: matplotlib Figures a notebook shows one after the other.

        Nothing is written.
        """
        return FigureSet(analysis_figures(self.tables, self.summary))

    @overload
    def plot(self, directory: None = None) -> FigureSet: ...

    @overload
    def plot(self, directory: str | Path) -> list[Path]: ...

    def plot(self, directory: str | Path | None = None) -> FigureSet | list[Path]:
        """Write the figures as PNG and SVG under ``directory/figures``, or return them without a directory.

        With ``directory`` the written paths are returned; without one, the figures by name (:meth:`figures`),
        which a notebook shows.
        """
        if directory is None:
            return self.figures()
        paths: list[Path] = []
        for name, fig in self.figures().items():
            paths += save_figure(fig, Path(directory) / "figures" / name)
        return paths

    def _repr_html_(self) -> str:
        return analysis_html(self)

    def to_html(
        self,
        path: str | Path,
        title: str = "netdyn analysis",
        meta: dict[str, Any] | None = None,
        history: pd.DataFrame | None = None,
    ) -> Path:
        """One self-contained HTML page: every figure embedded, the key tables, what each quantity means."""
        info = {**(meta or {}), **{k: v for k, v in self.summary.items() if not isinstance(v, (dict, list))}}
        return render_report(title, report_sections(self.tables, self.summary, history), path, meta=info)


def load_analysis(directory: str | Path) -> Analysis:
    """The analysis :meth:`Analysis.save` wrote under ``directory``: its tables, summary and config.

    ``directory`` is a run folder, or any folder the analysis was saved into. RunError naming the file when it is
    missing or unreadable.
    """
    folder = RunFolder(directory)
    record = folder.read_json(ANALYSIS_FILE, missing=f"{folder.path} holds no saved analysis")
    try:
        config = AnalysisConfig.from_dict(record.get("config") or {})
    except (ValueError, AttributeError, ConfigError) as exc:
        raise RunError(f"{folder.path / ANALYSIS_FILE} is corrupt ({exc}); analyse again to replace it") from None
    names = record.get("tables")
    if names is None:  # written before the record listed its tables: every table the registry knows
        present = set(folder.table_names())
        names = [name for name in table_columns() if name in present]
    tables = {name: folder.read_table(name) for name in names}
    shape, cuts = record.get("input_shape"), record.get("cuts")
    return Analysis(tables=tables, summary=record.get("summary") or {}, config=config,
                    input_shape=None if shape is None else tuple(shape), cuts=None if cuts is None else tuple(cuts))


def _prepare(net: ModelT, config: AnalysisConfig) -> ModelT:
    """The net on the analysis device and dtype, in evaluation mode; a copy when either changes."""
    device = resolve_device(config.device)
    dtype = getattr(torch, config.dtype)
    ref = next(iter(net.parameters()), None)
    if ref is not None and (ref.device != device or ref.dtype != dtype):
        net = copy.deepcopy(net).to(device=device, dtype=dtype)
    return net.eval()


def _batch_statistics(
    net: ModelT, samples: SampleSet, shape: tuple[int, ...] | None, config: AnalysisConfig
) -> ModelT:
    """The net as ``config.bn_mode`` asks: for "batch", a copy with the training set's own BN statistics.

    The copy's batch-norm layers have their running mean and variance reset and recomputed by one cumulative
    pass (momentum None) over the training samples at the current weights, only the batch-norm layers in
    training mode. The pass takes the training set as one batch while its inputs fit ``config.memory_budget``,
    else chunks of that size (their means and variances averaged). ``net`` itself for "running", or when it has
    no batch norm that tracks running statistics.
    """
    norms = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    if config.bn_mode != "batch" or not norms:
        return net
    net = copy.deepcopy(net)
    norms = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    ref = next(iter(net.parameters()))
    x = samples.x_train.flatten(1)
    chunk = max(1, config.memory_budget // max(1, x.shape[1] * ref.element_size()))
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
        m.train()
    with torch.no_grad():
        for part in x.split(chunk):
            part = part.to(device=ref.device, dtype=ref.dtype)
            if isinstance(net, MLP):
                net(part, bn_mode="train")  # the MLP's own switch: its batch norms update their statistics
            else:
                net(part.reshape(-1, *(shape or part.shape[1:])))
    for m, momentum in zip(norms, momenta, strict=True):
        m.momentum = momentum
    return net.eval()


def analyze(
    net: nn.Module,
    data: DataLike,
    config: AnalysisConfig | None = None,
    progress: bool = False,
    *,
    input_shape: Sequence[int] | None = None,
    cuts: Sequence[str] | None = None,
) -> Analysis:
    """Run the framework's quantities on ``net`` and ``data`` and return their tables.

    The quantities are those of ``netdyn.analysis.QUANTITIES`` (by default those of docs/quantities.md).
    ``config.quantities`` chooses which (the network's own accuracy always comes first); ``config.basins=False`` drops
    the basins. ``progress=True`` shows a progress bar over the quantities (the CLI's); nothing else is printed or
    written.

    ``net`` is a netdyn MLP or any model the network adapter reads (see docs/any-network.md): ``input_shape`` is how one
    sample is fed (default: the data's own), ``cuts`` names its cuts (default: those of docs/any-network.md#cuts); its
    tables add ``cut``. A quantity that does not support such a model yet is left out and named, with the reason, in
    ``Analysis.skipped`` (the summary's ``skipped_quantities``, analysis.json and the report).
    """
    config = config or AnalysisConfig()
    samples, n_layers, shape = read_model(net, data, input_shape, cuts)
    check_config_fits(config, Layers(n_layers), int(samples.num_classes))
    net = _batch_statistics(_prepare(net, config), samples, shape, config)
    named = None if cuts is None else tuple(cuts)
    if not progress:
        tables, summary = compute_quantities(net, samples, config, input_shape=input_shape, cuts=cuts)
        return Analysis(tables=tables, summary=summary, config=config, input_shape=shape, cuts=named)
    first = selected(config)[0].name
    bar = progress_bar(len(selected(config)))

    def advance(name: str) -> None:  # called as each quantity starts: the one before it is done
        if name != first:
            bar.update(1)
        bar.set_description(name.replace("_", " "))

    try:
        tables, summary = compute_quantities(
            net, samples, config, on_quantity=advance, input_shape=input_shape, cuts=cuts
        )
        bar.update(1)
    finally:
        bar.close()
    return Analysis(tables=tables, summary=summary, config=config, input_shape=shape, cuts=named)


def analyze_checkpoints(
    run: RunFolder | str | Path,
    steps: Sequence[int] | str = "all",
    config: AnalysisConfig | None = None,
    data: DataLike | None = None,
    progress: bool = False,
    into: nn.Module | None = None,
) -> Analysis:
    """``analyze`` at several checkpoints of a run folder, tables stacked with a ``step`` column.

    ``steps`` is "all", "last" or a list of checkpoint steps; ``data`` defaults to the run's recorded dataset.
    The summary holds one entry per step under ``by_step``. Only checkpoints with finite weights are analysed:
    "last" and "all" pass over those of a diverged run (with a warning), and an explicit one that is not
    finite is a ConfigError naming those that can be analysed. A user's model recorded without a factory is
    loaded ``into`` the model given (see :meth:`RunFolder.model`), and read as the folder records it (its
    ``input_shape`` and ``cuts``).
    """
    folder = run if isinstance(run, RunFolder) else RunFolder.open_existing(run)
    chosen, note = folder.select_checkpoints(steps)
    if note is not None:
        warnings.warn(note, stacklevel=2)
    config = config or AnalysisConfig()
    reading = folder.reading
    if data is not None:
        samples, n_layers, _ = read_model(folder.model(chosen[-1], into=into), data, **reading)
        check_config_fits(config, Layers(n_layers), int(samples.num_classes))
    data = data if data is not None else folder.dataset()
    parts: dict[str, list[pd.DataFrame]] = {}
    by_step: dict[int, dict[str, Any]] = {}
    bar = progress_bar(len(chosen), unit="checkpoint") if progress and len(chosen) > 1 else None
    result = None
    for step in chosen:
        result = analyze(folder.model(step, into=into), data, config, progress=progress and bar is None, **reading)
        for name, table in result.tables.items():
            parts.setdefault(name, []).append(table.assign(step=step))
        by_step[step] = result.summary
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    tables = {name: pd.concat(frames, ignore_index=True) for name, frames in parts.items()}
    last = by_step[chosen[-1]]
    return Analysis(tables=tables, summary={**last, "steps": chosen, "by_step": by_step}, config=config,
                    input_shape=None if result is None else result.input_shape, cuts=reading["cuts"])
