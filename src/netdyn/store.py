"""netdyn's folders on disk: :class:`Folder`, the base of every folder netdyn writes, and :class:`RunFolder`.

:class:`Folder` is what every folder netdyn writes shares: its layout, a version-stamped record file, the guard that
opens it for new or resumed work, atomic JSON and table writes. :class:`RunFolder` is the run folder of
docs/runs.md#run-folders: config, checkpoints, tidy tables, figures, report, summary.

    RUN/
      config.json                  model architecture, training config, dataset spec
      checkpoints/step_N.safetensors   model parameters (keys ``model.*``) and optimiser state (``optim.*``)
      metrics/NAME.parquet         tidy tables (history, analysis tables)
      figures/NAME.png|svg
      report.html
      summary.json

Every write is atomic, so an interrupted run leaves its last complete checkpoint and tables readable. Reading a
file that is missing, corrupt or unreadable raises :class:`~netdyn.errors.RunError` naming it.
"""

from __future__ import annotations

import json
import numbers
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import pandas as pd
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from netdyn import _io
from netdyn._version import __version__
from netdyn.errors import ConfigError, ModelError, RunError, StorageError
from netdyn.models import MLP, ModelSpec

_CKPT = re.compile(r"^step_(\d+)\.safetensors$")

#: Says what a difference between two records is, or None when they describe the same work.
Differs = Callable[[dict[str, Any], dict[str, Any]], "str | None"]


class Folder:
    """A folder that holds one piece of netdyn's work (a run, a sweep, an experiment), recognised by its record file.

    The record file is a JSON object stamped with the netdyn version that wrote it. Construction stores the path;
    reading, writing and opening happen in named methods, and every write is atomic.
    """

    kind: ClassVar[str] = "folder"
    """What the folder holds, in messages ("run", "sweep", "experiment")."""
    record_name: ClassVar[str] = "config.json"
    """The record file, the folder's mark."""
    resume_hint: ClassVar[str] = "pass resume=True (--resume) or choose another folder"
    """What a message that refuses to overwrite the folder tells the user to do."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r})"

    @property
    def _a_kind(self) -> str:
        return f"{'an' if self.kind[0] in 'aeiou' else 'a'} {self.kind}"

    # ---------------------------------------------------------------- the record
    @property
    def record_path(self) -> Path:
        """The record file's path."""
        return self.path / self.record_name

    def exists(self) -> bool:
        """Whether the folder holds its record (and so its kind of work)."""
        return self.record_path.is_file()

    def holds_work(self) -> bool:
        """Whether the folder holds work that a new start would overwrite."""
        return self.exists()

    def read_record(self) -> dict[str, Any]:
        """The record (RunError naming the file when it is missing, corrupt or not a JSON object)."""
        return self.read_json(self.record_name, missing=f"{self.path} is not a netdyn {self.kind} folder")

    def write_record(self, record: dict[str, Any]) -> Path:
        """Write the record, stamped with this netdyn's version."""
        stamped = {"netdyn_version": __version__, **{k: v for k, v in record.items() if k != "netdyn_version"}}
        return self.write_json(self.record_name, stamped)

    # ---------------------------------------------------------------- opening
    def check_target(self, resume: bool, hint: str | None = None) -> None:
        """Refuse a path that cannot receive this folder's work, before anything is loaded, computed or written.

        Such a path is a file, a folder that already holds such work (without ``resume``; ``hint`` says what to do
        instead), or a folder that holds something else (nothing is written into it).
        """
        if self.path.exists() and not self.path.is_dir():
            raise RunError(f"{self.path} is a file, not {self._a_kind} folder")
        if not self.path.is_dir():
            return
        if not resume:
            if self.holds_work():
                raise RunError(f"{self.path} already holds {self._a_kind}: {hint or self.resume_hint}")
            if any(self.path.iterdir()):
                raise RunError(f"{self.path} holds other files and no {self.kind}: choose a new or empty folder")
            return
        if not self.exists() and any(self.path.iterdir()):
            raise RunError(
                f"cannot resume {self.path}: it is not a netdyn {self.kind} folder (no {self.record_name}); "
                "nothing was written into it"
            )

    def open(
        self, record: dict[str, Any], *, resume: bool = False, differs: Differs | None = None, hint: str | None = None
    ) -> dict[str, Any] | None:
        """Open the folder for the work ``record`` describes; return the record it already held, or None.

        A new or empty folder gets the record and None is returned; with ``resume``, a folder that holds a record
        already keeps it, after ``differs(old, record)`` has named no difference (RunError naming it otherwise), and
        the old record is returned.
        """
        self.check_target(resume, hint)
        if resume and self.exists():
            old = self.read_record()
            difference = differs(old, record) if differs is not None else None
            if difference:
                raise RunError(f"cannot resume {self.path}: its {difference} differs from the one given now")
            return old
        self.write_record(record)
        return None

    # ---------------------------------------------------------------- json and tables
    def write_json(self, name: str, obj: Any) -> Path:
        """Write ``obj`` as the JSON file ``name`` in the folder, atomically."""
        return _io.write_json(self.path / name, obj)

    def read_json(self, name: str, missing: str | None = None) -> dict[str, Any]:
        """The JSON object in the file ``name``.

        RunError: ``missing`` or a plain message when the file is absent; the file named when it is corrupt,
        unreadable or not an object.
        """
        path = self.path / name
        if not path.is_file():
            raise RunError(f"{missing or f'{self.path} has no {name}'}: {name} is missing")
        try:
            value = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise RunError(f"{path} is corrupt: {exc}") from None
        except OSError as exc:
            raise RunError(f"{path} is unreadable: {exc.strerror or exc}") from None
        if not isinstance(value, dict):
            raise RunError(f"{path} is corrupt: it holds a JSON {type(value).__name__}, not an object")
        return value


