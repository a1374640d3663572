"""What every reproduction of a paper experiment is made of (see docs/verdicts.md).

An :class:`Experiment` holds a frozen configuration per scale (``smoke``, ``small``, ``paper``), says which
member runs it needs (each a :class:`Member`: a name, a :class:`~netdyn.orchestration.RunSpec` and the parameters that
vary, which become table columns), turns the finished members into tidy tables through the public analysis
API (:class:`ExperimentRuns` gives it the member folders and caches their analyses), draws one figure per
paper panel from those tables, and names the headline numbers its verdict rests on. It never trains or
measures anything itself: members are ``netdyn.run`` specs, quantities come from ``netdyn.analysis``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

import pandas as pd

from netdyn import _config
from netdyn.analysis.config import AnalysisConfig
from netdyn.data.spec import DataSpec
from netdyn.errors import ConfigError
from netdyn.orchestration import ANALYSIS_FILE, RunSpec, analyze_checkpoints, load_analysis, load_run
from netdyn.training.config import TrainConfig

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from netdyn.data import Dataset
    from netdyn.experiments.criteria import Criterion
    from netdyn.orchestration import Analysis, Run

SCALES = ("smoke", "small", "paper")


@dataclass(frozen=True)
class ExperimentConfig:
    """The settings every experiment has; each experiment's config adds its own (every choice the paper left
    open written down as a field with its docstring)."""

    data: DataSpec = field(default_factory=lambda: DataSpec("mnist5k"))
    """The data set every member trains on (``--dataset`` replaces its name)."""
    device: str = "auto"
    """Device of training and analysis (``--device``)."""
    seeds: int = 3
    """Seeds per configuration (``--seeds``): members differ in model and minibatch seed; every criterion is
    evaluated on each (docs/verdicts.md: 3 at small and paper, 2 at smoke, so the per-seed code runs in the tests)."""
    threads: int = 1
    """Torch and BLAS threads of training and analysis (``--threads``): float32 results depend on the thread
    count, so it is a setting of the experiment, not of the environment (see docs/verdicts.md). One by default: the same
    tables on every machine whatever its core count, and the experiments' matrices (widths up to 256 at small,
    batch 100) gain little from a second thread."""

    def to_dict(self) -> dict[str, Any]:
        return _config.to_dict(self)

    def train_config(self, seed: int, **changes: Any) -> TrainConfig:
        """A member's training settings: every field this config shares by name with :class:`TrainConfig`
        (optimizer, lr, batch size, epochs or steps, schedules, device, ...), the member's ``seed``, then
        ``changes`` (what the member varies, or what the experiment fixes)."""
        shared = {f.name: getattr(self, f.name) for f in dataclasses.fields(TrainConfig)
                  if f.name != "seed" and f.name in self.__dataclass_fields__}  # fmt: skip
        return TrainConfig(**{**shared, "seed": seed, **changes})


@dataclass(frozen=True)
class Member:
    """One run of an experiment: ``runs/<name>/`` in the experiment folder."""

    name: str
    spec: RunSpec
    params: Mapping[str, Any] = field(default_factory=dict)
    """The parameters that vary between members (depth, width, seed, ...): columns of every table."""


ConfigT = TypeVar("ConfigT", bound=ExperimentConfig)
"""An experiment's own configuration class."""


class Experiment(Generic[ConfigT]):
    """Base class of the reproductions; see the module docstring. Subclasses name their configuration class
    (``class Structure(Experiment[StructureConfig])``), set the class attributes and implement :meth:`members`,
    :meth:`tables`, :meth:`figures` and :meth:`summary`."""

    name: ClassVar[str]
    """The name of ``netdyn reproduce NAME``."""
    figure: ClassVar[str]
    """The paper's figure, e.g. ``"Fig. 3"``."""
    shows: ClassVar[str]
    """One line: what the experiment shows (``netdyn reproduce --list``)."""
    claim: ClassVar[str]
    """The paper's claim, in a few sentences (the report's first section)."""
    scales: Mapping[str, ConfigT]  # a class attribute; ClassVar cannot hold the type variable
    """The configuration of each scale."""
    measured: ClassVar[Mapping[str, str]] = {}
    """Wall time measured per scale, with the machine (``netdyn reproduce --list``)."""
    columns: ClassVar[Mapping[str, Sequence[str]]] = {}
    """Each table :meth:`tables` returns, with the columns it always has (member parameters come on top)."""
    nullable: ClassVar[Mapping[str, Sequence[str]]] = {}
    """Columns that may hold NaN by their definition (an NC1 of a dead layer, a size never reached)."""

    def config(
        self,
        scale: str,
        dataset: str | None = None,
        device: str | None = None,
        seeds: int | None = None,
        threads: int | None = None,
    ) -> ConfigT:
        """The configuration of ``scale`` with the command line's overrides applied."""
        if scale not in self.scales:
            raise ConfigError(f"unknown scale {scale!r}; the scales are {', '.join(SCALES)}")
        config = self.scales[scale]
        changes: dict[str, Any] = {}
        if dataset is not None:
            changes["data"] = dataclasses.replace(config.data, name=dataset)
        if device is not None:
            changes["device"] = device
        if seeds is not None:
            if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
                raise ConfigError(f"seeds must be a whole number >= 1, got {seeds!r}")
            changes["seeds"] = seeds
        if threads is not None:
            if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
                raise ConfigError(f"threads must be a whole number >= 1, got {threads!r}")
            changes["threads"] = threads
        return dataclasses.replace(config, **changes) if changes else config

    def members(self, config: ConfigT) -> list[Member]:
        raise NotImplementedError

    def tables(self, runs: ExperimentRuns, config: ConfigT) -> dict[str, pd.DataFrame]:
        raise NotImplementedError

    def figures(self, tables: dict[str, pd.DataFrame], config: ConfigT) -> dict[str, Figure]:
        """One figure per paper panel, named after it (``fig3a_pruning``)."""
        raise NotImplementedError

    def summary(self, tables: dict[str, pd.DataFrame], config: ConfigT) -> dict[str, Any]:
        """The headline numbers the verdict rests on."""
        raise NotImplementedError

    def criteria(self, config: ConfigT) -> list[Criterion]:
        """The criteria the verdict rests on (see docs/verdicts.md), declared from the paper's text before anything
        runs; each is evaluated on every seed of ``config``. None declared: the experiment gives no verdict."""
        return []

    def notes(self, config: ConfigT) -> str:
        """What the report says about choices the paper left open (default: the config's field docstrings)."""
        config_class: type = type(config)  # as a plain `type`: mypy does not take a type[X] for hashable
        docs = _config.field_docs(config_class)
        shared = ("data", "device", "seeds", "threads")
        lines = [f"{name}: {doc}" for name, doc in docs.items() if name not in shared]
        return "\n".join(lines)


