"""``structure-convnet``, ``structure-resnet`` and ``structure-vit``: the paper's first question (Fig. 3) asked of
three vision families beyond the paper's MLPs.

Does a trained deep net self-organise into nonlinear early layers and linear late ones, with the LP effective
before the L-map? Each experiment trains a few depths of one family (:class:`~netdyn.models.ConvNet`,
:class:`~netdyn.models.ResNet`, :class:`~netdyn.models.ViT`) on handwritten digits and analyses the last
checkpoint of every member through the network adapter (docs/any-network.md): LP and L-map pruning accuracy by cut
with the kind of each L-map tail (for the ViT under both ``lmap_variant`` s), the RPD gradient by cut where it is
defined (the ViT's residual stream has no privileged basis: its RPD is read at the MLPs' GELU cuts), and the
class geometry by cut. The criteria are those of ``structure`` (the same thresholds, stated from the paper before
any run), read off the deepest member of each seed.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from typing import Any

import pandas as pd

from netdyn.analysis.network import effective_layer
from netdyn.experiments.criteria import CannotEvaluate, Criterion
from netdyn.experiments.structure import MIN_TREND

# ------------------------------------------------------------------------------------------------ criteria
# Written from the paper's text on Fig. 3 before any run of these experiments, with the thresholds of the
# `structure` experiment's criteria (stated there before its runs); read off the deepest member of each seed.


def _rows(tables: Mapping[str, pd.DataFrame], name: str, seed: int, variant: str | None = None) -> pd.DataFrame:
    table = tables.get(name)
    if table is None or table.empty:
        raise CannotEvaluate(f"no {name} table")
    deepest = int(table["depth"].max())
    rows = table[(table["depth"] == deepest) & (table["seed"] == seed)]
    if variant is not None:
        rows = rows[rows["variant"] == variant]
    if rows.empty:
        raise CannotEvaluate(f"no {name} rows of the deepest net of seed {seed} (it diverged or was not analysed)")
    return rows


def _effective_from(tables: Mapping[str, pd.DataFrame], kind: str, seed: int, variant: str | None) -> int:
    """The cut from which on ``kind`` ("lp" or "lmap") pruning is effective on the test set."""
    network = _rows(tables, "network", seed).set_index("split")["accuracy"]
    layer = effective_layer(_rows(tables, kind, seed, variant), float(network["test"]), rule="from")
    if layer is None:
        raise CannotEvaluate(f"{'L-map' if kind == 'lmap' else 'LP'} pruning never becomes effective")
    return layer


def lp_before_lmap(tables: Mapping[str, pd.DataFrame], config: Any, seed: int, *, variant: str) -> float:
    """Cuts between where LP pruning and where L-map pruning become effective (positive: LP earlier)."""
    return float(_effective_from(tables, "lmap", seed, variant) - _effective_from(tables, "lp", seed, None))


def linear_tail(tables: Mapping[str, pd.DataFrame], config: Any, seed: int, *, variant: str) -> float:
    """Cuts after the one from which on L-map pruning is effective (0: only the last cut, whose tail is the head)."""
    last = int(_rows(tables, "lmap", seed, variant)["layer"].max())
    return float(last - _effective_from(tables, "lmap", seed, variant))


def rpd_gradient_trend(tables: Mapping[str, pd.DataFrame], config: Any, seed: int) -> float:
    """Spearman correlation of the RPD gradient with the cut's index, over the cuts where it is defined."""
    rows = _rows(tables, "rpd_summary", seed)
    rows = rows[(rows["layer"] >= 1) & rows["gradient"].notna()].sort_values("layer")
    if len(rows) < 2:
        raise CannotEvaluate("fewer than two cuts with an RPD to correlate")
    if rows["gradient"].nunique() < 2:
        raise CannotEvaluate("the RPD gradient is the same at every cut: no rank correlation")
    return float(rows["layer"].rank().corr(rows["gradient"].rank()))


def cos_dist_ratio(tables: Mapping[str, pd.DataFrame], config: Any, seed: int) -> float:
    """Mean cosine distance of a sample to its class centre at the last cut over that at the first after the input."""
    rows = _rows(tables, "class_geometry", seed).set_index("layer")["cos_dist_mean"]
    hidden = rows[rows.index >= 1].sort_index()
    if len(hidden) < 2 or hidden.iloc[0] == 0:
        raise CannotEvaluate("fewer than two cuts after the input, or no spread at the first")
    return float(hidden.iloc[-1] / hidden.iloc[0])


def family_criteria(variants: tuple[str, ...], rpd_where: str) -> list[Criterion]:
    """The criteria of a family experiment: the L-map ones once per ``lmap_variant`` analysed (named after it when
    there are several), the RPD read at ``rpd_where``."""
    net = "the deepest member"
    deepest = f"{net}, test set, effective = within 0.005 of the network's accuracy (see docs/quantities.md#l-map)"
    out: list[Criterion] = []
    for variant in variants:
        suffix = f"_{variant}" if len(variants) > 1 else ""
        tails = f"; L-map tails with lmap_variant {variant!r}" if len(variants) > 1 else ""
        out += [
            Criterion(
                f"lp_before_lmap{suffix}",
                "Fig. 3(a, b): 'LP achieves effective pruning in much earlier layers ... L-map pruning becomes "
                "effective in later layers'",
                f"cut from which on L-map pruning is effective minus the cut from which on LP pruning is; {deepest}"
                f"{tails}",
                ">=", 1, partial(lp_before_lmap, variant=variant),
            ),
            Criterion(
                f"linear_tail{suffix}",
                "Fig. 3(a, b): 'the final sections of the DNN evolve into a pure LNN, equivalent to a linear "
                "perceptron' (early layers nonlinear, late ones linear)",
                f"cuts after the one from which on L-map pruning is effective (at least one: effective before the "
                f"last cut, whose tail is the head alone); {deepest}{tails}",
                ">=", 1, partial(linear_tail, variant=variant),
            ),
        ]
    return out + [
        Criterion(
            "rpd_gradient_grows",
            "Fig. 3(c, d): 'the RPD gradient increases with layer depth'",
            f"Spearman correlation of the RPD gradient with the cut over {rpd_where} of {net}",
            ">=", MIN_TREND, rpd_gradient_trend,
        ),
        Criterion(
            "samples_cluster",
            "Fig. 3(e, f): 'samples cluster towards the center of their respective classes as depth increases'",
            "mean cosine distance of a training sample to its class centre at the last cut over that at the first "
            f"cut after the input (at most half); {net}",
            "<=", 0.5, cos_dist_ratio,
        ),
    ]
