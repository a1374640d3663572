"""The population engine: each member ends where its own ``train`` run ends (parameters, batch-norm buffers and
optimiser state), diverging members are masked alone, checkpoints pass both ways between the engine and ``train``,
and members that cannot share one engine are refused."""

import copy
import json
import shutil

import pytest
import torch
from torch.testing import assert_close

from netdyn import MLP, ConfigError, ModelError, TrainConfig, train
from netdyn.store import RunFolder
from netdyn.training.config import steps_per_epoch
from netdyn.training.loop import StepFn, epoch_permutation, evaluate, make_optimizer
from netdyn.training.population_engine import PopulationEngine

STEPS, BATCH = 60, 50  # 240 samples: 5 steps an epoch, the last of 40, so 12 epoch boundaries are crossed
ARCHS = {
    "plain": {"width": 16, "depth": 2},
    "bn": {"width": 16, "depth": 2, "batchnorm": True},
    "residual": {"width": 16, "depth": 3, "residual": "pre", "batchnorm": True, "activation": "tanh"},
    "residual-post": {"width": 16, "depth": 3, "residual": "post", "activation": "gelu"},
}
#: (model seed, init_scale, lr, weight_decay, momentum, minibatch seed) of the three members, per optimiser
MEMBERS = {
    "sgd": [(0, 1.0, 0.1, 0.0, 0.9, 0), (1, 0.5, 0.05, 1e-3, 0.0, 1), (2, 2.0, 0.2, 1e-2, 0.5, 2)],
    "adam": [(0, 1.0, 1e-2, 0.0, 0.9, 0), (1, 0.5, 3e-3, 1e-3, 0.9, 1), (2, 2.0, 1e-3, 1e-2, 0.9, 2)],
    "adamw": [(0, 1.0, 1e-2, 0.0, 0.9, 0), (1, 0.5, 3e-3, 1e-3, 0.9, 1), (2, 2.0, 1e-3, 1e-2, 0.9, 2)],
}
# Adam-type optimisers turn the rounding noise in the (mathematically zero) gradient of a Linear bias that feeds
# a batch norm into steps of size lr, so those biases and the running means they shift agree with train's only to
# ~1e-6 relative in float64 (everything else to ~1e-13), and not at all in float32.
CLOSE = {"rtol": 1e-5, "atol": 1e-8}


def noise_driven(key, state):
    """Whether ``key`` is a BN-fed Linear bias or a running mean (see CLOSE)."""
    block = key.rsplit(".", 2)[0]
    return key.endswith("running_mean") or (key.endswith("linear.bias") and f"{block}.bn.weight" in state)


def make_members(arch, optimizer, loss, steps=STEPS, dtype="float64", checkpoint_every="none"):
    nets, configs = [], []
    for seed, scale, lr, wd, momentum, data_seed in MEMBERS[optimizer]:
        nets.append(MLP(12, num_classes=3, init_scale=scale, seed=seed, **ARCHS[arch]))
        configs.append(
            TrainConfig(
                optimizer=optimizer, lr=lr, weight_decay=wd, momentum=momentum, batch_size=BATCH, steps=steps,
                loss=loss, seed=data_seed, device="cpu", dtype=dtype, eval_every="none",
                checkpoint_every=checkpoint_every,
            )
        )  # fmt: skip
    return nets, configs


def engine_for(data, nets, configs, start_step=0):
    dtype = getattr(torch, configs[0].dtype)
    return PopulationEngine(nets, configs, data.x_train.to(dtype), data.y_train, start_step=start_step)


def train_indices(config, n_train, steps):
    """The minibatches of train()'s loop, written out independently of the engine."""
    batch = min(config.batch_size, n_train)
    per_epoch = steps_per_epoch(n_train, batch)
    for step in range(steps):
        epoch, pos = divmod(step, per_epoch)
        perm = epoch_permutation(config.seed, epoch, n_train, torch.device("cpu"))
        yield perm[pos * batch : n_train if pos == per_epoch - 1 else (pos + 1) * batch]


def assert_optimizer_state_equal(ours, theirs, **tol):
    assert json.loads(json.dumps(ours["param_groups"])) == json.loads(json.dumps(theirs["param_groups"]))
    assert set(ours["state"]) == {int(k) for k in theirs["state"]}
    for j, entry in theirs["state"].items():
        mine = ours["state"][int(j)]
        assert sorted(mine) == sorted(entry)
        for key, value in entry.items():
            assert mine[key].dtype == value.dtype and mine[key].device == value.device, key
            assert_close(mine[key], value, **tol)


