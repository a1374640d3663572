"""Property tests (hypothesis): schedules and the IDX format hold their invariants for any input."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from netdyn import read_idx, write_idx
from netdyn.training import parse_schedule


@given(total=st.integers(1, 10**7), n=st.integers(1, 200))
def test_log_schedule_invariants(total, n):
    steps = parse_schedule(f"log:{n}", total)
    assert steps[0] == 0 and steps[-1] == total
    assert steps == sorted(set(steps))
    assert len(steps) <= n + 2
    assert all(0 <= s <= total for s in steps)


@given(total=st.integers(1, 10**6), every=st.integers(1, 10**6))
def test_interval_schedule_invariants(total, every):
    steps = parse_schedule(every, total)
    assert steps[0] == 0 and steps[-1] == total
    inner = [s for s in steps if 0 < s < total]
    assert all(s % every == 0 for s in inner)
    assert len(inner) == max(0, (total - 1) // every)


@settings(max_examples=40, deadline=None)
@given(
    array=arrays(
        dtype=st.sampled_from([np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64]),
        shape=st.lists(st.integers(0, 5), min_size=1, max_size=4).map(tuple),
    ),
    gz=st.booleans(),
)
def test_idx_round_trip(tmp_path_factory, array, gz):
    path = tmp_path_factory.mktemp("idx") / ("a.idx.gz" if gz else "a.idx")
    write_idx(path, array)
    back = read_idx(path)
    assert back.shape == array.shape
    np.testing.assert_array_equal(back, array)
