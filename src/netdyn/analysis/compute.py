"""The framework's quantities for one network, as tables: the computation behind ``netdyn.analyze`` (see
docs/quantities.md#the-analysis-as-a-whole).

``compute_quantities(net, data, config)`` runs the records of ``netdyn.analysis.QUANTITIES`` that ``config``
selects (5.1-5.7 by default; the network's own accuracy always first) and returns their tables and the summary
numbers they give. It places nothing on a device, draws, prints and writes nothing: the orchestration layer
(``netdyn.orchestration.analyze``) prepares the network, shows progress and wraps the result.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
from torch import nn

from netdyn import _io
from netdyn.analysis._common import check_config_fits, is_own_network, model_samples, numerically_guarded, samples_for
from netdyn.analysis.config import AnalysisConfig
from netdyn.analysis.quantities import AnalysisContext, Quantity, Tables, selected
from netdyn.data.samples import DataLike, SampleSet
from netdyn.errors import ModelError
from netdyn.models.adapter import read_network

logger = logging.getLogger(__name__)

#: What a linear-algebra routine raises when it cannot finish on extreme (or non-finite) values.


def compute_quantity(record: Quantity, net: nn.Module, samples: SampleSet, ctx: AnalysisContext) -> Tables:
    """One quantity's tables, a numerical failure inside it turned into one line.

    An eigen-solver or SVD that does not converge on a network's extreme values becomes a one-line
    :class:`ModelError` naming the quantity, not a traceback.
    """
    return numerically_guarded(record.name)(record.compute)(net, samples, ctx)


def compute_or_skip(
    record: Quantity, net: nn.Module, samples: SampleSet, ctx: AnalysisContext
) -> tuple[Tables, str | None]:
    """One quantity's tables, or, where it does not support a model that is not netdyn's own MLP, no tables and
    the reason (its ModelError's line). On netdyn's own MLP every error is raised."""
    try:
        return compute_quantity(record, net, samples, ctx), None
    except ModelError as exc:
        if ctx.own:
            raise
        return {}, str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def read_model(
    net: nn.Module, data: DataLike, input_shape: Sequence[int] | None = None, cuts: Sequence[str] | None = None
) -> tuple[SampleSet, int, tuple[int, ...] | None]:
    """``data`` as a sample set that fits ``net``, its number of layers L, and the shape one sample is fed in.

    A netdyn MLP (without ``input_shape`` or ``cuts``) is read by its own code (shape None); any other model
    through the network adapter (see docs/any-network.md): a model it cannot read, or a cut name that names nothing, is
    one ModelError here, before any quantity runs.
    """
    if is_own_network(net, input_shape, cuts):
        return samples_for(net, data), net.n_layers, None
    samples, shape = model_samples(net, data, input_shape)
    return samples, read_network(net, shape, cuts).n_layers, shape


def compute_quantities(
    net: nn.Module,
    data: DataLike,
    config: AnalysisConfig | None = None,
    on_quantity: Callable[[str], None] | None = None,
    *,
    input_shape: Sequence[int] | None = None,
    cuts: Sequence[str] | None = None,
) -> tuple[dict[str, pd.DataFrame], dict[str, Any]]:
    """The tables of the quantities ``config`` selects on ``net`` (as it is: its device, dtype and mode) and
    ``data``, by table name, and the summary numbers they give (JSON-ready). ``on_quantity(name)`` is called
    before each quantity is computed (a progress bar's hook).

    ``net`` is a netdyn MLP or any model the network adapter reads (``input_shape``: how one sample is fed,
    default the data's; ``cuts``: its cuts by name, default those of docs/any-network.md#cuts). A quantity that does not
    support such a model yet is left out, and the summary's ``skipped_quantities`` maps its name to the reason.
    """
    config = config or AnalysisConfig()
    samples, n_layers, shape = read_model(net, data, input_shape, cuts)
    check_config_fits(config, Layers(n_layers), int(samples.num_classes))
    ctx = AnalysisContext.build(net, samples, config, n_layers=n_layers, input_shape=shape, cuts=cuts)
    tables: dict[str, pd.DataFrame] = {}
    skipped: dict[str, str] = {}
    for record in selected(config):
        if on_quantity is not None:
            on_quantity(record.name)
        started = time.perf_counter()
        computed, reason = compute_or_skip(record, net, samples, ctx)
        what = f"skipped: {reason}" if reason is not None else f"{', '.join(computed) or 'no table'}"
        logger.info("%s in %.1f s (%s)", record.name, time.perf_counter() - started, what)
        tables.update(computed)
        if reason is not None:
            skipped[record.name] = reason
    summary: dict[str, Any] = {}
    for record in selected(config):
        if record.name not in skipped:
            summary.update(record.summarize(tables, ctx))
    if skipped:
        summary["skipped_quantities"] = skipped
    return tables, _io.jsonable(summary)


@dataclass(frozen=True)
class Layers:
    """A network's number of layers, all that checking a config's layers needs."""

    n_layers: int
