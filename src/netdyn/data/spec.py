"""``DataSpec``: a data set named by what it is, never by where it lies on one machine.

A run folder records one, so that ``netdyn analyze``, a process pool or a Ray worker on another machine rebuilds
the same tensors. The folder holding IDX files is not part of it: it is resolved when the data is loaded, from
``root=`` (``--data-root``), ``$NETDYN_DATA/<name>``, Debian's package or the download cache.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from netdyn import _config
from netdyn.data._dataset import NORMALIZATIONS, Dataset, check_seed, check_size
from netdyn.data.samples import SampleSet
from netdyn.errors import ConfigError

#: Keys of ``Dataset.spec`` that are fields of their own; every other key is a per-data-set option.
_FIELDS = ("name", "train_size", "test_size", "normalize", "seed")


@dataclass(frozen=True)
class DataSpec:
    """Which data set, which subset and which normalisation. Every field is a flag of ``netdyn train``."""

    name: str = "mnist5k"
    """Data set name (see ``netdyn datasets``), an installed package's data set, or a file.npz."""
    train_size: int | None = None
    """Class-stratified training subset size (None: the data set's default)."""
    test_size: int | None = None
    """Class-stratified test subset size (None: the data set's default)."""
    normalize: str = "unit"
    """Sample normalisation: unit (each sample scaled to unit L2 norm), none, or standard (per-feature z-score)."""
    seed: int = 0
    """Seed of subsets, splits and generated data."""
    options: dict[str, Any] = field(default_factory=dict)
    """Per-data-set options (n_features, n_classes and noise of the synthetic sets; mnist5k's test)."""

    def __post_init__(self) -> None:
        from netdyn.data._registry import canonical_name

        object.__setattr__(self, "name", canonical_name(self.name))
        check_size("train_size", self.train_size)
        check_size("test_size", self.test_size)
        check_seed(self.seed)
        if self.normalize not in NORMALIZATIONS:
            raise ConfigError(f"normalize must be one of {', '.join(NORMALIZATIONS)}, got {self.normalize!r}")
        if not isinstance(self.options, dict):
            raise ConfigError(f"options must be a dict, got {self.options!r}")
        object.__setattr__(self, "options", copy.deepcopy(self.options))

    def load(self, root: str | Path | None = None, download: bool = False) -> Dataset:
        """The :class:`~netdyn.data.Dataset` this spec names; ``root`` is where to look for its files."""
        from netdyn.data._registry import load_dataset

        return load_dataset(
            self.name,
            train_size=self.train_size,
            test_size=self.test_size,
            normalize=self.normalize,
            seed=self.seed,
            root=root,
            download=download,
            **copy.deepcopy(self.options),
        )

    def to_dict(self) -> dict[str, Any]:
        """The spec as plain JSON types (tuples become lists)."""
        return _config.to_dict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> DataSpec:
        """The spec from :meth:`to_dict`, or from a ``Dataset.spec`` dict.

        A ``Dataset.spec`` dict's ``root``, a path on the machine that wrote it, is dropped (see
        :func:`legacy_root`).
        """
        values = dict(values or {})
        if "options" in values or not set(values) - {*_FIELDS, "root"}:
            values.pop("root", None)
            return _config.from_dict(cls, values, "data")
        fields = {k: values.pop(k) for k in _FIELDS if k in values}
        values.pop("root", None)
        return cls(**fields, options=values)

    @classmethod
    def of(cls, data: SampleSet) -> DataSpec:
        """The spec of a loaded Dataset (one made by hand, with an empty ``spec``, has none: ConfigError)."""
        spec = getattr(data, "spec", None)
        if not spec:
            raise ConfigError(
                f"data set {getattr(data, 'name', '?')!r} was not made by load_dataset: it has no spec to record"
            )
        return cls.from_dict(spec)


def legacy_root(values: dict[str, Any] | None) -> str | None:
    """The absolute ``root`` recorded by run folders written before DataSpec existed (None when absent)."""
    return (values or {}).get("root")
