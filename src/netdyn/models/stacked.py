"""Many copies of one architecture evaluated at once, and batch norm folded into the Linear before it.

**Stacked tensors.** K copies of a module are described by a mapping from names of its ``state_dict()`` to
tensors: a tensor of shape ``[K, *shape]`` is stacked (copy k takes row k); a tensor of the module's own shape, or
a name left out (the module's own tensor), is shared by every copy. A population of nets (K members, every tensor
stacked) and the perturbed copies of one net in a weight basin (only the perturbed tensors stacked) are both such
mappings.

:func:`stacked_forward` runs K copies of any ``nn.Module`` on one batch, as ``torch.func.vmap`` over
``torch.func.functional_call``. For an :class:`~netdyn.models.MLP` it runs :class:`StackedMLP`, the same forward
pass written on the stacks: feature-major activations ``[K, features, n]`` (so a Linear on a shared batch is one
GEMM for every copy, and a population's weight gradients come out of backward in the weights' own layout), batch
statistics returned as plain values (a population masks a diverged member's running-statistics update), a first
layer its caller may form itself, and no vmap overhead. ``benchmarks/bench_stacked.py`` times both paths on 2 CPU
cores: the forward and backward pass of a population step (8 784-200-200-10 nets) take the same time within 2%, a
forward pass of 8 perturbed copies of a 784-256x4 BN net 0.83x vmap's; tests check the two agree.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from netdyn.errors import ConfigError, ModelError
from netdyn.models.mlp import BN_MODES, MLP, LayerBlock

StackedTensors = Mapping[str, torch.Tensor]
BatchStats = list[tuple[torch.Tensor, torch.Tensor]]


def fold_batchnorm(
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    mean: torch.Tensor,
    var: torch.Tensor,
    eps: float,
    bn_weight: torch.Tensor,
    bn_bias: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """A Linear ``(weight, bias)`` and the batch norm after it, with fixed statistics, as one affine map.

    ``BN(W x + b) = W' x + b'`` where, with ``g = bn_weight / sqrt(var + eps)``, ``W' = g W`` (row i scaled by g_i)
    and ``b' = g (b - mean) + bn_bias`` (b = 0 when None). ``mean`` and ``var`` are the running statistics (the
    evaluation-mode layer) or a batch's (the training-mode layer on that batch). Every tensor may carry a leading
    stack dimension (``[K, out, in]`` weights with ``[K, out]`` vectors, or some stacked and some shared). Since
    folding scales whole rows, ``weight`` may be any matrix with the Linear's rows (its row norms ``[out, 1]``).
    """
    g = bn_weight * torch.rsqrt(var + eps)
    shift = -mean if bias is None else bias - mean
    return g.unsqueeze(-1) * weight, g * shift + bn_bias


def batchnorm_tensors(
    bn: nn.modules.batchnorm._BatchNorm,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(running_mean, running_var, weight, bias)`` of a batch norm, detached; ModelError if it lacks one."""
    values = []
    for name in ("running_mean", "running_var", "weight", "bias"):
        value = getattr(bn, name)
        if not isinstance(value, torch.Tensor):
            raise ModelError(f"batch norm without {name}: netdyn folds affine batch norms with running statistics")
        values.append(value.detach())
    return values[0], values[1], values[2], values[3]


