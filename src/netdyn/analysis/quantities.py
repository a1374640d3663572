"""The one registry of the framework's quantities: ``QUANTITIES``, a mapping from name to :class:`Quantity`.

Each record says what the computation needs to know about a quantity: how to compute its tables from a
network and a sample set, the columns of each table, the numbers it adds to the summary, which columns are
bounded fractions, and whether it is cheap enough for a monitor inside a training loop. ``analyze``,
``analyze_checkpoints``, the monitor and the contract test iterate it. Drawing and words live above this layer,
registered by the same name: figures in ``netdyn.plots.registry``, report sections and explanations in
``netdyn.report.sections``. Adding a quantity is a record here (plus, for figures and a section, one entry in
each of those) and its tests.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from torch import nn

from netdyn.analysis._common import is_own_network
from netdyn.analysis.basins import (
    CPU_SAMPLES,
    CURVE_COLUMNS,
    bn_perturbation,
    curve_sizes,
    nearest_train_distance,
    sample_basin,
    weight_basin,
)
from netdyn.analysis.fields import local_fields
from netdyn.analysis.geometry import class_geometry
from netdyn.analysis.lmap import lmap_accuracy
from netdyn.analysis.modes import CENSUS_COLUMNS, NEURON_COLUMNS, neuron_mode_census, neuron_modes
from netdyn.analysis.network import EFFECTIVE_RULES, effective_layer, network_accuracy
from netdyn.analysis.probes import lp_accuracy
from netdyn.analysis.ranks import rpd_tables
from netdyn.data.samples import SampleSet
from netdyn.models import MLP

if TYPE_CHECKING:  # annotations only: the config validates its quantity names against this registry
    from netdyn.analysis.config import AnalysisConfig

Tables = dict[str, pd.DataFrame]


@dataclass(frozen=True)
class AnalysisContext:
    """What every quantity's computation needs beyond (net, data): the config and choices derived from it."""

    config: AnalysisConfig
    num_classes: int
    layers: list[int] | None
    """Layers 0..L-1 asked for (None: all)."""
    hidden: list[int] | None
    """Hidden layers 1..L-1 asked for (None: all)."""
    classes: tuple[int, ...]
    """Classes of the local-field projection (those of the config that exist)."""
    geometry_class: int
    """The class whose first samples the per-sample class geometry follows (digit 5, as the paper's Fig. 3e-f)."""
    basin_samples: int | None
    eps: list[float] | None
    input_shape: tuple[int, ...] | None = None
    """How one sample is fed to a model that is not netdyn's own MLP (see docs/any-network.md); None for a netdyn
    MLP."""
    cuts: tuple[str, ...] | None = None
    """The cuts a model that is not netdyn's own MLP is read at, by name (None: its default cuts)."""
    own: bool = True
    """Whether the network takes netdyn's own MLP code path (no ``input_shape`` or ``cuts`` passed on)."""

    @classmethod
    def build(
        cls,
        net: nn.Module,
        data: SampleSet,
        config: AnalysisConfig,
        *,
        n_layers: int | None = None,
        input_shape: Sequence[int] | None = None,
        cuts: Sequence[str] | None = None,
    ) -> AnalysisContext:
        """The context of analysing ``net`` on ``data`` under ``config``.

        Layers and classes that the network or the data lack are dropped (with fewer than two classes left, the
        first three classes, or as many as there are, are projected); on the CPU, an unset ``basin_samples`` becomes
        ``CPU_SAMPLES``. A model that is not netdyn's own MLP (or an MLP read at ``cuts``) is read through the
        network adapter: ``n_layers`` is its number of cuts, and ``input_shape`` and ``cuts`` are passed on to every
        quantity that takes them.
        """
        own = is_own_network(net, input_shape, cuts)
        L = net.n_layers if is_own_network(net, input_shape, cuts) else n_layers
        if L is None:
            raise ValueError("AnalysisContext.build needs n_layers for a model that is not a netdyn MLP")
        chosen = tuple(c for c in config.classes if 0 <= c < data.num_classes)
        ref = next(iter(net.parameters()), None)
        on_gpu = ref is not None and ref.device.type == "cuda"
        basin_samples = config.basin_samples
        if basin_samples is None and not on_gpu:
            basin_samples = CPU_SAMPLES
        return cls(
            config=config,
            num_classes=int(data.num_classes),
            layers=None if config.layers is None else [l for l in config.layers if 0 <= l < L],
            hidden=None if config.layers is None else [l for l in config.layers if 1 <= l < L],
            classes=chosen if len(chosen) >= 2 else tuple(range(min(3, data.num_classes))),
            geometry_class=5 if data.num_classes > 5 else 0,
            basin_samples=basin_samples,
            eps=None if config.eps is None else list(config.eps),
            input_shape=None if own or input_shape is None else tuple(int(d) for d in input_shape),
            cuts=None if own or cuts is None else tuple(cuts),
            own=own,
        )

    def reading(self, fn: Callable[..., Any]) -> dict[str, Any]:
        """The keywords that tell ``fn`` how to read a model that is not netdyn's own MLP (see docs/any-network.md).

        ``input_shape`` and ``cuts``, those of them that ``fn`` takes; none for netdyn's own MLP. A function that
        does not take them yet refuses such a model itself (a ModelError), and ``analyze`` records it as skipped.
        """
        if self.own:
            return {}
        accepted = inspect.signature(fn).parameters
        return {k: v for k, v in (("input_shape", self.input_shape), ("cuts", self.cuts)) if k in accepted}


