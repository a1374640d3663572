"""Device names to ``torch.device``: the one place that decides what ``"auto"`` means (torch loads on first use)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from netdyn.errors import ConfigError

if TYPE_CHECKING:
    import torch


def resolve_device(device: str | torch.device) -> torch.device:
    """``"auto"`` is CUDA when available, else the CPU; a CUDA device asked for on a machine without one is a
    :class:`ConfigError`, not a crash later."""
    import torch

    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ConfigError(f"unknown device {device!r}; use auto, cpu, cuda or cuda:N") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} asked for, but CUDA is not available on this machine")
    return dev


def check_device_name(device: Any) -> None:
    """A device name that torch understands ("auto", "cpu", "cuda", "cuda:1", ...), else ConfigError. Whether
    the device exists is asked where the work runs (a spec may be written on one machine and run on another)."""
    if device == "auto":
        return
    import torch

    try:
        if not isinstance(device, str):
            raise TypeError
        torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise ConfigError(f"unknown device {device!r}; use auto, cpu, cuda or cuda:N") from None
