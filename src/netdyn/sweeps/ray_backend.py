"""The Ray backend: each point is one Ray task, on a local Ray instance or on a cluster (``address``).

Ray is an optional extra (``pip install 'netdyn[ray]'``), imported only here. A task is never retried by Ray
(``max_retries=0``): a point whose worker dies is recorded as failed, and ``--retry-failed`` runs it again.
A cluster's workers need netdyn installed (the same version as the driver) and, where they do not share the
sweep folder's file system, ship each run folder back to the driver, which writes it.

Without an address netdyn always starts its own local instance (``ray.init(address="local")``), never the
cluster a previous ``ray start`` recorded on this machine, which may have died since. Connecting to an address
is bounded: a TCP probe of HOST:PORT first, then ``ray.init`` in a helper thread that
is given up after ``connect_timeout`` seconds (``ray.init`` itself retries an unreachable head for minutes).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from netdyn.errors import ConfigError
from netdyn.sweeps.worker import FAILED, PointOutcome, PointTask, one_line, run_point

RAY_MISSING = "the ray backend needs Ray, which is not installed: pip install 'netdyn[ray]'"


def import_ray():
    """The ``ray`` module, or a one-line ConfigError saying how to install it."""
    try:
        import ray
    except ImportError:
        raise ConfigError(RAY_MISSING) from None
    return ray


def _split_address(address: str) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    if address.startswith("ray://"):
        raise ConfigError(f"--address takes HOST:PORT of the cluster's head (its GCS port), not a Ray Client URL "
                          f"{address}")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"--address takes HOST:PORT (e.g. 10.0.0.5:6379), got {address!r}")
    return host.strip("[]"), int(port)


#: The HTTP/2 connection preface and an empty SETTINGS frame: a gRPC server (Ray's GCS) answers with SETTINGS.
_H2_HELLO = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])


def probe(address: str, timeout: float) -> None:
    """Raise ConfigError unless a gRPC server (as Ray's GCS is) answers at ``address`` within ``timeout`` seconds:
    a TCP connection, then the HTTP/2 preface, answered by a SETTINGS frame. A closed port, a silent one and a
    server of another protocol are told apart from a Ray head in seconds, where ``ray.init`` retries for minutes."""
    host, port = _split_address(address)
    deadline = time.monotonic() + timeout
    try:
        with socket.create_connection((host, port), timeout=timeout) as conn:
            conn.sendall(_H2_HELLO)
            reply = b""
            while len(reply) < 9:
                conn.settimeout(max(deadline - time.monotonic(), 0.001))
                chunk = conn.recv(9 - len(reply))
                if not chunk:
                    break
                reply += chunk
    except OSError as exc:
        reason = f"no answer within {timeout:g} s" if isinstance(exc, TimeoutError) else (
            (exc.strerror or type(exc).__name__).lower())
        raise ConfigError(f"cannot reach a Ray cluster at {address}: {reason}") from None
    if len(reply) < 9 or reply[3] != 4:
        raise ConfigError(
            f"no Ray cluster at {address}: the port answers but not as a Ray head's GCS (gRPC) does "
            "(the head's address is HOST:PORT of its GCS, 6379 by default)"
        )


@dataclass(frozen=True)
class RayBackend:
    """Ray tasks: on the cluster at ``address`` (HOST:PORT of its head), or on a local Ray instance started here
    (with ``num_cpus`` CPUs; None: all) when no address is given and Ray is not already initialised."""

    address: str | None = None
    """HOST:PORT of a running cluster's head; None: a local instance."""
    cpus_per_point: float = 1
    """CPUs Ray reserves for each point (also its torch threads, rounded up)."""
    gpus_per_point: float = 0
    """GPUs Ray reserves for each point (fractions share one GPU)."""
    connect_timeout: float = 30.0
    """Seconds to wait for the cluster at ``address`` before giving up."""
    num_cpus: int | None = None
    """CPUs of a local instance started here (None: Ray's default, all of them)."""

    name = "ray"

    def __post_init__(self) -> None:
        for field_name in ("cpus_per_point", "gpus_per_point", "connect_timeout"):
            value = getattr(self, field_name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ConfigError(f"{field_name} must be a number >= 0, got {value!r}")
        if self.connect_timeout <= 0:
            raise ConfigError(f"connect_timeout must be > 0 seconds, got {self.connect_timeout!r}")
        if self.address is not None:
            _split_address(self.address)

    def open(self, n_points: int) -> RaySession:
        ray = import_ray()
        started = False
        if self.address is not None and ray.is_initialized():
            raise ConfigError(
                f"Ray is already initialised in this process, so --address {self.address} would be ignored: "
                "call ray.shutdown() first, or leave the address out to use the running session"
            )
        if not ray.is_initialized():
            if self.address is not None:
                probe(self.address, self.connect_timeout)
                _init_bounded(ray, self.address, self.connect_timeout)
            else:
                # address="local": without it, ray.init joins the cluster recorded in Ray's temp folder
                # (ray_current_cluster), and retries for minutes when that cluster has died
                ray.init(address="local", num_cpus=self.num_cpus, include_dashboard=False, log_to_driver=False,
                         configure_logging=False)
                started = True
        return RaySession(self, ray, started)


def _init_bounded(ray, address: str, timeout: float) -> None:
    """``ray.init(address=...)`` given up after ``timeout`` seconds (the helper thread is a daemon)."""
    errors: list[BaseException] = []

    def connect() -> None:
        try:
            ray.init(address=address, log_to_driver=False, configure_logging=False)
        except BaseException as exc:  # reported in the caller's thread
            errors.append(exc)

    start = time.monotonic()
    thread = threading.Thread(target=connect, name="netdyn-ray-connect", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise ConfigError(
            f"no Ray cluster answered at {address} within {timeout:g} s (is it the head's GCS port?)"
        )
    if errors:
        raise ConfigError(f"cannot connect to the Ray cluster at {address}: {one_line(errors[0])}") from None
    if not ray.is_initialized():  # pragma: no cover - defensive
        raise ConfigError(f"cannot connect to the Ray cluster at {address} ({time.monotonic() - start:.0f} s)")


def _ray_run_point(task: PointTask) -> PointOutcome:
    return run_point(task)


class RaySession:
    """A connected Ray backend: ``map(tasks)`` yields each point's outcome as it ends."""

    def __init__(self, backend: RayBackend, ray, started: bool) -> None:
        self.backend, self.ray, self.started = backend, ray, started
        self.refs: list = []

    @property
    def description(self) -> str:
        where = self.backend.address or ("a local Ray instance" if self.started else "the running Ray session")
        cpus = self.ray.cluster_resources().get("CPU", 0)
        return f"ray, {where} ({cpus:g} CPUs)"

    def map(self, tasks: Sequence[PointTask]) -> Iterator[PointOutcome]:
        ray = self.ray
        remote = ray.remote(_ray_run_point).options(
            num_cpus=self.backend.cpus_per_point, num_gpus=self.backend.gpus_per_point, max_retries=0,
        )
        by_ref = {remote.remote(task): task for task in tasks}
        self.refs = list(by_ref)
        while by_ref:
            ready, _ = ray.wait(list(by_ref), num_returns=1)
            for ref in ready:
                task = by_ref.pop(ref)
                try:
                    outcome = ray.get(ref)
                except ray.exceptions.RayError as exc:
                    kind = type(exc).__name__
                    died = "WorkerCrashed" in kind or "OutOfMemory" in kind or "ActorDied" in kind or "NodeDied" in kind
                    error = (f"the Ray worker died while running this point ({kind})" if died
                             else f"Ray could not run this point: {one_line(exc)}")
                    outcome = PointOutcome(task.name, FAILED, error=error)
                yield outcome
        self.refs = []

    def close(self) -> None:
        for ref in self.refs:
            try:
                self.ray.cancel(ref, force=True)
            except Exception:  # already finished, or the cluster is gone
                pass
        if self.started:
            self.ray.shutdown()
