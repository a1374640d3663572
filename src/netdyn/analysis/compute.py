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
from netdyn.analysis._common import check_config_fits, samples_for
from netdyn.analysis.config import AnalysisConfig
from netdyn.analysis.quantities import AnalysisContext, selected
from netdyn.data.samples import DataLike
from netdyn.models import MLP


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
        tables.update(record.compute(net, samples, ctx))
    summary: dict[str, Any] = {}
    for record in records:
        summary.update(record.summarize(tables, ctx))
    return tables, _io.jsonable(summary)
