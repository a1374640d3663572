"""The affine check of a tail (:func:`fit_affine`).

The tail's Jacobian at the data mean (``torch.func.vjp``) in float64, and how far the affine map it gives is from the
tail on data.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from netdyn.errors import ConfigError
from netdyn.models.adapter._registry import evaluating

if TYPE_CHECKING:
    from netdyn.models.adapter.network import Network


#: Relative error under which a tail counts as affine (docs/any-network.md: checked in float64 on data).
AFFINE_TOLERANCE = 1e-6
#: Samples the affine check draws from the data (seeded).
AFFINE_SAMPLES = 256


@dataclass
class AffineFit:
    """A tail linearised at the data mean, and how far it is from the tail.

    ``matrices[i]`` ([C, D_i]) is its Jacobian in input i (the cut, then the skips), ``constant`` ([C]) =
    tail(mean) - sum_i M_i mean_i; ``error`` the largest deviation of ``sum_i M_i x_i + constant`` from the tail
    on the checked samples, relative to the tail's largest output.
    """

    matrices: list[torch.Tensor]
    constant: torch.Tensor
    error: float


def _double(value: Any) -> Any:
    return value.double() if isinstance(value, torch.Tensor) and value.is_floating_point() else value


def fit_affine(network: Network, cut: int | str, x: torch.Tensor, seed: int = 0) -> AffineFit:
    """The tail's Jacobian at the data mean (``torch.func.vjp``) and how well it reproduces the tail.

    Computed in float64 on a seeded subset of ``AFFINE_SAMPLES`` samples of ``x`` ([P, d]).
    """
    if x.shape[0] == 0:
        raise ConfigError("the affine check needs at least one sample")
    gen = torch.Generator().manual_seed(int(seed))
    index = torch.randperm(x.shape[0], generator=gen)[:AFFINE_SAMPLES]
    names = network.tail_inputs(cut)
    values = network.capture(x[index], names, logits=False)
    inputs = [_double(values[n]) for n in names]
    variables = network.tail_variables(cut)
    free = [i for i, v in enumerate(inputs[:variables]) if isinstance(v, torch.Tensor) and v.is_floating_point()]
    tail64 = copy.deepcopy(network.tail(cut)).double()
    means = [inputs[i].mean(0, keepdim=True) for i in free]

    def run(*variables: torch.Tensor) -> torch.Tensor:
        args = list(inputs)
        for i, v in zip(free, variables, strict=True):
            args[i] = v
        return tail64(*args)

    with evaluating(tail64):
        linearised = torch.func.vjp(run, *means)
        at_mean, pullback = linearised[0], linearised[1]
        basis = torch.eye(at_mean.shape[1], dtype=at_mean.dtype, device=at_mean.device)
        rows = [pullback(basis[k][None]) for k in range(at_mean.shape[1])]
        matrices = [torch.stack([row[j].flatten() for row in rows]) for j in range(len(free))]
        constant = at_mean[0] - sum((m @ mu.flatten() for m, mu in zip(matrices, means, strict=True)),
                                    torch.zeros_like(at_mean[0]))
        with torch.no_grad():
            exact = tail64(*[v.clone() if isinstance(v, torch.Tensor) else v for v in inputs])
    predicted = constant + sum((inputs[i].flatten(1) @ m.T for i, m in zip(free, matrices, strict=True)),
                               torch.zeros_like(exact))
    scale = exact.abs().max().item()
    deviation = (predicted - exact).abs().max().item()
    error = deviation / scale if scale > 0 else (0.0 if deviation == 0 else math.inf)
    return AffineFit([m.detach() for m in matrices], constant.detach(), error)


def is_affine(network: Network, cut: int | str, x: torch.Tensor, seed: int = 0) -> bool:
    """Whether the tail of ``cut`` is affine on ``x`` (:func:`fit_affine`'s error within ``AFFINE_TOLERANCE``)."""
    return fit_affine(network, cut, x, seed).error <= AFFINE_TOLERANCE
