"""structure-convnet, structure-resnet and structure-vit: their criteria (SPEC 6.1) on hand-made tables with known
answers."""

import pandas as pd
import pytest

from netdyn.experiments.criteria import evaluate_criteria, verdict
from netdyn.experiments.structure_families import family_criteria


def _per_cut(depth, seed, column, values, start=0, **extra):
    return pd.DataFrame({"layer": range(start, start + len(values)), column: values, "depth": depth, "seed": seed,
                         **extra})


def _accuracy(depth, values, **extra):
    return pd.concat([_per_cut(depth, 0, "accuracy", values, split=split, **extra) for split in ("test", "train")])


def _tables(lmap_keep, lmap_constant=None):
    """A shallow member (depth 1, which the criteria ignore) and the deepest (depth 4: cuts 0..4)."""
    lmap = [_accuracy(4, lmap_keep, variant="keep"), _accuracy(1, [0.1, 0.1], variant="keep")]
    if lmap_constant is not None:
        lmap.append(_accuracy(4, lmap_constant, variant="constant"))
    return {
        "network": pd.DataFrame({"split": ["train", "test"] * 2, "accuracy": [1.0, 0.95, 0.5, 0.4],
                                 "depth": [4, 4, 1, 1], "seed": 0}),
        "lmap": pd.concat(lmap),
        "lp": pd.concat([_accuracy(4, [0.85, 0.95, 0.96, 0.95, 0.95]), _accuracy(1, [0.1, 0.1])]),  # from cut 1
        "rpd_summary": pd.concat([_per_cut(4, 0, "gradient", [1.0, 2.0, 3.0, 2.9], start=1),
                                  _per_cut(1, 0, "gradient", [9.0], start=1)]),
        "class_geometry": pd.concat([_per_cut(4, 0, "cos_dist_mean", [0.3, 0.2, 0.1, 0.05, 0.03]),
                                     _per_cut(1, 0, "cos_dist_mean", [0.3, 0.3])]),
    }  # fmt: skip


def _results(criteria, tables):
    return {r.criterion.name: r.seeds[0] for r in evaluate_criteria(criteria, tables, None, [0])}


def test_one_variant_criteria_on_known_tables():
    criteria = family_criteria(("keep",), "every cut after the input")
    assert [c.name for c in criteria] == ["lp_before_lmap", "linear_tail", "rpd_gradient_grows", "samples_cluster"]
    results = _results(criteria, _tables([0.3, 0.6, 0.8, 0.95, 0.95]))  # L-map effective from cut 3 of 0..4
    assert results["lp_before_lmap"].value == 2 and results["lp_before_lmap"].passes
    assert results["linear_tail"].value == 1 and results["linear_tail"].passes
    assert results["rpd_gradient_grows"].value == pytest.approx(0.8) and results["rpd_gradient_grows"].passes
    assert results["samples_cluster"].value == pytest.approx(0.15) and results["samples_cluster"].passes


def test_an_lmap_effective_only_at_the_last_cut_is_no_linear_tail():
    criteria = family_criteria(("keep",), "every cut after the input")
    results = _results(criteria, _tables([0.3, 0.6, 0.8, 0.9, 0.95]))
    assert results["linear_tail"].value == 0 and not results["linear_tail"].passes
    assert results["lp_before_lmap"].value == 3 and results["lp_before_lmap"].passes


def test_vit_criteria_per_lmap_variant():
    criteria = family_criteria(("keep", "constant"), "each block's GELU cut")
    names = [c.name for c in criteria]
    assert names[:4] == ["lp_before_lmap_keep", "linear_tail_keep", "lp_before_lmap_constant", "linear_tail_constant"]
    assert "GELU" in criteria[-2].quantity
    # keep: the L-map effective at the last cut only; constant: from cut 2
    tables = _tables([0.2, 0.3, 0.4, 0.5, 0.95], [0.2, 0.6, 0.95, 0.95, 0.95])
    results = _results(criteria, tables)
    assert results["linear_tail_keep"].value == 0 and not results["linear_tail_keep"].passes
    assert results["linear_tail_constant"].value == 2 and results["linear_tail_constant"].passes
    assert results["lp_before_lmap_constant"].value == 1 and results["lp_before_lmap_constant"].passes
    assert verdict(evaluate_criteria(criteria, tables, None, [0])) == "partly"


def test_criteria_that_cannot_be_evaluated_say_why():
    criteria = {c.name: c for c in family_criteria(("keep",), "every cut after the input")}
    tables = _tables([0.1] * 5)
    assert criteria["linear_tail"].evaluate(tables, None, 0).reason == "L-map pruning never becomes effective"
    tables["rpd_summary"] = _per_cut(4, 0, "gradient", [1.0, float("nan"), float("nan"), float("nan")], start=1)
    assert "fewer than two cuts" in criteria["rpd_gradient_grows"].evaluate(tables, None, 0).reason
    assert "no class_geometry rows" in criteria["samples_cluster"].evaluate(tables, None, 1).reason


def test_vit_figures_draw_both_lmap_variants_and_name_each_cuts_tail():
    from netdyn.experiments.structure_families import StructureViT, gelu_cuts

    assert gelu_cuts(2) == ["blocks.0.mlp.1", "blocks.1.mlp.1"]
    cuts = {"cut": ["x", "embed.add", "blocks.0", "blocks.1", "blocks.2"]}
    tables = _tables([0.3, 0.6, 0.8, 0.95, 0.95], [0.2, 0.5, 0.7, 0.95, 0.95])
    lmap = tables["lmap"]
    tables["lmap"] = lmap[lmap["depth"] == 4].assign(
        cut=lambda t: [cuts["cut"][i] for i in t["layer"]],
        tail=lambda t: ["nonlinear" if v == "keep" else "affine" for v in t["variant"]])
    for name in ("lp", "class_geometry"):
        rows = tables[name][tables[name]["depth"] == 4]
        tables[name] = rows.assign(cut=[cuts["cut"][i] for i in rows["layer"]])
    tables["class_geometry"] = tables["class_geometry"].assign(cos_dist_q25=0.0, cos_dist_q75=0.5,
                                                               centre_similarity=0.5)
    rows = tables["rpd_summary"][tables["rpd_summary"]["depth"] == 4]
    tables["rpd_summary"] = rows.assign(cut=[f"blocks.{i - 1}.mlp.1" for i in rows["layer"]], order_index=0.1)
    tables["network"] = tables["network"][tables["network"]["depth"] == 4]
    figures = StructureViT().figures(tables, StructureViT.scales["smoke"])
    assert set(figures) == {"pruning_depth4", "rpd_gradient_depth4", "class_geometry_depth4"}
    ax = figures["pruning_depth4"].axes[0]
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert labels[2] == "2\nblocks.0\nkeep: nonlinear\nconstant: affine"
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "L-map pruning (keep)" in legend and "L-map pruning (constant)" in legend
    rpd_ticks = [t.get_text() for t in figures["rpd_gradient_depth4"].axes[-1].get_xticklabels()]
    assert rpd_ticks[0] == "1\nblocks.0.mlp.1"
