"""Everything at once (SPEC 5.8): ``analyze(net, data, AnalysisConfig())`` runs 5.1-5.7 and returns an
:class:`Analysis` holding tidy tables, with ``.save``, ``.plot`` and ``.to_html``. ``analyze_checkpoints``
runs it over a run folder's checkpoints and stacks the tables with a ``step`` column: the paper's
"evolution during training" figures.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from netdyn import _io
from netdyn.analysis._common import check_input_size, net_device
from netdyn.analysis.basins import sample_basin, weight_basin
from netdyn.analysis.fields import local_fields
from netdyn.analysis.geometry import class_geometry
from netdyn.analysis.lmap import lmap_accuracy
from netdyn.analysis.modes import neuron_mode_census, neuron_modes
from netdyn.analysis.probes import lp_accuracy
from netdyn.analysis.ranks import rpd_tables
from netdyn.errors import ConfigError
from netdyn.models import MLP

#: "Pruning is effective at l" when the linear replacement's test accuracy is within this of the network's.
EFFECTIVE_TOLERANCE = 0.005


@dataclass(frozen=True)
class AnalysisConfig:
    """What ``analyze`` computes and how. Every field is a flag of ``netdyn analyze``."""

    layers: tuple[int, ...] | None = None
    """Layers to report (None: all; RPD and neuron modes take the hidden ones among them)."""
    basins: bool = True
    """Compute the sample- and weight-space attraction basins (the slowest part)."""
    basin_samples: int | None = None
    """Training samples the basins use (None: 2,000 on a CPU, all on a GPU)."""
    repeats: int = 5
    """Noise draws per amplitude in the basins."""
    eps: tuple[float, ...] | None = None
    """Noise amplitudes of the basins (None: 0..3 in 31 points, extended up to 12 until accuracy halves)."""
    max_samples: int = 2000
    """Training samples for the RPD and the neuron modes (a seeded subset)."""
    bins: int = 50
    """Histogram bins of the RPD."""
    classes: tuple[int, ...] = (1, 2, 3)
    """Classes whose output local fields are projected (the first two name the neuron pair)."""
    seed: int = 0
    """Seed of every subset and noise draw."""
    device: str = "auto"
    """Device: auto (cuda if available), cpu, cuda."""
    dtype: str = "float32"
    """Floating-point type of the analysis: float32 or float64."""

    def __post_init__(self) -> None:
        if self.dtype not in ("float32", "float64"):
            raise ConfigError(f"dtype must be float32 or float64, got {self.dtype!r}")
        if self.repeats < 1 or self.max_samples < 2 or self.bins < 2:
            raise ConfigError("repeats must be >= 1, max_samples >= 2 and bins >= 2")
        if len(self.classes) < 2:
            raise ConfigError("classes needs at least two classes (the first two name the projected neurons)")


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
                {"summary": _jsonable(self.summary), "config": asdict(self.config)},
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


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, (np.floating, np.integer)):
        return _jsonable(obj.item())
    return obj


def _prepare(net: MLP, config: AnalysisConfig) -> MLP:
    """The net on the analysis device and dtype, in evaluation mode; a copy when either changes."""
    from netdyn.training.loop import resolve_device

    device = resolve_device(config.device)
    dtype = getattr(torch, config.dtype)
    ref = next(net.parameters())
    if ref.device != device or ref.dtype != dtype:
        net = copy.deepcopy(net).to(device=device, dtype=dtype)
    return net.eval()


def _pick_classes(wanted: Sequence[int], num_classes: int) -> tuple[int, ...]:
    chosen = tuple(c for c in wanted if 0 <= c < num_classes)
    if len(chosen) >= 2:
        return chosen
    return tuple(range(min(3, num_classes)))


def effective_layer(table: pd.DataFrame, network_accuracy: float, tolerance: float = EFFECTIVE_TOLERANCE) -> int | None:
    """The earliest layer whose test accuracy is within ``tolerance`` of the network's (None if none is)."""
    test = table[table["split"] == "test"].sort_values("layer")
    ok = test[test["accuracy"] >= network_accuracy - tolerance]
    return int(ok["layer"].iloc[0]) if len(ok) else None


def network_accuracy(net: MLP, data: Any) -> pd.DataFrame:
    """The network's own accuracy on each split (BN running statistics): columns ``split, accuracy``."""
    from netdyn.analysis._common import accuracy, split_tensors, walk

    rows = []
    for split in ("train", "test"):
        x, y = split_tensors(data, split)
        logits = None
        for l, x_l, _ in walk(net, x):
            if l == net.n_layers:
                logits = x_l
        rows.append({"split": split, "accuracy": accuracy(logits, y)})
    return pd.DataFrame(rows)


