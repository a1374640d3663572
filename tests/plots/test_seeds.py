"""The seed band drawn around a median line (SPEC 6.1): in the line's colour, at the line's x values."""

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from netdyn.errors import ConfigError
from netdyn.plots.seeds import lines_labelled, one_seed_note, seed_band, seed_note


def test_a_band_follows_its_line_and_bars_mark_points():
    fig = Figure()
    ax = fig.subplots()
    line = ax.plot([1, 2, 3], [0.5, 0.6, 0.7], color="C2", label="median")[0]
    ax.plot([1, 2], [0, 0], label="other")
    assert lines_labelled(fig, "median") == [line] and len(lines_labelled(fig, "med", prefix=True)) == 1
    low = pd.Series([0.4, 0.5, 0.6], index=[3, 2, 1])  # indexed by x, in any order
    band = seed_band(line, low, pd.Series({1: 0.6, 2: 0.7, 3: 0.8}))
    path = band.get_paths()[0].vertices
    assert path[:, 0].min() == 1 and path[:, 0].max() == 3 and path[:, 1].min() == pytest.approx(0.4)
    assert np.allclose(band.get_facecolor()[0][:3], matplotlib.colors.to_rgb("C2"))
    bars = seed_band(line, [0.1, 0.2, 0.3], [0.9, 0.8, 0.7], style="bars")
    assert len(bars.get_segments()) == 3 and bars.get_segments()[0].tolist() == [[1, 0.1], [1, 0.9]]
    with pytest.raises(ConfigError, match="3 points drawn, 2 lows"):
        seed_band(line, [0.1, 0.2], [0.1, 0.2])
    with pytest.raises(ConfigError, match="style"):
        seed_band(line, [0, 0, 0], [1, 1, 1], style="dots")


def test_titles_say_what_they_draw():
    assert seed_note(3) == "median of 3 seeds, band min to max" and seed_note(1, 4) == "seed 4"
    assert one_seed_note(3, 0) == "seed 0 only of 3" and one_seed_note(1, 0) == "seed 0 only"
