"""Synthetic classification sets in any dimension, drawn from a seeded numpy Generator.

Every set has balanced classes (counts differ by at most one) and is drawn train split first, then test, so
the training data do not depend on the test size. ``noise`` is the standard deviation of an isotropic
Gaussian added to every coordinate (after the label is fixed, so it may carry a point across a boundary).
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from netdyn.errors import ConfigError

BLOB_RADIUS = 5.0
"""Distance of the blob centres from the origin, in units of the default noise (cluster std 1)."""

DEFAULTS = {
    "blobs": {"n_features": 16, "n_classes": 4, "noise": 1.0},
    "xor": {"n_features": 2, "n_classes": 2, "noise": 0.05},
    "rings": {"n_features": 2, "n_classes": 3, "noise": 0.1},
}
MIN_FEATURES = {"blobs": 1, "xor": 2, "rings": 1}
DEFAULT_TRAIN_SIZE, DEFAULT_TEST_SIZE = 1000, 500


def resolve_options(name: str, options: dict) -> dict:
    """The generator's options with defaults filled in, validated."""
    resolved = {**DEFAULTS[name], **options}
    for key in ("n_features", "n_classes"):
        value = resolved[key]
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise ConfigError(f"{name}: {key} must be an integer, got {value!r}")
        resolved[key] = int(value)
    if resolved["n_features"] < MIN_FEATURES[name]:
        raise ConfigError(
            f"{name}: n_features must be at least {MIN_FEATURES[name]}, got {resolved['n_features']}"
        )
    if resolved["n_classes"] < 2:
        raise ConfigError(f"{name}: n_classes must be at least 2, got {resolved['n_classes']}")
    noise = resolved["noise"]
    if isinstance(noise, bool) or not isinstance(noise, numbers.Real) or not 0 <= float(noise) < math.inf:
        raise ConfigError(f"{name}: noise must be a finite number >= 0, got {noise!r}")
    resolved["noise"] = float(noise)
    return resolved


def generate(
    name: str, n_train: int, n_test: int, seed: int, options: dict
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x_train, y_train, x_test, y_test) as float64 / int64 arrays; ``options`` as from `resolve_options`."""
    rng = np.random.default_rng(seed)
    d, c, noise = options["n_features"], options["n_classes"], options["noise"]
    sizes = (n_train, n_test)
    if name == "blobs":
        centres = _blob_centres(d, c, rng)
        (x_train, y_train), (x_test, y_test) = (_blobs(n, centres, noise, rng) for n in sizes)
    elif name == "xor":
        (x_train, y_train), (x_test, y_test) = (_xor(n, d, c, noise, rng) for n in sizes)
    else:
        (x_train, y_train), (x_test, y_test) = (_rings(n, d, c, noise, rng) for n in sizes)
    return x_train, y_train, x_test, y_test


def _balanced_counts(n: int, n_classes: int) -> np.ndarray:
    counts = np.full(n_classes, n // n_classes)
    counts[: n % n_classes] += 1
    return counts


def _balanced_labels(n: int, n_classes: int, rng: np.random.Generator) -> np.ndarray:
    return rng.permutation(np.repeat(np.arange(n_classes), _balanced_counts(n, n_classes)))


def _blob_centres(d: int, n_classes: int, rng: np.random.Generator) -> np.ndarray:
    """Centres at distance BLOB_RADIUS from the origin: orthonormal directions when n_classes <= d, else the
    most spread of 64 random draws. The class is then the direction, so the classes stay linearly separable
    (by a classifier without bias) after the samples are scaled to unit norm."""
    if n_classes <= d:
        q, _ = np.linalg.qr(rng.standard_normal((d, n_classes)))
        return BLOB_RADIUS * q.T
    draws = []
    for _ in range(64):
        directions = rng.standard_normal((n_classes, d))
        draws.append(directions / np.linalg.norm(directions, axis=1, keepdims=True))
    return BLOB_RADIUS * max(draws, key=_smallest_distance)  # the first of the most spread


def _smallest_distance(directions: np.ndarray) -> float:
    """The smallest distance between two rows."""
    distances = np.linalg.norm(directions[:, None] - directions[None], axis=-1)
    return float(distances[np.triu_indices(len(directions), 1)].min())


def _blobs(n: int, centres: np.ndarray, noise: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    y = _balanced_labels(n, len(centres), rng)
    x = centres[y] + noise * rng.standard_normal((n, centres.shape[1]))
    return x, y


def _xor_labels(x: np.ndarray, n_classes: int) -> np.ndarray:
    """Class of each point by the angle of its first two coordinates: 2C equal sectors labelled 0..C-1, 0..C-1
    around the circle, so each class holds two opposite sectors. For C = 2 the sectors are the quadrants and
    the label is the parity of the signs of the first two coordinates (XOR)."""
    angle = np.arctan2(x[:, 1], x[:, 0]) % (2 * np.pi)
    sector = np.minimum((angle * n_classes / np.pi).astype(np.int64), 2 * n_classes - 1)
    return sector % n_classes


def _xor(
    n: int, d: int, n_classes: int, noise: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Points uniform in the cube [-1, 1]^d (coordinates beyond the first two carry no information), drawn
    until every class has its balanced count."""
    wanted = _balanced_counts(n, n_classes)
    parts: list[list[np.ndarray]] = [[] for _ in range(n_classes)]
    have = np.zeros(n_classes, dtype=np.int64)
    while (have < wanted).any():
        candidates = rng.uniform(-1.0, 1.0, size=(max(64, 2 * n), d))
        labels = _xor_labels(candidates, n_classes)
        for k in range(n_classes):
            take = candidates[labels == k][: wanted[k] - have[k]]
            parts[k].append(take)
            have[k] += len(take)
    x = np.concatenate([np.concatenate(p) for p in parts])
    y = np.repeat(np.arange(n_classes), wanted)
    order = rng.permutation(n)
    x, y = x[order], y[order]
    return x + noise * rng.standard_normal(x.shape), y


def _rings(
    n: int, d: int, n_classes: int, noise: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Concentric spheres S^{d-1} (circles for d = 2) of radius k + 1 for class k, uniform in direction."""
    y = _balanced_labels(n, n_classes, rng)
    directions = rng.standard_normal((n, d))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    x = (y + 1.0)[:, None] * directions + noise * rng.standard_normal((n, d))
    return x, y