def fold_block(block: LayerBlock, dtype: torch.dtype | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Layer l's map from x^{l-1} to z^l as ``(W', b')``: its Linear and batch norm (running statistics) folded.

    Computed in ``dtype`` (default: the weight's); b' is zeros for a layer with neither bias nor batch norm.
    """
    weight = block.linear.weight.detach().to(dtype=dtype)
    bias = block.linear.bias.detach().to(dtype=dtype) if block.linear.bias is not None else None
    if block.bn is None:
        return weight, bias if bias is not None else weight.new_zeros(weight.shape[0])
    mean, var, bn_weight, bn_bias = (t.to(dtype=weight.dtype) for t in batchnorm_tensors(block.bn))
    return fold_batchnorm(weight, bias, mean, var, block.bn.eps, bn_weight, bn_bias)


def stacked_linear(weight: torch.Tensor, bias: torch.Tensor | None, x: torch.Tensor) -> torch.Tensor:
    """``a = W x + b``, feature-major, for shared or stacked weights and inputs.

    ``x`` is ``[in, n]`` or ``[K, in, n]``, ``weight`` ``[out, in]`` or ``[K, out, in]``, ``bias`` ``[out]``,
    ``[K, out]`` or None; the result is ``[(K,) out, n]``. A stacked weight on a shared batch is one GEMM for all
    copies (``matmul`` folds K into the rows).
    """
    if weight.dim() == 3 and x.dim() == 3:
        return torch.bmm(weight, x) if bias is None else torch.baddbmm(bias.unsqueeze(-1), weight, x)
    a = torch.matmul(weight, x)
    return a if bias is None else a + bias.unsqueeze(-1)


class StackedMLP:
    """The forward pass of :class:`~netdyn.models.MLP` on stacked tensors of the template net's architecture.

    Layers are computed as in ``MLP.forward`` (Linear, batch norm, skip, transfer function), feature-major.
    Every call names its tensors (see the module docstring); names left out are the template's own tensors as they
    were when this was built. ``bn_mode`` is "running" (each copy's running statistics), "batch" (each copy's
    statistics over the batch) or "train" (the same, with the statistics appended to ``stats`` as
    ``(mean, biased variance)`` pairs ``[(K,) features]``, one per batch norm in order, for the caller to update
    its running statistics: nothing here writes to a tensor), or "folded" (the running statistics, folded into the
    Linear layers beforehand by :meth:`fold`).
    """

    def __init__(self, net: MLP) -> None:
        self.blocks: list[LayerBlock] = net.layer_blocks
        self.prefixes = [f"blocks.{k}." for k in range(len(self.blocks))]
        self._own: dict[str, torch.Tensor] = dict(net.state_dict(keep_vars=True))

    def _get(self, tensors: StackedTensors, name: str) -> torch.Tensor:
        value = tensors.get(name)
        return value if value is not None else self._own[name]

    def linear(self, tensors: StackedTensors, l: int, x: torch.Tensor) -> torch.Tensor:
        """a^l = W^l x^{l-1} + b^l (feature-major; see :func:`stacked_linear`)."""
        return stacked_linear(*self._linear_tensors(tensors, l), x)

    def _linear_tensors(self, tensors: StackedTensors, l: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        p = self.prefixes[l - 1]
        bias = self._get(tensors, p + "linear.bias") if self.blocks[l - 1].linear.bias is not None else None
        return self._get(tensors, p + "linear.weight"), bias

    def _bn_tensors(self, tensors: StackedTensors, l: int) -> tuple[torch.Tensor, ...]:
        p = self.prefixes[l - 1] + "bn."
        return tuple(self._get(tensors, p + name) for name in ("running_mean", "running_var", "weight", "bias"))

    def fold(self, tensors: StackedTensors) -> dict[str, torch.Tensor]:
        """``tensors`` with every batch norm folded into the Linear before it (:func:`fold_batchnorm`, running
        statistics), for ``bn_mode="folded"``.

        Folding once and evaluating many batches saves the batch norm's passes over the activations of each.
        """
        folded = dict(tensors)
        for l, block in enumerate(self.blocks, start=1):
            if block.bn is not None:
                p = self.prefixes[l - 1]
                weight, bias = self._linear_tensors(tensors, l)
                mean, var, bn_weight, bn_bias = self._bn_tensors(tensors, l)
                weight, bias = fold_batchnorm(weight, bias, mean, var, block.bn.eps, bn_weight, bn_bias)
                folded[p + "linear.weight"], folded[p + "linear.bias"] = weight, bias
        return folded

    def local_field(
        self, tensors: StackedTensors, l: int, x: torch.Tensor, bn_mode: str, stats: BatchStats | None = None
    ) -> torch.Tensor:
        """z^l from x^{l-1}: the Linear, then the batch norm (in "folded" mode already part of the Linear)."""
        if bn_mode == "folded" and self.blocks[l - 1].bn is not None:
            p = self.prefixes[l - 1]
            return stacked_linear(tensors[p + "linear.weight"], tensors[p + "linear.bias"], x)
        return self.normalize(tensors, l, self.linear(tensors, l, x), bn_mode, stats)

    def normalize(
        self, tensors: StackedTensors, l: int, a: torch.Tensor, bn_mode: str, stats: BatchStats | None = None
    ) -> torch.Tensor:
        """z^l = BN(a^l) per copy and feature (a^l itself where layer l has no batch norm)."""
        bn = self.blocks[l - 1].bn
        if bn is None:
            return a
        running_mean, running_var, bn_weight, bn_bias = self._bn_tensors(tensors, l)
        if bn_mode == "running":
            mean, var = running_mean.unsqueeze(-1), running_var.unsqueeze(-1)
        else:
            var, mean = torch.var_mean(a, dim=-1, correction=0, keepdim=True)
            if stats is not None:
                stats.append((mean.detach().squeeze(-1), var.detach().squeeze(-1)))
        scale = torch.rsqrt(var + bn.eps) * bn_weight.unsqueeze(-1)
        return (a - mean) * scale + bn_bias.unsqueeze(-1)

    def forward(
        self, tensors: StackedTensors, x: torch.Tensor, bn_mode: str = "running", stats: BatchStats | None = None
    ) -> torch.Tensor:
        """Logits ``[K, C, n]`` of one batch ``x`` ``[n, ...]`` shared by every copy.

        ``x`` is sample-major, as a net takes it; the logits are ``[C, n]`` when nothing that reaches them is stacked.
        ``bn_mode`` is one of ``BN_MODES`` or "folded" (``tensors`` from :meth:`fold`).
        """
        if bn_mode not in (*BN_MODES, "folded"):
            raise ConfigError(f"bn_mode must be one of {', '.join(BN_MODES)} or folded, got {bn_mode!r}")
        z = self.local_field(tensors, 1, x.flatten(1).T, bn_mode, stats)
        return self._forward_from_z(tensors, z, bn_mode, stats)

    def forward_from(
        self, tensors: StackedTensors, a: torch.Tensor, bn_mode: str = "running", stats: BatchStats | None = None
    ) -> torch.Tensor:
        """The forward pass from layer 1's local field a^1 on (the input joins no skip, so a^1 is all it needs).

        A population computes a^1 itself to keep autograd off layer 1's weight gradient.
        """
        return self._forward_from_z(tensors, self.normalize(tensors, 1, a, bn_mode, stats), bn_mode, stats)

    def _forward_from_z(
        self, tensors: StackedTensors, z: torch.Tensor, bn_mode: str, stats: BatchStats | None
    ) -> torch.Tensor:
        prev2: torch.Tensor | None = None
        _, x = self.blocks[0].join(z, None)
        n_layers = len(self.blocks)
        for l in range(2, n_layers):
            _, out = self.blocks[l - 1].join(self.local_field(tensors, l, x, bn_mode, stats), prev2)
            prev2, x = x, out
        return self.linear(tensors, n_layers, x)


def stacked_copies(module: nn.Module, tensors: StackedTensors) -> int:
    """K, the number of copies ``tensors`` describe (see the module docstring).

    A name the module does not have or a shape that fits neither it nor a stack of it is a ModelError; stacks of
    different numbers of copies, or none, a ConfigError.
    """
    own = dict(module.state_dict(keep_vars=True))
    unknown = sorted(set(tensors) - set(own))
    if unknown:
        raise ModelError(f"stacked tensors name what the module does not have: {unknown[:3]}")
    counts = set()
    for name, value in tensors.items():
        if value.dim() == own[name].dim() + 1 and value.shape[1:] == own[name].shape:
            counts.add(value.shape[0])
        elif value.shape != own[name].shape:
            raise ModelError(f"{name} has shape {tuple(value.shape)}; the module's is {tuple(own[name].shape)}")
    if len(counts) != 1:
        raise ConfigError(f"stacked tensors must stack one number of copies, got {sorted(counts) or 'none'}")
    return counts.pop()


def stacked_forward(module: nn.Module, tensors: StackedTensors, x: torch.Tensor, **kwargs: Any) -> torch.Tensor:
    """Outputs ``[K, n, ...]`` of K copies of ``module`` on one batch ``x`` ``[n, ...]`` shared by all.

    ``tensors`` describes the copies (see the module docstring); ``kwargs`` go to the module's forward (an
    MLP's ``bn_mode``). Any module runs through ``vmap`` over ``functional_call``; an MLP through
    :class:`StackedMLP`, its ``bn_mode`` None following ``module.training`` as ``MLP.forward`` does ("train" and
    "batch" both normalise by the batch: nothing updates the running statistics).
    """
    k = stacked_copies(module, tensors)
    if isinstance(module, MLP):
        bn_mode = kwargs.pop("bn_mode", None) or ("batch" if module.training else "running")
        if kwargs:
            raise ConfigError(f"an MLP's forward takes bn_mode only, got {sorted(kwargs)}")
        logits = StackedMLP(module).forward(tensors, x, bn_mode)
        return logits.expand(k, *logits.shape[-2:]).transpose(1, 2)
    own = dict(module.state_dict(keep_vars=True))
    stacked = {name: v for name, v in tensors.items() if v.dim() == own[name].dim() + 1}
    shared = {name: v for name, v in tensors.items() if name not in stacked}

    def one(copy: dict[str, torch.Tensor]) -> torch.Tensor:
        return torch.func.functional_call(module, (copy, shared), (x,), kwargs)

    return torch.func.vmap(one)(stacked)
