"""Whole runs: ``RunSpec``, the functions that carry it out, and a run folder opened with its spec.

``RunSpec``, the one portable record of a run, is :class:`~netdyn.models.ModelSpec` +
:class:`~netdyn.data.DataSpec` + :class:`~netdyn.training.TrainConfig` (+ an optional
:class:`~netdyn.analysis.AnalysisConfig`): frozen, picklable, JSON-ready through ``to_dict`` / ``from_dict``, and
free of machine paths. ``netdyn.run(spec,
run_dir)`` trains (and analyses, when the spec asks) from the spec alone; it is what ``netdyn train``, a
process pool, a Ray worker and the experiments call, and a run folder's ``config.json`` holds the spec.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from netdyn import _config
from netdyn._version import __version__
from netdyn.analysis.config import AnalysisConfig
from netdyn.data import Dataset
from netdyn.data.spec import DataSpec
from netdyn.errors import ConfigError
from netdyn.models import MLP
from netdyn.models.spec import ModelSpec
from netdyn.models.vision import FACTORY, factory_args, spec_model
from netdyn.orchestration.analyses import Analysis, analyze, load_analysis
from netdyn.orchestration.display import run_html
from netdyn.orchestration.reports import write_run_report
from netdyn.store import RunFolder
from netdyn.training.config import TrainConfig
from netdyn.training.loop import TrainResult, train
from netdyn.training.population import population_key, train_population

_PARTS = ("model", "data", "train", "analysis")


@dataclass(frozen=True)
class RunSpec:
    """Everything that defines a run: the model, the data, the training and (optionally) the analysis."""

    model: ModelSpec = field(default_factory=ModelSpec)
    """Architecture and initialisation (sizes from the data where left None)."""
    data: DataSpec = field(default_factory=DataSpec)
    """Which data set, subset and normalisation (no machine path: files are found when loaded)."""
    train: TrainConfig = field(default_factory=TrainConfig)
    """How to train."""
    analysis: AnalysisConfig | None = None
    """The analysis of the final network (None: none)."""

    def __post_init__(self) -> None:
        for name, cls in (("model", ModelSpec), ("data", DataSpec), ("train", TrainConfig)):
            if not isinstance(getattr(self, name), cls):
                raise ConfigError(f"RunSpec.{name} must be a {cls.__name__}, got {type(getattr(self, name)).__name__}")
        if self.analysis is not None and not isinstance(self.analysis, AnalysisConfig):
            raise ConfigError(f"RunSpec.analysis must be an AnalysisConfig or None, got {type(self.analysis).__name__}")

    def to_dict(self) -> dict[str, Any]:
        """The spec as JSON types: ``model``, ``data``, ``train`` and ``analysis`` (None without an analysis)."""
        return {
            "model": self.model.to_dict(),
            "data": self.data.to_dict(),
            "train": self.train.to_dict(),
            "analysis": None if self.analysis is None else self.analysis.to_dict(),
        }

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> RunSpec:
        """From :meth:`to_dict` or a run folder's ``config.json`` (other keys, e.g. ``netdyn_version``, ignored)."""
        if not isinstance(values, dict):
            raise ConfigError(f"a run spec is a dict with model, data, train and analysis; got {type(values).__name__}")
        missing = [k for k in ("model", "data", "train") if values.get(k) is None]
        if missing:
            raise ConfigError(f"the run spec lacks {', '.join(missing)}")
        analysis = values.get("analysis")
        return cls(
            model=ModelSpec.from_dict(values["model"]),
            data=DataSpec.from_dict(values["data"]),
            train=TrainConfig.from_dict(values["train"]),
            analysis=None if analysis is None else AnalysisConfig.from_dict(analysis),
        )

    def replace(self, **changes: Any) -> RunSpec:
        """A copy with some parts replaced.

        ``model=``, ``data=``, ``train=``, ``analysis=`` take a spec or a dict of field changes
        (``spec.replace(train={"lr": 0.01})``).
        """
        updates = {}
        for name, value in changes.items():
            if name not in _PARTS:
                raise ConfigError(f"RunSpec has no part {name!r}; its parts are {', '.join(_PARTS)}")
            current = getattr(self, name)
            if isinstance(value, dict):
                base = current if current is not None else AnalysisConfig()
                value = replace(base, **value)
            updates[name] = value
        return replace(self, **updates)