def analyze(net: MLP, data: Any, config: AnalysisConfig | None = None, progress: bool = False) -> Analysis:
    """Run every quantity of SPEC 5.1-5.7 on ``net`` and ``data`` and return their tables.

    ``progress=True`` shows a progress bar over the steps (the CLI's); nothing else is printed or written.
    """
    config = config or AnalysisConfig()
    check_input_size(net, data)
    net = _prepare(net, config)
    L = net.n_layers
    layers = None if config.layers is None else [l for l in config.layers if 0 <= l < L]
    hidden = None if config.layers is None else [l for l in config.layers if 1 <= l < L]
    classes = _pick_classes(config.classes, data.num_classes)
    geometry_class = 5 if data.num_classes > 5 else 0  # the paper's Fig. 3(e, f) follows digit 5
    on_gpu = net_device(net).type == "cuda"
    basin_n = config.basin_samples if config.basin_samples is not None else (None if on_gpu else 2000)
    eps = None if config.eps is None else list(config.eps)
    extra: dict[str, Any] = {}

    def basins() -> dict[str, pd.DataFrame]:
        s = sample_basin(net, data, eps=eps, repeats=config.repeats, n_samples=basin_n, seed=config.seed)
        w = weight_basin(net, data, eps=eps, repeats=config.repeats, n_samples=basin_n, seed=config.seed)
        extra.update(
            sample_basin_size_mid=s.size_mid,
            sample_basin_size_half=s.size_half,
            weight_basin_size_mid=w.size_mid,
            weight_basin_size_half=w.size_half,
        )
        return {"sample_basin": s.curve, "weight_basin": w.curve}

    def ranks() -> dict[str, pd.DataFrame]:
        curves, summary = rpd_tables(
            net, data, hidden, bins=config.bins, max_samples=config.max_samples, seed=config.seed
        )
        return {"rpd": curves, "rpd_summary": summary}

    def modes() -> dict[str, pd.DataFrame]:
        table = neuron_modes(net, data, layers=hidden, max_samples=config.max_samples, seed=config.seed)
        return {"neuron_modes": table, "neuron_mode_census": neuron_mode_census(table)}

    def geometry() -> dict[str, pd.DataFrame]:
        per_sample = class_geometry(net, data, layers, per_sample=True, classes=[geometry_class], limit=100)
        return {"class_geometry": class_geometry(net, data, layers), "class_geometry_samples": per_sample}

    def fields() -> dict[str, pd.DataFrame]:
        lf = local_fields(net, data, classes=classes)
        return {"local_fields": lf.points, "local_fields_summary": lf.summary}

    steps: list[tuple[str, Callable[[], dict[str, pd.DataFrame]]]] = [
        ("network", lambda: {"network": network_accuracy(net, data)}),
        ("L-map", lambda: {"lmap": lmap_accuracy(net, data, layers)}),
        ("LP", lambda: {"lp": lp_accuracy(net, data, layers)}),
        ("RPD", ranks),
        ("neuron modes", modes),
        ("class geometry", geometry),
        ("local fields", fields),
    ]
    if config.basins:
        steps.append(("attraction basins", basins))
    tables: dict[str, pd.DataFrame] = {}
    bar = _bar(len(steps)) if progress else None
    try:
        for name, step in steps:
            if bar is not None:
                bar.set_description(name)
            tables.update(step())
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    return Analysis(tables=tables, summary=_summary(tables, extra), config=config)


def _summary(tables: dict[str, pd.DataFrame], extra: dict[str, Any]) -> dict[str, Any]:
    acc = tables["network"].set_index("split")["accuracy"]
    summary: dict[str, Any] = {"train_accuracy": float(acc["train"]), "test_accuracy": float(acc["test"])}
    summary["lmap_effective_layer"] = effective_layer(tables["lmap"], float(acc["test"]))
    summary["lp_effective_layer"] = effective_layer(tables["lp"], float(acc["test"]))
    if "rpd_summary" in tables and len(tables["rpd_summary"]):
        rs = tables["rpd_summary"]
        summary["rpd_gradient_first"] = float(rs["gradient"].iloc[0])
        summary["rpd_gradient_last"] = float(rs["gradient"].iloc[-1])
    if "neuron_mode_census" in tables and len(tables["neuron_mode_census"]):
        census = tables["neuron_mode_census"]
        summary["npm_fraction_first"] = float(census["npm"].iloc[0])
        summary["npm_fraction_last"] = float(census["npm"].iloc[-1])
    summary.update({k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in extra.items()})
    return summary


def analyze_checkpoints(
    run: Any,
    steps: Sequence[int] | str = "all",
    config: AnalysisConfig | None = None,
    data: Any = None,
    progress: bool = False,
) -> Analysis:
    """``analyze`` at several checkpoints of a run folder, tables stacked with a ``step`` column.

    ``steps`` is "all", "last" or a list of checkpoint steps; ``data`` defaults to the run's recorded dataset.
    The summary holds one entry per step under ``by_step``.
    """
    from netdyn.store import load_run

    run = load_run(run) if not hasattr(run, "checkpoints") else run
    run.resolve_step("last")  # a folder without checkpoints is a clear error here
    if steps == "all":
        chosen = run.checkpoints()
    elif isinstance(steps, (str, int)):
        chosen = [run.resolve_step(steps)]
    else:
        chosen = [run.resolve_step(s) for s in steps]
    data = data if data is not None else run.dataset()
    config = config or AnalysisConfig()
    parts: dict[str, list[pd.DataFrame]] = {}
    by_step: dict[int, dict[str, Any]] = {}
    bar = _bar(len(chosen), unit="checkpoint") if progress and len(chosen) > 1 else None
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


def _bar(total: int, unit: str = "step"):
    from tqdm.auto import tqdm

    return tqdm(total=total, unit=unit, dynamic_ncols=True, leave=False, disable=None)