@pytest.mark.parametrize("arch", list(ARCHS))
@pytest.mark.parametrize("optimizer", ["sgd", "adam", "adamw"])
def test_each_member_ends_where_its_own_train_run_ends(tiny_data, tmp_path, arch, optimizer):
    loss = "mse" if optimizer == "adamw" else "ce"
    nets, configs = make_members(arch, optimizer, loss, checkpoint_every=STEPS)
    engine = engine_for(tiny_data, nets, configs)
    engine.run()
    assert engine.steps_done == STEPS and engine.diverged_steps() == [None] * 3
    fresh, _ = make_members(arch, optimizer, loss)
    for i, (net, config) in enumerate(zip(fresh, configs, strict=True)):
        train(net, tiny_data, config, run_dir=tmp_path / f"m{i}")
        reference = RunFolder(tmp_path / f"m{i}").load_checkpoint(STEPS)
        ours = engine.member_state_dict(i)
        assert list(ours) == list(net.state_dict())
        for key, value in reference["model"].items():
            assert ours[key].dtype == value.dtype, key
            assert_close(ours[key], value, **CLOSE, msg=lambda m, key=key, i=i: f"member {i} {key}: {m}")
        assert_optimizer_state_equal(engine.member_optimizer_state(i), reference["optim"], **CLOSE)
    if optimizer == "sgd":  # a member with momentum 0 holds no buffer, as torch.optim.SGD
        assert engine.member_optimizer_state(1)["state"] == {}


@pytest.mark.parametrize("optimizer", ["adam", "adamw"])
def test_the_elementwise_adam_update_matches_train_too(tiny_data, optimizer):
    """The update written as tensor operations (the engine's path where the fused kernel is not used) follows
    train as the fused one does."""
    nets, configs = make_members("bn", optimizer, "ce")
    engine = engine_for(tiny_data, nets, configs)
    engine.fused_optimizer = False
    engine.run()
    for i, (net, config) in enumerate(zip(make_members("bn", optimizer, "ce")[0], configs, strict=True)):
        train(net, tiny_data, config)
        ours = engine.member_state_dict(i)
        for key, value in net.state_dict().items():
            assert_close(ours[key], value, **CLOSE, msg=lambda m, key=key, i=i: f"member {i} {key}: {m}")


@pytest.mark.parametrize("fused", [True, False])
def test_members_sharing_their_hyperparameters_take_one_update_and_a_diverging_one_leaves_it(tiny_data, fused):
    """Seed-only AdamW members share lr, weight decay and step count: the fused path updates the whole stacks in
    one call until member 2 diverges (its output weights blown up after 10 steps), then the two left on their
    rows. Those two end where their own train runs end; member 2 keeps the state it had before its bad step."""
    nets, configs = make_members("bn", "adamw", "mse")
    configs = [TrainConfig(**{**c.to_dict(), "lr": 3e-3, "weight_decay": 1e-2}) for c in configs]
    engine = engine_for(tiny_data, nets, configs)
    engine.fused_optimizer = fused
    engine.run(10)
    poisoned, optim_state = engine.member_state_dict(2), engine.member_optimizer_state(2)
    poisoned["blocks.2.linear.weight"] *= 1e200  # its MSE overflows float64 at the next step
    engine.load_member(2, poisoned, optim_state)
    engine.run()
    assert engine.diverged_steps() == [None, None, 11]
    for key, value in poisoned.items():
        assert torch.equal(engine.member_state_dict(2)[key], value), key
    assert_optimizer_state_equal(engine.member_optimizer_state(2), optim_state, rtol=0, atol=0)
    for i, (net, config) in enumerate(zip(make_members("bn", "adamw", "mse")[0][:2], configs, strict=False)):
        train(net, tiny_data, config)
        for key, value in net.state_dict().items():
            ours = engine.member_state_dict(i)[key]
            assert_close(ours, value, **CLOSE, msg=lambda m, key=key, i=i: f"member {i} {key}: {m}")


def test_float32_members_follow_train_within_float32_rounding(tiny_data):
    nets, configs = make_members("bn", "adamw", "mse", steps=10, dtype="float32")
    engine = engine_for(tiny_data, nets, configs)
    engine.run()
    fresh, _ = make_members("bn", "adamw", "mse", steps=10, dtype="float32")
    for i, (net, config) in enumerate(zip(fresh, configs, strict=True)):
        train(net, tiny_data, config)
        ours = engine.member_state_dict(i)
        for key, value in net.state_dict().items():
            assert ours[key].dtype == value.dtype
            if not noise_driven(key, ours):
                assert_close(ours[key], value, rtol=1e-4, atol=1e-6)