class RunFolder(Folder):
    """A run folder on disk. Construction stores the path; reading and writing happen in named methods."""

    kind = "run"

    @classmethod
    def open_existing(cls, path: str | Path) -> RunFolder:
        """The run folder at ``path``, which must hold a run (RunError naming what is wrong otherwise)."""
        run = cls(path)
        if run.path.exists() and not run.path.is_dir():
            raise RunError(f"{run.path} is a file, not a run folder")
        if not run.path.is_dir():
            raise RunError(f"no run folder at {run.path}")
        if not run.exists():
            raise RunError(f"{run.path} is not a netdyn run folder: config.json is missing")
        return run

    # ---------------------------------------------------------------- layout
    @property
    def config_path(self) -> Path:
        """The path of config.json, the run's record (:attr:`Folder.record_path`)."""
        return self.record_path

    @property
    def checkpoint_dir(self) -> Path:
        """The folder of the checkpoints (``checkpoints/``)."""
        return self.path / "checkpoints"

    @property
    def metrics_dir(self) -> Path:
        """The folder of the tidy tables (``metrics/``, one Parquet file per table)."""
        return self.path / "metrics"

    @property
    def figures_dir(self) -> Path:
        """The folder of the figures (``figures/``)."""
        return self.path / "figures"

    @property
    def report_path(self) -> Path:
        """The path of the HTML report (``report.html``)."""
        return self.path / "report.html"

    def holds_work(self) -> bool:
        """A record or checkpoints (a run killed before it wrote its record still holds its checkpoints)."""
        return self.exists() or bool(self.checkpoints())

    def check_target(self, resume: bool, hint: str | None = None) -> None:
        """As :meth:`Folder.check_target`; with ``resume``, the run's config and history must also be readable."""
        super().check_target(resume, hint)
        if resume and self.exists():
            self.read_record()
            if "history" in self.table_names():
                self.read_table("history")

    def discard_unrecorded(self) -> None:
        """Remove what a run that failed before its first record wrote (its config.json and empty folders).

        The same command can then run again in the same folder; a run that recorded anything keeps it
        (``--resume`` goes on from there).
        """
        if self.checkpoints() or self.table_names():
            return
        self.record_path.unlink(missing_ok=True)
        for empty in (self.checkpoint_dir, self.metrics_dir):  # an empty folder is a new run's to take
            if empty.is_dir() and not any(empty.iterdir()):
                empty.rmdir()

    @property
    def config(self) -> dict[str, Any]:
        """config.json: the run's spec (model, data, train, analysis) and the netdyn version that wrote it."""
        return self.read_record()

    def write_summary(self, summary: dict[str, Any]) -> Path:
        """Write summary.json."""
        return self.write_json("summary.json", summary)

    @property
    def summary(self) -> dict[str, Any]:
        """summary.json (empty before the run has written one)."""
        return self.read_json("summary.json") if (self.path / "summary.json").exists() else {}

    # ---------------------------------------------------------------- tables
    def write_table(self, name: str, df: pd.DataFrame) -> Path:
        """Write ``df`` as the table ``name`` (``metrics/NAME.parquet``), atomically."""
        return _io.write_parquet(self.metrics_dir / f"{name}.parquet", df)

    def read_table(self, name: str) -> pd.DataFrame:
        """The table ``name`` (RunError naming the file when it is missing, corrupt or unreadable)."""
        path = self.metrics_dir / f"{name}.parquet"
        if not path.is_file():
            raise RunError(f"{self.path}: no table {name!r} (looked for {path})")
        try:
            return pd.read_parquet(path)
        except Exception as exc:  # pyarrow raises its own types (ArrowInvalid, ...) for a damaged file
            reason = " ".join(str(exc).split()) or type(exc).__name__
            raise RunError(f"the table {path} is corrupt or unreadable ({reason})") from None

    def table_names(self) -> list[str]:
        """The names of the run's tables, sorted (empty before the run has written one)."""
        if not self.metrics_dir.is_dir():
            return []
        return sorted(p.stem for p in self.metrics_dir.glob("*.parquet"))

    @property
    def tables(self) -> dict[str, pd.DataFrame]:
        """Every table of the run, by name."""
        return {name: self.read_table(name) for name in self.table_names()}

    @property
    def history(self) -> pd.DataFrame:
        """The training history table (``metrics/history.parquet``)."""
        return self.read_table("history")

    # ---------------------------------------------------------------- checkpoints
    def checkpoints(self) -> list[int]:
        """Steps of the checkpoints on disk, ascending."""
        if not self.checkpoint_dir.is_dir():
            return []
        steps = [int(m.group(1)) for p in self.checkpoint_dir.iterdir() if (m := _CKPT.match(p.name))]
        return sorted(steps)

    def checkpoint_path(self, step: int) -> Path:
        """The path of the checkpoint at ``step``, whether or not it exists."""
        return self.checkpoint_dir / f"step_{int(step)}.safetensors"

    def save_checkpoint(
        self,
        step: int,
        net: torch.nn.Module,
        optimizer: torch.optim.Optimizer | None = None,
        meta: dict[str, Any] | None = None,
    ) -> Path:
        """Write the checkpoint at ``step`` atomically and return its path.

        It holds the parameters and buffers of ``net`` (keys ``model.*``), the state of ``optimizer`` when one is
        given (keys ``optim.*``) and ``meta`` as JSON metadata. A failed write is a StorageError.
        """
        tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
        metadata = {"step": str(int(step)), "meta": json.dumps(meta or {})}
        if optimizer is not None:
            state = optimizer.state_dict()
            scalars: dict[str, Any] = {}
            for idx, entry in state["state"].items():
                for key, value in entry.items():
                    if isinstance(value, torch.Tensor):
                        tensors[f"optim.{idx}.{key}"] = value.detach().cpu().contiguous().clone()
                    else:
                        scalars[f"{idx}.{key}"] = value
            metadata["optim_groups"] = json.dumps(state["param_groups"])
            metadata["optim_scalars"] = json.dumps(scalars)
        path = self.checkpoint_path(step)
        with _io.atomic_path(path) as tmp:
            try:
                save_file(tensors, str(tmp), metadata=metadata)
            except SafetensorError as exc:  # safetensors reports a failed write (a full disk) as its own error
                raise StorageError(f"cannot write {path}: {exc}") from None
        return path

    def resolve_step(self, step: int | str | None = "last") -> int:
        """The step of the checkpoint that ``step`` names: a step on disk, "first" or "last" (None: "last").

        RunError when the run holds no checkpoints or not this one; ConfigError when ``step`` is none of these.
        """
        steps = self.checkpoints()
        if not steps:
            raise RunError(f"{self.path} holds no checkpoints (looked in {self.checkpoint_dir})")
        if step is None or step == "last":
            return steps[-1]
        if step == "first":
            return steps[0]
        whole = isinstance(step, numbers.Integral) or (isinstance(step, str) and step.strip().lstrip("-").isdigit())
        if isinstance(step, bool) or not whole:
            raise ConfigError(f"a checkpoint is a step, 'first' or 'last', got {step!r}; {self.path} has {steps}")
        step = int(step)
        if step not in steps:
            raise RunError(f"{self.path} has no checkpoint at step {step}; its checkpoints are {steps}")
        return step

    def load_checkpoint(self, step: int | str | None = "last") -> dict[str, Any]:
        """The raw checkpoint: ``{"step", "model": state_dict, "optim": state_dict | None, "meta": dict}``."""
        step = self.resolve_step(step)
        path = self.checkpoint_path(step)
        try:
            tensors = load_file(str(path))
            from safetensors import safe_open

            with safe_open(str(path), framework="pt") as f:
                metadata = f.metadata() or {}
        except (SafetensorError, OSError, ValueError) as exc:
            raise RunError(f"checkpoint {path} is unreadable: {exc}") from None
        model = {k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")}
        optim = None
        try:
            if "optim_groups" in metadata:
                state: dict[int, dict[str, Any]] = {}
                for key, value in tensors.items():
                    if key.startswith("optim."):
                        _, idx, name = key.split(".", 2)
                        state.setdefault(int(idx), {})[name] = value
                for key, value in json.loads(metadata["optim_scalars"]).items():
                    idx, name = key.split(".", 1)
                    state.setdefault(int(idx), {})[name] = value
                optim = {"state": state, "param_groups": json.loads(metadata["optim_groups"])}
            meta = json.loads(metadata.get("meta", "{}"))
        except (ValueError, KeyError) as exc:
            raise RunError(f"checkpoint {path} is corrupt: its metadata does not parse ({exc})") from None
        return {"step": step, "model": model, "optim": optim, "meta": meta}

    def finite_checkpoint(self, step: int) -> bool:
        """Whether the model parameters and buffers of a checkpoint are all finite.

        A diverged run's last checkpoints may hold NaN or infinity.
        """
        tensors = self.load_checkpoint(step)["model"].values()
        return all(bool(torch.isfinite(t).all()) for t in tensors if t.is_floating_point())

    def select_checkpoints(self, steps: Any = "last") -> tuple[list[int], str | None]:
        """The checkpoints an analysis of ``steps`` takes, and a note to show when that is not what was asked for.

        ``steps`` is "last", "first", "all", a step or a list of steps; the note is None when the checkpoints are
        the ones asked for.

        Only checkpoints with finite parameters can be analysed. "last" takes the last finite one and "all"
        every finite one, saying so when the run diverged; an explicit step that is not finite is a
        :class:`~netdyn.errors.ConfigError` naming the steps that can be analysed; a run without any finite
        checkpoint is a :class:`~netdyn.errors.RunError`.
        """
        available = self.checkpoints()
        self.resolve_step("last")  # a folder without checkpoints is a clear error here
        summary = self.summary
        diverged = summary.get("diverged_step") if summary.get("diverged") else None
        said = f"the run diverged at step {diverged}" if diverged is not None else "the run's weights are not finite"
        if steps == "all" or steps in ("last", None):
            return self._finite_checkpoints(available, steps == "all", said, diverged)
        return self._asked_checkpoints(available, steps, said), None

    def _finite_checkpoints(
        self, available: list[int], every: bool, said: str, diverged: int | None
    ) -> tuple[list[int], str | None]:
        """The last finite checkpoint (or, with ``every``, all finite ones) and the note that says what was left."""
        finite = []
        for step in available if every else available[::-1]:
            if self.finite_checkpoint(step):
                finite.append(step)
                if not every:
                    break
        if not finite:
            raise RunError(f"no checkpoint of {self.path} has finite weights ({said}): nothing to analyse")
        chosen = sorted(finite)
        note = None
        if every and chosen != available:
            skipped = sorted(set(available) - set(chosen))
            note = f"{said}: analysing the checkpoints with finite weights {chosen}, not {skipped}"
        elif not every and chosen[-1] != available[-1]:
            note = f"{said}: analysing checkpoint {chosen[-1]}, the last with finite weights"
        elif diverged is not None:
            note = f"{said}: analysing checkpoint {chosen[-1]}, the last one, saved before that"
        return chosen, note

    def _asked_checkpoints(self, available: list[int], steps: Any, said: str) -> list[int]:
        """The checkpoints named by ``steps`` (a step, "first", "last" or a list), each of which must be finite."""
        wanted = [steps] if isinstance(steps, (str, int)) else list(steps)
        chosen: list[int] = []
        for step in wanted:
            try:
                chosen.append(self.resolve_step(step))
            except RunError as exc:  # a step the run does not have: the argument is wrong, not the folder
                raise ConfigError(str(exc)) from None
        bad = [s for s in chosen if not self.finite_checkpoint(s)]
        if bad:
            finite = [s for s in available if s not in bad and self.finite_checkpoint(s)]
            raise ConfigError(
                f"checkpoint(s) {bad} of {self.path} hold NaN or infinite weights ({said}); "
                f"the checkpoints that can be analysed are {finite or 'none'}"
            )
        return chosen

    @property
    def user_model(self) -> bool:
        """Whether the run's model is a user's ``nn.Module`` (config.json records no netdyn architecture)."""
        config = self.config
        return not config.get("model") and bool(config.get("model_class") or config.get("model_factory"))

    @property
    def reading(self) -> dict[str, tuple[Any, ...] | None]:
        """How the run's model is read: ``input_shape`` and ``cuts`` as recorded (None for netdyn's MLP).

        See docs/any-network.md.
        """
        config = self.config
        shape, cuts = config.get("input_shape"), config.get("cuts")
        return {"input_shape": None if shape is None else tuple(shape), "cuts": None if cuts is None else tuple(cuts)}

    def model(self, step: int | str | None = "last", into: torch.nn.Module | None = None) -> torch.nn.Module:
        """The network at a checkpoint, in evaluation mode on the CPU.

        A netdyn MLP is rebuilt from config.json alone. A user's model, and a ConvNet, ResNet or ViT that
        ``netdyn train --arch`` trained, is rebuilt by the ``model_factory`` that config.json records, called with
        its ``model_args``; without one, the weights are loaded ``into`` the model
        passed (its architecture must match). A pruned model (``pruned`` in config.json) is rebuilt around its
        original: ``into`` is then the original's architecture.
        """
        config = self.config
        if not self.user_model and not config.get("model_factory"):
            if into is not None:
                return _loaded(into, self.load_checkpoint(step), self.path)
            return self._mlp(step)
        base = into if into is not None else _built(config, self.path)
        pruned = config.get("pruned")
        if pruned:
            from netdyn.models.pruned import Pruned

            linear = torch.nn.Linear(int(pruned["features"]), int(pruned["classes"]))
            base = Pruned(base, str(pruned["cut"]), linear, config.get("input_shape") or ())
        return _loaded(base, self.load_checkpoint(step), self.path)

    def _mlp(self, step: int | str | None) -> MLP:
        """The netdyn MLP at a checkpoint, rebuilt from config.json alone."""
        recorded = self.config.get("model")
        if not recorded:
            raise RunError(f"{self.config_path} records no model architecture")
        net = MLP.from_spec(ModelSpec.from_dict(recorded))  # a ModelSpec's dict, or an old folder's legacy model dict
        ckpt = self.load_checkpoint(step)
        expected = net.state_dict()
        for key, value in ckpt["model"].items():
            if key in expected and expected[key].shape != value.shape:
                raise ModelError(
                    f"checkpoint step {ckpt['step']} of {self.path}: {key} has shape {tuple(value.shape)} "
                    f"but config.json's model needs {tuple(expected[key].shape)}"
                )
        missing = sorted(set(expected) - set(ckpt["model"]))
        unexpected = sorted(set(ckpt["model"]) - set(expected))
        if missing or unexpected:
            raise ModelError(
                f"checkpoint step {ckpt['step']} of {self.path} does not match config.json's model "
                f"(missing {missing[:3]}, unexpected {unexpected[:3]})"
            )
        floats = [v.dtype for v in ckpt["model"].values() if v.is_floating_point()]
        dtype = floats[0] if floats else torch.float32
        net.to(dtype=dtype)
        net.load_state_dict(ckpt["model"])
        net.eval()
        return net

    def dataset(self, root: str | Path | None = None, **overrides: Any):
        """The dataset the run was trained on, rebuilt from its recorded spec.

        ``root`` is where its files lie on this machine (default: the usual search; a folder recorded by an older
        netdyn is tried first when it still exists). ``overrides`` replace fields of the spec (``train_size=...``).
        """
        from dataclasses import replace

        from netdyn.data.spec import DataSpec, legacy_root

        recorded = self.config.get("data")
        if not recorded:
            raise RunError(f"{self.config_path} records no dataset spec")
        spec = DataSpec.from_dict(recorded)
        if overrides:
            spec = replace(spec, **overrides)
        old = legacy_root(recorded)
        if root is None and old is not None and Path(old).is_dir():
            root = old
        return spec.load(root=root)


# ------------------------------------------------------------------------------------------- a user's model
def user_model_record(
    model: torch.nn.Module,
    factory: str | None,
    args: dict[str, Any] | None,
    input_shape: tuple[int, ...] | None,
    cuts: tuple[str, ...] | None,
) -> dict[str, Any]:
    """The config.json keys that describe a user's model (see docs/any-network.md).

    They are its class, ``model_factory`` with its JSON ``model_args`` (where given, so that :meth:`RunFolder.model`
    rebuilds it), and how it is read (``input_shape``, ``cuts``).
    """
    check_factory(factory, args)
    return {
        "model": None,
        "model_class": f"{type(model).__module__}.{type(model).__qualname__}",
        "model_factory": factory,
        "model_args": dict(args or {}),
        "input_shape": None if input_shape is None else [int(s) for s in input_shape],
        "cuts": None if cuts is None else list(cuts),
    }


def check_factory(factory: str | None, args: dict[str, Any] | None) -> None:
    """A factory is ``"package.module:function"`` and its arguments a JSON object (ConfigError otherwise)."""
    if factory is not None and (not isinstance(factory, str) or not re.fullmatch(r"[\w.]+:[\w.]+", factory)):
        raise ConfigError(f"model_factory is 'package.module:function', got {factory!r}")
    if args is not None:
        if factory is None:
            raise ConfigError("model_args are the arguments of model_factory: pass model_factory too")
        try:
            if not isinstance(args, dict) or json.loads(json.dumps(args)) != args:
                raise TypeError("not a JSON object")
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"model_args must be a JSON object (names to numbers, strings, lists), got {args!r} "
                              f"({exc})") from None


