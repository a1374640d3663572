"""The local backend: points run in worker processes of this machine (``concurrent.futures``, spawn context).

Each worker slot is a one-process ``ProcessPoolExecutor``. A process pool whose worker dies marks every future
of the pool broken, so one shared pool could not tell which point killed it; with one pool per slot, a dead
worker breaks exactly the point it was running, which is recorded as failed, and the slot starts a fresh
process. Workers are reused from point to point (torch is imported once per slot, not once per point).
"""

from __future__ import annotations

import multiprocessing
import os
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass

from netdyn.errors import ConfigError
from netdyn.sweeps.worker import FAILED, PointOutcome, PointTask, one_line, run_point

WORKER_DIED = "the worker process died while running this point (killed, out of memory, or a crash)"


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask where the platform has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS, Windows
        return os.cpu_count() or 1


def _init_worker(threads: int, gpus: str | None) -> None:
    if gpus is not None:  # before torch initialises CUDA in this process
        os.environ["CUDA_VISIBLE_DEVICES"] = gpus
    import torch

    torch.set_num_threads(threads)


@dataclass(frozen=True)
class LocalBackend:
    """Worker processes on this machine: ``workers`` of them (default: the CPUs divided by ``cpus_per_point``),
    each pinned to ``gpus_per_point`` GPUs of its own when asked."""

    workers: int | None = None
    """Worker processes (None: available CPUs // cpus_per_point, at most the number of points)."""
    cpus_per_point: int = 1
    """CPUs (torch threads) each point uses."""
    gpus_per_point: int = 0
    """GPUs each point gets (CUDA_VISIBLE_DEVICES per worker); workers are limited by the GPUs there are."""

    name = "local"

    def __post_init__(self) -> None:
        for field_name, low in (("cpus_per_point", 1), ("gpus_per_point", 0)):
            value = getattr(self, field_name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ConfigError(f"{field_name} must be a whole number >= {low}, got {value!r}")
        if self.workers is not None and (
            isinstance(self.workers, bool) or not isinstance(self.workers, int) or self.workers < 1
        ):
            raise ConfigError(f"workers must be a whole number >= 1, got {self.workers!r}")

    def slots(self, n_points: int) -> list[str | None]:
        """One entry per worker: the CUDA_VISIBLE_DEVICES it gets (None: no pinning)."""
        n = self.workers or max(1, available_cpus() // self.cpus_per_point)
        gpus: list[str | None] = [None] * n
        if self.gpus_per_point:
            import torch

            count = torch.cuda.device_count() if torch.cuda.is_available() else 0
            per = self.gpus_per_point
            if count < per:
                raise ConfigError(f"gpus_per_point is {per} but this machine has {count} CUDA GPU(s)")
            n = min(n, count // per)
            gpus = [",".join(str(g) for g in range(k * per, (k + 1) * per)) for k in range(n)]
        return gpus[: max(1, min(n, n_points))]

    def open(self, n_points: int) -> LocalSession:
        return LocalSession(self, self.slots(n_points))


class LocalSession:
    """A running local backend: ``map(tasks)`` yields each point's outcome as it ends."""

    def __init__(self, backend: LocalBackend, gpus: Sequence[str | None]) -> None:
        self.backend = backend
        self.gpus = list(gpus)
        self.executors: list[ProcessPoolExecutor | None] = [None] * len(self.gpus)

    @property
    def description(self) -> str:
        return f"local, {len(self.gpus)} worker process(es)"

    def _executor(self, slot: int) -> ProcessPoolExecutor:
        executor = self.executors[slot]
        if executor is None:
            executor = self.executors[slot] = ProcessPoolExecutor(
                max_workers=1,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_init_worker,
                initargs=(self.backend.cpus_per_point, self.gpus[slot]),
            )
        return executor

    def _replace(self, slot: int) -> None:
        executor = self.executors[slot]
        self.executors[slot] = None
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)

    def map(self, tasks: Sequence[PointTask]) -> Iterator[PointOutcome]:
        pending = deque(tasks)
        free = deque(range(len(self.gpus)))
        running: dict[Future, tuple[int, PointTask]] = {}
        while pending or running:
            while pending and free:
                slot, task = free.popleft(), pending.popleft()
                try:
                    future = self._executor(slot).submit(run_point, task)
                except BrokenProcessPool:
                    self._replace(slot)
                    future = self._executor(slot).submit(run_point, task)
                running[future] = (slot, task)
            done, _ = wait(list(running), return_when=FIRST_COMPLETED)
            for future in done:
                slot, task = running.pop(future)
                try:
                    outcome = future.result()
                except BrokenProcessPool:
                    self._replace(slot)
                    outcome = PointOutcome(task.name, FAILED, error=WORKER_DIED)
                except Exception as exc:  # e.g. a spec that cannot be sent to the worker
                    outcome = PointOutcome(task.name, FAILED, error=one_line(exc))
                free.append(slot)
                yield outcome

    def close(self) -> None:
        for slot in range(len(self.executors)):
            self._replace(slot)