def _nothing(*_: Any) -> dict:
    return {}


def _always(net: nn.Module) -> bool:
    return True


def _has_batchnorm(net: nn.Module) -> bool:
    """Whether any module of the network is a batch norm (netdyn's MLP or any model read by the adapter)."""
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in net.modules())


@dataclass(frozen=True)
class Quantity:
    """One quantity of the framework, as the registry records it."""

    name: str
    """Its name in ``QUANTITIES`` and in ``AnalysisConfig.quantities``."""
    compute: Callable[[Any, SampleSet, AnalysisContext], Tables]
    """(net, data, context) -> its tables, by name (net: a netdyn MLP, or any model with ``context.reading``)."""
    tables: Mapping[str, tuple[str, ...]]
    """Each table it writes and that table's columns (before a ``step`` column is added over checkpoints)."""
    summarize: Callable[[Tables, AnalysisContext], dict[str, Any]] = _nothing
    """(all tables of one analysis, context) -> its numbers in the summary (the ``network`` table is always
    there: ``analyze`` computes the network's own accuracy first)."""
    bounded: tuple[str, ...] = ()
    """Columns holding fractions in [0, 1] (accuracies, interval bounds, shares)."""
    cheap: bool = False
    """Cheap enough to record inside a training loop (the monitor's default set)."""
    default: bool = True
    """Computed by ``analyze`` when no quantity list is given."""
    switch: str | None = None
    """A boolean ``AnalysisConfig`` field that turns it off (the basins' ``basins``)."""
    applies: Callable[[nn.Module], bool] = _always
    """Whether it means anything for a network (batch-norm perturbation needs batch norm); where it does not,
    its tables are empty."""
    model_tables: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """The columns of each table where they differ on a model that is not a netdyn MLP (see docs/any-network.md): the
    adapter's tables add ``cut`` after ``layer`` and what the quantity says of that model (``tail``, ``features``,
    ``reason``, ...). A table not named here has ``tables``' columns on every model."""

    def columns(self, table: str, own: bool = True) -> tuple[str, ...]:
        """The columns of ``table`` on netdyn's own MLP (``own``) or on any other model read by the adapter."""
        return self.tables[table] if own else self.model_tables.get(table, self.tables[table])


# ------------------------------------------------------------------------------------------------- records
def _adapted(columns: Sequence[str], *extra: str) -> tuple[str, ...]:
    """A table's columns on a model read by the adapter: ``cut`` after ``layer``, then ``extra`` at the end."""
    at = list(columns).index("layer") + 1
    return (*columns[:at], "cut", *columns[at:], *extra)


def _network_summary(t: Tables, ctx: AnalysisContext) -> dict[str, Any]:
    acc = t["network"].set_index("split")["accuracy"].astype(float)
    return {"train_accuracy": float(acc["train"]), "test_accuracy": float(acc["test"])}


def _network_test_accuracy(t: Tables) -> float:
    return float(t["network"].set_index("split")["accuracy"].astype(float)["test"])














def _effective(table: str):
    """Summary ``{table}_effective_{rule}`` for each rule of ``effective_layer`` ("earliest", "from")."""

    def summarize(t: Tables, ctx: AnalysisContext) -> dict[str, Any]:
        accuracy = _network_test_accuracy(t)
        return {f"{table}_effective_{rule}": effective_layer(t[table], accuracy, rule=rule) for rule in EFFECTIVE_RULES}

    return summarize


