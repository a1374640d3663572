"""The framework's quantities for one network, as tables: the computation behind ``netdyn.analyze`` (SPEC 5.8).

``compute_quantities(net, data, config)`` runs the records of ``netdyn.analysis.QUANTITIES`` that ``config``
selects (5.1-5.7 by default; the network's own accuracy always first) and returns their tables and the summary
numbers they give. It places nothing on a device, draws, prints and writes nothing: the orchestration layer
(``netdyn.orchestration.analyze``) prepares the network, shows progress and wraps the result.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd

from netdyn import _io
from netdyn.analysis._common import check_config_fits, numerically_guarded, samples_for
from netdyn.analysis.config import AnalysisConfig
from netdyn.analysis.quantities import AnalysisContext, Quantity, Tables, selected
from netdyn.data.samples import DataLike, SampleSet
from netdyn.models import MLP

#: What a linear-algebra routine raises when it cannot finish on extreme (or non-finite) values.


def compute_quantity(record: Quantity, net: MLP, samples: SampleSet, ctx: AnalysisContext) -> Tables:
    """One quantity's tables, a numerical failure inside it turned into one line.

    An eigen-solver or SVD that does not converge on a network's extreme values becomes a one-line
    :class:`ModelError` naming the quantity, not a traceback.
    """
    return numerically_guarded(record.name)(record.compute)(net, samples, ctx)


def compute_quantities(
    net: MLP,
    data: DataLike,
    config: AnalysisConfig | None = None,
    on_quantity: Callable[[str], None] | None = None,
) -> tuple[dict[str, pd.DataFrame], dict[str, Any]]:
    """The tables of the quantities ``config`` selects on ``net`` (as it is: its device, dtype and mode) and
    ``data``, by table name, and the summary numbers they give (JSON-ready). ``on_quantity(name)`` is called
    before each quantity is computed (a progress bar's hook)."""
    config = config or AnalysisConfig()
    samples = samples_for(net, data)
    check_config_fits(config, net, int(samples.num_classes))
    ctx = AnalysisContext.build(net, samples, config)
    records = selected(config)
    tables: dict[str, pd.DataFrame] = {}
    for record in records:
        if on_quantity is not None:
            on_quantity(record.name)
        tables.update(compute_quantity(record, net, samples, ctx))
    summary: dict[str, Any] = {}
    for record in records:
        summary.update(record.summarize(tables, ctx))
    return tables, _io.jsonable(summary)
