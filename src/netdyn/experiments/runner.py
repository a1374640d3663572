"""Running a reproduction: the experiment folder of docs/verdicts.md#experiments-and-scales.

    OUT/
      config.json            the experiment, its scale and its whole configuration
      runs/NAME/             member runs: ordinary run folders (netdyn analyze, load_run open them)
      metrics/*.parquet      tidy tables, member parameters as columns
      figures/*.png|svg      one per paper panel, named after it
      report.html            the paper's claim, every panel, the configuration, the wall time
      summary.json           the headline numbers, each criterion per seed and the verdict (see docs/verdicts.md)

``--resume`` skips finished members (their analyses are cached in their folders too); every write is atomic.
Training and analysis run under the configuration's thread count (torch's and the BLAS pools'), restored after.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from netdyn import _io
from netdyn._device import resolve_device
from netdyn._progress import progress_bar
from netdyn.errors import ConfigError, NetdynError
from netdyn.experiments.base import SCALES, Experiment, ExperimentConfig, ExperimentRuns, Member, seeded
from netdyn.experiments.criteria import (
    CriterionResult,
    check_criteria,
    criteria_table,
    evaluate_criteria,
    statements_table,
    verdict,
    verdict_line,
)
from netdyn.experiments.registry import EXPERIMENTS
from netdyn.orchestration import run, run_population
from netdyn.store import Folder, RunFolder

if TYPE_CHECKING:
    from matplotlib.figure import Figure


@dataclass
class ExperimentResult:
    """A finished experiment: its folder, tables, figures' paths and summary."""

    name: str
    scale: str
    folder: Path
    tables: dict[str, pd.DataFrame]
    summary: dict[str, Any]


def get_experiment(name: str) -> Experiment[Any]:
    """The registered experiment called ``name`` (ConfigError naming the valid ones otherwise)."""
    if name not in EXPERIMENTS:
        raise ConfigError(f"unknown experiment {name!r}; the experiments are {', '.join(EXPERIMENTS)}")
    return EXPERIMENTS[name]()


def member_complete(run_dir: Path, member: Member) -> bool:
    """A member is finished when its summary says it trained every step (or diverged) and, if its spec asks
    for an analysis, the report is written."""
    folder = RunFolder(run_dir)
    if not folder.exists() or not (run_dir / "summary.json").is_file():
        return False
    summary = folder.summary
    done = summary.get("diverged") or summary.get("steps") == summary.get("total_steps")
    if not done:
        return False
    return member.spec.analysis is None or summary.get("diverged") or folder.report_path.is_file()


def training_groups(members: list[Member], folder: Path, population: bool = True) -> list[list[Member]]:
    """The unfinished members in the groups they train in: members of one architecture, data and schedule that
    differ only in what a population lets differ (seeds, init scale, lr, weight decay, momentum) train as one
    population (``netdyn.run_population``); the rest alone. Groups keep the members' order."""
    from netdyn.training.population import population_key

    todo = [m for m in members if not member_complete(folder / "runs" / m.name, m)]
    if not population:
        return [[m] for m in todo]
    groups: dict[str, list[Member]] = {}
    for member in todo:
        groups.setdefault(population_key(member.spec), []).append(member)
    return list(groups.values())


@contextmanager
def thread_limit(threads: int) -> Iterator[None]:
    """Run the block with ``threads`` torch threads and BLAS / OpenMP pools of that size (threadpoolctl);
    the previous settings are restored after it."""
    import torch
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with threadpool_limits(limits=threads):
            yield
    finally:
        torch.set_num_threads(before)


class ExperimentFolder(Folder):
    """An experiment folder (the layout above); its record is config.json."""

    kind = "experiment"
    resume_hint = "pass --resume to continue it, or choose --out"


def _record(experiment: Experiment[Any], scale: str, config: ExperimentConfig) -> dict[str, Any]:
    return {
        "experiment": experiment.name,
        "figure": experiment.figure,
        "scale": scale,
        "config": config.to_dict(),
    }


def _experiment_difference(old: dict[str, Any], new: dict[str, Any]) -> str | None:
    for key in ("experiment", "scale", "config"):
        if json.dumps(old.get(key), sort_keys=True) != json.dumps(new[key], sort_keys=True):
            return key
    return None


