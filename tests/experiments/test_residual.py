"""The residual experiment's reading of pruning tables: where pruning becomes effective and whether a network
has the standard structure, on hand-made tables with known answers."""

import numpy as np
import pandas as pd
import pytest

from netdyn.experiments.residual import (
    CONTROL_PANEL,
    EXPERIMENT,
    by_network,
    seed_medians,
    structure_row,
    structure_table,
    structure_with_skip,
)


def _acc(test, train=None):
    rows = [{"layer": l, "split": "test", "accuracy": a} for l, a in enumerate(test)]
    rows += [{"layer": l, "split": "train", "accuracy": a} for l, a in enumerate(train or test)]
    return pd.DataFrame(rows).sample(frac=1, random_state=0)


NETWORK = pd.DataFrame({"split": ["train", "test"], "accuracy": [1.0, 0.95]})


def test_structure_row_knows_the_standard_structure():
    lp, lmap = _acc([0.9, 0.95, 0.96, 0.95, 0.95]), _acc([0.3, 0.6, 0.8, 0.95, 0.95])
    row = structure_row(lmap, lp, NETWORK, depth=4)
    assert row["lp_effective_from"] == 1 and row["lmap_effective_from"] == 3 and row["linear_tail"] == 1
    assert row["standard_structure"] and row["test_accuracy"] == 0.95 and row["train_accuracy"] == 1.0
    # no linear tail: L-map effective only at the last hidden layer
    row = structure_row(_acc([0.3, 0.6, 0.8, 0.9, 0.95]), lp, NETWORK, depth=4)
    assert row["lmap_effective_from"] == 4 and row["linear_tail"] == 0 and not row["standard_structure"]
    # LP not earlier than the L-map: a net whose whole tail is linear from the input on
    row = structure_row(_acc([0.95] * 5), _acc([0.95] * 5), NETWORK, depth=4)
    assert row["lp_effective_from"] == row["lmap_effective_from"] == 0 and not row["standard_structure"]
    # the earliest effective layer is reported beside the tail start
    row = structure_row(_acc([0.3, 0.95, 0.8, 0.95, 0.95]), lp, NETWORK, depth=4)
    assert row["lmap_effective_earliest"] == 1 and row["lmap_effective_from"] == 3


def test_structure_table_and_summary_per_network():
    parts = {"network": [], "lmap": [], "lp": []}
    for depth, lmap_values in ((2, [0.3, 0.95, 0.95]), (3, [0.3, 0.5, 0.7, 0.95])):
        params = {"member": f"d{depth}", "variant": "plain", "depth": depth, "width": 8, "seed": 0}
        parts["network"].append(NETWORK.assign(**params))
        parts["lmap"].append(_acc(lmap_values).assign(**params))
        parts["lp"].append(_acc([0.5] + [0.95] * depth).assign(**params))
    tables = {name: pd.concat(frames, ignore_index=True) for name, frames in parts.items()}
    table = structure_table(tables, ["variant", "depth", "width", "seed"])
    assert table["member"].tolist() == ["d2", "d3"]
    assert table["lmap_effective_from"].tolist() == [1, 3] and table["lp_effective_from"].tolist() == [1, 1]
    assert table["standard_structure"].tolist() == [False, False]
    assert str(table["lmap_effective_from"].dtype) == "Int64"
    assert by_network(table, ["variant", "depth", "width"], "lmap_effective_from") == {
        "variantplain-depth2-width8": 1, "variantplain-depth3-width8": 3}
    summary = EXPERIMENT().summary({"structure": table}, EXPERIMENT.scales["smoke"])
    assert summary["standard_structure_share"] == {"plain": 0.0}


def test_members_cover_the_grid_and_skip_residual_nets_too_shallow_for_a_pair():
    experiment = EXPERIMENT()
    config = experiment.config("small")
    members = experiment.members(config)
    assert len(members) == len(config.depths) * len(config.widths) * len(config.residuals) * config.seeds == 72
    assert {m.spec.model.residual for m in members} == {"none", "pre"}
    assert all(m.spec.model.batchnorm for m in members)
    shallow = experiment.members(type(config)(depths=(2, 4), widths=(8,), seeds=1))
    assert [m.name for m in shallow] == [
        "variantplain-depth2-width8-seed0", "variantplain-depth4-width8-seed0", "variantresidual-depth4-width8-seed0"]