def import_factory(factory: str) -> Callable[..., torch.nn.Module]:
    """The function that ``"package.module:function"`` names (ModelError in one line when it cannot be found)."""
    import importlib

    module_name, _, attribute = factory.partition(":")
    try:
        target: Any = importlib.import_module(module_name)
        for part in attribute.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError) as exc:
        raise ModelError(f"cannot import the model factory {factory!r}: {exc}") from None
    if not callable(target):
        raise ModelError(f"the model factory {factory!r} is not callable")
    return target


def _built(config: dict[str, Any], path: Path) -> torch.nn.Module:
    """The user's model that config.json's ``model_factory`` builds (ModelError in one line without one)."""
    factory = config.get("model_factory")
    if not factory:
        raise ModelError(
            f"{path} holds a {config.get('model_class') or 'user'} model saved without a model_factory: "
            "pass the architecture, run.model(into=net), to load its weights"
        )
    model = import_factory(factory)(**(config.get("model_args") or {}))
    if not isinstance(model, torch.nn.Module):
        raise ModelError(f"the model factory {factory!r} returned {type(model).__name__}, not an nn.Module")
    return model


def _loaded(model: torch.nn.Module, checkpoint: dict[str, Any], path: Path) -> torch.nn.Module:
    """``model`` with a checkpoint's weights, in evaluation mode (ModelError naming what does not match)."""
    weights = checkpoint["model"]
    expected = model.state_dict()
    wrong = [k for k, v in weights.items() if k in expected and expected[k].shape != v.shape]
    missing = sorted(set(expected) - set(weights))
    unexpected = sorted(set(weights) - set(expected))
    if wrong or missing or unexpected:
        raise ModelError(
            f"checkpoint step {checkpoint['step']} of {path} does not fit {type(model).__name__} (shapes differ for "
            f"{wrong[:3]}, missing {missing[:3]}, unexpected {unexpected[:3]})"
        )
    floats = [v.dtype for v in weights.values() if v.is_floating_point()]
    model.to(dtype=floats[0] if floats else torch.float32)
    model.load_state_dict(weights)
    return model.eval()
