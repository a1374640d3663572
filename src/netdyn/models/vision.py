"""The vision families netdyn ships: :class:`ConvNet`, :class:`ResNet` and :class:`ViT` (see docs/any-network.md).

Plain ``nn.Module`` s built from torch layers, read by the network adapter as any user's model is: nothing in the
analysis knows them by name. :func:`build` makes one from an architecture's name and its sizes; it is the
``model_factory`` that a run folder of ``netdyn train --arch convnet|resnet|vit`` records, so that
``load_run(...).model()`` rebuilds the model from config.json alone.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from netdyn.errors import ConfigError
from netdyn.models.spec import POOLS, ModelSpec

#: The architectures :func:`build` makes, beside netdyn's own MLP ("mlp").
VISION_ARCHS = ("convnet", "resnet", "vit")
#: ``"package.module:function"`` of :func:`build`, as config.json records it.
FACTORY = "netdyn.models.vision:build"


def _whole(name: str, value: Any, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise ConfigError(f"{name} must be a whole number >= {low}, got {value!r}")
    return int(value)


def _image(in_channels: Any, image_size: Any) -> tuple[int, int]:
    return _whole("in_channels", in_channels), _whole("image_size", image_size)


# ---------------------------------------------------------------------------------------------------- ConvNet
def pools_of(depth: int, image_size: int, pool_every: int | None) -> int:
    """How many blocks a :class:`ConvNet` pools after: one 2x2 pooling after every ``pool_every``-th block.

    ``pool_every=None`` takes the smallest interval that leaves the last feature map at least 3 pixels wide (every
    block on a 28-pixel image up to depth 3: 28, 14, 7, 3). An interval that pools the image away is a ConfigError.
    """
    if pool_every is None:
        pool_every = next((k for k in range(1, depth + 1) if image_size >> (depth // k) >= 3), depth)
    pool_every = _whole("pool_every", pool_every)
    pools = depth // pool_every
    if image_size >> pools < 1:
        raise ConfigError(
            f"a ConvNet of depth {depth} pooling after every {pool_every} block(s) halves its {image_size}-pixel "
            f"image {pools} times, to nothing; pool less often (pool_every) or use a shallower net"
        )
    return pool_every


class ConvNet(nn.Module):
    """A plain conv net: 3x3 conv, optional batch norm and ReLU blocks with 2x2 pooling, and a linear head.

    The head reads the flattened last feature map.

    Pooling is average pooling by default: it is linear, so with the ReLUs linearised and batch norm held at its
    running statistics every tail is affine and the L-map of every cut can be pruned. Max pooling (``pool="max"``)
    is not elementwise and is kept in a tail, which is then only ``piecewise_linear``: the L-map applies from after
    the last pool.

    Args:
        depth: Number of conv blocks.
        width: Channels of every block.
        batchnorm: Batch norm after each convolution.
        num_classes: Outputs of the head.
        in_channels: Channels of the input image.
        image_size: Height and width of the (square) input image.
        pool_every: One 2x2 pooling after every this many blocks (None: the smallest interval leaving a last
            feature map at least 3 pixels wide).
        pool: ``"avg"`` or ``"max"`` pooling.
    """

    def __init__(
        self,
        depth: int = 3,
        width: int = 32,
        batchnorm: bool = False,
        num_classes: int = 10,
        in_channels: int = 1,
        image_size: int = 28,
        pool_every: int | None = None,
        pool: str = "avg",
    ) -> None:
        super().__init__()
        depth, width = _whole("depth", depth), _whole("width", width)
        num_classes = _whole("num_classes", num_classes, 2)
        in_channels, image_size = _image(in_channels, image_size)
        if pool not in POOLS:
            raise ConfigError(f"pool must be one of {', '.join(POOLS)}, got {pool!r}")
        every = pools_of(depth, image_size, pool_every)
        pooling = nn.AvgPool2d if pool == "avg" else nn.MaxPool2d
        layers: list[nn.Module] = []
        side = image_size
        for block in range(1, depth + 1):
            layers.append(nn.Conv2d(in_channels if block == 1 else width, width, 3, padding=1, bias=not batchnorm))
            if batchnorm:
                layers.append(nn.BatchNorm2d(width))
            layers.append(nn.ReLU())
            if block % every == 0:
                layers.append(pooling(2))
                side //= 2
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(width * side * side, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of images ``x`` [batch, in_channels, image_size, image_size]."""
        return self.head(torch.flatten(self.features(x), 1))