def test_seed_medians_rank_never_effective_last_and_take_the_majority():
    table = pd.DataFrame({
        "variant": ["plain"] * 3 + ["residual"] * 3 + ["residual"], "depth": [4] * 6 + [8], "width": [16] * 7,
        "seed": [0, 1, 2, 0, 1, 2, 0],
        "lmap_effective_from": pd.array([2, None, 3, None, None, 1, 5], dtype="Int64"),
        "lp_effective_from": pd.array([1, 1, 2, 3, 3, 3, 2], dtype="Int64"),
        "test_accuracy": [0.9, 0.8, 0.7, 0.5, 0.6, 0.7, 0.95],
        "standard_structure": [True, False, True, False, False, True, True],
    })  # fmt: skip
    out = seed_medians(table).set_index(["variant", "depth"])
    # plain: layers 2, never, 3 -> median 3 (never ranks last); residual depth 4: never, never, 1 -> never
    assert out.loc[("plain", 4), "lmap_effective_from"] == 3
    assert np.isnan(out.loc[("residual", 4), "lmap_effective_from"])
    assert out.loc[("plain", 4), "lp_effective_from"] == 1 and out.loc[("residual", 4), "lp_effective_from"] == 3
    assert out.loc[("plain", 4), "test_accuracy"] == pytest.approx(0.8)
    assert bool(out.loc[("plain", 4), "standard_structure"])
    assert not bool(out.loc[("residual", 4), "standard_structure"])
    # one seed: its own values
    assert out.loc[("residual", 8), "lmap_effective_from"] == 5
    assert bool(out.loc[("residual", 8), "standard_structure"])


def _grid(rows):
    """A structure table from (variant, depth, width, seed, standard_structure, linear_tail) rows."""
    table = pd.DataFrame(rows, columns=["variant", "depth", "width", "seed", "standard_structure", "linear_tail"])
    return table.astype({"linear_tail": "Int64"})


def test_residual_criteria_on_a_known_grid():
    config = EXPERIMENT.scales["smoke"]
    table = _grid([
        ("plain", 4, 64, 0, True, 2), ("residual", 4, 64, 0, True, 2),
        ("plain", 32, 64, 0, False, None), ("residual", 32, 64, 0, True, 20),
        ("plain", 4, 256, 0, True, 2), ("residual", 4, 256, 0, False, 1),
        ("plain", 32, 256, 0, True, 4), ("residual", 32, 256, 0, True, 22),
        ("plain", 4, 64, 1, True, 2), ("residual", 4, 64, 1, False, 0),
    ])  # fmt: skip
    criteria = {c.name: c for c in EXPERIMENT().criteria(config)}
    first = criteria["residual_keeps_structure_more_often"]
    assert first.decides and first.evaluate({"structure": table}, config, 0).value == pytest.approx(0.0)
    assert not first.evaluate({"structure": table}, config, 0).passes  # 3/4 each: not broader
    assert first.evaluate({"structure": table}, config, 1).value == pytest.approx(-1.0)
    wide = criteria["residual_structure_wide_range"].evaluate({"structure": table}, config, 0)
    assert wide.value == pytest.approx(0.75) and wide.passes
    deep = criteria["plain_loses_structure_when_deep"].evaluate({"structure": table}, config, 0)
    assert deep.value == pytest.approx(0.5) and deep.passes
    revised = criteria["linear_tail_longer_when_deep"]
    assert not revised.decides and revised.revises == first.name and revised.since == "2026-11-30"
    tail = revised.evaluate({"structure": table}, config, 0)
    assert tail.value is True and tail.passes  # 20 > 0 (never effective) and 22 > 4
    # seed 1 has no depth-32 pair: cannot be evaluated, with the reason
    assert "no plain and residual pair" in revised.evaluate({"structure": table}, config, 1).reason
    assert "no network of seed 7" in first.evaluate({"structure": table}, config, 7).reason