@dataclass
class RunResult:
    """What :func:`run` returns: the training result, the analysis (if the spec asked) and the folder."""

    spec: RunSpec
    train: TrainResult
    analysis: Analysis | None = None
    run_dir: Path | None = None

    @property
    def summary(self) -> dict[str, Any]:
        """The training summary, with the analysis summary's numbers under ``analysis_`` keys."""
        summary = dict(self.train.summary)
        if self.analysis is not None:
            for key, value in self.analysis.summary.items():
                if not isinstance(value, (dict, list)):
                    summary[f"analysis_{key}"] = value
        return summary


def run(
    spec: RunSpec,
    run_dir: str | Path | None = None,
    *,
    resume: bool = False,
    progress: bool = False,
    root: str | Path | None = None,
    download: bool = False,
    callbacks: Sequence[Any] = (),
) -> RunResult:
    """Train (and analyse, when ``spec.analysis`` is set) the run that ``spec`` describes, from the spec alone.

    ``run_dir`` receives the run folder (config.json holds the spec, with the model's sizes resolved from the
    data); ``resume`` continues it. ``root`` is where the data set's files lie on this machine (else
    ``$NETDYN_DATA/<name>``, Debian's package or the cache); ``download`` fetches missing MNIST-format files.
    A diverged run is returned unanalysed (``result.train.diverged``). ``progress=True`` says what it trains
    and shows progress bars (the CLI's); otherwise nothing is printed.
    """
    if not isinstance(spec, RunSpec):
        raise ConfigError(f"run takes a RunSpec, got {type(spec).__name__}")
    data = spec.data.load(root=root, download=download)
    # the record holds the data set's options as loaded (defaults filled in), so that the same data loaded
    # again (``load_run(...).dataset()``) is recognised as this run's on resume
    resolved = replace(spec, model=spec.model.resolve(data), data=DataSpec.of(data))
    net = spec_model(resolved.model)
    if progress:
        print(
            f"training {_a_model(resolved.model)}, {model_settings(resolved.model)}, on {data.name} "
            f"({len(data.y_train)} train / {len(data.y_test)} test)"
        )
    record = run_spec_record(resolved, net)
    result = train(
        net, data, resolved.train, run_dir=run_dir, resume=resume, progress=progress, record=record,
        callbacks=callbacks,
    )
    return _finish(resolved, result, data, run_dir, progress)


def run_spec_record(resolved: RunSpec, net: Any) -> dict[str, Any]:
    """config.json of a run of ``resolved``: the spec, and for a vision model the factory that rebuilds it.

    A ConvNet, ResNet or ViT is recorded as a user's model is too (``model_factory`` netdyn.models.vision:build with
    its ``model_args``, the class and ``input_shape``), so that ``load_run(...).model()``, ``analyze`` and ``prune``
    read it as any model.
    """
    record = {"netdyn_version": __version__, **resolved.to_dict()}
    if resolved.model.arch != "mlp":
        shape = list(resolved.model.input_shape or ())
        record |= {"model_class": f"{type(net).__module__}.{type(net).__qualname__}", "model_factory": FACTORY,
                   "model_args": factory_args(resolved.model), "input_shape": shape, "cuts": None}
    return record


def _a_model(model: ModelSpec) -> str:
    return {"mlp": "an MLP", "convnet": "a ConvNet", "resnet": "a ResNet", "vit": "a ViT"}[model.arch]


def _finish(
    resolved: RunSpec, result: TrainResult, data: Dataset, run_dir: str | Path | None, progress: bool
) -> RunResult:
    """The analysis a spec asks for, of a trained (not diverged) run, written into its folder."""
    analysis = None
    if resolved.analysis is not None and not result.diverged:
        analysis = analyze(result.net, data, resolved.analysis, progress=progress)
        analysis.summary["steps"] = [result.summary["steps"]]
        if run_dir is not None:
            write_run_report(load_run(run_dir), analysis)
    return RunResult(spec=resolved, train=result, analysis=analysis, run_dir=result.run_dir)


