"""The registry of quantities on a model that is not a netdyn MLP (SPEC 10): the columns each record declares for
such a model, batch-norm perturbation wherever a model has BatchNorm modules, and ``AnalysisConfig.lmap_variant``
passed to the L-map (and offered by ``netdyn analyze``)."""

import pytest
import torch
from torch import nn

from any_models import image_data, small_cnn, trained
from netdyn import MLP, AnalysisConfig, ConfigError, analyze
from netdyn.analysis import QUANTITIES, AnalysisContext
from netdyn.cli import build_parser
from netdyn.commands._options import dataclass_from_args

SMALL = dict(max_samples=100, basin_samples=30, repeats=1, eps=(0.0, 1.0), bn_batch_size=40)


@pytest.fixture(scope="module")
def images():
    return image_data()


@pytest.fixture(scope="module")
def bn_cnn(images):
    torch.manual_seed(0)  # the initial weights, whatever tests ran before in this process (pytest-xdist)
    return trained(small_cnn(batchnorm=True), images)


@pytest.mark.filterwarnings("ignore:(sample|weight) basin:RuntimeWarning")  # two amplitudes: no size
def test_every_table_of_a_model_has_the_columns_its_record_declares_for_it(bn_cnn, images):
    analysis = analyze(bn_cnn, images, AnalysisConfig(quantities=tuple(QUANTITIES), **SMALL))
    assert not analysis.skipped
    for record in QUANTITIES.values():
        for name in record.tables:
            assert tuple(analysis[name].columns) == record.columns(name, own=False), name
    declared = QUANTITIES["rpd"].columns("rpd_summary", own=False)
    assert declared == ("layer", "cut", "gradient", "top_mass", "order_index", "reason")
    assert QUANTITIES["neuron_modes"].columns("neuron_modes", own=False)[-1] == "reason"
    assert QUANTITIES["bn_perturbation"].columns("bn_perturbation", own=False) == ("layer", "module", "eps_equivalent")
    assert QUANTITIES["lmap"].columns("lmap") == ("layer", "split", "accuracy")  # netdyn's own MLP: SPEC 5.9's


def test_batch_norm_perturbation_applies_to_any_model_with_batch_norm(bn_cnn, images):
    applies = QUANTITIES["bn_perturbation"].applies
    assert applies(bn_cnn) and not applies(small_cnn())
    assert applies(MLP(8, 6, 2, 3, batchnorm=True, seed=0)) and not applies(MLP(8, 6, 2, 3, seed=0))
    record = QUANTITIES["bn_perturbation"]
    ctx = AnalysisContext.build(bn_cnn, images, AnalysisConfig(**SMALL), n_layers=4, input_shape=(1, 8, 8))
    table = record.compute(bn_cnn, images, ctx)["bn_perturbation"]
    assert list(table["module"]) == ["1", "5"] and (table["eps_equivalent"] > 0).all()
    empty = record.compute(small_cnn(), images, ctx)["bn_perturbation"]
    assert empty.empty and tuple(empty.columns) == record.columns("bn_perturbation", own=False)


class _LayerNormNet(nn.Module):
    """Linear, GELU, then a LayerNorm in every tail: nonlinear tails under "keep", affine under "constant"."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.norm, self.fc2 = nn.Linear(64, 12), nn.LayerNorm(12), nn.Linear(12, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.norm(nn.functional.gelu(self.fc1(x.flatten(1)))))


def test_the_configs_lmap_variant_reaches_the_l_map(images):
    model = trained(_LayerNormNet(), images)
    tables = {variant: analyze(model, images, AnalysisConfig(quantities=("lmap",), lmap_variant=variant),
                               input_shape=(64,))["lmap"] for variant in ("keep", "constant")}
    assert (tables["keep"]["variant"] == "keep").all() and (tables["constant"]["variant"] == "constant").all()
    hidden = tables["constant"]["layer"] == 1
    assert (tables["constant"].loc[hidden, "tail"] == "affine").all()
    assert (tables["keep"].loc[hidden, "tail"] == "nonlinear").all()
    with pytest.raises(ConfigError, match="lmap_variant must be one of keep, constant"):
        AnalysisConfig(lmap_variant="mean")


def test_netdyn_analyze_takes_lmap_variant(tmp_path, capsys):
    parser = build_parser()
    args = parser.parse_args(["analyze", str(tmp_path), "--lmap-variant", "constant"])
    assert dataclass_from_args(AnalysisConfig, args).lmap_variant == "constant"
    assert dataclass_from_args(AnalysisConfig, parser.parse_args(["analyze", str(tmp_path)])).lmap_variant == "keep"
    with pytest.raises(SystemExit):
        parser.parse_args(["analyze", "--help"])
    assert "--lmap-variant" in capsys.readouterr().out
