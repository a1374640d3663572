"""Users' own models for the tests of any network in a run folder: importable by path as ``any_models:NAME``
(tests/conftest.py puts this folder on sys.path, in every pytest-xdist worker too)."""

import torch
from torch import nn

#: How a sample of :func:`image_data` is fed to the models here.
INPUT_SHAPE = (1, 8, 8)


def small_cnn(channels: int = 4, classes: int = 3, pool: str = "avg", batchnorm: bool = False) -> nn.Module:
    """Two conv blocks (conv, optional BN, ReLU, pooling) on a 1x8x8 image, then Linear, ReLU, Linear."""
    pooling = nn.AvgPool2d if pool == "avg" else nn.MaxPool2d

    def block(cin: int) -> list[nn.Module]:
        norm = [nn.BatchNorm2d(channels)] if batchnorm else []
        return [nn.Conv2d(cin, channels, 3, padding=1), *norm, nn.ReLU(), pooling(2)]

    return nn.Sequential(*block(1), *block(channels), nn.Flatten(), nn.Linear(channels * 4, 16), nn.ReLU(),
                         nn.Linear(16, classes))


def conv_net(activation: type[nn.Module] = nn.ReLU, seed: int = 1) -> nn.Sequential:
    """A conv net on 1x8x8 images with batch norm and average pooling (every tail affine when ``activation`` is
    the identity), 3 classes; its initial weights drawn from ``seed``."""
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), activation(), nn.AvgPool2d(2),
        nn.Conv2d(4, 6, 3, padding=1), activation(), nn.AvgPool2d(2),
        nn.Flatten(), nn.Linear(6 * 2 * 2, 5), activation(), nn.Linear(5, 3),
    )


def image_data(n_train: int = 240, n_test: int = 120, classes: int = 3, seed: int = 0):
    """Gaussian classes of 8x8 images (stored flat, ``input_shape`` (1, 8, 8)), unit norm."""
    from netdyn.data import Dataset

    gen = torch.Generator().manual_seed(seed)
    centres = 2.0 * torch.randn(classes, 64, generator=gen)

    def draw(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        y = torch.arange(n) % classes
        x = centres[y] + torch.randn(n, 64, generator=gen)
        return x / x.norm(dim=1, keepdim=True), y

    x_train, y_train = draw(n_train)
    x_test, y_test = draw(n_test)
    return Dataset(x_train, y_train, x_test, y_test, classes, "images", INPUT_SHAPE, {})


def trained(model: nn.Module, data, steps: int = 60, lr: float = 1e-2, seed: int = 0) -> nn.Module:
    """``model`` trained full-batch with Adam for ``steps`` steps, in evaluation mode."""
    torch.manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    x = data.x_train.reshape(-1, *INPUT_SHAPE) if data.x_train.shape[1] == 64 and _is_conv(model) else data.x_train
    for _ in range(steps):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), data.y_train).backward()
        opt.step()
    return model.eval()


def _is_conv(model: nn.Module) -> bool:
    return any(isinstance(m, nn.Conv2d) for m in model.modules())
