"""``recommend``: the depth and width a data set needs, read off a depth x width x seed sweep.

See docs/runs.md#beyond-one-run.

The paper (Sec. V, Figs. 3-5) reads four things off such a grid and finds them at one depth on MNIST (its
"8-9 layers", depth 6-7): where L-map pruning becomes effective, where the sample-space basin stops growing with
depth, where the accuracy peaks, and, across widths, where the basins stop changing. netdyn states each as a rule
on the seed means of the grid, computes it, and says where the rules agree.

The evidence table has one row per (depth, width) over its seeds ``s`` (points that failed or diverged are
counted, not averaged):

* ``test_accuracy_mean / _std / _min / _max``: the network's final test accuracy over seeds (std with ddof 1).
* ``lmap_effective_earliest_median``: median over seeds of the L-map's effective layer l* (docs/quantities.md#l-map:
  earliest l whose L-map test accuracy is within ``tolerance`` of the network's, the analysis summary's
  ``lmap_effective_earliest``; l* <= depth always, since at l = L-1 it is the net). ``lp_effective_earliest_median``
  is the same for the LP.
* ``lmap_prunable``: share of seeds with l* < depth, i.e. at least the last hidden layer's nonlinearity could be
  pruned into one matrix.
* ``sample_basin_mean / _std``, ``weight_basin_mean / _std``: the basin sizes over seeds (``size_half``, the eps
  where accuracy halves, as the paper's Fig. 5c-d; ``size_mid`` where most points have no ``size_half``, as with
  two classes). A size not reached on the noise grid is left out of the mean.

The criteria, each a rule on that table (``rtol`` = ``basin_rtol``, default 0.1):

1. **width where basins converge**, per depth D: the smallest width W of the grid such that at every wider W' of
   the grid both basin means lie within ``rtol`` (relative) of their value at W. At least one wider width must
   confirm it, so the widest width alone never qualifies. Overall: the largest of the per-depth widths (the width
   that suffices at every depth where convergence is seen).
2. **reference width** W*: the width of criterion 1, else the width of the best configuration (criterion 5). The
   depth criteria below are read at W*.
3. **critical depth, L-map**: the smallest depth D with ``lmap_prunable >= 0.5`` at W* (a majority of seeds have
   a linear tail): deeper nets than this grow linear layers.
4. **critical depth, sample basin**: the smallest depth D such that the sample-basin mean at every deeper depth of
   the grid is at most (1 + rtol) times its value at D (the basin has stopped growing). A deeper depth must confirm
   it, as in 1.
5. **best test accuracy**: the (D, W) with the highest seed-mean test accuracy (ties: the smaller net), reported
   with its seed spread; every configuration whose mean lies within one seed standard deviation of it is listed
   as indistinguishable. Its depth at W* is the **accuracy depth**.

Two depths (or widths) *agree* when they are the same grid value or neighbours on the grid: the grid resolves
nothing finer. A criterion that a grid cannot establish (no convergence seen, a single depth) is reported as
such, never guessed.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from netdyn.analysis.network import EFFECTIVE_TOLERANCE
from netdyn.errors import ConfigError, RunError

if TYPE_CHECKING:
    from netdyn.analysis.config import AnalysisConfig
    from netdyn.sweeps import LocalBackend, RayBackend, SweepPoint, SweepResult

DEFAULT_DEPTHS = (1, 2, 3, 4, 6, 8)
DEFAULT_WIDTHS = (32, 128, 512)
DEFAULT_SEEDS = 2
BASIN_RTOL = 0.1
#: What each point analyses: only what the criteria read (the network's accuracy comes with every analysis).
QUANTITIES = ("lmap", "lp", "sample_basin", "weight_basin")

EVIDENCE_COLUMNS = [
    "depth", "width", "n_points", "n_ok", "test_accuracy_mean", "test_accuracy_std", "test_accuracy_min",
    "test_accuracy_max", "lmap_effective_earliest_median", "lmap_prunable", "lp_effective_earliest_median",
    "sample_basin_mean",
    "sample_basin_std", "weight_basin_mean", "weight_basin_std",
]
CRITERIA_COLUMNS = ["criterion", "value", "at", "established", "definition"]
#: Summary columns of sweeps made by older netdyn, which named the effective layer without its rule: the rule
#: they hold is "earliest" (``netdyn.analysis.network.effective_layer``).
_OLD_COLUMNS = {
    "analysis_lmap_effective_layer": "analysis_lmap_effective_earliest",
    "analysis_lp_effective_layer": "analysis_lp_effective_earliest",
}

DEFINITIONS = {
    "width_basins": "smallest width beyond which both basin sizes change by at most basin_rtol (largest over depths)",
    "reference_width": "width_basins if established, else the width of the best configuration",
    "depth_lmap": "smallest depth whose L-map is effective before the output for a majority of seeds",
    "depth_basin": "smallest depth beyond which the sample basin grows by at most basin_rtol",
    "depth_accuracy": "depth of the highest seed-mean test accuracy at the reference width",
    "best": "the (depth, width) of the highest seed-mean test accuracy, with its seed spread",
}


# ---------------------------------------------------------------------------------------------- points
def recommend_points(
    dataset: str,
    depths: Sequence[int] = DEFAULT_DEPTHS,
    widths: Sequence[int] = DEFAULT_WIDTHS,
    seeds: int = DEFAULT_SEEDS,
    fixed: Mapping[str, Any] | None = None,
    basin_samples: int | None = 500,
    analysis: AnalysisConfig | None = None,
) -> list[SweepPoint]:
    """The depth x width x seed points of a recommendation.

    Each point takes the ``netdyn train`` settings ``fixed`` (default: batch norm on, as in the paper's Figs. 4-5)
    and is analysed with the L-map, LP and both basins only (on ``basin_samples`` training samples; ``analysis``,
    an AnalysisConfig, replaces that choice whole).

    A seed sets the initial weights and the minibatch order (``--seed``); the data set's seed stays at its
    ``fixed`` value (default 0), so the seed spread is that of training, not of the data subset.
    """
    from netdyn.analysis.config import AnalysisConfig
    from netdyn.sweeps.plan import SweepPoint, canonical_key, plan_points

    depths, widths = _grid_values(depths, "depths"), _grid_values(widths, "widths")
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise ConfigError(f"seeds must be a whole number >= 1, got {seeds!r}")
    given = {canonical_key(k): v for k, v in (fixed or {}).items()}
    settings = {"batchnorm": True, "data_seed": 0, **given}
    clash = sorted({"depth", "width", "seed", "model_seed", "dataset"} & set(given))
    if clash:
        raise ConfigError(f"recommend sets {', '.join(clash)} itself (use --dataset, --depths, --widths, --seeds)")
    settings["dataset"] = dataset
    base = plan_points(fixed=settings, grid={"depth": [depths[0]]})[0].spec
    if analysis is None:
        analysis = AnalysisConfig(quantities=QUANTITIES, basin_samples=basin_samples, seed=0,
                                  device=base.train.device, dtype=base.train.dtype)
    points = []
    for depth in depths:
        for width in widths:
            for seed in range(seeds):
                spec = base.replace(model={"depth": depth, "width": width, "seed": seed}, train={"seed": seed},
                                    analysis=analysis)
                name = f"depth={depth}_width={width}_seed={seed}"
                points.append(SweepPoint(name, {"depth": depth, "width": width, "seed": seed}, spec))
    return points


def _grid_values(values: Iterable[int], what: str) -> list[int]:
    values = list(values)
    if not values or any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1 for v in values):
        raise ConfigError(f"{what} takes whole numbers >= 1, got {values!r}")
    if len(set(values)) != len(values):
        raise ConfigError(f"{what} repeat a value: {values!r}")
    return sorted(int(v) for v in values)


def design_table(points: Iterable[SweepPoint]) -> pd.DataFrame:
    """``name, depth, width, seed`` of each sweep point, read from its RunSpec.

    ConfigError when the points differ in anything else (a recommendation compares depths and widths, with seeds
    as repeats: the model's, the training's and the data's seeds may all vary, as ``--seed`` varies them).
    """
    rows: list[dict[str, Any]] = []
    rest: dict[str, Any] = {}
    for point in points:
        spec = point.spec
        if not isinstance(spec.model.width, int):
            raise ConfigError(f"point {point.name} has per-layer widths; recommend compares uniform widths")
        rows.append({"name": point.name, "depth": spec.model.depth, "width": spec.model.width,
                     "seed": spec.train.seed})
        other = spec.to_dict()
        for part, key in (("model", "depth"), ("model", "width"), ("model", "seed"), ("train", "seed"),
                          ("data", "seed")):
            other[part].pop(key)
        rest.setdefault(json.dumps(other, sort_keys=True, default=str), []).append(point.name)
    if len(rest) > 1:
        groups = sorted(rest.values(), key=len)
        raise ConfigError(
            "recommend needs points that differ only in depth, width and seed; "
            f"{groups[0][0]} and {groups[-1][0]} differ in more"
        )
    return pd.DataFrame(rows, columns=["name", "depth", "width", "seed"])


# ---------------------------------------------------------------------------------------------- evidence
def _current_columns(points: pd.DataFrame) -> pd.DataFrame:
    """``points`` with the columns of an older sweep under today's names (``_OLD_COLUMNS``)."""
    old = {name: new for name, new in _OLD_COLUMNS.items() if name in points.columns and new not in points.columns}
    return points.rename(columns=old) if old else points


def _basin_column(table: pd.DataFrame, space: str) -> str | None:
    half, mid = f"analysis_{space}_basin_size_half", f"analysis_{space}_basin_size_mid"
    ok = table[table["status"] == "ok"]
    if half in ok and ok[half].notna().mean() >= 0.5:
        return half
    if mid in ok and ok[mid].notna().any():
        return mid
    return half if half in ok else None


def evidence_table(points: pd.DataFrame) -> pd.DataFrame:
    """One row per (depth, width) from a per-point table; columns ``EVIDENCE_COLUMNS``.

    The per-point table holds ``depth, width, status, test_accuracy`` and the ``analysis_*`` summary columns of
    ``sweep.parquet``, of today's netdyn or an older one.
    """
    points = _current_columns(points)
    for column in ("depth", "width", "status"):
        if column not in points.columns:
            raise ConfigError(f"the sweep table lacks the column {column!r}")
    sample = _basin_column(points, "sample")
    weight = _basin_column(points, "weight")
    rows = []
    for _, group in points.groupby(["depth", "width"], sort=True):
        depth, width = int(group["depth"].iloc[0]), int(group["width"].iloc[0])
        ok = group[group["status"] == "ok"]
        acc = ok["test_accuracy"].astype(float) if "test_accuracy" in ok else pd.Series(dtype=float)
        lmap, lp = (ok[c].astype(float) if c in ok else None
                    for c in ("analysis_lmap_effective_earliest", "analysis_lp_effective_earliest"))
        row = {
            "depth": depth, "width": width, "n_points": len(group), "n_ok": len(ok),
            "test_accuracy_mean": acc.mean(), "test_accuracy_std": acc.std(ddof=1) if len(acc) > 1 else math.nan,
            "test_accuracy_min": acc.min(), "test_accuracy_max": acc.max(),
            "lmap_effective_earliest_median": lmap.median() if lmap is not None and lmap.notna().any() else math.nan,
            "lmap_prunable": (lmap < depth).mean() if lmap is not None and lmap.notna().any() else math.nan,
            "lp_effective_earliest_median": lp.median() if lp is not None and lp.notna().any() else math.nan,
        }
        for space, basin in (("sample", sample), ("weight", weight)):
            values = ok[basin].astype(float) if basin is not None else pd.Series(dtype=float)
            row[f"{space}_basin_mean"] = values.mean()
            row[f"{space}_basin_std"] = values.std(ddof=1) if values.notna().sum() > 1 else math.nan
        rows.append(row)
    table = pd.DataFrame(rows, columns=EVIDENCE_COLUMNS)
    table.attrs["basin_size"] = "size_mid" if sample and sample.endswith("size_mid") else "size_half"
    return table


# ---------------------------------------------------------------------------------------------- criteria
def saturation_depth(depths: Sequence[int], values: Sequence[float], rtol: float = BASIN_RTOL) -> int | None:
    """Smallest depth whose value no deeper depth exceeds by more than ``rtol`` (relative); None if there is none.

    A deeper depth with a value must exist to confirm it. NaN values are skipped.
    """
    values = [float(v) for v in values]
    for i, depth in enumerate(depths):
        if math.isnan(values[i]):
            continue
        later = [v for v in values[i + 1 :] if not math.isnan(v)]
        if later and all(v <= (1 + rtol) * values[i] for v in later):
            return int(depth)
    return None


def convergence_width(
    widths: Sequence[int], series: Sequence[Sequence[float]], rtol: float = BASIN_RTOL
) -> int | None:
    """Smallest width from which every series stays within ``rtol`` (relative) of its value there; None if none.

    Every later value of every series must lie within ``rtol`` of the series' value at that width, and a later
    width must confirm it. A series that is NaN at a width is not judged there.
    """
    columns = [[float(v) for v in s] for s in series]
    for i, width in enumerate(widths):
        judged = [s for s in columns if not math.isnan(s[i])]
        if not judged:
            continue
        later = [(s[i], [v for v in s[i + 1 :] if not math.isnan(v)]) for s in judged]
        if any(not rest for _, rest in later):
            continue
        if all(abs(v - base) <= rtol * abs(base) for base, rest in later for v in rest):
            return int(width)
    return None


def _neighbours(grid: Sequence[int], a: int | None, b: int | None) -> bool | None:
    if a is None or b is None:
        return None
    grid = sorted(grid)
    return abs(grid.index(a) - grid.index(b)) <= 1


@dataclass
class Recommendation:
    """The criteria, their evidence and where they agree."""

    evidence: pd.DataFrame
    criteria: pd.DataFrame
    summary: dict[str, Any]
    notes: list[str] = field(default_factory=list)
    points: pd.DataFrame | None = None


def recommend_from_table(points: pd.DataFrame, basin_rtol: float = BASIN_RTOL) -> Recommendation:
    """The criteria of the module docstring from a per-point table (``depth, width, seed, status, ...``)."""
    if isinstance(basin_rtol, bool) or not isinstance(basin_rtol, (int, float)) or not 0 <= basin_rtol < 1:
        raise ConfigError(f"basin_rtol is a relative change in [0, 1), got {basin_rtol!r}")
    points = _current_columns(points)
    evidence = evidence_table(points)
    ok = evidence[evidence["n_ok"] > 0]
    if ok.empty:
        raise RunError("no point of the sweep finished ok: there is nothing to recommend from")
    depths = sorted(evidence["depth"].unique().tolist())
    widths = sorted(evidence["width"].unique().tolist())

    def at_depth(depth: int, column: str) -> list[float]:
        part = evidence[evidence["depth"] == depth].set_index("width")[column]
        return [float(part.get(w, math.nan)) for w in widths]

    def at_width(width: int, column: str) -> list[float]:
        part = evidence[evidence["width"] == width].set_index("depth")[column]
        return [float(part.get(d, math.nan)) for d in depths]

    per_depth_width = {
        d: convergence_width(widths, [at_depth(d, "sample_basin_mean"), at_depth(d, "weight_basin_mean")], basin_rtol)
        for d in depths
    }
    established = [w for w in per_depth_width.values() if w is not None]
    width_basins = max(established) if established else None

    order = ok.sort_values(["test_accuracy_mean", "depth", "width"], ascending=[False, True, True])
    best = order.iloc[0]
    spread = float(best["test_accuracy_std"]) if not math.isnan(best["test_accuracy_std"]) else 0.0
    tied = ok[ok["test_accuracy_mean"] >= best["test_accuracy_mean"] - spread]
    reference = width_basins if width_basins is not None else int(best["width"])

    prunable = at_width(reference, "lmap_prunable")
    depth_lmap = next((d for d, p in zip(depths, prunable, strict=True) if not math.isnan(p) and p >= 0.5), None)
    depth_basin = saturation_depth(depths, at_width(reference, "sample_basin_mean"), basin_rtol)
    accuracy = at_width(reference, "test_accuracy_mean")
    depth_accuracy = None if all(math.isnan(a) for a in accuracy) else depths[int(np.nanargmax(accuracy))]

    summary: dict[str, Any] = {
        "width_basins": width_basins,
        "width_basins_by_depth": {int(d): w for d, w in per_depth_width.items()},
        "reference_width": reference,
        "depth_lmap": depth_lmap,
        "depth_basin": depth_basin,
        "depth_accuracy": depth_accuracy,
        "best_depth": int(best["depth"]),
        "best_width": int(best["width"]),
        "best_test_accuracy": float(best["test_accuracy_mean"]),
        "best_test_accuracy_std": float(best["test_accuracy_std"]),
        "best_seeds": int(best["n_ok"]),
        "indistinguishable_from_best": [f"depth {int(r.depth)}, width {int(r.width)}" for r in tied.itertuples()],
        "basin_rtol": basin_rtol,
        "basin_size": evidence.attrs.get("basin_size", "size_half"),
        "depths": depths,
        "widths": widths,
        "points": int(len(points)),
        "points_ok": int((points["status"] == "ok").sum()),
    }
    pairs = {
        ("depth_lmap", "depth_basin"): _neighbours(depths, depth_lmap, depth_basin),
        ("depth_lmap", "depth_accuracy"): _neighbours(depths, depth_lmap, depth_accuracy),
        ("depth_basin", "depth_accuracy"): _neighbours(depths, depth_basin, depth_accuracy),
        ("width_basins", "best_width"): _neighbours(widths, width_basins, int(best["width"])),
    }
    summary["agreement"] = {f"{a} ~ {b}": v for (a, b), v in pairs.items()}
    notes = _notes(summary, pairs)
    basins = [b for b in at_width(reference, "sample_basin_mean") if not math.isnan(b)]
    if len(basins) >= 2 and basins[-1] < (1 - basin_rtol) * basins[0]:
        notes.append(
            f"the sample basin shrinks with depth at width {reference} ({basins[0]:.3g} -> {basins[-1]:.3g}), where "
            "the paper finds it growing and then saturating: its saturation depth here only says it never grows"
        )
    criteria = pd.DataFrame(
        [
            {"criterion": "width_basins", "value": width_basins, "at": "all depths",
             "established": width_basins is not None, "definition": DEFINITIONS["width_basins"]},
            {"criterion": "reference_width", "value": reference, "at": "",
             "established": True, "definition": DEFINITIONS["reference_width"]},
            {"criterion": "depth_lmap", "value": depth_lmap, "at": f"width {reference}",
             "established": depth_lmap is not None, "definition": DEFINITIONS["depth_lmap"]},
            {"criterion": "depth_basin", "value": depth_basin, "at": f"width {reference}",
             "established": depth_basin is not None, "definition": DEFINITIONS["depth_basin"]},
            {"criterion": "depth_accuracy", "value": depth_accuracy, "at": f"width {reference}",
             "established": depth_accuracy is not None, "definition": DEFINITIONS["depth_accuracy"]},
            {"criterion": "best", "value": f"depth {int(best['depth'])}, width {int(best['width'])}",
             "at": f"test accuracy {best['test_accuracy_mean']:.4f} ± {spread:.4f} ({int(best['n_ok'])} seeds)",
             "established": True, "definition": DEFINITIONS["best"]},
        ],
        columns=CRITERIA_COLUMNS,
    )
    criteria["value"] = criteria["value"].map(lambda v: "not established" if v is None else str(v))
    return Recommendation(evidence=evidence, criteria=criteria, summary=summary, notes=notes, points=points)


def _notes(summary: dict[str, Any], pairs: dict[tuple[str, str], bool | None]) -> list[str]:
    words = {"depth_lmap": "L-map critical depth", "depth_basin": "sample-basin saturation depth",
             "depth_accuracy": "best-accuracy depth", "width_basins": "basin-convergence width",
             "best_width": "best-accuracy width"}
    notes = []
    for (a, b), agree in pairs.items():
        va, vb = summary[a], summary[b]
        if agree is None:
            missing = words[a] if va is None else words[b]
            notes.append(f"{words[a]} vs {words[b]}: cannot compare, the {missing} is not established on this grid")
        else:
            verdict = "agree" if agree else "disagree"
            notes.append(f"{words[a]} ({va}) and {words[b]} ({vb}) {verdict}"
                         + (" (same or neighbouring grid values)" if agree else ""))
    return notes


# ---------------------------------------------------------------------------------------------- running
def recommend(sweep: SweepResult | str | Path, basin_rtol: float = BASIN_RTOL) -> Recommendation:
    """The recommendation of a sweep (a :class:`~netdyn.sweeps.SweepResult` or a sweep folder's path)."""
    from netdyn.sweeps import load_sweep

    result = load_sweep(sweep) if isinstance(sweep, (str, Path)) else sweep
    design = design_table(result.points)
    table = result.table.drop(columns=[c for c in ("depth", "width", "seed") if c in result.table.columns])
    merged = design.merge(table, on="name", how="left")
    merged["status"] = merged["status"].fillna("failed")
    return recommend_from_table(merged, basin_rtol)


def write_recommendation(
    rec: Recommendation, out: str | Path, title: str, meta: Mapping[str, Any] | None = None
) -> Path:
    """Write the recommendation's report, summary, tables and figure under ``out``; return the report's path.

    The files are ``out/report.html``, ``out/summary.json``, ``out/metrics/{evidence,criteria,points}.parquet``
    and ``out/figures/recommend.png|svg``.
    """
    from netdyn import _io
    from netdyn.plots import save_figure
    from netdyn.plots.recommend import plot_recommendation
    from netdyn.report import ReportSection, render_report

    out = Path(out)
    _io.write_parquet(out / "metrics" / "evidence.parquet", rec.evidence)
    _io.write_parquet(out / "metrics" / "criteria.parquet", rec.criteria)
    if rec.points is not None:
        _io.write_parquet(out / "metrics" / "points.parquet", rec.points)
    figure = plot_recommendation(rec.evidence, rec.summary)
    save_figure(figure, out / "figures" / "recommend")
    _io.write_json(out / "summary.json", _io.jsonable(rec.summary))
    definitions = "The evidence table" + (__doc__ or "").split("The evidence table", 1)[-1]
    definitions = definitions.replace("``", "").replace("**", "").strip()
    shown = ["name", "depth", "width", "seed", "status", "error", "test_accuracy", "analysis_lmap_effective_earliest",
             "analysis_sample_basin_size_half", "analysis_weight_basin_size_half"]
    sections = [
        ReportSection("Recommendation", "\n\n".join(rec.notes), tables=[("criteria", rec.criteria)]),
        ReportSection("Evidence", "Seed means per (depth, width); error bars are one seed standard deviation.",
                      figures=[figure], tables=[("evidence", rec.evidence)]),
        ReportSection("Definitions", definitions),
    ]
    if rec.points is not None:
        sections.append(ReportSection("Points", "Every point of the sweep.",
                                      tables=[("points", rec.points[[c for c in shown if c in rec.points]])]))
    return render_report(title, sections, out / "report.html", meta=meta, max_table_rows=500)




def run_recommendation(
    dataset: str | None,
    out: str | Path,
    *,
    sweep_dir: str | Path | None = None,
    depths: Sequence[int] = DEFAULT_DEPTHS,
    widths: Sequence[int] = DEFAULT_WIDTHS,
    seeds: int = DEFAULT_SEEDS,
    fixed: Mapping[str, Any] | None = None,
    basin_samples: int | None = 500,
    basin_rtol: float = BASIN_RTOL,
    backend: str | LocalBackend | RayBackend = "local",
    retry_failed: bool = False,
    progress: bool = False,
    root: str | Path | None = None,
    download: bool = False,
) -> tuple[Recommendation, Path]:
    """Run (into ``out/sweep``) or read (``sweep_dir``) the sweep, recommend, and write the report into ``out``."""
    from netdyn.sweeps import load_sweep, sweep

    start = time.perf_counter()
    if sweep_dir is not None:
        result = load_sweep(sweep_dir)
        source = str(Path(sweep_dir))
    else:
        if dataset is None:
            raise ConfigError("give --dataset (to run the sweep) or --from SWEEP_DIR (to read one)")
        points = recommend_points(dataset, depths, widths, seeds, fixed, basin_samples)
        result = sweep(points, Path(out) / "sweep", backend=backend, retry_failed=retry_failed, progress=progress,
                       root=root, download=download)
        source = str(result.folder)
    rec = recommend(result, basin_rtol)
    first = result.points[0].spec
    meta = {"dataset": first.data.name, "sweep folder": source,
            "points": f"{rec.summary['points_ok']} ok of {rec.summary['points']}",
            "model": f"activation={first.model.activation}, batchnorm={first.model.batchnorm}, "
                     f"residual={first.model.residual}",
            "training": f"optimizer={first.train.optimizer}, lr={first.train.lr}, epochs={first.train.epochs}, "
                        f"steps={first.train.steps}, batch_size={first.train.batch_size}",
            "L-map tolerance": EFFECTIVE_TOLERANCE,
            "wall time": f"{time.perf_counter() - start:.1f} s"}
    report = write_recommendation(rec, out, f"netdyn recommend: {first.data.name}", meta)
    return rec, report


__all__ = [
    "BASIN_RTOL", "Recommendation", "convergence_width", "design_table", "evidence_table", "recommend",
    "recommend_from_table", "recommend_points", "run_recommendation", "saturation_depth", "write_recommendation",
]