def run_experiment(
    name: str,
    scale: str = "small",
    out: str | Path | None = None,
    *,
    dataset: str | None = None,
    device: str | None = None,
    seeds: int | None = None,
    threads: int | None = None,
    resume: bool = False,
    progress: bool = False,
    root: str | Path | None = None,
    download: bool = False,
    population: bool = True,
) -> ExperimentResult:
    """Reproduce one experiment of the paper at ``scale`` into the folder ``out`` (see docs/verdicts.md).

    ``dataset``, ``device``, ``seeds`` and ``threads`` (torch and BLAS threads, recorded in config.json) override
    the scale's configuration; ``root`` is where the data files
    lie on this machine and ``download`` fetches missing MNIST-format files. ``resume`` continues an
    interrupted experiment: finished members are not run again. ``population`` trains the members that share
    an architecture and differ only in seeds or optimiser hyperparameters as one population (the same results
    within float rounding, faster); False trains every member alone.
    """
    experiment = get_experiment(name)
    if scale not in SCALES:
        raise ConfigError(f"unknown scale {scale!r}; the scales are {', '.join(SCALES)}")
    config = experiment.config(scale, dataset=dataset, device=device, seeds=seeds, threads=threads)
    folder = Path(out) if out is not None else Path("reproductions") / f"{name}-{scale}"
    if device is not None:
        resolve_device(device)  # a device this machine lacks is refused before the folder is written
    _io.check_writable_folder(folder, "experiment folder")
    members = experiment.members(config)
    names = [m.name for m in members]
    if len(set(names)) != len(names):
        raise ConfigError(f"experiment {name}: member names repeat ({names})")
    criteria = experiment.criteria(config)  # declared (and checked) before anything runs
    check_criteria(criteria, name)
    ExperimentFolder(folder).open(_record(experiment, scale, config), resume=resume, differs=_experiment_difference)
    start = time.perf_counter()
    with thread_limit(config.threads):
        trained = _train_members(members, folder, name, progress=progress, population=population,
                                 root=root, download=download)
        runs = ExperimentRuns(folder, members, root=root)
        tables = experiment.tables(runs, config)
        for table_name, table in tables.items():
            _io.write_parquet(folder / "metrics" / f"{table_name}.parquet", table)
        figures = experiment.figures(tables, config)
        _write_figures(folder, figures)
        results = evaluate_criteria(criteria, tables, config, seeded(config))
    wall = time.perf_counter() - start
    previous = _previous_wall_time(folder) if resume else 0.0
    member_time = training_time(runs, members, population)
    summary = {
        "experiment": name,
        "figure": experiment.figure,
        "scale": scale,
        "dataset": config.data.name,
        "members": len(members),
        "members_trained_now": trained,
        "diverged_members": [m.name for m in members if runs.diverged(m)],
        "wall_time": wall,
        "wall_time_total": previous + wall,
        "member_training_time": member_time,
        "threads": config.threads,
        **_io.jsonable(experiment.summary(tables, config)),
        "criteria": _io.jsonable([r.to_dict() for r in results]),
        "verdict": verdict(results),
        "verdict_line": verdict_line(results),
    }
    _io.write_json(folder / "summary.json", summary)
    comparison = _write_comparison(folder, [folder / "runs" / m.name for m in members])
    _write_report(folder, experiment, scale, config, figures, summary, results, comparison)
    return ExperimentResult(name, scale, folder, tables, summary)


def training_time(runs: ExperimentRuns, members: list[Member], population: bool = True) -> float:
    """Seconds spent training the members: a population's members share one clock, so each population counts
    once (its longest member's wall time), a member trained alone its own."""
    from netdyn.training.population import population_key

    groups: dict[str, float] = {}
    for member in members:
        key = population_key(member.spec) if population else member.name
        groups[key] = max(groups.get(key, 0.0), float(runs.run(member).summary.get("wall_time", 0.0)))
    return sum(groups.values())


def _write_comparison(folder: Path, runs: list[Path]) -> str | None:
    """``compare/report.html``: the members side by side (the report's link to it), or None for fewer than two."""
    from netdyn.comparison import REPORT_NAME, compare

    held = [run for run in runs if (run / "config.json").is_file()]
    if len(held) < 2:
        return None
    compare(held, folder / "compare", title=f"the members of {folder.name}, side by side")
    return f"compare/{REPORT_NAME}"