# ----------------------------------------------------------------------------------------------------- ResNet
class BasicBlock(nn.Module):
    """torchvision's basic block, as its source writes it: conv1, bn1, relu, conv2, bn2, the shortcut added in place.

    Args:
        inplanes: Input channels.
        planes: Output channels.
        stride: Stride of the first convolution.
        downsample: The projection shortcut where the shape changes (None: the identity).
    """

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The block's output: relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))."""
        identity = x
        out = self.conv1(x)
        out = self.bn1(out)
        out = self.relu(out)
        out = self.conv2(out)
        out = self.bn2(out)
        if self.downsample is not None:
            identity = self.downsample(x)
        out += identity
        out = self.relu(out)
        return out


class ResNet(nn.Module):
    """The CIFAR family of ResNets: a 3x3 stem, stages of basic blocks of widths w, 2w, 4w, ..., a linear head.

    Each stage after the first halves the resolution; global average pooling comes before the head.

    Args:
        blocks: Basic blocks per stage (one entry per stage; ``(2, 2, 2)`` is ResNet-14 of the CIFAR family).
        width: Channels of the stem and the first stage; stage i has ``width * 2**i``.
        num_classes: Outputs of the head.
        in_channels: Channels of the input image.
    """

    def __init__(
        self, blocks: Sequence[int] = (2, 2, 2), width: int = 16, num_classes: int = 10, in_channels: int = 1
    ) -> None:
        super().__init__()
        blocks = _stages(blocks)
        width, in_channels = _whole("width", width), _whole("in_channels", in_channels)
        num_classes = _whole("num_classes", num_classes, 2)
        self.inplanes = width
        self.conv1 = nn.Conv2d(in_channels, width, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.stages = len(blocks)
        for i, n in enumerate(blocks):  # named layer1, layer2, ... as torchvision names its stages
            self.add_module(f"layer{i + 1}", self._make_layer(width * 2**i, n, 1 if i == 0 else 2))
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(self.inplanes, num_classes)

    def _make_layer(self, planes: int, blocks: int, stride: int) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes:
            downsample = nn.Sequential(nn.Conv2d(self.inplanes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))
        layers = [BasicBlock(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes
        layers += [BasicBlock(planes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of images ``x`` [batch, in_channels, H, W]."""
        x = self.relu(self.bn1(self.conv1(x)))
        for i in range(self.stages):
            x = getattr(self, f"layer{i + 1}")(x)
        return self.fc(torch.flatten(self.avgpool(x), 1))


def _stages(blocks: Any) -> tuple[int, ...]:
    if isinstance(blocks, numbers.Integral) and not isinstance(blocks, bool):
        blocks = (blocks,)
    if not isinstance(blocks, Sequence) or isinstance(blocks, str) or not blocks:
        raise ConfigError(f"blocks takes one whole number >= 1 per stage, got {blocks!r}")
    return tuple(_whole("blocks", n) for n in blocks)


# -------------------------------------------------------------------------------------------------------- ViT
class PatchEmbedding(nn.Module):
    """The ViT's stem: non-overlapping patches projected to ``dim``, a class token in front, position embeddings.

    Args:
        patch: Side of a square patch.
        dim: Width of the residual stream.
        image_size: Side of the square image (a multiple of ``patch``).
        in_channels: Channels of the image.
    """

    def __init__(self, patch: int, dim: int, image_size: int, in_channels: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_channels, dim, patch, stride=patch)
        tokens = (image_size // patch) ** 2 + 1
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embedding = nn.Parameter(torch.randn(1, tokens, dim) * 0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Tokens [batch, 1 + patches, dim] of images ``x``."""
        patches = self.proj(x).flatten(2).transpose(1, 2)
        cls = self.cls_token.expand(patches.shape[0], -1, -1)
        return torch.cat([cls, patches], dim=1) + self.pos_embedding


class SelfAttention(nn.Module):
    """Multi-head self-attention written out as ``softmax(q k^T / sqrt(d_head)) v``.

    The pattern is then a node of the traced graph, which ``lmap_variant="constant"`` holds at its training-set mean.

    Args:
        dim: Width of the residual stream.
        heads: Attention heads (``dim`` a multiple of it).
    """

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads, self.head_dim = heads, dim // heads
        self.q, self.k, self.v = nn.Linear(dim, dim), nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.out = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Attention of the tokens ``x`` [batch, tokens, dim] over each other."""
        b, t, d = x.shape
        q = self.q(x).reshape(b, t, self.heads, self.head_dim).transpose(1, 2)
        k = self.k(x).reshape(b, t, self.heads, self.head_dim).transpose(1, 2)
        v = self.v(x).reshape(b, t, self.heads, self.head_dim).transpose(1, 2)
        pattern = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(self.head_dim), dim=-1)
        return self.out((pattern @ v).transpose(1, 2).reshape(b, t, d))


class TransformerBlock(nn.Module):
    """A pre-LN transformer block: ``x + attn(norm1(x))``, then ``x + mlp(norm2(x))`` with a GELU MLP.

    Args:
        dim: Width of the residual stream.
        heads: Attention heads.
        mlp_dim: Hidden width of the MLP.
    """

    def __init__(self, dim: int, heads: int, mlp_dim: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = SelfAttention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp_dim), nn.GELU(), nn.Linear(mlp_dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The block's output on tokens ``x``."""
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class ViT(nn.Module):
    """A small vision transformer: patch tokens and a class token, pre-LN blocks, a LayerNorm and a linear head.

    Each block holds explicit softmax attention and a GELU MLP; the head reads the class token.

    Its default cuts are the stem (``embed``) and each block (``blocks.0``, ...): the residual stream, where the RPD
    and the neuron modes are not defined (no privileged basis). The MLPs' GELU outputs (``blocks.0.mlp.1``, ...) are
    activation cuts where they are.

    Args:
        patch: Side of a square patch (it must divide ``image_size``).
        dim: Width of the residual stream.
        depth: Number of transformer blocks.
        heads: Attention heads per block (they must divide ``dim``).
        mlp_dim: Hidden width of each block's MLP.
        num_classes: Outputs of the head.
        image_size: Side of the square input image.
        in_channels: Channels of the input image.
    """

    def __init__(
        self,
        patch: int = 7,
        dim: int = 64,
        depth: int = 4,
        heads: int = 4,
        mlp_dim: int = 128,
        num_classes: int = 10,
        image_size: int = 28,
        in_channels: int = 1,
    ) -> None:
        super().__init__()
        patch, dim, depth = _whole("patch", patch), _whole("dim", dim), _whole("depth", depth)
        heads, mlp_dim = _whole("heads", heads), _whole("mlp_dim", mlp_dim)
        num_classes = _whole("num_classes", num_classes, 2)
        in_channels, image_size = _image(in_channels, image_size)
        if image_size % patch:
            raise ConfigError(f"the patch size {patch} does not divide the {image_size}-pixel image")
        if dim % heads:
            raise ConfigError(f"{heads} heads do not divide the width {dim} of the residual stream")
        self.embed = PatchEmbedding(patch, dim, image_size, in_channels)
        self.blocks = nn.Sequential(*(TransformerBlock(dim, heads, mlp_dim) for _ in range(depth)))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of images ``x`` [batch, in_channels, image_size, image_size]."""
        tokens = self.blocks(self.embed(x))
        return self.head(self.norm(tokens)[:, 0])


# ------------------------------------------------------------------------------------------------------ build
def image_shape(input_shape: Sequence[int]) -> tuple[int, int]:
    """``(channels, side)`` of a sample shape ``(C, H, W)`` or ``(H, W)`` with H = W; ConfigError for any other."""
    shape = tuple(int(s) for s in input_shape)
    if len(shape) == 2:
        shape = (1, *shape)
    if len(shape) != 3 or shape[1] != shape[2] or min(shape) < 1:
        raise ConfigError(
            f"the vision models take square images, samples of shape (channels, side, side) or (side, side); "
            f"these data have samples of shape {shape}"
        )
    return shape[0], shape[1]


def build(arch: str, input_shape: Sequence[int], num_classes: int, seed: int | None = None,
          **sizes: Any) -> nn.Module:  # fmt: skip
    """The ``arch`` model ("convnet", "resnet" or "vit") for samples of ``input_shape`` and ``num_classes`` outputs.

    ``sizes`` are the architecture's keyword arguments (``depth``, ``width``, ``blocks``, ``patch``, ...); ``seed``
    draws the initial weights from a generator of its own (None: torch's global one). It is the ``model_factory``
    that a run folder records, with these arguments as its ``model_args``.

    Args:
        arch: "convnet", "resnet" or "vit".
        input_shape: Shape of one sample, ``(C, H, W)`` or ``(H, W)``.
        num_classes: Outputs of the head.
        seed: Seed of the initial weights (None: torch's global generator).
        **sizes: The architecture's own sizes.

    Returns:
        The model, in training mode.
    """
    channels, side = image_shape(input_shape)
    if arch not in VISION_ARCHS:
        raise ConfigError(f"unknown vision architecture {arch!r}; choose one of {', '.join(VISION_ARCHS)}")
    if seed is None:
        return _make(arch, channels, side, num_classes, sizes)
    with torch.random.fork_rng(devices=[]):  # a seeded model leaves torch's global generator as it was
        torch.manual_seed(int(seed))
        return _make(arch, channels, side, num_classes, sizes)


def _make(arch: str, channels: int, side: int, num_classes: int, sizes: dict[str, Any]) -> nn.Module:
    if arch == "convnet":
        return ConvNet(num_classes=num_classes, in_channels=channels, image_size=side, **sizes)
    if arch == "resnet":
        return ResNet(num_classes=num_classes, in_channels=channels, **sizes)
    return ViT(num_classes=num_classes, image_size=side, in_channels=channels, **sizes)


def spec_model(spec: ModelSpec) -> nn.Module:
    """A freshly initialised network of a resolved ``spec``: netdyn's MLP, or the vision model its ``arch`` names.

    Args:
        spec: A model spec holding its data-decided sizes (``ModelSpec.resolve``).

    Returns:
        The network, in training mode.
    """
    from netdyn.models.mlp import MLP

    if spec.arch == "mlp":
        return MLP.from_spec(spec)
    return build(**factory_args(spec))


def factory_args(spec: ModelSpec) -> dict[str, Any]:
    """:func:`build`'s keyword arguments for a resolved vision ``spec``, as JSON types (config.json's ``model_args``).

    Args:
        spec: A resolved model spec of a vision architecture.

    Returns:
        ``arch``, ``input_shape``, ``num_classes``, ``seed`` and the architecture's sizes.
    """
    if spec.arch == "mlp":
        raise ConfigError("an MLP is rebuilt from its spec, not by the vision models' factory")
    if spec.input_shape is None or spec.num_classes is None:
        raise ConfigError("the model spec needs input_shape and num_classes (see ModelSpec.resolve)")
    return {"arch": spec.arch, "input_shape": list(spec.input_shape), "num_classes": spec.num_classes,
            "seed": spec.seed, **spec.vision_sizes}