def run_population(
    specs: Sequence[RunSpec],
    run_dirs: Sequence[str | Path | None] | None = None,
    *,
    resume: bool = False,
    progress: bool = False,
    root: str | Path | None = None,
    download: bool = False,
) -> list[RunResult]:
    """Train several runs of one architecture as one population, then analyse each as its spec asks.

    This gives what :func:`run` gives for each spec, faster (the training is ``netdyn.train_population``). The specs
    may differ only in what a population lets differ (model seed and init scale; training seed, lr, weight decay,
    momentum): ``population_key`` says which specs can share a population.
    """
    specs = list(specs)
    if not specs or any(not isinstance(s, RunSpec) for s in specs):
        raise ConfigError("run_population takes a non-empty list of RunSpecs")
    other = next((s.model.arch for s in specs if s.model.arch != "mlp"), None)
    if other is not None:
        raise ConfigError(
            f"run_population trains netdyn MLPs (their parameters stacked and vmapped); arch {other} trains one run "
            "per spec (netdyn.run)"
        )
    if len({population_key(s) for s in specs}) != 1:
        raise ConfigError(
            "run_population: the specs differ in more than the model seed, init scale, training seed, lr, weight "
            "decay and momentum; train them separately"
        )
    dirs = list(run_dirs) if run_dirs is not None else [None] * len(specs)
    data = specs[0].data.load(root=root, download=download)
    resolved = [replace(s, model=s.model.resolve(data), data=DataSpec.of(data)) for s in specs]
    records = [{"netdyn_version": __version__, **r.to_dict()} for r in resolved]
    results = train_population(
        [MLP.from_spec(r.model) for r in resolved], data, [r.train for r in resolved], dirs, resume=resume,
        progress=progress, records=records,
    )
    return [_finish(r, result, data, d, progress) for r, result, d in zip(resolved, results, dirs, strict=True)]


class Run(RunFolder):
    """A run folder opened by :func:`load_run`.

    A :class:`~netdyn.store.RunFolder` that also knows its :class:`RunSpec` and reads back its saved analysis.
    """

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r})"

    def _repr_html_(self) -> str:
        return run_html(self)

    @property
    def spec(self) -> RunSpec:
        """The :class:`RunSpec` of this run (from config.json; older folders too)."""
        return RunSpec.from_dict(self.config)

    def analysis(self) -> Analysis:
        """The analysis saved in this folder (``netdyn analyze`` or a spec with an analysis wrote it)."""
        return load_analysis(self.path)


def load_run(path: str | Path) -> Run:
    """Open the run folder at ``path`` as a :class:`Run` (RunError naming what is wrong when it holds no run).

    The run offers ``run.config``, ``run.model(step)``, ``run.tables``, ``run.summary``, ``run.dataset()``,
    ``run.spec`` and ``run.analysis()``.
    """
    return Run(RunFolder.open_existing(path).path)


def model_settings(model: ModelSpec) -> str:
    """A resolved model's shape as ``netdyn train``'s flags take it, and the sizes the data decides.

    ``width=256 depth=3 activation=relu residual=none batchnorm=false (784 inputs, 10 classes)``; a vision model's
    own sizes (``arch=resnet width=16 depth=3 blocks=2 (1x28x28 inputs, 10 classes)``).
    """
    shown = {"mlp": ("width", "depth", "activation", "residual", "batchnorm"),
             "convnet": ("arch", "width", "depth", "batchnorm", "pool"), "resnet": ("arch", "width", "depth", "blocks"),
             "vit": ("arch", "width", "depth", "patch", "heads", "mlp_dim")}[model.arch]
    flags = " ".join(f"{name}={_config.flag_text(getattr(model, name))}" for name in shown)
    inputs = model.in_features if model.arch == "mlp" else "x".join(map(str, model.input_shape or ()))
    return f"{flags} ({inputs} inputs, {model.num_classes} classes)"