def _train_members(
    members: list[Member],
    folder: Path,
    name: str,
    *,
    progress: bool,
    population: bool,
    root: str | Path | None,
    download: bool,
) -> int:
    """Train the unfinished members (in populations where they can be); the number trained."""
    bar = progress_bar(len(members), unit="member", description=name) if progress else None
    trained = 0
    try:
        for group in training_groups(members, folder, population):
            dirs = [folder / "runs" / m.name for m in group]
            if len(group) > 1:
                run_population([m.spec for m in group], dirs, resume=any(d.exists() for d in dirs),
                               root=root, download=download)
            elif group:
                run(group[0].spec, dirs[0], resume=dirs[0].exists(), root=root, download=download)
            trained += len(group)
            if bar is not None:
                bar.update(len(group))
        if bar is not None:
            bar.update(len(members) - bar.n)
    finally:
        if bar is not None:
            bar.close()
    return trained


def _previous_wall_time(folder: Path) -> float:
    """The wall time recorded by the earlier invocations of a resumed experiment (0 when none finished)."""
    path = folder / "summary.json"
    if not path.is_file():
        return 0.0
    try:
        old = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return 0.0
    return float(old.get("wall_time_total", old.get("wall_time", 0.0)) or 0.0)


def _write_figures(folder: Path, figures: dict[str, Figure]) -> None:
    from netdyn.plots import save_figure

    directory = folder / "figures"
    if directory.is_dir():
        for path in directory.iterdir():
            if path.suffix in (".png", ".svg") and path.stem not in figures:
                path.unlink()
    for panel, fig in figures.items():
        save_figure(fig, directory / panel)


def _write_report(
    folder: Path,
    experiment: Experiment[Any],
    scale: str,
    config: ExperimentConfig,
    figures: dict[str, Figure],
    summary: dict[str, Any],
    results: list[CriterionResult],
    comparison: str | None = None,
) -> Path:
    from netdyn.report import ReportSection, render_report

    headline = pd.DataFrame(
        [{"quantity": k, "value": v} for k, v in summary.items()
         if not isinstance(v, (dict, list)) and not k.startswith("verdict")]
    )  # fmt: skip
    sections = [
        ReportSection("The paper's claim", experiment.claim),
        _verdict_section(results, summary["verdict_line"]),
        *[ReportSection(panel, "", [fig]) for panel, fig in figures.items()],
        ReportSection("Headline numbers", "", tables=[("summary.json", headline)]),
        ReportSection(
            "Configuration",
            "Choices the paper left open, as this experiment makes them:\n\n" + experiment.notes(config),
            tables=[("configuration", _config_table(config))],
        ),
    ]
    if comparison is not None:
        sections.append(ReportSection(
            "Members side by side",
            "Every member run's training curves, pruning by layer, RPD summary and basins overlaid in one report, "
            "with the settings that differ between the members.",
            links=[(f"the {summary['members']} members compared", comparison)],
        ))
    meta = {
        "experiment": f"{experiment.name} ({experiment.figure})",
        "scale": scale,
        "data": f"{config.data.name} (train_size={config.data.train_size}, test_size={config.data.test_size}, "
        f"normalize={config.data.normalize})",
        "verdict": summary["verdict_line"],
        "threads": f"{config.threads} (torch and BLAS)",
        "wall time": f"{summary['wall_time']:.1f} s this time, {summary['wall_time_total']:.1f} s over every "
        f"invocation (member training {summary['member_training_time']:.1f} s)",
        "members": summary["members"],
    }
    return render_report(f"netdyn reproduce {experiment.name}: {experiment.shows}", sections, folder / "report.html",
                         meta=meta)


def _verdict_section(results: list[CriterionResult], line: str) -> Any:
    from netdyn.report import ReportSection

    if not results:
        return ReportSection("Verdict", line)
    text = (
        f"Verdict: {line}.\n\n"
        "Each criterion was declared in code before the run, from the paper's text, and is evaluated on every "
        "seed. A criterion holds when it passes in at least two thirds of the seeds; the verdict is reproduced "
        "when every deciding criterion holds, partly when some do, not reproduced when none does. A seed that "
        "cannot be evaluated counts as not passing. A criterion changed after a result is listed beside the "
        "first with its date and does not decide; criteria marked [running BN statistics only] are measured "
        "under BN running statistics only."
    )
    return ReportSection("Verdict", text, tables=[("criteria per seed", criteria_table(results)),
                                                  ("what each criterion tests",
                                                   statements_table([r.criterion for r in results]))])


def _config_table(config: ExperimentConfig) -> pd.DataFrame:
    rows = [
        {"field": k, "value": json.dumps(v) if isinstance(v, (dict, list)) else v} for k, v in config.to_dict().items()
    ]
    return pd.DataFrame(rows).astype({"value": str})




