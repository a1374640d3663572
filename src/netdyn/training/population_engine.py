"""The vectorised engine behind ``train_population`` (see docs/runs.md#training): P networks of one architecture trained
as one.

Each parameter of the shared architecture is one leaf tensor ``[P, *shape]`` stacking the members' copies (in the
order of ``net.parameters()``, the order :func:`~netdyn.training.loop.make_optimizer` numbers them), and so is
each piece of optimiser state. A step runs the stacked forward pass of :class:`~netdyn.models.stacked.StackedMLP`
(the one stacked forward of the models; batched matmuls over one minibatch per member), one backward pass for the
summed member losses (members share no computation, so each row of a gradient is that member's own gradient), and
one optimiser update for the whole population: on the CPU one call of torch's fused Adam / AdamW kernel (per group
of members sharing lr, weight decay and step count), elsewhere a handful of in-place operations per parameter,
instead of P optimisers' loops.

Activations are kept feature-major, ``[P, features, B]`` (a^T = W x^T + b): every weight gradient then comes out
of the backward pass contiguous in the weight's own layout, with no transposing copy, and cross-entropy takes the
logits as they are. The stacked forward returns the batch-norm statistics as plain values (to be masked per
member), and the engine forms layer 1's local field itself so that layer 1's weight gradient lands in a reused
buffer. Its forward and backward pass take the time of ``torch.func.vmap`` over ``functional_call`` within 2% (8
members of 784-200-200-10, 2 CPU cores; ``benchmarks/bench_stacked.py``), and vmap would leave the masked
running-statistics update and the reused buffer to be done around it; ``benchmarks/bench_population.py`` times
the engine.

Divergence is handled per member, on the device: a member whose loss is not finite is masked from that step on.
Masking uses no ``torch.where`` on the big tensors (slow on CPU, and it needs temporaries): the masked member's
gradient row is zeroed and its per-row coefficients (learning rate, decay, moment weights) become those of an
identity update, so its parameters and optimiser state keep their last finite values exactly.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch.optim.adam import adam as _functional_adam

from netdyn._device import resolve_device
from netdyn.errors import ConfigError, ModelError
from netdyn.models import MLP, ModelSpec
from netdyn.models.stacked import BatchStats, StackedMLP
from netdyn.training.config import TrainConfig, steps_per_epoch
from netdyn.training.core import minibatch
from netdyn.training.loop import EVAL_CHUNK, epoch_permutation, make_optimizer

#: ModelSpec fields members may differ in: they change only the initial weights.
_FREE_ARCH_FIELDS = ("seed", "init", "init_scale")
#: TrainConfig fields every member must share (lr, weight_decay, momentum and seed may differ).
_SHARED_CONFIG_FIELDS = ("optimizer", "batch_size", "loss", "dtype")


def _per_sample_loss(logits: torch.Tensor, labels: torch.Tensor, kind: str) -> torch.Tensor:
    """Per-sample losses ``[P, B]`` of feature-major logits ``[P, C, B]``: the terms that
    :func:`~netdyn.training.loop.compute_loss` averages (cross-entropy, or squared error summed over classes
    against one-hot targets)."""
    if kind == "ce":
        return F.cross_entropy(logits, labels, reduction="none")
    target = F.one_hot(labels, logits.shape[1]).to(logits.dtype).transpose(1, 2)
    return ((logits - target) ** 2).sum(1)


def _scalar_dtype() -> torch.dtype:
    """The dtype torch.optim gives Adam's ``step`` tensor (float32 unless the default dtype is float64)."""
    return torch.float64 if torch.get_default_dtype() == torch.float64 else torch.float32


def _differing(values: Sequence[Any]) -> tuple[int, Any] | None:
    """(index, value) of the first entry that differs from entry 0, or None when all agree."""
    for i, value in enumerate(values):
        if value != values[0]:
            return i, value
    return None