def _rpd_tables(net: MLP, data: SampleSet, ctx: AnalysisContext) -> Tables:
    c = ctx.config
    curves, summary = rpd_tables(
        net, data, ctx.hidden, bins=c.bins, max_samples=c.max_samples, seed=c.seed, **ctx.reading(rpd_tables)
    )
    return {"rpd": curves, "rpd_summary": summary}


def _rpd_summary(t: Tables, ctx: AnalysisContext) -> dict[str, Any]:
    rs = t["rpd_summary"]
    if rs.empty:
        return {}
    return {"rpd_gradient_first": float(rs["gradient"].iloc[0]), "rpd_gradient_last": float(rs["gradient"].iloc[-1])}





def _modes_tables(net: MLP, data: SampleSet, ctx: AnalysisContext) -> Tables:
    c = ctx.config
    table = neuron_modes(
        net, data, layers=ctx.hidden, max_samples=c.max_samples, seed=c.seed, **ctx.reading(neuron_modes)
    )
    return {"neuron_modes": table, "neuron_mode_census": neuron_mode_census(table)}


def _modes_summary(t: Tables, ctx: AnalysisContext) -> dict[str, Any]:
    census = t["neuron_mode_census"]
    if census.empty:
        return {}
    return {"npm_fraction_first": float(census["npm"].iloc[0]), "npm_fraction_last": float(census["npm"].iloc[-1])}





def _geometry_tables(net: MLP, data: SampleSet, ctx: AnalysisContext) -> Tables:
    return {
        "class_geometry": class_geometry(
            net, data, ctx.layers, **ctx.reading(class_geometry), memory_budget=ctx.config.memory_budget
        ),
        "class_geometry_samples": class_geometry(
            net, data, ctx.layers, per_sample=True, classes=[ctx.geometry_class], limit=100,
            **ctx.reading(class_geometry), memory_budget=ctx.config.memory_budget,
        ),
    }





def _fields_tables(net: MLP, data: SampleSet, ctx: AnalysisContext) -> Tables:
    lf = local_fields(net, data, classes=ctx.classes, **ctx.reading(local_fields))
    return {"local_fields": lf.points, "local_fields_summary": lf.summary}





def _basin_record(kind: str) -> Quantity:
    name = f"{kind}_basin"
    measure = sample_basin if kind == "sample" else weight_basin

    def compute(net: MLP, data: SampleSet, ctx: AnalysisContext) -> Tables:
        c = ctx.config
        curve = measure(
            net, data, eps=ctx.eps, repeats=c.repeats, n_samples=ctx.basin_samples, seed=c.seed,
            **ctx.reading(measure),
        )
        return {name: curve.curve}

    def summarize(t: Tables, ctx: AnalysisContext) -> dict[str, Any]:
        sizes = dict(zip(("size_mid", "size_half"), curve_sizes(t[name], ctx.num_classes), strict=True))
        return {f"{name}_{key}": None if math.isnan(size) else size for key, size in sizes.items()}



    return Quantity(
        name=name,
        compute=compute,
        tables={name: tuple(CURVE_COLUMNS)},
        summarize=summarize,
        bounded=("accuracy", "ci_low", "ci_high"),
        switch="basins",
    )


def _bn_perturbation_tables(net: MLP, data: SampleSet, ctx: AnalysisContext) -> Tables:
    batch = min(ctx.config.bn_batch_size, data.x_train.shape[0])
    return {"bn_perturbation": bn_perturbation(net, data, batch, seed=ctx.config.seed, **ctx.reading(bn_perturbation))}


def _bn_perturbation_summary(t: Tables, ctx: AnalysisContext) -> dict[str, Any]:
    table = t["bn_perturbation"]
    return {} if table.empty else {"bn_perturbation_mean": float(table["eps_equivalent"].mean())}


def _distance_summary(t: Tables, ctx: AnalysisContext) -> dict[str, Any]:
    d = t["nearest_train_distance"]["distance"].to_numpy(float)
    d = d[np.isfinite(d)]
    return {"nearest_train_distance_median": float(np.median(d))} if d.size else {}


_ACCURACY = ("layer", "split", "accuracy")
_RPD = ("layer", "q", "density")
_RPD_SUMMARY = ("layer", "gradient", "top_mass", "order_index")
_GEOMETRY = ("layer", "cos_dist_mean", "cos_dist_q25", "cos_dist_median", "cos_dist_q75", "centre_similarity", "nc1")
_GEOMETRY_SAMPLES = ("layer", "sample", "label", "cos_dist")

