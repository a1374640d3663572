"""``train_population``: P networks of one architecture trained at once (see docs/runs.md#training).

The step is :class:`~netdyn.training.population_engine.PopulationEngine`'s (stacked parameters, one vectorised
forward, backward and optimiser step for every member); the bookkeeping is one
:class:`~netdyn.training.recorder.Recorder` per member, as in :func:`~netdyn.training.loop.train`. So each
member gets what its own ``train`` run would give: the same history table (its evaluations are computed for the
whole population in one pass), run folder, checkpoints (interchangeable with ``train``'s), resume and
divergence flag, and it ends with the weights its own run would reach, within float rounding. A member that
diverges is flagged and masked alone; the others go on.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import torch

from netdyn.data.samples import DataLike, SampleSet
from netdyn.errors import ConfigError
from netdyn.models import MLP
from netdyn.store import RunFolder
from netdyn.training.config import TrainConfig
from netdyn.training.core import (
    CheckpointStates,
    HistoryMeasure,
    TrainResult,
    bn_modes,
    finish,
    member_recorder,
    prepare_data,
    run_record,
    run_steps,
)
from netdyn.training.loop import open_run_folder
from netdyn.training.population_engine import PopulationEngine
from netdyn.training.recorder import Schedule


class _State:
    """What ``RunFolder.save_checkpoint`` reads of a net or an optimiser: a ``state_dict()``."""

    def __init__(self, state: dict[str, Any]) -> None:
        self._state = state

    def state_dict(self) -> dict[str, Any]:
        return self._state


def _resume_step(folders: Sequence[RunFolder | None]) -> int:
    """The step a resumed population goes on from: the latest checkpoint every member holds (0 when any has none).

    Members are trained in lock step, so their checkpoints are at the same steps unless their schedules differ.
    """
    common: set[int] | None = None
    for folder in folders:
        steps = set(folder.checkpoints()) if folder is not None and folder.exists() else set()
        common = steps if common is None else common & steps
    return max(common) if common else 0


def _members(
    nets: Sequence[MLP], configs: TrainConfig | Sequence[TrainConfig], run_dirs: Sequence[str | Path | None] | None
) -> tuple[list[MLP], list[TrainConfig], list[RunFolder | None]]:
    """The members' nets, configs (one for all or one each) and run folders, checked to pair up."""
    nets = list(nets)
    if not nets:
        raise ConfigError("train_population needs at least one network")
    other = next((net for net in nets if not isinstance(net, MLP)), None)
    if other is not None:
        raise ConfigError(
            f"train_population trains netdyn MLPs (their parameters stacked and vmapped, batch norm folded per "
            f"member), not a {type(other).__name__}: train each member with netdyn.train"
        )
    configs = [configs] * len(nets) if isinstance(configs, TrainConfig) else list(configs)
    if len(configs) != len(nets):
        raise ConfigError(f"train_population: {len(nets)} nets but {len(configs)} configs")
    dirs = list(run_dirs) if run_dirs is not None else [None] * len(nets)
    if len(dirs) != len(nets):
        raise ConfigError(f"train_population: {len(nets)} nets but {len(dirs)} run folders")
    named = [str(Path(d).resolve()) for d in dirs if d is not None]
    if len(set(named)) != len(named):
        raise ConfigError("train_population: two members share a run folder")
    return nets, configs, [RunFolder(d) if d is not None else None for d in dirs]


def _open_folders(
    folders: Sequence[RunFolder | None],
    nets: Sequence[MLP],
    configs: Sequence[TrainConfig],
    records: Sequence[dict[str, Any] | None] | None,
    data: SampleSet,
    resume: bool,
    device: torch.device,
) -> None:
    """Write each member's config.json, or check that a resumed folder holds this member's run."""
    for i, folder in enumerate(folders):
        if folder is not None:
            record = records[i] if records is not None else None
            open_run_folder(folder, record or run_record(nets[i], data, configs[i]), nets[i], None, resume, device)