def seeded(config: ExperimentConfig) -> range:
    """The seeds of an experiment's members (0..seeds-1)."""
    return range(config.seeds)


def member_name(**params: Any) -> str:
    """A folder name from parameters: ``depth=4, width=128`` -> ``depth4-width128``."""
    parts = []
    for key, value in params.items():
        text = f"{value:g}" if isinstance(value, float) else str(value)
        parts.append(f"{key}{text}".replace("/", "_").replace(" ", ""))
    return "-".join(parts)


# ---------------------------------------------------------------------------------------------- runs
class ExperimentRuns:
    """The finished member runs of an experiment, for its :meth:`Experiment.tables`.

    ``analysis(member, ...)`` runs ``analyze_checkpoints`` on a member's folder and caches the result there
    (``runs/<name>/analyses/<key>/``), so a resumed or repeated experiment does not analyse again.
    """

    def __init__(self, folder: Path, members: Sequence[Member], root: str | Path | None = None) -> None:
        self.folder = Path(folder)
        self.members = list(members)
        self.root = root
        self._data: dict[str, Dataset] = {}

    def __iter__(self) -> Iterator[Member]:
        return iter(self.members)

    def select(self, **params: Any) -> list[Member]:
        """The members whose parameters match ``params``."""
        return [m for m in self.members if all(m.params.get(k) == v for k, v in params.items())]

    def run_dir(self, member: Member) -> Path:
        return self.folder / "runs" / member.name

    def run(self, member: Member) -> Run:
        return load_run(self.run_dir(member))

    def data(self, member: Member) -> Dataset:
        """The member's data set (loaded once per distinct spec)."""
        spec = member.spec.data
        key = json.dumps(spec.to_dict(), sort_keys=True)
        if key not in self._data:
            self._data[key] = spec.load(root=self.root)
        return self._data[key]

    def history(self, member: Member) -> pd.DataFrame:
        """The member's training history with its parameters as columns."""
        return with_params(self.run(member).history, member)

    def diverged(self, member: Member) -> bool:
        return bool(self.run(member).summary.get("diverged"))

    def analysis(
        self, member: Member, config: AnalysisConfig, steps: Sequence[int] | str = "last", data: Dataset | None = None
    ) -> Analysis:
        """``analyze_checkpoints`` of one member at ``steps`` under ``config``, cached in its folder."""
        run = self.run(member)
        chosen = run.checkpoints() if steps == "all" else [run.resolve_step(s) for s in _as_steps(steps)]
        key = hashlib.sha1(
            json.dumps({"steps": chosen, "config": config.to_dict(), "data": data is not None}, sort_keys=True).encode()
        ).hexdigest()[:12]
        cache = self.run_dir(member) / "analyses" / key
        if (cache / ANALYSIS_FILE).is_file():
            return load_analysis(cache)
        result = analyze_checkpoints(run, chosen, config, data=data if data is not None else self.data(member))
        result.save(cache)
        return result

    def tables(
        self,
        quantity_tables: Sequence[str],
        config: AnalysisConfig,
        steps: Sequence[int] | str = "last",
        members: Sequence[Member] | None = None,
    ) -> dict[str, pd.DataFrame]:
        """The named analysis tables of several members (default: all that did not diverge), stacked, with
        each member's parameters as columns."""
        chosen = [m for m in (members if members is not None else self.members) if not self.diverged(m)]
        parts: dict[str, list[pd.DataFrame]] = {name: [] for name in quantity_tables}
        for member in chosen:
            analysis = self.analysis(member, config, steps)
            for name in quantity_tables:
                parts[name].append(with_params(analysis.tables[name], member))
        return {name: pd.concat(frames, ignore_index=True) for name, frames in parts.items() if frames}


def _as_steps(steps: Sequence[int] | str) -> list[int | str]:
    if isinstance(steps, (str, int)):
        return [steps]
    return list(steps)


def with_params(table: pd.DataFrame, member: Member) -> pd.DataFrame:
    """``table`` with the member's parameters as leading columns (and its name as ``member``)."""
    front = {"member": member.name, **member.params}
    out = table.copy()
    for i, (key, value) in enumerate(front.items()):
        if key in out.columns:
            out = out.drop(columns=key)
        out.insert(i, key, value)
    return out
