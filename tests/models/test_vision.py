"""The vision families netdyn ships (ConvNet, ResNet, ViT): shapes, the adapter's default cuts, their tails, the
RPD and neuron modes of a ViT's residual and GELU cuts, and the sizes that make no network."""

import math

import pytest
import torch

import netdyn
from netdyn import ConfigError, ConvNet, ResNet, ViT
from netdyn.analysis import lmap_accuracy, neuron_modes, rpd_summary
from netdyn.data import Dataset
from netdyn.models.adapter import read_network
from netdyn.models.vision import build

SHAPE = (1, 8, 8)


@pytest.fixture(scope="module")
def images():
    """Three Gaussian classes of 8x8 images, stored flat."""
    gen = torch.Generator().manual_seed(0)
    centres = torch.randn(3, 64, generator=gen)

    def draw(n):
        y = torch.arange(n) % 3
        x = centres[y] + 0.5 * torch.randn(n, 64, generator=gen)
        return x / x.norm(dim=1, keepdim=True), y

    return Dataset(*draw(90), *draw(45), 3, "images", SHAPE, {})


def tiny_vit(**sizes):
    torch.manual_seed(0)
    return ViT(**{"patch": 4, "dim": 8, "depth": 2, "heads": 2, "mlp_dim": 16, "num_classes": 3, "image_size": 8,
                  **sizes}).eval()


def test_the_families_are_public_and_give_logits():
    assert {"ConvNet", "ResNet", "ViT"} <= set(netdyn.__all__)
    x = torch.randn(4, 1, 28, 28)
    assert ConvNet(depth=2, width=4)(x).shape == (4, 10)
    assert ResNet(blocks=(1, 1), width=4)(x).shape == (4, 10)
    assert ViT(dim=8, depth=1, heads=2, mlp_dim=8)(x).shape == (4, 10)
    rgb = ConvNet(depth=2, width=4, in_channels=3, image_size=8, num_classes=5)
    assert rgb(torch.randn(2, 3, 8, 8)).shape == (2, 5)


def test_build_seeds_its_weights_without_touching_the_global_generator():
    torch.manual_seed(5)
    before = torch.random.get_rng_state()
    a = build("resnet", (1, 8, 8), 3, seed=1, blocks=(1,), width=2)
    assert torch.equal(torch.random.get_rng_state(), before)
    b = build("resnet", (8, 8), 3, seed=1, blocks=(1,), width=2)
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values(), strict=True))


def test_default_cuts_follow_each_family():
    # a plain conv net: each ReLU's output, the pooled output where a pool follows (here after blocks 2 and 4)
    conv = ConvNet(depth=4, width=2, image_size=8, pool_every=2)
    assert [c.name for c in read_network(conv, SHAPE).cuts] == ["x", "features.1", "features.4", "features.6",
                                                               "features.9"]
    assert [type(conv.features[int(name.split(".")[1])]).__name__ for name in ("features.4", "features.9")] == [
        "AvgPool2d", "AvgPool2d"]
    # a ResNet: the stem, then every basic block
    resnet = ResNet(blocks=(2, 1), width=2, num_classes=3)
    assert [c.name for c in read_network(resnet, SHAPE).cuts] == ["x", "relu", "layer1.0", "layer1.1", "layer2.0"]
    # a ViT: the stem (patch embedding and tokens), then every block
    assert [c.name for c in read_network(tiny_vit(), SHAPE).cuts] == ["x", "embed.add", "blocks.0", "blocks.1"]


def test_average_pooling_keeps_every_conv_tail_affine_and_max_pooling_does_not(images):
    torch.manual_seed(0)
    avg = lmap_accuracy(ConvNet(depth=2, width=3, image_size=8, num_classes=3).eval(), images)
    assert (avg["tail"] == "affine").all()
    torch.manual_seed(0)
    most = lmap_accuracy(ConvNet(depth=2, width=3, image_size=8, num_classes=3, pool="max").eval(), images)
    kinds = most.drop_duplicates("layer").set_index("layer")["tail"]
    assert list(kinds) == ["piecewise_linear", "piecewise_linear", "affine"]  # affine only after the last pool


def test_vit_tails_are_nonlinear_and_affine_with_the_constant_variant(images):
    model = tiny_vit()
    keep = lmap_accuracy(model, images)
    constant = lmap_accuracy(model, images, lmap_variant="constant")
    assert (keep["tail"] == "nonlinear").all()
    assert (constant["tail"] == "affine").all() and constant["accuracy"].between(0, 1).all()


def test_vit_rpd_and_neuron_modes_are_nan_on_the_residual_stream_and_numbers_at_gelu_cuts(images):
    model = tiny_vit()
    cuts = ["blocks.0", "blocks.0.mlp.1", "blocks.1.mlp.1"]
    summary = rpd_summary(model, images, cuts=cuts).set_index("cut")
    assert summary.loc["blocks.0"]["reason"] and math.isnan(summary.loc["blocks.0"]["gradient"])
    for gelu in cuts[1:]:
        assert summary.loc[gelu]["reason"] == "" and math.isfinite(summary.loc[gelu]["gradient"])
    modes = neuron_modes(model, images, cuts=cuts)
    residual, gelu = modes[modes["cut"] == "blocks.0"], modes[modes["cut"] == "blocks.0.mlp.1"]
    assert (residual["mode"] == "undefined").all() and residual["reason"].str.len().gt(0).all()
    assert len(gelu) == 16 and (gelu["reason"] == "").all() and gelu["order_preservation"].notna().all()


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: ConvNet(depth=2, width=0), "width must be a whole number >= 1, got 0"),
        (lambda: ConvNet(depth=6, width=2, pool_every=1), "halves its 28-pixel image 6 times"),
        (lambda: ConvNet(depth=2, width=2, pool="median"), "pool must be one of avg, max"),
        (lambda: ResNet(blocks=(2, 0)), "blocks must be a whole number >= 1, got 0"),
        (lambda: ResNet(blocks=()), "blocks takes one whole number >= 1 per stage"),
        (lambda: ViT(patch=5), "the patch size 5 does not divide the 28-pixel image"),
        (lambda: ViT(dim=10, heads=4), "4 heads do not divide the width 10"),
        (lambda: build("vit", (1, 28, 14), 10), "square images"),
        (lambda: build("lstm", (1, 28, 28), 10), "unknown vision architecture 'lstm'"),
    ],
)
def test_sizes_that_make_no_network_are_one_config_error(make, message):
    with pytest.raises(ConfigError, match=message) as info:
        make()
    assert "\n" not in str(info.value)