def test_batch_indices_follow_train_slicing_with_a_large_last_batch(tiny_data):
    # 201 samples in batches of 50: the one left over joins the epoch's last batch (steps_per_epoch)
    x, y = tiny_data.x_train[:201].double(), tiny_data.y_train[:201]
    nets, configs = make_members("bn", "sgd", "ce", steps=9)
    engine = PopulationEngine(nets, configs, x, y)
    for step in range(9):
        idx = engine.batch_indices(step)
        assert idx.shape == (3, 51 if step % 4 == 3 else 50)
    for i, config in enumerate(configs):
        for step, expected in enumerate(train_indices(config, 201, 9)):
            assert torch.equal(engine.batch_indices(step)[i], expected)
    engine.run()
    assert int(engine.member_state_dict(0)["blocks.0.bn.num_batches_tracked"]) == 9


def reference_until_divergence(net, config, x, y):
    """train()'s loop by hand up to the first non-finite loss: (that step or None, and the model and optimiser
    state from just before it, which is what the engine keeps of a diverged member)."""
    net.to(torch.float64).train()
    optimizer = make_optimizer(net, config)
    step_fn = StepFn(net, optimizer, x, y, config.loss)
    for idx in train_indices(config, x.shape[0], config.steps):
        before = ({k: v.clone() for k, v in net.state_dict().items()}, copy.deepcopy(optimizer.state_dict()))
        step_fn(idx)
        if step_fn.diverged_step() is not None:
            return step_fn.diverged_step(), *before
    return None, net.state_dict(), optimizer.state_dict()


def overflowing_net(seed, arch):
    """A net whose first loss overflows float64: init_scale 1e160, applied after the cast to float64 (in
    float32, where MLP draws its weights, the weights themselves would overflow)."""
    net = MLP(12, num_classes=3, seed=seed, **ARCHS[arch]).double()
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(1e160)
    return net


@pytest.mark.parametrize(("arch", "lr"), [("plain", 1e6), ("bn", None)])
def test_a_diverging_member_is_masked_alone(tiny_data, arch, lr):
    """Member 2 diverges at its first step; with ``lr`` member 1 diverges a few steps in (in the BN net such an
    lr first turns the parameters NaN at a finite loss, which train() too only sees a step later)."""
    nets, configs = make_members(arch, "sgd", "mse")
    if lr is not None:
        configs[1] = TrainConfig(**{**configs[1].to_dict(), "lr": lr})
    nets[2] = overflowing_net(2, arch)
    x = tiny_data.x_train.double()
    engine = PopulationEngine(nets, configs, x, tiny_data.y_train)
    engine.run()
    steps = engine.diverged_steps()
    assert steps[0] is None and steps[2] == 1 and (steps[1] is None) == (lr is None)
    references = make_members(arch, "sgd", "mse")[0][:2] + [overflowing_net(2, arch)]
    for i, (net, config) in enumerate(zip(references, configs, strict=True)):
        diverged, model_state, optim_state = reference_until_divergence(net, config, x, tiny_data.y_train)
        assert diverged == steps[i]
        for key, value in model_state.items():
            assert_close(engine.member_state_dict(i)[key], value, **CLOSE)
        assert_optimizer_state_equal(engine.member_optimizer_state(i), optim_state, **CLOSE)
    assert engine.member_optimizer_state(2)["state"] == {}  # it never took a step
    for key, value in overflowing_net(2, arch).state_dict().items():  # nor updated its BN statistics
        assert torch.equal(engine.member_state_dict(2)[key], value), key


@pytest.mark.parametrize("optimizer", ["sgd", "adamw"])
def test_resuming_members_from_their_checkpoints_is_exact(tiny_data, optimizer):
    nets, configs = make_members("residual", optimizer, "ce")
    whole = engine_for(tiny_data, nets, configs)
    whole.run()
    first = engine_for(tiny_data, *make_members("residual", optimizer, "ce"))
    first.run(30)
    saved = [(first.member_state_dict(i), first.member_optimizer_state(i)) for i in range(3)]
    other_nets = [MLP(12, num_classes=3, seed=10 + i, **ARCHS["residual"]) for i in range(3)]
    resumed = engine_for(tiny_data, other_nets, configs, start_step=30)
    for i, (model_state, optim_state) in enumerate(saved):
        resumed.load_member(i, model_state, optim_state)
    resumed.run()
    for i in range(3):
        for key, value in whole.member_state_dict(i).items():
            assert torch.equal(resumed.member_state_dict(i)[key], value), key
        assert_optimizer_state_equal(resumed.member_optimizer_state(i), whole.member_optimizer_state(i), rtol=0, atol=0)


