"""Where pruning becomes effective (SPEC 5.1): ``effective_layer``'s two rules on hand-made pruning tables with
known answers, the tolerance boundary, ties, tables without an effective layer, and the old constant's home."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netdyn.analysis import EFFECTIVE_TOLERANCE
from netdyn.analysis.network import EFFECTIVE_RULES, effective_index, effective_layer, is_effective
from netdyn.errors import ConfigError


def _acc(test, train=None, layers=None):
    """A pruning table (``layer, split, accuracy``) with its rows shuffled: the rules must sort by layer."""
    layers = list(range(len(test))) if layers is None else layers
    rows = [{"layer": l, "split": "test", "accuracy": a} for l, a in zip(layers, test, strict=True)]
    rows += [{"layer": l, "split": "train", "accuracy": a} for l, a in zip(layers, train or test, strict=True)]
    return pd.DataFrame(rows, columns=["layer", "split", "accuracy"]).sample(frac=1, random_state=0)


def _both(table, network_accuracy, **kwargs):
    return tuple(effective_layer(table, network_accuracy, rule=rule, **kwargs) for rule in ("earliest", "from"))


def test_the_rules_differ_when_the_accuracy_dips_after_being_effective():
    # effective = at least 0.95 - 0.005; layer 1 alone is effective, then 2 is not, then 3.. are
    table = _acc([0.5, 0.95, 0.90, 0.946, 0.96, 0.95])
    assert _both(table, 0.95) == (1, 3)
    assert _both(table, 0.95, tolerance=0.06) == (1, 1)  # the dip at layer 2 is within a wider tolerance
    assert effective_layer(table, 0.95) == 1  # "earliest" unless told otherwise, as before the rules had names


def test_the_rules_agree_on_a_monotone_curve():
    assert _both(_acc([0.3, 0.6, 0.8, 0.95, 0.95]), 0.95) == (3, 3)
    assert _both(_acc([0.96, 0.97, 0.95]), 0.95) == (0, 0)  # effective from the input on


def test_no_effective_layer_is_none_and_an_ineffective_last_layer_has_no_tail():
    assert _both(_acc([0.3, 0.5, 0.9]), 0.95) == (None, None)
    assert _both(_acc([0.99, 0.9]), 0.95) == (0, None)  # effective at the input, not at the last layer
    assert _both(_acc([]), 0.95) == (None, None)
    assert _both(_acc([float("nan"), 0.95]), 0.95) == (1, 1)  # a missing accuracy is not effective


def test_ties_at_the_tolerance_boundary_and_between_layers():
    # exact in binary: 0.75 - 0.25 = 0.5, so an accuracy of exactly 0.5 is within the tolerance
    assert _both(_acc([0.25, 0.5, 0.4375, 0.5]), 0.75, tolerance=0.25) == (1, 3)
    assert _both(_acc([0.25, 0.5 - 2**-20, 0.5]), 0.75, tolerance=0.25) == (2, 2)
    # equal accuracies at several layers: the earliest is the lowest layer whatever the row order
    assert _both(_acc([0.9, 0.95, 0.95, 0.95]), 0.95) == (1, 1)
    assert _both(_acc([0.95, 0.9, 0.95, 0.95]), 0.95, tolerance=0.0) == (0, 2)


def test_layers_are_read_from_the_table_on_the_chosen_split():
    # a layer subset (AnalysisConfig.layers) and its own layer numbers
    assert _both(_acc([0.96, 0.5, 0.96], layers=[2, 4, 6]), 0.95) == (2, 6)
    assert _both(_acc([0.5, 0.6], train=[0.9, 1.0]), 1.0, split="train") == (1, 1)
    assert _both(_acc([0.5, 0.6], train=[0.9, 1.0]), 1.0) == (None, None)


def test_unknown_rules_are_refused():
    with pytest.raises(ConfigError, match="rule must be one of 'earliest', 'from'"):
        effective_layer(_acc([0.9]), 0.9, rule="last")
    with pytest.raises(ConfigError, match="got 0.01"):  # the tolerance in the rule's place: refused, not misread
        effective_layer(_acc([0.9]), 0.9, 0.01)


def test_is_effective_takes_one_reference_or_one_per_point():
    assert is_effective([0.944, 0.945, 0.95], 0.95).tolist() == [False, True, True]
    assert is_effective([0.5, 0.5], [0.5, 0.75], tolerance=0.125).tolist() == [True, False]
    assert EFFECTIVE_TOLERANCE == 0.005


@settings(max_examples=200, deadline=None)
@given(st.lists(st.booleans(), max_size=12))
def test_effective_index_follows_its_definition(effective):
    ok = np.asarray(effective, dtype=bool)
    earliest, start = (effective_index(ok, rule) for rule in EFFECTIVE_RULES)
    assert earliest == (int(np.argmax(ok)) if ok.any() else None)
    if start is None:
        assert not len(ok) or not ok[-1]
    else:
        assert ok[start:].all() and (start == 0 or not ok[start - 1])
        assert earliest is not None and earliest <= start
