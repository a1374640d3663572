"""What the backend tests share: a sweep with one point of each fate, a killer for one worker, fake MNIST files."""

import json
import os
import signal
import threading
import time
from pathlib import Path

import numpy as np

from netdyn.data import write_idx
from netdyn.sweeps import SweepDefinition

#: Tiny points: a 1000-step cap keeps every point but the killed one under a second of training.
TINY = {"dataset": "blobs", "train-size": 80, "test-size": 40, "width": 8, "depth": 1, "steps": 20, "eval-every": 10,
        "checkpoint-every": 10, "batch-size": 40}
KILLED = "steps=1000000"
RAISES = "dataset=mnist"
DIVERGES = "lr=10000000.0_optimizer=sgd_loss=mse_momentum=0"


def fates() -> SweepDefinition:
    """Four points: one trains, one raises (mnist, whose files are missing under the sweep's root), one runs until
    its worker is killed, one diverges."""
    return SweepDefinition(
        fixed=dict(TINY),
        points=[{"lr": 0.01}, {"dataset": "mnist"}, {"steps": 1_000_000},
                {"lr": 1e7, "optimizer": "sgd", "loss": "mse", "momentum": 0}],
    )


class Killer:
    """Kills the worker process of point ``name`` (SIGKILL) each time one starts it, until stopped."""

    def __init__(self, out: Path, name: str) -> None:
        self.marker = Path(out) / ".running" / f"{name}.json"
        self.killed: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self) -> "Killer":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(5)

    def _watch(self) -> None:
        while not self._stop.is_set():
            try:
                pid = json.loads(self.marker.read_text())["pid"]
            except (OSError, ValueError, KeyError):
                time.sleep(0.02)
                continue
            if pid not in self.killed:
                os.kill(pid, signal.SIGKILL)
                self.killed.append(pid)
            time.sleep(0.02)


def write_fake_mnist(folder: Path, n_train: int = 200, n_test: int = 100) -> None:
    rng = np.random.default_rng(0)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        write_idx(folder / f"{prefix}-images-idx3-ubyte", rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8))
        write_idx(folder / f"{prefix}-labels-idx1-ubyte", (np.arange(n) % 10).astype(np.uint8))