def _restore_members(
    engine: PopulationEngine, folders: Sequence[RunFolder | None], start: int, device: torch.device
) -> dict[int, float]:
    """Load the members' checkpoints at the common step ``start`` into the engine; each one's wall time there.

    Every member goes on from the common step, not necessarily its own last checkpoint.
    """
    restored: dict[int, float] = {}
    for i, folder in enumerate(folders):
        if folder is not None and start in folder.checkpoints():
            ckpt = folder.load_checkpoint(start)
            engine.load_member(i, {k: v.to(device) for k, v in ckpt["model"].items()}, ckpt["optim"])
            restored[i] = float(ckpt["meta"].get("wall_time", 0.0))
    return restored


def _member_states(engine: PopulationEngine, i: int) -> CheckpointStates:
    """Member i's checkpoint contents, in ``train``'s format (a net's and an optimiser's ``state_dict()``)."""

    def states() -> tuple[torch.nn.Module, torch.optim.Optimizer]:
        # RunFolder.save_checkpoint reads only their state_dict(): the engine's states stand in for the objects
        model = _State(engine.member_state_dict(i))
        optimizer = _State(engine.member_optimizer_state(i))
        return cast(torch.nn.Module, model), cast(torch.optim.Optimizer, optimizer)

    return states


def train_population(
    nets: Sequence[MLP],
    data: DataLike,
    configs: TrainConfig | Sequence[TrainConfig],
    run_dirs: Sequence[str | Path | None] | None = None,
    resume: bool = False,
    progress: bool = False,
    records: Sequence[dict[str, Any] | None] | None = None,
) -> list[TrainResult]:
    """Train ``nets`` (one architecture) on ``data`` as one population; one :class:`TrainResult` per member.

    ``configs`` is one :class:`TrainConfig` for all or one per member: members may differ in ``seed`` (their
    minibatch order), ``lr``, ``weight_decay`` and ``momentum``, and the nets in their initial weights (seed,
    init, init scale); everything else must be shared (``ConfigError`` names what is not). ``run_dirs`` gives
    each member its run folder (None: none); ``resume=True`` continues the members' folders from the latest
    checkpoint they all hold. ``records`` replaces what each member's ``config.json`` records (``netdyn.run``'s
    population path passes the specs).
    """
    nets, configs, folders = _members(nets, configs, run_dirs)
    samples, placed = prepare_data(nets, data, configs[0])
    start = _resume_step(folders) if resume else 0
    _open_folders(folders, nets, configs, records, samples, resume, placed.device)
    engine = PopulationEngine(nets, configs, placed.x_train, placed.y_train, start_step=start)  # validates the members
    restored = _restore_members(engine, folders, start, placed.device) if resume else {}
    loss, batch = configs[0].loss, engine.batch_size
    modes = bn_modes(nets[0], configs[0].bn_eval)
    measure = HistoryMeasure(lambda x, y, mode: engine.evaluate(x, y, loss, mode, batch), len(nets), placed, modes)
    recorders = [
        member_recorder(
            Schedule.of(config, engine.total_steps), measure.member(i), engine.steps_per_epoch, folders[i],
            _member_states(engine, i), restored=(start, restored[i]) if i in restored else None,
        )
        for i, config in enumerate(configs)
    ]  # fmt: skip

    def step(s: int) -> None:
        engine.step(engine.batch_indices(s))

    diverged = run_steps(step, engine.diverged_steps, recorders, start, engine.total_steps, progress)
    engine.write_back(nets)
    return finish(recorders, nets, diverged, engine.total_steps, placed, modes, {"population_size": len(nets)})


def population_key(spec: Any) -> str:
    """What members of one population must share, as text.

    The key is the run spec with the fields a population lets differ (model seed, init scale; training seed, lr, weight
    decay, momentum) blanked. Specs with equal keys can train as one population. Only netdyn's MLP trains in a
    population: the spec of any other architecture (``arch`` convnet, resnet, vit) gets a key of its own, so that
    it trains alone.
    """
    import json
    from dataclasses import replace

    if getattr(spec.model, "arch", "mlp") != "mlp":
        return f"alone {id(spec)}"
    blank = replace(
        spec,
        model=replace(spec.model, seed=None, init_scale=1.0),
        train=replace(spec.train, seed=0, lr=1.0, weight_decay=0.0, momentum=0.0),
    )
    return json.dumps(blank.to_dict(), sort_keys=True)


__all__ = ["population_key", "train_population"]