def test_checkpoints_pass_both_ways_between_train_and_the_engine(tiny_data, tmp_path):
    nets, configs = make_members("bn", "adam", "ce", checkpoint_every=30)
    reference = RunFolder(tmp_path / "train")
    train(nets[1], tiny_data, configs[1], run_dir=reference.path)  # checkpoints at steps 0, 30 and 60
    final = reference.load_checkpoint(60)

    # train -> engine: train's checkpoint at step 30 resumes in the engine and ends at train's step 60
    checkpoint = reference.load_checkpoint(30)
    resumed = engine_for(tiny_data, *make_members("bn", "adam", "ce"), start_step=30)
    resumed.load_member(1, checkpoint["model"], checkpoint["optim"])
    resumed.run()
    for key, value in final["model"].items():
        assert_close(resumed.member_state_dict(1)[key], value, **CLOSE)
    assert_optimizer_state_equal(resumed.member_optimizer_state(1), final["optim"], **CLOSE)

    # engine -> train: an engine's step-30 state, saved in place of train's own checkpoint, resumes in train
    engine = engine_for(tiny_data, *make_members("bn", "adam", "ce"))
    engine.run(30)
    folder = RunFolder(tmp_path / "from_engine")
    shutil.copytree(reference.path, folder.path)
    for step in (30, 60):
        folder.checkpoint_path(step).unlink()
    net = make_members("bn", "adam", "ce")[0][1].to(torch.float64)
    net.load_state_dict(engine.member_state_dict(1))
    optimizer = make_optimizer(net, configs[1])
    optimizer.load_state_dict(engine.member_optimizer_state(1))
    folder.save_checkpoint(30, net, optimizer, {"wall_time": 0.0, "epoch": 6.0})
    train(net, tiny_data, configs[1], run_dir=folder.path, resume=True)
    for key, value in final["model"].items():
        assert_close(net.state_dict()[key], value, **CLOSE)


def test_load_member_checks_what_it_restores(tiny_data):
    engine = engine_for(tiny_data, *make_members("plain", "adamw", "ce"))
    engine.run(2)
    model_state, optim_state = engine.member_state_dict(0), engine.member_optimizer_state(0)
    with pytest.raises(ConfigError, match="lr"):  # member 0's checkpoint is not member 1's
        engine.load_member(1, model_state, optim_state)
    with pytest.raises(ModelError, match="missing"):
        engine.load_member(0, {k: v for k, v in model_state.items() if "bias" not in k}, optim_state)
    engine.load_member(2, model_state, None)  # weights only: a fresh optimiser
    assert engine.member_optimizer_state(2)["state"] == {}
    for key, value in model_state.items():
        assert torch.equal(engine.member_state_dict(2)[key], value)


@pytest.mark.parametrize("bn_mode", ["running", "batch"])
def test_evaluate_matches_the_loop_on_each_member(tiny_data, bn_mode):
    nets, configs = make_members("residual", "adam", "ce")
    engine = engine_for(tiny_data, nets, configs)
    engine.run(12)
    engine.write_back(nets)
    x_test = tiny_data.x_test.double()
    results = engine.evaluate(x_test, tiny_data.y_test, bn_mode=bn_mode, batch_size=50)
    for net, (loss, accuracy) in zip(nets, results, strict=True):
        ref_loss, ref_accuracy = evaluate(net.eval(), x_test, tiny_data.y_test, "ce", bn_mode, 50)
        assert loss == pytest.approx(ref_loss, rel=1e-10) and accuracy == ref_accuracy


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"net": {"width": 32}}, "width"),
        ({"net": {"batchnorm": True}}, "batchnorm"),
        ({"config": {"batch_size": 40}}, "batch_size"),
        ({"config": {"optimizer": "adam"}}, "optimizer"),
        ({"config": {"loss": "mse"}}, "loss"),
        ({"config": {"steps": 61}}, "steps"),
        ({"config": {"dtype": "float32"}}, "dtype"),
    ],
)
def test_members_that_cannot_share_an_engine_are_refused(tiny_data, change, field):
    nets, configs = make_members("plain", "sgd", "ce")
    nets[2] = MLP(12, num_classes=3, seed=2, **{**ARCHS["plain"], **change.get("net", {})})
    configs[2] = TrainConfig(**{**configs[2].to_dict(), **change.get("config", {})})
    with pytest.raises(ConfigError, match=field):
        engine_for(tiny_data, nets, configs)
