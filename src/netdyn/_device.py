"""Device names to ``torch.device``: the one place that decides what ``"auto"`` means (torch loads on first use)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from netdyn.errors import ConfigError

if TYPE_CHECKING:
    import torch


#: Device types that hold no data to compute on: a name torch parses but nothing can train or analyse on.
NO_DATA_DEVICES = ("meta",)
USE = "use auto, cpu, cuda or cuda:N"


def resolve_device(device: str | torch.device) -> torch.device:
    """The ``torch.device`` of a device name, checked against this machine.

    ``"auto"`` is CUDA when available, else the CPU. A device this machine lacks (CUDA or MPS without one, a CUDA
    index past the last GPU) or one of a type netdyn cannot compute on (``meta``, ...) is a one-line
    :class:`ConfigError`, not a crash later.
    """
    import torch

    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    check_device_name(device)
    dev = torch.device(device)
    if dev.type == "cpu":
        return dev
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device {device!r} asked for, but CUDA is not available on this machine")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ConfigError(f"device {device!r} asked for, but this machine has {torch.cuda.device_count()} "
                              f"CUDA device(s) (cuda:0..cuda:{torch.cuda.device_count() - 1})")
        return dev
    if dev.type == "mps":
        if not torch.backends.mps.is_available():
            raise ConfigError(f"device {device!r} asked for, but MPS (Apple's GPU) is not available on this machine")
        return dev
    raise ConfigError(f"device {device!r}: netdyn does not train or analyse on {dev.type} devices; {USE}")


def check_device_name(device: Any) -> None:
    """A device name that torch understands ("auto", "cpu", "cuda", "cuda:1", ...), else ConfigError.

    Whether the device exists is asked where the work runs (a spec may be written on one machine and run on
    another); a type that holds no data (``meta``) is refused here, as it is nowhere a place to compute.
    """
    if device == "auto":
        return
    import torch

    try:
        if not isinstance(device, str):
            raise TypeError
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise ConfigError(f"unknown device {device!r}; {USE}") from None
    if dev.type in NO_DATA_DEVICES:
        raise ConfigError(f"device {device!r} holds no data: nothing can be trained or analysed on it; {USE}")
