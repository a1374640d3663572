"""The public surface: every name in netdyn.__all__ resolves, and SPEC 5.9's analysis API is all there."""

import inspect

import netdyn

SPEC_59 = ["lmap_accuracy", "lmap_matrix", "lp_accuracy", "rpd", "rpd_summary", "neuron_modes", "neuron_mode_census",
           "class_geometry", "sample_basin", "weight_basin", "BasinCurve", "local_fields", "nearest_train_distance",
           "bn_perturbation", "analyze", "AnalysisConfig", "Analysis"]


def test_every_public_name_resolves():
    for name in netdyn.__all__:
        assert getattr(netdyn, name) is not None, name
    assert set(SPEC_59) <= set(netdyn.__all__)


def test_analysis_functions_take_net_and_data_first():
    for name in SPEC_59:
        obj = getattr(netdyn, name)
        if inspect.isfunction(obj) and name not in ("lmap_matrix", "neuron_mode_census", "nearest_train_distance"):
            params = list(inspect.signature(obj).parameters)
            assert params[:2] == ["net", "data"], name


def test_spec_defaults():
    sig = inspect.signature(netdyn.rpd)
    assert sig.parameters["bins"].default == 50 and sig.parameters["use"].default == "output"
    assert inspect.signature(netdyn.neuron_modes).parameters["threshold"].default == 0.9
    assert inspect.signature(netdyn.lp_accuracy).parameters["ridge"].default == 1e-6
    assert inspect.signature(netdyn.sample_basin).parameters["repeats"].default == 5
    cfg = netdyn.TrainConfig()
    assert (cfg.optimizer, cfg.lr, cfg.batch_size, cfg.epochs, cfg.eval_every, cfg.checkpoint_every) == (
        "adam", 1e-3, 100, 10, "log:50", "log:10")
    acfg = netdyn.AnalysisConfig()
    assert (acfg.repeats, acfg.max_samples, acfg.bins, acfg.classes) == (5, 2000, 50, (1, 2, 3))


def test_no_public_name_is_also_a_submodule():
    """Importing ``netdyn.X`` sets the package attribute X to the module: a public function of the same name
    (``netdyn.recommend`` once lived in ``netdyn/recommend.py``) would be replaced by it."""
    import pkgutil

    submodules = {m.name for m in pkgutil.iter_modules(netdyn.__path__)}
    assert not set(netdyn.__all__) & submodules
