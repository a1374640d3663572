"""Fixtures of the sweep tests (helpers: sweep_fates.py)."""

import pytest


@pytest.fixture
def mnist_root(tmp_path):
    """An empty data folder: mnist points fail until ``write_fake_mnist`` fills it."""
    root = tmp_path / "data"
    root.mkdir()
    return root