def _rows(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Per-member values ``[P]`` viewed to broadcast over a stacked tensor ``[P, ...]``."""
    return values.view(-1, *([1] * (like.dim() - 1)))


class PopulationEngine:
    """Trains P :class:`~netdyn.models.MLP` members of one architecture at once, each with its own config.

    Members may differ in their initial weights (seed, ``init``, ``init_scale``), ``lr``, ``weight_decay``,
    ``momentum`` and ``seed`` (the minibatch order); they must share the architecture, the optimiser kind,
    the batch size, the number of steps, the loss, the dtype and the device, or :class:`ConfigError` names
    the field that differs. ``x_train`` and ``y_train`` are already on the training device, in its dtype.

    Like a torch module (STYLE's exception), the constructor builds the stacked state from the members; it
    copies them, so the nets are left untouched until :meth:`write_back`. ``start_step`` is the global step
    the whole population resumes from (members are then restored one by one with :meth:`load_member`).
    Each step follows :func:`~netdyn.training.loop.train` exactly: the same ``(seed, epoch)`` permutations
    and slicing, the same loss, and torch.optim's SGD / Adam / AdamW arithmetic.
    """

    def __init__(
        self,
        nets: Sequence[MLP],
        configs: Sequence[TrainConfig],
        x_train: torch.Tensor,
        y_train: torch.Tensor,
        start_step: int = 0,
    ) -> None:
        x_train = x_train.flatten(1)
        _validate(nets, configs, x_train, y_train)
        template = nets[0]
        self.size = len(nets)
        self.device, self.dtype = x_train.device, x_train.dtype
        self.x_train, self.y_train = x_train, y_train
        self.configs = tuple(configs)
        first = configs[0]
        self.optimizer, self.loss = first.optimizer, first.loss
        self.n_train = x_train.shape[0]
        self.batch_size = min(first.batch_size, self.n_train)
        self.steps_per_epoch = steps_per_epoch(self.n_train, self.batch_size)
        self.total_steps = first.total_steps(self.n_train)
        self.steps_done = int(start_step)

        self._keys = list(template.state_dict().keys())
        self._names = [name for name, _ in template.named_parameters()]
        self._net = StackedMLP(template)
        self._first_bias = template.block(1).linear.bias is not None
        self._bn_prefixes = [f"blocks.{k}.bn." for k, block in enumerate(template.layer_blocks) if block.bn is not None]
        self._bn_momentum = template.spec.bn_momentum
        self._groups = [
            make_optimizer(net, cfg).state_dict()["param_groups"] for net, cfg in zip(nets, configs, strict=True)
        ]

        with torch.no_grad():
            members = [list(net.parameters()) for net in nets]
            self._params = [
                torch.stack([p[j].detach().to(device=self.device, dtype=self.dtype) for p in members]).requires_grad_()
                for j in range(len(self._names))
            ]
            self._stats: dict[str, torch.Tensor] = {}
            for name, buf in template.named_buffers():
                stack = torch.stack([dict(net.named_buffers())[name].detach().to(self.device) for net in nets])
                self._stats[name] = stack.to(self.dtype) if buf.is_floating_point() else stack
        #: Every member's parameters and buffers by state-dict name, stacked: what the forward pass reads. The
        #: tensors are updated in place, so this mapping stays valid.
        self._tensors: dict[str, torch.Tensor] = {**dict(zip(self._names, self._params, strict=True)), **self._stats}

        def column(values: list[float]) -> torch.Tensor:
            # float64, as torch.optim's Python-float hyperparameters: each step's coefficients are formed in double
            # and rounded to the parameters' dtype once, before they meet the big tensors
            return torch.tensor(values, dtype=torch.float64, device=self.device)

        self._lr = column([c.lr for c in configs])
        self._weight_decay = column([c.weight_decay for c in configs])
        self._momentum = column([c.momentum for c in configs])
        self._any_decay = any(c.weight_decay != 0 for c in configs)
        #: Adam / AdamW through torch's fused kernel (:meth:`_fused_adam_step`); on the CPU only, where grouping
        #: members by their hyperparameters needs no synchronising host read. Both paths are tested on the CPU.
        self.fused_optimizer = self.device.type == "cpu"

        def zeros() -> list[torch.Tensor]:
            return [torch.zeros_like(p, requires_grad=False) for p in self._params]

        if self.optimizer == "sgd":
            self._buf = zeros()
            self._started = torch.zeros(self.size, dtype=torch.bool, device=self.device)
        else:
            group = self._groups[0][0]  # betas and eps: make_optimizer's, the same for every member
            self._betas, self._eps = group["betas"], group["eps"]
            self._exp_avg, self._exp_avg_sq = zeros(), zeros()
            self._adam_steps = torch.zeros(self.size, dtype=torch.float64, device=self.device)
        self._counter = torch.full((), self.steps_done, dtype=torch.long, device=self.device)
        self._first_bad = torch.full((self.size,), -1, dtype=torch.long, device=self.device)
        self._perms: tuple[int, torch.Tensor] | None = None
        self._batches: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        self._input_grad = torch.empty_like(self._params[0], requires_grad=False)

    # ------------------------------------------------------------------ training
    def batch_indices(self, step: int) -> torch.Tensor:
        """Minibatch indices ``[P, B]`` of global step ``step`` (0-based), one row per member, sliced from each
        member's ``epoch_permutation(seed, epoch)`` exactly as :func:`~netdyn.training.loop.train` slices it:
        the epoch's last batch takes the remainder, so B may differ at that step (for all members alike)."""
        epoch, rows = minibatch(step, self.steps_per_epoch, self.batch_size, self.n_train)
        if self._perms is None or self._perms[0] != epoch:
            perms = [epoch_permutation(c.seed, epoch, self.n_train, self.device) for c in self.configs]
            self._perms = (epoch, torch.stack(perms))
        return self._perms[1][:, rows]

    def run(self, n_steps: int | None = None) -> None:
        """Take ``n_steps`` steps (default: up to ``total_steps``) from ``steps_done`` on, on the members' own
        minibatch orders. No host synchronisation: read divergence with :meth:`diverged_steps`."""
        stop = self.total_steps if n_steps is None else self.steps_done + n_steps
        while self.steps_done < stop:
            self.step(self.batch_indices(self.steps_done))

    def step(self, idx: torch.Tensor) -> torch.Tensor:
        """One optimiser step of every member on its minibatch ``x_train[idx[i]]`` (``idx``: ``[P, B]`` long).

        Returns the members' losses (``[P]``, on the device, no host read). A member whose loss is not finite
        is recorded (its first bad step, 1-based like ``StepFn.first_bad``) and masked from then on: its
        parameters, batch-norm statistics and optimiser state keep their last finite values.
        """
        if idx.dim() != 2 or idx.shape[0] != self.size:
            raise ConfigError(f"step takes [P={self.size}, B] minibatch indices, got shape {tuple(idx.shape)}")
        losses, stats, grads = self._gradients(*self._gather(idx))
        with torch.no_grad():
            self._counter.add_(1)
            newly_bad = ~torch.isfinite(losses) & (self._first_bad < 0)
            self._first_bad.copy_(torch.where(newly_bad, self._counter, self._first_bad))
            active = self._first_bad < 0
            self._update_running_stats(stats, idx.shape[1], active)
            # A diverged member's gradient may hold NaN, which no coefficient cancels: zero its rows. On the CPU
            # a host read is free (every op is synchronous), so that pass is skipped while all members train.
            if self.device.type != "cpu" or not bool(active.all()):
                for grad in grads:
                    grad.masked_fill_(_rows(~active, grad), 0)
            if self.optimizer == "sgd":
                self._sgd_step(grads, active)
            else:
                self._adam_step(grads, active)
        self.steps_done += 1
        return losses

    def _gradients(
        self, x: torch.Tensor, labels: torch.Tensor
    ) -> tuple[torch.Tensor, list[tuple[torch.Tensor, torch.Tensor]], list[torch.Tensor]]:
        """The members' losses ``[P]``, batch-norm statistics and gradients (one per stacked parameter) on the
        minibatches ``x`` ``[P, B, d]``.

        Autograd runs from layer 1's a^1 on; layer 1's gradients are formed by hand from dL/da^1, as autograd
        would form them, but with the weight's (P x width x d, the largest tensor of a step) written into a
        buffer kept across steps (see :meth:`_gather`).
        """
        n_first = 2 if self._first_bias else 1
        stats: BatchStats = []
        with torch.no_grad():
            a = self._net.linear(self._tensors, 1, x.transpose(1, 2))
        with torch.enable_grad():
            logits = self._net.forward_from(self._tensors, a.requires_grad_(), "train", stats)
            losses = _per_sample_loss(logits, labels, self.loss).mean(1)
            grad_a, *grads = torch.autograd.grad(losses.sum(), [a, *self._params[n_first:]])
        with torch.no_grad():
            first_grads = [torch.bmm(grad_a, x, out=self._input_grad)]
            if self._first_bias:
                first_grads.append(grad_a.sum(2))
        return losses.detach(), stats, first_grads + grads

    def _gather(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The minibatches ``[P, B, d]`` and their labels ``[P, B]``, gathered into buffers kept across steps.

        At P x B x d the minibatch is among the largest tensors of a step; allocated afresh each step, its pages
        are faulted in anew each time, which on CPU costs more than the copy itself.
        """
        batch = idx.shape[1]
        if batch not in self._batches:
            self._batches[batch] = (
                torch.empty(self.size * batch, self.x_train.shape[1], dtype=self.dtype, device=self.device),
                torch.empty(self.size * batch, dtype=self.y_train.dtype, device=self.device),
            )
        x, labels = self._batches[batch]
        flat = idx.reshape(-1)  # index_select: several times faster than advanced indexing on CPU
        torch.index_select(self.x_train, 0, flat, out=x)
        torch.index_select(self.y_train, 0, flat, out=labels)
        return x.view(self.size, batch, -1), labels.view(self.size, batch)

    def _update_running_stats(
        self, stats: list[tuple[torch.Tensor, torch.Tensor]], batch: int, active: torch.Tensor
    ) -> None:
        """BatchNorm1d's training-mode update, per member: running_var takes the unbiased batch variance."""
        m = self._bn_momentum
        keep = active.view(-1, 1)
        for p, (mean, var) in zip(self._bn_prefixes, stats, strict=True):
            running_mean, running_var = self._stats[p + "running_mean"], self._stats[p + "running_var"]
            # small [P, C] tensors: torch.where is cheap here and ignores a diverged member's NaN statistics
            running_mean.copy_(torch.where(keep, m * mean + (1 - m) * running_mean, running_mean))
            unbiased = var * (batch / (batch - 1))
            running_var.copy_(torch.where(keep, m * unbiased + (1 - m) * running_var, running_var))
            self._stats[p + "num_batches_tracked"].add_(active.long())

    def _sgd_step(self, grads: Sequence[torch.Tensor], active: torch.Tensor) -> None:
        """torch.optim.SGD (dampening 0, no Nesterov): L2 decay into the gradient, a momentum buffer that
        starts as the first gradient. A masked row sees a zero gradient, momentum 1 and learning rate 0."""
        on = active.double()
        decay = (self._weight_decay * on).to(self.dtype)
        keep = torch.where(active, torch.where(self._started, self._momentum, 0.0), 1.0).to(self.dtype)
        step = (-self._lr * on).to(self.dtype)
        for param, grad, buf in zip(self._params, grads, self._buf, strict=True):
            if self._any_decay:
                grad.addcmul_(param, _rows(decay, param))
            buf.mul_(_rows(keep, buf)).add_(grad)
            param.data.addcmul_(buf, _rows(step, param))
        self._started |= active

    def _adam_step(self, grads: Sequence[torch.Tensor], active: torch.Tensor) -> None:
        """torch.optim.Adam / AdamW (single-tensor arithmetic): bias-corrected moments, eps added after the
        square root of the corrected second moment; AdamW shrinks the parameters by 1 - lr * wd first, Adam
        adds wd * param to the gradient. A masked row gets moment weights of identity and an update of 0."""
        if self.fused_optimizer:
            self._fused_adam_step(grads, active)
            return
        beta1, beta2 = self._betas
        on = active.double()
        steps = self._adam_steps.add_(on)
        started = steps > 0  # a member masked at its first step has no bias correction to divide by
        bias_correction1 = torch.where(started, 1 - beta1**steps, 1.0)
        bias_correction2 = torch.where(started, 1 - beta2**steps, 1.0)
        step_size = self._lr / bias_correction1
        # p -= step_size * m / (sqrt(v) / sqrt(bc2) + eps), written p -= m / (sqrt(v) * scale + shift): one addcmul
        # scales and shifts the root, and a masked row's (scale 0, shift inf) makes its update exactly 0
        scale = torch.where(active, 1 / (step_size * bias_correction2.sqrt()), 0.0).to(self.dtype)
        shift = torch.where(active, self._eps / step_size, math.inf).to(self.dtype)
        decay = (self._weight_decay * on).to(self.dtype)
        shrink = (1 - self._lr * self._weight_decay * on).to(self.dtype)
        avg_weight = ((1 - beta1) * on).to(self.dtype)
        sq_keep = (1 - (1 - beta2) * on).to(self.dtype)
        for leaf, grad, exp_avg, exp_avg_sq in zip(self._params, grads, self._exp_avg, self._exp_avg_sq, strict=True):
            param = leaf.data
            if self._any_decay and self.optimizer == "adamw":
                param.mul_(_rows(shrink, param))
            elif self._any_decay:
                grad.addcmul_(param, _rows(decay, param))
            exp_avg.lerp_(grad, _rows(avg_weight, param))
            exp_avg_sq.mul_(_rows(sq_keep, param)).addcmul_(grad, grad, value=1 - beta2)
            denom = torch.sqrt(exp_avg_sq, out=grad)  # the gradient is spent: its memory takes the denominator
            torch.addcmul(_rows(shift, param), denom, _rows(scale, param), out=denom)
            param.addcdiv_(exp_avg, denom, value=-1.0)

    def _fused_adam_step(self, grads: Sequence[torch.Tensor], active: torch.Tensor) -> None:
        """The same update through torch's fused Adam / AdamW kernel (one pass over each tensor instead of the
        six of :meth:`_adam_step`; about 5x faster on 8 grokking nets' 1.6M parameters on 2 CPU cores).

        The kernel takes one learning rate, weight decay and step count per call, so the active members are
        grouped by those three: one call for the whole stacks when every member shares them (seed-only
        populations), otherwise one call per group on the members' rows. Masked members are left out. CPU only,
        where reading ``active`` costs no synchronisation.
        """
        steps = self._adam_steps.add_(active.double()).tolist()
        groups: dict[tuple[float, float, float], list[int]] = {}
        for i in torch.nonzero(active).flatten().tolist():
            config = self.configs[i]
            groups.setdefault((config.lr, config.weight_decay, steps[i]), []).append(i)
        beta1, beta2 = self._betas
        stacks = (self._params, grads, self._exp_avg, self._exp_avg_sq)
        for (lr, weight_decay, step), rows in groups.items():
            if len(rows) == self.size:
                params, grad_rows, avgs, avg_sqs = (list(stack) for stack in stacks)
            else:
                params, grad_rows, avgs, avg_sqs = ([t[i] for t in stack for i in rows] for stack in stacks)
            # torch.optim's functional step adds 1 to each step tensor before the kernel reads it
            counts = [torch.tensor(step - 1, dtype=_scalar_dtype()) for _ in params]
            _functional_adam(
                params, grad_rows, avgs, avg_sqs, [], counts, fused=True,
                decoupled_weight_decay=self.optimizer == "adamw", amsgrad=False, beta1=beta1, beta2=beta2,
                lr=lr, weight_decay=weight_decay, eps=self._eps, maximize=False,
            )  # fmt: skip

    # ------------------------------------------------------------------ reading and restoring members
    def diverged_steps(self) -> list[int | None]:
        """Each member's first non-finite step (1-based), None for members still training (one host read)."""
        return [None if s < 0 else int(s) for s in self._first_bad.tolist()]

    def member_state_dict(self, i: int) -> dict[str, torch.Tensor]:
        """Member ``i``'s ``MLP.state_dict()``: the same keys, in the same order, as the members' nets."""
        self._check_member(i)
        params = {name: p[i].detach().clone() for name, p in zip(self._names, self._params, strict=True)}
        return {key: params[key] if key in params else self._stats[key][i].clone() for key in self._keys}

    def member_optimizer_state(self, i: int) -> dict[str, Any]:
        """Member ``i``'s optimiser state in torch.optim's ``state_dict()`` format, as the optimiser that
        :func:`~netdyn.training.loop.make_optimizer` builds for its net and config would hold it after the same
        steps: a checkpoint of a member is interchangeable with one written by ``train``."""
        self._check_member(i)
        state: dict[int, dict[str, torch.Tensor]] = {}
        if self.optimizer == "sgd":
            if bool(self._started[i]) and self.configs[i].momentum != 0:
                state = {j: {"momentum_buffer": buf[i].clone()} for j, buf in enumerate(self._buf)}
        else:
            steps = float(self._adam_steps[i])
            if steps > 0:
                state = {
                    j: {
                        "step": torch.tensor(steps, dtype=_scalar_dtype()),
                        "exp_avg": exp_avg[i].clone(),
                        "exp_avg_sq": exp_avg_sq[i].clone(),
                    }
                    for j, (exp_avg, exp_avg_sq) in enumerate(zip(self._exp_avg, self._exp_avg_sq, strict=True))
                }
        return {"state": state, "param_groups": copy.deepcopy(self._groups[i])}

    def write_back(self, nets: Sequence[MLP]) -> None:
        """Copy every member's state into its net (moved to the training device and dtype, as ``train`` does)."""
        if len(nets) != self.size:
            raise ConfigError(f"write_back takes {self.size} nets, got {len(nets)}")
        for i, net in enumerate(nets):
            net.to(device=self.device, dtype=self.dtype)
            net.load_state_dict(self.member_state_dict(i))

    def load_member(self, i: int, model_state: dict[str, torch.Tensor], optim_state: dict[str, Any] | None) -> None:
        """Restore member ``i`` from a checkpoint in ``train``'s format (``MLP.state_dict()`` and torch.optim's
        ``state_dict()``; None for a fresh optimiser) and clear its divergence flag.

        As in ``train``'s resume, the checkpoint's optimiser hyperparameters must be the member's config;
        a difference raises :class:`ConfigError` naming the field.
        """
        self._check_member(i)
        missing, unexpected = set(self._keys) - set(model_state), set(model_state) - set(self._keys)
        if missing or unexpected:
            raise ModelError(
                f"member {i}'s state dict does not fit the population's architecture: "
                f"missing {sorted(missing)}, unexpected {sorted(unexpected)}"
            )
        optim_state = optim_state or {"state": {}, "param_groups": self._groups[i]}
        self._check_optimizer_state(i, optim_state)
        state = {int(j): entry for j, entry in optim_state["state"].items()}
        with torch.no_grad():
            for name, param in zip(self._names, self._params, strict=True):
                param[i] = model_state[name]
            for name, stack in self._stats.items():
                stack[i] = model_state[name]
            if self.optimizer == "sgd":
                for j, buf in enumerate(self._buf):
                    buf[i] = state[j]["momentum_buffer"] if j in state else 0.0
                self._started[i] = 0 in state
            else:
                for j, (exp_avg, exp_avg_sq) in enumerate(zip(self._exp_avg, self._exp_avg_sq, strict=True)):
                    exp_avg[i] = state[j]["exp_avg"] if j in state else 0.0
                    exp_avg_sq[i] = state[j]["exp_avg_sq"] if j in state else 0.0
                self._adam_steps[i] = float(state[0]["step"]) if 0 in state else 0.0
            self._first_bad[i] = -1

    def _check_optimizer_state(self, i: int, optim_state: dict[str, Any]) -> None:
        groups = optim_state["param_groups"]
        n_params = len(self._names)
        if len(groups) != 1 or len(groups[0]["params"]) != n_params:
            raise ModelError(
                f"member {i}'s optimiser state holds {sum(len(g['params']) for g in groups)} parameters in "
                f"{len(groups)} groups; the population's nets have {n_params} in 1"
            )
        config = self.configs[i]
        expected = {"lr": config.lr, "weight_decay": config.weight_decay}
        if self.optimizer == "sgd":
            expected["momentum"] = config.momentum
        for name, value in expected.items():
            if float(groups[0][name]) != float(value):
                raise ConfigError(
                    f"member {i}'s checkpoint was trained with {name}={groups[0][name]}, its config says {value}"
                )

    def _check_member(self, i: int) -> None:
        if not 0 <= i < self.size:
            raise ConfigError(f"member {i} is out of range 0..{self.size - 1}")

    # ------------------------------------------------------------------ evaluation
    @torch.no_grad()
    def evaluate(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        loss: str | None = None,
        bn_mode: str = "running",
        batch_size: int | None = None,
    ) -> list[tuple[float, float]]:
        """Every member's (mean loss, accuracy) on a split, as :func:`~netdyn.training.loop.evaluate` computes
        it for one net, in one pass over the data for the whole population.

        ``bn_mode="batch"`` normalises each batch of ``batch_size`` (default: the training batch size) by its
        own statistics, "running" uses each member's running statistics. ``loss`` defaults to the training loss.
        """
        if bn_mode not in ("running", "batch"):
            raise ConfigError(f"bn_mode must be running or batch, got {bn_mode!r}")
        loss = loss or self.loss
        x = x.flatten(1).to(device=self.device, dtype=self.dtype)
        y = y.to(self.device)
        n = x.shape[0]
        if n == 0:
            return [(math.nan, math.nan)] * self.size
        # in running mode the chunk only bounds memory: P members' activations take the room of one net's
        chunk = (batch_size or self.batch_size) if bn_mode == "batch" else max(1, EVAL_CHUNK // self.size)
        total_loss = torch.zeros(self.size, dtype=torch.float64, device=self.device)
        correct = torch.zeros(self.size, dtype=torch.long, device=self.device)
        for start in range(0, n, chunk):
            xb, yb = x[start : start + chunk], y[start : start + chunk]
            mode = "batch" if bn_mode == "batch" and xb.shape[0] > 1 else "running"
            logits = self._net.forward(self._tensors, xb, mode)
            labels = yb.expand(self.size, -1)
            total_loss += _per_sample_loss(logits, labels, loss).sum(1).double()
            correct += (logits.argmax(1) == labels).sum(1)
        return [(lo / n, c / n) for lo, c in zip(total_loss.tolist(), correct.tolist(), strict=True)]


def _validate(nets: Sequence[MLP], configs: Sequence[TrainConfig], x: torch.Tensor, y: torch.Tensor) -> None:
    """Raise ConfigError naming the first thing the members do not share, or the data does not fit."""
    if not nets or len(nets) != len(configs):
        raise ConfigError(
            f"a population needs one config per net and at least one net: {len(nets)} nets, {len(configs)} configs"
        )
    _check_shared_architecture(nets)
    _check_shared_configs(configs, x)
    _check_data(nets[0], configs[0], x, y)


def _architecture(spec: ModelSpec) -> dict[str, Any]:
    """What members must share of a spec: every field but the initialisation's, per-layer fields expanded (a
    width of 16 and (16, 16) are one architecture)."""
    fields = {k: v for k, v in spec.to_dict().items() if k not in _FREE_ARCH_FIELDS}
    fields.update(width=spec.widths, activation=spec.activations, batchnorm=spec.batchnorms)
    return fields


def _check_shared_architecture(nets: Sequence[MLP]) -> None:
    archs = [_architecture(net.spec) for net in nets]
    for key in archs[0]:
        if (diff := _differing([a[key] for a in archs])) is not None:
            raise ConfigError(
                f"population members must share the architecture: member {diff[0]} has "
                f"{key}={diff[1]!r}, member 0 has {archs[0][key]!r}"
            )


def _check_shared_configs(configs: Sequence[TrainConfig], x: torch.Tensor) -> None:
    for key in _SHARED_CONFIG_FIELDS:
        if (diff := _differing([getattr(c, key) for c in configs])) is not None:
            raise ConfigError(
                f"population members must share {key}: member {diff[0]} has {diff[1]!r}, "
                f"member 0 has {getattr(configs[0], key)!r}"
            )
    n_train = x.shape[0]
    if (diff := _differing([c.total_steps(n_train) for c in configs])) is not None:
        raise ConfigError(
            f"population members must share the number of steps: member {diff[0]} takes "
            f"{diff[1]}, member 0 takes {configs[0].total_steps(n_train)}"
        )
    for i, config in enumerate(configs):
        dev = resolve_device(config.device)
        if dev.type != x.device.type or (dev.index is not None and dev.index != x.device.index):
            raise ConfigError(
                f"population members must share the device: member {i} has device "
                f"{config.device!r}, the training data is on {x.device}"
            )


def _check_data(net: MLP, config: TrainConfig, x: torch.Tensor, y: torch.Tensor) -> None:
    if str(x.dtype).removeprefix("torch.") != config.dtype:
        raise ConfigError(f"the training data is {x.dtype}; the members' dtype is {config.dtype}")
    in_features = net.widths[0]
    if x.shape[1] != in_features:
        raise ConfigError(f"the training data has {x.shape[1]} features; the members take {in_features}")
    n_train = x.shape[0]
    if n_train < 2 or y.shape != (n_train,):
        raise ConfigError(
            f"the training set needs at least 2 samples and one label each, got {tuple(x.shape)} "
            f"inputs and {tuple(y.shape)} labels"
        )
    if net.has_batchnorm and min(config.batch_size, n_train) < 2:
        raise ConfigError("batch norm cannot normalise minibatches of one sample: use batch_size >= 2")
