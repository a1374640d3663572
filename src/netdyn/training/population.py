"""``train_population``: P networks of one architecture trained at once (SPEC section 7, "Populations").

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
from typing import Any

import pandas as pd
import torch

from netdyn._device import resolve_device
from netdyn._progress import progress_bar
from netdyn.data.samples import DataLike
from netdyn.errors import ConfigError
from netdyn.models import MLP
from netdyn.store import RunFolder
from netdyn.training.config import TrainConfig
from netdyn.training.loop import (
    TrainResult,
    _bn_modes,
    _check_training_data,
    _history_frame,
    _summary,
    open_run_folder,
    run_record,
)
from netdyn.training.population_engine import PopulationEngine
from netdyn.training.recorder import Recorder, RecordPoint, Schedule


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
    nets = list(nets)
    if not nets:
        raise ConfigError("train_population needs at least one network")
    configs = [configs] * len(nets) if isinstance(configs, TrainConfig) else list(configs)
    if len(configs) != len(nets):
        raise ConfigError(f"train_population: {len(nets)} nets but {len(configs)} configs")
    dirs = list(run_dirs) if run_dirs is not None else [None] * len(nets)
    if len(dirs) != len(nets):
        raise ConfigError(f"train_population: {len(nets)} nets but {len(dirs)} run folders")
    named = [str(Path(d).resolve()) for d in dirs if d is not None]
    if len(set(named)) != len(named):
        raise ConfigError("train_population: two members share a run folder")
    data = _check_training_data(nets[0], data)
    first = configs[0]
    device = resolve_device(first.device)
    dtype = getattr(torch, first.dtype)
    for net in nets:
        net.to(device=device, dtype=dtype)
    x_train = data.x_train.flatten(1).to(device=device, dtype=dtype)
    y_train = data.y_train.to(device=device, dtype=torch.long)
    x_test = data.x_test.flatten(1).to(device=device, dtype=dtype)
    y_test = data.y_test.to(device=device, dtype=torch.long)

    folders = [RunFolder(d) if d is not None else None for d in dirs]
    start = _resume_step(folders) if resume else 0
    for i, folder in enumerate(folders):
        if folder is not None:  # writes config.json, or checks that a resumed folder holds this member's run
            record = records[i] if records is not None and records[i] is not None else None
            open_run_folder(folder, record or run_record(nets[i], data, configs[i]), nets[i], None, resume, device)
    engine = PopulationEngine(nets, configs, x_train, y_train, start_step=start)  # validates the members
    total, per_epoch, batch = engine.total_steps, engine.steps_per_epoch, engine.batch_size
    modes = _bn_modes(nets[0], first.bn_eval)
    size = len(nets)
    restored: dict[int, float] = {}
    for i, folder in enumerate(folders):
        if resume and folder is not None and start in folder.checkpoints():
            # every member goes on from the common step, not necessarily its own last checkpoint
            ckpt = folder.load_checkpoint(start)
            engine.load_member(i, {k: v.to(device) for k, v in ckpt["model"].items()}, ckpt["optim"])
            restored[i] = float(ckpt["meta"].get("wall_time", 0.0))

    evaluated: dict[str, Any] = {"step": None, "rows": None}

    def population_rows(point: RecordPoint) -> list[list[dict[str, Any]]]:
        """Every member's history rows at this step, from one evaluation pass per split and mode."""
        if evaluated["step"] != point.step:
            rows: list[list[dict[str, Any]]] = [[] for _ in range(size)]
            for split, xs, ys in (("train", x_train, y_train), ("test", x_test, y_test)):
                for mode in modes:
                    results = engine.evaluate(xs, ys, first.loss, "running" if mode == "none" else mode, batch)
                    for i, (loss, acc) in enumerate(results):
                        rows[i].append({"step": point.step, "epoch": point.epoch, "split": split,
                                        "bn_mode": mode, "loss": loss, "accuracy": acc})
            evaluated.update(step=point.step, rows=rows)
        return evaluated["rows"]

    def measure_for(i: int):
        def measure(point: RecordPoint) -> dict[str, pd.DataFrame]:
            rows = [dict(r, wall_time=point.wall_time) for r in population_rows(point)[i]]
            return {"history": _history_frame(rows)}

        return measure

    def save_for(i: int):
        def save(point: RecordPoint) -> None:
            folders[i].save_checkpoint(
                point.step,
                _State(engine.member_state_dict(i)),
                _State(engine.member_optimizer_state(i)),
                {"wall_time": point.wall_time, "epoch": point.epoch},
            )

        return save

    schedules = [Schedule.of(config, total) for config in configs]
    recorders = [
        Recorder(schedules[i], measure_for(i), save_for(i) if folders[i] is not None else None, folders[i], per_epoch)
        for i in range(size)
    ]
    for i, wall in restored.items():
        recorders[i].restore(start, wall)
    diverged: list[int | None] = [None] * size
    bar = progress_bar(total, initial=start) if progress else None
    try:
        for recorder in recorders:
            recorder.record(start)
        for step in range(start, total):
            engine.step(engine.batch_indices(step))
            done = step + 1
            if any(schedule.due(done) for schedule in schedules):
                flags = engine.diverged_steps()
                for i, recorder in enumerate(recorders):
                    if diverged[i] is None and flags[i] is not None:
                        diverged[i] = flags[i]
                    if diverged[i] is None and schedules[i].due(done):
                        recorder.record(done)
            if bar is not None:
                bar.update(1)
        flags = engine.diverged_steps()
        diverged = [d if d is not None else f for d, f in zip(diverged, flags, strict=True)]
    finally:
        if bar is not None:
            bar.close()
    engine.write_back(nets)
    results = []
    for i, recorder in enumerate(recorders):
        nets[i].eval()
        table = _history_frame(recorder.table("history"))
        summary = _summary(table, total, per_epoch, recorder.wall_time(), diverged[i], x_train.shape[0],
                           x_test.shape[0], modes)
        summary["population_size"] = size
        summary = recorder.finish(summary, total if diverged[i] is None else summary["steps"])
        results.append(TrainResult(history=table, summary=summary, run_dir=folders[i].path if folders[i] else None,
                                   net=nets[i]))
    return results


def population_key(spec: Any) -> str:
    """What members of one population must share, as text.

    The key is the run spec with the fields a population lets differ (model seed, init scale; training seed, lr, weight
    decay, momentum) blanked. Specs with equal keys can train as one population.
    """
    import json
    from dataclasses import replace

    blank = replace(
        spec,
        model=replace(spec.model, seed=None, init_scale=1.0),
        train=replace(spec.train, seed=0, lr=1.0, weight_decay=0.0, momentum=0.0),
    )
    return json.dumps(blank.to_dict(), sort_keys=True)


__all__ = ["population_key", "train_population"]