def run_all(
    scale: str,
    out: str | Path | None = None,
    *,
    names: list[str] | None = None,
    jobs: int = 1,
    progress: bool = False,
    **options: Any,
) -> list[ExperimentResult]:
    """Every registered experiment (or those in ``names``) at ``scale``, each in ``OUT/NAME``, then an index
    ``OUT/report.html`` and ``OUT/all.json`` (each experiment's verdict and wall time, and the wall time of all).

    ``jobs`` > 1 runs that many experiments at once, each in its own process with the configuration's thread
    count (one torch thread by default), the longest first by their measured wall times. An experiment that fails
    does not stop the others; the first failure is raised once every experiment has ended, and ``resume``
    continues from there. ``options`` are :func:`run_experiment`'s.
    """
    from netdyn.report import ReportSection, render_report

    chosen = list(EXPERIMENTS) if names is None else list(names)
    for name in chosen:
        get_experiment(name)  # an unknown name is refused before anything runs
    if jobs < 1:
        raise ConfigError(f"jobs must be >= 1, got {jobs}")
    root = Path(out) if out is not None else Path("reproductions") / f"all-{scale}"
    _io.check_writable_folder(root, "experiment folder")
    start = time.perf_counter()
    if jobs == 1:
        results = [run_experiment(name, scale, root / name, progress=progress, **options) for name in chosen]
    else:
        results = _run_parallel(chosen, scale, root, jobs, progress, options)
    wall = time.perf_counter() - start
    rows = [
        {"experiment": r.name, "figure": r.summary["figure"],
         "verdict": r.summary["verdict"] if r.summary["verdict"] is not None else "no criteria",
         "members": r.summary["members"], "wall_time_s": round(r.summary["wall_time"], 1)}
        for r in results
    ]
    _io.write_json(root / "all.json", {"scale": scale, "jobs": jobs, "wall_time": wall, "experiments": rows})
    section = ReportSection(
        "Experiments",
        f"Every experiment of the paper that netdyn reproduces, at scale {scale}, {jobs} at a time: "
        f"{wall / 60:.1f} min in all. Each link opens its report.",
        tables=[("experiments", pd.DataFrame(rows))],
        links=[(f"{r.name} ({r.summary['figure']})", f"{r.name}/report.html") for r in results],
    )
    render_report(f"netdyn reproduce all --scale {scale}", [section], root / "report.html")
    return results


def expected_seconds(name: str, scale: str) -> float:
    """The wall time measured for ``name`` at ``scale`` (the seconds of its ``measured`` entry; 0 when none)."""
    found = re.search(r"\(([\d.]+) s\b", EXPERIMENTS[name].measured.get(scale, ""))
    return float(found.group(1)) if found else 0.0


def _run_parallel(
    names: list[str], scale: str, root: Path, jobs: int, progress: bool, options: dict[str, Any]
) -> list[ExperimentResult]:
    """``run_experiment`` of every name in a pool of ``jobs`` processes, the longest first; results in the order
    of ``names``. A line is printed as each ends when ``progress`` is set (bars would interleave)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    order = sorted(names, key=lambda n: -expected_seconds(n, scale))
    done: dict[str, ExperimentResult] = {}
    failures: list[tuple[str, BaseException]] = []
    context = multiprocessing.get_context("spawn")  # a fresh interpreter: no inherited torch thread pools
    with ProcessPoolExecutor(max_workers=min(jobs, len(order)), mp_context=context) as pool:
        futures = {pool.submit(run_experiment, name, scale, root / name, **options): name for name in order}
        for future in as_completed(futures):
            name = futures[future]
            try:
                done[name] = future.result()
            except Exception as error:  # noqa: BLE001 - the others go on; the first failure is raised below
                failures.append((name, error))
                if progress:
                    print(f"{name}: failed: {error}", flush=True)
                continue
            if progress:
                summary = done[name].summary
                print(f"{name}: {summary['wall_time']:.0f} s, {summary['verdict'] or 'no criteria'} "
                      f"({len(done)}/{len(order)} done)", flush=True)
    if failures:
        failed, first = failures[0]
        if isinstance(first, NetdynError):
            raise type(first)(f"experiment {failed}: {first}") from first
        raise first
    return [done[name] for name in names]


def list_experiments() -> pd.DataFrame:
    """One row per registered experiment: ``name, figure, shows`` and the measured wall time of each scale."""
    rows = []
    for name, cls in EXPERIMENTS.items():
        rows.append({"name": name, "figure": cls.figure, "shows": cls.shows,
                     **{scale: cls.measured.get(scale, "not measured") for scale in SCALES}})
    return pd.DataFrame(rows, columns=["name", "figure", "shows", *SCALES])