def test_figures_draw_the_median_over_seeds_with_the_min_max_spread():
    parts = {"network": [], "lmap": [], "lp": []}
    for variant in ("plain", "residual"):
        for depth in (3, 4):
            for seed in (0, 1):
                params = {"member": f"{variant}{depth}{seed}", "variant": variant, "depth": depth, "width": 8,
                          "seed": seed}  # fmt: skip
                lmap = [0.3] * (depth - 1 - seed) + [0.95] * (2 + seed)
                parts["network"].append(NETWORK.assign(**params))
                parts["lmap"].append(_acc(lmap).assign(**params))
                parts["lp"].append(_acc([0.5] + [0.95] * depth).assign(**params))
    tables = {name: pd.concat(frames, ignore_index=True) for name, frames in parts.items()}
    tables["structure"] = structure_table(tables, ["variant", "depth", "width", "seed"])
    figs = EXPERIMENT().figures(tables, EXPERIMENT.scales["smoke"])
    assert "seed 0 of 2" in figs["fig9_pruning_plain"]._suptitle.get_text()
    effective = figs["fig9_effective_layers"]
    assert "median of 2 seeds, bars: min to max" in effective._suptitle.get_text()
    bars = [c for ax in effective.axes for c in ax.collections if type(c).__name__ == "LineCollection"]
    assert len(bars) == 2  # one L-map line per panel (one width)
    segments = bars[0].get_segments()  # plain, depths 3 and 4: L-map from 1 or 2 of 3, from 2 or 3 of 4
    assert [s[:, 1].tolist() for s in segments] == [pytest.approx([1 / 3, 2 / 3]), pytest.approx([2 / 4, 3 / 4])]
    assert "control" not in effective._suptitle.get_text()  # no control table: two panels
    # the control's panel (a residual net's LP given x^{l-1} too) beside the residual one, with its own bars
    tables["lp_with_skip"] = tables["lp"][tables["lp"]["variant"] == "residual"].assign(skip=False)
    tables["lp_with_skip"].loc[tables["lp_with_skip"]["layer"] == 0, "accuracy"] = 0.95
    tables["structure_with_skip"] = structure_with_skip(tables)
    assert (tables["structure_with_skip"].set_index("variant").loc["residual", "lp_effective_from"] == 0).all()
    assert tables["structure_with_skip"].query("variant == 'plain'").equals(
        tables["structure"].query("variant == 'plain'"))
    effective = EXPERIMENT().figures(tables, EXPERIMENT.scales["smoke"])["fig9_effective_layers"]
    assert [ax.get_title() for ax in effective.axes] == ["plain", "residual", "residual" + CONTROL_PANEL]
    assert "the control, a residual net's LP fitted on x^l and x^(l-1)" in effective._suptitle.get_text()
    lp_lines = [line for line in effective.axes[2].get_lines() if str(line.get_label()).startswith("LP, ")]
    assert lp_lines[0].get_ydata().tolist() == [0, 0]
    assert sum(type(c).__name__ == "LineCollection" for ax in effective.axes for c in ax.collections) == 3
    accuracy = figs["fig9_test_accuracy"]
    assert "median of 2 seeds, band min to max" in accuracy.axes[0].get_title()
    assert sum(type(c).__name__ == "FillBetweenPolyCollection" or "Poly" in type(c).__name__
               for c in accuracy.axes[0].collections) == 2  # fmt: skip


def test_the_control_criterion_judges_the_structure_with_the_lp_given_the_lmaps_inputs():
    """The control's criterion reads the structure table of the LP with skip, not the plain LP's."""
    config = EXPERIMENT.scales["smoke"]
    plain_lp = _grid([
        ("plain", 4, 64, 0, True, 2), ("residual", 4, 64, 0, False, 2),
        ("plain", 8, 64, 0, False, None), ("residual", 8, 64, 0, False, 5),
        ("plain", 4, 64, 1, True, 2), ("residual", 4, 64, 1, True, 2),
    ])  # fmt: skip
    with_skip = _grid([
        ("plain", 4, 64, 0, True, 2), ("residual", 4, 64, 0, True, 2),
        ("plain", 8, 64, 0, False, None), ("residual", 8, 64, 0, True, 5),
        ("plain", 4, 64, 1, True, 2), ("residual", 4, 64, 1, False, 2),
    ])  # fmt: skip
    criteria = {c.name: c for c in EXPERIMENT().criteria(config)}
    control = criteria["residual_keeps_structure_more_often_lp_with_skip"]
    assert control.decides and "same inputs as the L-map" in control.statement
    tables = {"structure": plain_lp, "structure_with_skip": with_skip}
    first = criteria["residual_keeps_structure_more_often"].evaluate(tables, config, 0)
    assert first.value == pytest.approx(-0.5) and not first.passes  # plain LP: residual 0/2, plain 1/2
    seed0 = control.evaluate(tables, config, 0)
    assert seed0.value == pytest.approx(0.5) and seed0.passes  # LP with skip: residual 2/2, plain 1/2
    seed1 = control.evaluate(tables, config, 1)
    assert seed1.value == pytest.approx(-1.0) and not seed1.passes
    assert "not computed" in control.evaluate({"structure": plain_lp}, config, 0).reason