_RECORDS = [
    Quantity(
        name="network",
        compute=lambda net, data, ctx: {"network": network_accuracy(net, data, **ctx.reading(network_accuracy))},
        tables={"network": ("split", "accuracy")},
        summarize=_network_summary,
        bounded=("accuracy",),
        cheap=True,
    ),
    Quantity(
        name="lmap",
        compute=lambda net, data, ctx: {"lmap": lmap_accuracy(net, data, ctx.layers, **ctx.reading(lmap_accuracy),
                                                              lmap_variant=ctx.config.lmap_variant)},
        tables={"lmap": _ACCURACY},
        model_tables={"lmap": _adapted(_ACCURACY, "tail", "variant")},
        summarize=_effective("lmap"),
        bounded=("accuracy",),
        cheap=True,
    ),
    Quantity(
        name="lp",
        compute=lambda net, data, ctx: {"lp": lp_accuracy(net, data, ctx.layers, **ctx.reading(lp_accuracy),
                                                          memory_budget=ctx.config.memory_budget)},
        tables={"lp": _ACCURACY},
        model_tables={"lp": _adapted(_ACCURACY, "features")},
        summarize=_effective("lp"),
        bounded=("accuracy",),
        cheap=True,
    ),
    Quantity(
        name="rpd",
        compute=_rpd_tables,
        tables={"rpd": _RPD, "rpd_summary": _RPD_SUMMARY},
        model_tables={"rpd": _adapted(_RPD, "reason"), "rpd_summary": _adapted(_RPD_SUMMARY, "reason")},
        summarize=_rpd_summary,
        bounded=("top_mass",),
        cheap=True,
    ),
    Quantity(
        name="neuron_modes",
        compute=_modes_tables,
        tables={"neuron_modes": tuple(NEURON_COLUMNS), "neuron_mode_census": tuple(CENSUS_COLUMNS)},
        model_tables={"neuron_modes": _adapted(NEURON_COLUMNS, "reason"),
                      "neuron_mode_census": _adapted(CENSUS_COLUMNS, "reason")},
        summarize=_modes_summary,
        bounded=("opm", "npm", "inactive"),
    ),
    Quantity(
        name="class_geometry",
        compute=_geometry_tables,
        tables={"class_geometry": _GEOMETRY, "class_geometry_samples": _GEOMETRY_SAMPLES},
        model_tables={"class_geometry": _adapted(_GEOMETRY, "features"),
                      "class_geometry_samples": _adapted(_GEOMETRY_SAMPLES, "features")},
        cheap=True,
    ),
    _basin_record("sample"),
    _basin_record("weight"),
    Quantity(
        name="local_fields",
        compute=_fields_tables,
        tables={
            "local_fields": ("split", "label", "h_a", "h_b"),
            "local_fields_summary": ("label", "test_in_train_fraction"),
        },
        bounded=("test_in_train_fraction",),
    ),
    Quantity(
        name="bn_perturbation",
        compute=_bn_perturbation_tables,
        tables={"bn_perturbation": ("layer", "eps_equivalent")},
        model_tables={"bn_perturbation": ("layer", "module", "eps_equivalent")},
        summarize=_bn_perturbation_summary,
        applies=_has_batchnorm,
        default=False,
    ),
    Quantity(
        name="nearest_train_distance",
        compute=lambda net, data, ctx: {"nearest_train_distance": nearest_train_distance(data)},
        tables={"nearest_train_distance": ("sample", "label", "distance")},
        summarize=_distance_summary,
        default=False,
    ),
]

#: Every quantity of the framework, by name, in the order ``analyze`` computes them (the network's own accuracy
#: first: the pruning summaries compare with it).
QUANTITIES: dict[str, Quantity] = {record.name: record for record in _RECORDS}


def table_columns() -> dict[str, tuple[str, ...]]:
    """Every table any quantity writes, with its columns."""
    return {name: columns for record in QUANTITIES.values() for name, columns in record.tables.items()}


def selected(config: AnalysisConfig) -> list[Quantity]:
    """The records ``analyze`` computes under ``config``, in registry order (``network`` always)."""
    names = config.quantities
    chosen = []
    for record in QUANTITIES.values():
        wanted = record.default if names is None else (record.name in names or record.name == "network")
        if wanted and (record.switch is None or getattr(config, record.switch)):
            chosen.append(record)
    return chosen


__all__ = ["QUANTITIES", "AnalysisContext", "Quantity", "selected", "table_columns"]

