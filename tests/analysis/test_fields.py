"""Local-field projections (SPEC 5.7): a hand-built network whose output fields are the input coordinates."""

import numpy as np
import pytest
import torch

from netdyn.analysis import _common
from netdyn.analysis.fields import LocalFields, local_fields
from netdyn.data import Dataset
from netdyn.errors import ConfigError
from netdyn.models import MLP


def _coordinate_net():
    """2 inputs -> 3 outputs with h^L_1 = x_1 and h^L_2 = x_2 (output 0 is constant 0)."""
    net = MLP(2, 2, 1, 3, activation="linear", seed=0)
    with torch.no_grad():
        net.blocks[0].linear.weight.copy_(torch.eye(2))
        net.blocks[0].linear.bias.zero_()
        net.blocks[1].linear.weight.copy_(torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]]))
        net.blocks[1].linear.bias.zero_()
    return net.eval()


def _points(*rows):
    return torch.tensor([r[:2] for r in rows], dtype=torch.float32), torch.tensor([r[2] for r in rows])


def test_hand_made_case():
    # training projections: class 1 near the origin, class 2 near (5, 5); a class-0 point that must be ignored
    x_train, y_train = _points((0, 0, 1), (5, 5, 2), (0, 0.2, 0), (0, 1, 1), (6, 5, 2))
    # test: class 1 at (0, 0.2) lands on class 1 (the class-0 point is not a candidate), class 1 at (4.9, 5)
    # on class 2; class 2 at (5, 4) on class 2; the class-0 test point is left out
    x_test, y_test = _points((0, 0.2, 1), (1, 1, 0), (4.9, 5, 1), (5, 4, 2))
    data = Dataset(x_train, y_train, x_test, y_test, 3, "hand-made", (2,), {})
    result = local_fields(_coordinate_net(), data, classes=(1, 2))
    assert isinstance(result, LocalFields) and result.neurons == (1, 2)
    points = result.points
    assert list(points.columns) == ["split", "label", "h_a", "h_b"]
    assert points.split.tolist() == ["train"] * 4 + ["test"] * 3
    assert points.label.tolist() == [1, 2, 1, 2, 1, 1, 2]
    expected = [[0, 0], [5, 5], [0, 1], [6, 5], [0, 0.2], [4.9, 5], [5, 4]]
    np.testing.assert_allclose(points[["h_a", "h_b"]].to_numpy(), expected, rtol=1e-6)
    assert list(result.summary.columns) == ["label", "test_in_train_fraction"]
    assert result.summary.set_index("label").test_in_train_fraction.to_dict() == {1: 0.5, 2: 1.0}


def test_neuron_pair_is_chosen_and_classes_without_test_samples_are_nan():
    x_train, y_train = _points((0, 0, 1), (5, 5, 2), (3, 3, 0))
    x_test, y_test = _points((5, 4.5, 2), (3, 2.5, 0))
    data = Dataset(x_train, y_train, x_test, y_test, 3, "hand-made", (2,), {})
    result = local_fields(_coordinate_net(), data, classes=(0, 1, 2), neurons=(2, 0))
    np.testing.assert_allclose(result.points.h_a, [0, 5, 3, 4.5, 2.5])  # neuron 2 = x_2
    assert (result.points.h_b == 0).all()  # neuron 0 is constant
    summary = result.summary.set_index("label").test_in_train_fraction
    # projections on (x_2, 0): class 2's test point (4.5, 0) is nearest to (5, 0) = class 2; class 0's
    # (2.5, 0) to (3, 0) = class 0; class 1 has no test sample
    assert summary[2] == 1.0 and summary[0] == 1.0 and np.isnan(summary[1])


def test_test_set_equal_to_training_set_lies_inside(make_blobs, fit_net, net_accuracy):
    data = make_blobs(spread=2.5, n_train=200)
    data.x_test, data.y_test = data.x_train.clone(), data.y_train.clone()
    net = fit_net(MLP(10, 16, 2, 4, activation="relu", batchnorm=True, seed=11), data, steps=40)
    result = local_fields(net, data)
    summary = result.summary
    assert summary.label.tolist() == [1, 2, 3] and summary.test_in_train_fraction.tolist() == [1.0] * 3
    train = result.points[result.points.split == "train"].reset_index(drop=True)
    test = result.points[result.points.split == "test"].reset_index(drop=True)
    assert train.equals(test.assign(split="train"))
    mask = torch.isin(data.y_train, torch.tensor([1, 2, 3]))
    with torch.no_grad():
        logits = net(data.x_train[mask]).double().numpy()
    np.testing.assert_allclose(train[["h_a", "h_b"]].to_numpy(), logits[:, [1, 2]], rtol=1e-6, atol=1e-6)


def test_streaming_float64_and_chunks_agree(make_blobs, fit_net, to_float64, monkeypatch):
    data = make_blobs(spread=3.0)
    net = fit_net(MLP(10, 16, 2, 4, activation="tanh", seed=12), data, steps=40)
    single = local_fields(net, data)
    double = local_fields(*to_float64(net, data))
    per_class = np.bincount(data.y_test.numpy())[1:4]
    fraction = "test_in_train_fraction"
    np.testing.assert_allclose(single.summary[fraction], double.summary[fraction], atol=2 / per_class.min())
    fields = ["h_a", "h_b"]
    np.testing.assert_allclose(single.points[fields], double.points[fields], rtol=1e-3, atol=1e-5)
    assert 0.3 < single.summary.test_in_train_fraction.mean() < 1  # a non-trivial case
    monkeypatch.setattr(_common, "CHUNK_BUDGET", 256)  # a few samples per chunk
    chunked = local_fields(net, data)
    assert chunked.points[["split", "label"]].equals(single.points[["split", "label"]])
    np.testing.assert_allclose(chunked.points[fields], single.points[fields], rtol=1e-5, atol=1e-6)
    assert chunked.summary.equals(single.summary)


def test_bad_arguments_raise(make_blobs):
    data = make_blobs()
    net = MLP(10, 8, 2, 4, seed=0)
    with pytest.raises(ConfigError, match="out of range"):
        local_fields(net, data, classes=(1, 4))
    with pytest.raises(ConfigError, match="distinct"):
        local_fields(net, data, classes=(1, 1))
    with pytest.raises(ConfigError, match="neuron pair"):
        local_fields(net, data, classes=(1,))
    with pytest.raises(ConfigError, match="two output neurons"):
        local_fields(net, data, neurons=(0, 4))
    with pytest.raises(ConfigError, match="input features"):
        local_fields(MLP(7, 8, 2, 4, seed=0), data)


def test_nearest_label_on_ties_does_not_depend_on_order():
    """Dead units put many training samples on one projection: the majority label among them decides."""
    import torch

    from netdyn.analysis.fields import _nearest_labels

    train = torch.tensor([[0.0, 0.0], [0.0, 0.0], [0.0, 0.0], [5.0, 5.0]], dtype=torch.float64)
    labels = torch.tensor([0, 1, 1, 0])
    test = torch.tensor([[0.1, 0.0], [5.0, 4.0]], dtype=torch.float64)
    for order in ([0, 1, 2, 3], [1, 0, 3, 2], [2, 3, 0, 1]):
        assert _nearest_labels(test, train[order], labels[order]).tolist() == [1, 0]
    even = torch.tensor([1, 0, 0, 1])[[0, 1]]  # one of each label at the same point: the smaller label
    assert _nearest_labels(test[:1], train[:2], even).tolist() == [0]
