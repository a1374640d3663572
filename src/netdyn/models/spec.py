"""``ModelSpec``: everything that rebuilds an :class:`~netdyn.models.MLP`, as a frozen, JSON-ready record.

A run folder's ``config.json`` holds one under ``"model"``; a process pool or a Ray worker rebuilds the network
from it alone. ``in_features`` and ``num_classes`` may be left None in a spec written by hand: they are taken from
the data when the network is built (``spec.resolve(data)``), and a recorded spec always holds them.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field, fields, replace
from typing import Any, cast

from netdyn import _config
from netdyn.errors import ConfigError
from netdyn.models.activations import ACTIVATIONS

INITS = ("default", "orthogonal", "kaiming", "xavier")
RESIDUALS = ("none", "pre", "post")
#: The architectures a spec builds: netdyn's MLP, or one of the vision families (netdyn.models.vision).
ARCHS = ("mlp", "convnet", "resnet", "vit")
#: ``width`` and ``depth`` of each architecture where a spec leaves them None.
ARCH_DEFAULTS = {"mlp": (256, 3), "convnet": (32, 3), "resnet": (16, 3), "vit": (64, 4)}
#: The fields each vision architecture reads beside width, depth and seed; the MLP reads every field but these.
ARCH_FIELDS = {"convnet": ("batchnorm", "pool"), "resnet": ("blocks",), "vit": ("patch", "heads", "mlp_dim")}
#: The transfer function each vision architecture applies (its spec records it).
ARCH_ACTIVATION = {"convnet": "relu", "resnet": "relu", "vit": "gelu"}
POOLS = ("avg", "max")

def _users(name: str) -> str:
    """`` and convnet`` ...: the vision architectures that read field ``name`` too."""
    return "".join(f" and {arch}" for arch, own in ARCH_FIELDS.items() if name in own)


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def residual_mode(residual: str | bool | None) -> str:
    """The skip mode of a ``residual`` argument: none, pre or post (True is pre; False and None are none)."""
    if residual is True:
        return "pre"
    if residual is False or residual is None:
        return "none"
    if residual not in RESIDUALS:
        raise ConfigError(f"residual must be one of none, pre, post (or a bool), got {residual!r}")
    return residual


@dataclass(frozen=True)
class ModelSpec:
    """The architecture and initialisation of a network. Every field is a flag of ``netdyn train``.

    ``arch`` is netdyn's MLP (every field applies) or a vision family, ConvNet, ResNet or ViT (width, depth and
    seed apply, with the fields of its own: ``pool`` and ``batchnorm``; ``blocks``; ``patch``, ``heads`` and
    ``mlp_dim``). A field that the architecture does not read must keep its default (ConfigError naming it). See
    docs/runs.md#models and docs/any-network.md#models-shipped.
    """

    # width and depth left unset (None) take the architecture's default in __post_init__: a spec always holds them
    width: int | tuple[int, ...] = field(default=cast(int, None))
    """Neurons per hidden layer (one number, or one per hidden layer); a conv net's channels, a ResNet's first
    stage's (w, 2w, 4w, ...), a ViT's residual stream. Default: 256 (mlp), 32 (convnet), 16 (resnet), 64 (vit)."""
    depth: int = field(default=cast(int, None))
    """Number of hidden layers (the paper's n-layer net has depth n - 2); conv blocks, ResNet stages or ViT blocks.
    Default: 3 (4 for vit)."""
    activation: str | tuple[str, ...] = "relu"
    """Transfer function of the hidden layers (one name, or one per hidden layer)."""
    residual: str = "none"
    """Residual pairs: none, pre (the skip joins the local field after batch norm) or post (the output)."""
    batchnorm: bool | tuple[bool, ...] = False
    """Batch norm on every hidden layer (or one flag per hidden layer)."""
    bias: bool = True
    """Biases in every Linear layer."""
    init: str = "default"
    """Initialisation: default (torch's nn.Linear rule), orthogonal, kaiming or xavier."""
    init_scale: float = 1.0
    """Multiply every initial weight and bias (the grokking set-up uses 8)."""
    seed: int | None = None
    """Seed of the initial parameters (None: torch's global generator)."""
    bn_eps: float = 1e-5
    """Batch-norm epsilon."""
    bn_momentum: float = 0.1
    """Batch-norm momentum of the running statistics (PyTorch's 0.1 is the paper's 0.9)."""
    in_features: int | None = None
    """Input dimension (None: the data's)."""
    num_classes: int | None = None
    """Output neurons (None: the data's number of classes)."""
    arch: str = "mlp"
    """Architecture: mlp (netdyn's MLP), convnet, resnet or vit."""
    blocks: int | tuple[int, ...] = 2
    """ResNet: basic blocks per stage (one number, or one per stage)."""
    pool: str = "avg"
    """ConvNet: avg or max pooling (average pooling keeps every L-map tail affine)."""
    patch: int = 7
    """ViT: side of a square patch (it must divide the image)."""
    heads: int = 4
    """ViT: attention heads (they must divide the width)."""
    mlp_dim: int = 128
    """ViT: hidden width of each block's MLP."""
    input_shape: tuple[int, ...] | None = None
    """Shape of one sample fed to a vision model (None: the data's; a recorded spec holds it)."""

    def __post_init__(self) -> None:
        if self.arch not in ARCHS:
            raise ConfigError(f"unknown arch {self.arch!r}; choose one of {', '.join(ARCHS)}")
        default_width, default_depth = ARCH_DEFAULTS[self.arch]
        if self.width is None:
            object.__setattr__(self, "width", default_width)
        if self.depth is None:
            object.__setattr__(self, "depth", default_depth)
        if self.arch != "mlp":
            self._check_vision()
        else:
            self._check_vision_fields_unused()
        object.__setattr__(self, "residual", residual_mode(self.residual))
        if not _is_int(self.depth) or self.depth < 1:
            raise ConfigError(f"depth must be an integer >= 1 (hidden layers), got {self.depth!r}")
        self._check_layers()
        if self.residual != "none" and self.depth < 3:
            raise ConfigError(f"a residual network needs depth >= 3 (skips join layers l-2 and l), got {self.depth}")
        if self.init not in INITS:
            raise ConfigError(f"unknown init {self.init!r}; choose one of {', '.join(INITS)}")
        self._check_numbers()
        self._check_sizes()

    def _check_vision(self) -> None:
        """A vision architecture: one width, its own fields valid, the MLP's fields at their defaults."""
        activation = ARCH_ACTIVATION[self.arch]
        if self.activation == "relu":
            object.__setattr__(self, "activation", activation)  # the spec records the transfer function it applies
        if self.arch == "resnet":
            object.__setattr__(self, "batchnorm", True)  # every basic block has batch norm
        for name in ("blocks", "input_shape"):
            if isinstance(getattr(self, name), list):
                object.__setattr__(self, name, tuple(getattr(self, name)))
        self._check_mlp_fields_unused()
        if self.activation != activation:
            raise ConfigError(f"arch {self.arch} applies {activation}; activation {self.activation!r} applies to "
                              "arch mlp only")
        if not isinstance(self.width, int) or isinstance(self.width, bool) or self.width < 1:
            raise ConfigError(f"width must be a whole number >= 1 for arch {self.arch}, got {self.width!r}")
        if not isinstance(self.batchnorm, bool) or (self.arch == "vit" and self.batchnorm):
            raise ConfigError(f"batchnorm takes true or false (a ViT has none), got {self.batchnorm!r}")
        if self.pool not in POOLS:
            raise ConfigError(f"pool must be one of {', '.join(POOLS)}, got {self.pool!r}")
        self._check_vision_sizes()

    def _check_mlp_fields_unused(self) -> None:
        """Every field that the vision architecture does not read holds its default."""
        reads = {*ARCH_FIELDS[self.arch], "arch", "width", "depth", "seed", "in_features", "num_classes",
                 "input_shape", "activation", "batchnorm"}
        for f in fields(self):
            if f.name not in reads and getattr(self, f.name) != f.default:
                raise ConfigError(f"{f.name} applies to arch mlp{_users(f.name)}, not {self.arch}; leave it at "
                                  f"{_config.flag_text(f.default)}")

    def _check_vision_fields_unused(self) -> None:
        """An MLP's spec leaves the vision architectures' own fields at their defaults."""
        defaults = {f.name: f.default for f in fields(self)}
        for arch, own in ARCH_FIELDS.items():
            for name in own:
                if name != "batchnorm" and getattr(self, name) != defaults[name]:
                    raise ConfigError(f"{name} applies to arch {arch}, not mlp; leave it at "
                                      f"{_config.flag_text(defaults[name])} or pass arch {arch}")
        if self.input_shape is not None:
            raise ConfigError("input_shape applies to the vision architectures; an MLP takes flattened samples")

    def _check_vision_sizes(self) -> None:
        """The sizes a vision architecture reads that the data do not decide."""
        blocks = self.blocks if isinstance(self.blocks, tuple) else (self.blocks,)
        if isinstance(self.blocks, tuple) and len(self.blocks) != self.depth:
            raise ConfigError(f"blocks has {len(self.blocks)} entries but the ResNet has {self.depth} stages (depth)")
        for name, values in (("blocks", blocks), ("patch", (self.patch,)), ("heads", (self.heads,)),
                             ("mlp_dim", (self.mlp_dim,))):
            if not all(_is_int(v) and v >= 1 for v in values):
                raise ConfigError(f"{name} must be a whole number >= 1, got {getattr(self, name)!r}")
        if self.arch == "vit" and isinstance(self.width, int) and self.width % self.heads:
            raise ConfigError(f"{self.heads} heads do not divide the width {self.width} of the ViT's residual stream")

    @property
    def vision_sizes(self) -> dict[str, Any]:
        """The keyword arguments of the vision architecture's class (``netdyn.models.vision.build``'s sizes)."""
        if self.arch == "convnet":
            return {"depth": self.depth, "width": self.width, "batchnorm": self.batchnorm, "pool": self.pool}
        if self.arch == "resnet":
            blocks = self.blocks if isinstance(self.blocks, tuple) else (self.blocks,) * self.depth
            return {"blocks": list(blocks), "width": self.width}
        if self.arch == "vit":
            return {"patch": self.patch, "dim": self.width, "depth": self.depth, "heads": self.heads,
                    "mlp_dim": self.mlp_dim}
        raise ConfigError("an MLP's spec has no vision sizes")

    def _check_layers(self) -> None:
        """The per-layer fields: one value or one per hidden layer (a list becomes a tuple), each valid."""
        for name in ("width", "activation", "batchnorm"):
            value = getattr(self, name)
            if isinstance(value, list):
                object.__setattr__(self, name, value := tuple(value))
            if isinstance(value, tuple) and len(value) != self.depth:
                raise ConfigError(f"{name} has {len(value)} entries but the network has {self.depth} hidden layers")
        if not all(_is_int(w) and w >= 1 for w in self.widths):
            raise ConfigError(f"width must be a whole number >= 1 (or one per hidden layer), got {self.width!r}")
        for name in self.activations:
            if name not in ACTIVATIONS:
                raise ConfigError(f"unknown activation {name!r}; choose one of {', '.join(sorted(ACTIVATIONS))}")
        if not all(isinstance(b, bool) for b in self.batchnorms) or not isinstance(self.bias, bool):
            raise ConfigError(f"batchnorm and bias take true or false, got {self.batchnorm!r} and {self.bias!r}")

    def _check_numbers(self) -> None:
        for name in ("init_scale", "bn_momentum", "bn_eps"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
                raise ConfigError(f"{name} must be a finite number, got {value!r}")
        if self.init_scale <= 0:
            raise ConfigError(f"init_scale must be a finite number > 0, got {self.init_scale!r}")
        if self.bn_eps <= 0 or not 0 <= self.bn_momentum <= 1:
            raise ConfigError(
                f"bn_eps must be > 0 and bn_momentum in [0, 1], got {self.bn_eps!r} and {self.bn_momentum!r}"
            )

    def _check_sizes(self) -> None:
        for name in ("in_features", "num_classes"):
            value = getattr(self, name)
            if value is not None and (not _is_int(value) or value < 1):
                raise ConfigError(f"{name} must be a whole number >= 1, got {value!r}")
        if self.num_classes is not None and self.num_classes < 2:
            raise ConfigError(f"a classifier needs num_classes >= 2, got {self.num_classes}")
        if self.seed is not None and (not _is_int(self.seed) or self.seed < 0):
            raise ConfigError(f"seed must be a non-negative integer or None, got {self.seed!r}")

    @property
    def widths(self) -> tuple[int, ...]:
        """Width of each hidden layer."""
        return self.width if isinstance(self.width, tuple) else (self.width,) * self.depth

    @property
    def activations(self) -> tuple[str, ...]:
        """Transfer function of each hidden layer."""
        return self.activation if isinstance(self.activation, tuple) else (self.activation,) * self.depth

    @property
    def batchnorms(self) -> tuple[bool, ...]:
        """Whether each hidden layer has batch norm."""
        return self.batchnorm if isinstance(self.batchnorm, tuple) else (self.batchnorm,) * self.depth

    @property
    def resolved(self) -> bool:
        """Whether ``in_features`` and ``num_classes`` are both set (see :meth:`resolve`)."""
        return self.in_features is not None and self.num_classes is not None

    def resolve(self, data: Any) -> ModelSpec:
        """This spec with ``in_features`` and ``num_classes`` taken from ``data`` where they are None.

        A vision model's ``input_shape`` too: the data's, with a channel in front of an image's (H, W).
        """
        shape = self.input_shape
        if self.arch != "mlp" and shape is None:
            own = getattr(data, "input_shape", None) or tuple(data.x_train.shape[1:])
            shape = (1, *own) if len(own) == 2 else tuple(own)
        return replace(
            self,
            in_features=self.in_features if self.in_features is not None else int(data.x_train.flatten(1).shape[1]),
            num_classes=self.num_classes if self.num_classes is not None else int(data.num_classes),
            input_shape=None if shape is None else tuple(int(s) for s in shape),
        )

    def to_dict(self) -> dict[str, Any]:
        """The spec as plain JSON types (tuples become lists)."""
        return _config.to_dict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ModelSpec:
        """The spec from :meth:`to_dict`, or from the model dict of run folders written before specs existed.

        Such a dict holds ``MLP``'s keyword arguments: residual as a bool, no seed.
        """
        return _config.from_dict(cls, values, "model")
