"""Everything at once (SPEC 5.8): ``analyze(net, data, AnalysisConfig())`` runs the registered quantities
(``netdyn.analysis.QUANTITIES``: 5.1-5.7 by default) and returns an :class:`Analysis` holding tidy tables, with
``.save``, ``.plot`` and ``.to_html``. ``analyze_checkpoints``
runs it over a run folder's checkpoints and stacks the tables with a ``step`` column: the paper's
"evolution during training" figures.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from netdyn import _io
from netdyn._device import resolve_device
from netdyn._progress import progress_bar
from netdyn.analysis._common import check_config_fits, samples_for
from netdyn.analysis.config import AnalysisConfig
from netdyn.analysis.quantities import AnalysisContext, selected
from netdyn.data.samples import DataLike
from netdyn.models import MLP


@dataclass
class Analysis:
    """The framework's tables for one network (or, with a ``step`` column, for a run's checkpoints)."""

    tables: dict[str, pd.DataFrame]
    summary: dict[str, Any]
    config: AnalysisConfig = field(default_factory=AnalysisConfig)

    def __getitem__(self, name: str) -> pd.DataFrame:
        return self.tables[name]

    @property
    def by_step(self) -> bool:
        return any("step" in t.columns for t in self.tables.values())

    def save(self, directory: str | Path) -> list[Path]:
        """Write every table as ``metrics/<name>.parquet`` and the summary as ``analysis.json`` under ``directory``."""
        directory = Path(directory)
        paths = [
            _io.write_parquet(directory / "metrics" / f"{name}.parquet", table) for name, table in self.tables.items()
        ]
        paths.append(
            _io.write_json(
                directory / "analysis.json",
                {"summary": _io.jsonable(self.summary), "config": self.config.to_dict()},
            )
        )
        return paths

    def figures(self) -> dict[str, Any]:
        """The figures of these tables, by name (matplotlib Figures; nothing is written)."""
        from netdyn.report.sections import analysis_figures

        return analysis_figures(self)

    def plot(self, directory: str | Path) -> list[Path]:
        """Write every figure as PNG and SVG under ``directory/figures``."""
        from netdyn.plots import save_figure

        paths: list[Path] = []
        for name, fig in self.figures().items():
            paths += save_figure(fig, Path(directory) / "figures" / name)
        return paths

    def to_html(
        self,
        path: str | Path,
        title: str = "netdyn analysis",
        meta: dict[str, Any] | None = None,
        history: pd.DataFrame | None = None,
    ) -> Path:
        """One self-contained HTML page: every figure embedded, the key tables, what each quantity means."""
        from netdyn.report import render_report
        from netdyn.report.sections import report_sections

        info = {**(meta or {}), **{k: v for k, v in self.summary.items() if not isinstance(v, (dict, list))}}
        return render_report(title, report_sections(self, history), path, meta=info)




def _prepare(net: MLP, config: AnalysisConfig) -> MLP:
    """The net on the analysis device and dtype, in evaluation mode; a copy when either changes."""
    device = resolve_device(config.device)
    dtype = getattr(torch, config.dtype)
    ref = next(net.parameters())
    if ref.device != device or ref.dtype != dtype:
        net = copy.deepcopy(net).to(device=device, dtype=dtype)
    return net.eval()


def analyze(net: MLP, data: DataLike, config: AnalysisConfig | None = None, progress: bool = False) -> Analysis:
    """Run the framework's quantities (``netdyn.analysis.QUANTITIES``; by default SPEC 5.1-5.7) on ``net`` and
    ``data`` and return their tables.

    ``config.quantities`` chooses which (the network's own accuracy always comes first); ``config.basins=False``
    drops the basins. ``progress=True`` shows a progress bar over the quantities (the CLI's); nothing else is
    printed or written.
    """
    config = config or AnalysisConfig()
    data = samples_for(net, data)
    check_config_fits(config, net, int(data.num_classes))
    net = _prepare(net, config)
    ctx = AnalysisContext.build(net, data, config)
    records = selected(config)
    tables: dict[str, pd.DataFrame] = {}
    summary: dict[str, Any] = {}
    bar = progress_bar(len(records)) if progress else None
    try:
        for record in records:
            if bar is not None:
                bar.set_description(record.name.replace("_", " "))
            tables.update(record.compute(net, data, ctx))
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    for record in records:
        summary.update(record.summarize(tables, ctx))
    return Analysis(tables=tables, summary=_io.jsonable(summary), config=config)


def analyze_checkpoints(
    run: Any,
    steps: Sequence[int] | str = "all",
    config: AnalysisConfig | None = None,
    data: DataLike = None,
    progress: bool = False,
) -> Analysis:
    """``analyze`` at several checkpoints of a run folder, tables stacked with a ``step`` column.

    ``steps`` is "all", "last" or a list of checkpoint steps; ``data`` defaults to the run's recorded dataset.
    The summary holds one entry per step under ``by_step``. Only checkpoints with finite weights are analysed:
    "last" and "all" pass over those of a diverged run (with a warning), and an explicit one that is not
    finite is a ConfigError naming those that can be analysed.
    """
    import warnings

    from netdyn.store import load_run

    run = load_run(run) if not hasattr(run, "checkpoints") else run
    chosen, note = run.select_checkpoints(steps)
    if note is not None:
        warnings.warn(note, stacklevel=2)
    config = config or AnalysisConfig()
    if data is not None:
        net = run.model(chosen[-1])
        check_config_fits(config, net, int(samples_for(net, data).num_classes))
    data = data if data is not None else run.dataset()
    parts: dict[str, list[pd.DataFrame]] = {}
    by_step: dict[int, dict[str, Any]] = {}
    bar = progress_bar(len(chosen), unit="checkpoint") if progress and len(chosen) > 1 else None
    for step in chosen:
        result = analyze(run.model(step), data, config, progress=progress and bar is None)
        for name, table in result.tables.items():
            parts.setdefault(name, []).append(table.assign(step=step))
        by_step[step] = result.summary
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    tables = {name: pd.concat(frames, ignore_index=True) for name, frames in parts.items()}
    last = by_step[chosen[-1]]
    return Analysis(tables=tables, summary={**last, "steps": chosen, "by_step": by_step}, config=config)

