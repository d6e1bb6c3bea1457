"""tapegrad.optim.lr_scheduler against torch.optim.lr_scheduler: the same learning rates (to
1e-12) over 150 steps of an optimizer with two param groups, state_dict round trips mid-run,
resuming, and the errors."""

from __future__ import annotations

import copy
import math
import pickle

import pytest

from tapegrad.optim import lr_scheduler as ours

torch = pytest.importorskip("torch")
theirs = torch.optim.lr_scheduler

GROUPS = ({"lr": 0.1, "momentum": 0.9}, {"lr": 0.02, "momentum": 0.8})
STEPS = 150


class FakeOptimizer:
    """All a scheduler needs of an optimizer: param_groups."""

    def __init__(self, groups=GROUPS):
        self.param_groups = [dict(g) for g in groups]


def torch_optimizer(groups=GROUPS):
    params = [{"params": [torch.nn.Parameter(torch.zeros(1))], **g} for g in groups]
    return torch.optim.SGD(params, lr=0.5, momentum=0.5)


def snapshot(opt, sched):
    """The values to compare after a step: each group's lr and momentum, and get_last_lr()."""
    return [(g["lr"], g["momentum"]) for g in opt.param_groups], list(sched.get_last_lr())


def assert_same(a, b, what):
    (groups_a, last_a), (groups_b, last_b) = a, b
    flat_a = [v for pair in groups_a for v in pair] + last_a
    flat_b = [v for pair in groups_b for v in pair] + last_b
    assert flat_a == pytest.approx(flat_b, rel=1e-12, abs=1e-15), what


def trajectory(make, module, opt, steps=STEPS, metrics=None):
    """The snapshots of a fresh scheduler and of each of `steps` steps."""
    sched = make(module, opt)
    out = [snapshot(opt, sched)]
    for i in range(steps):
        if isinstance(opt, torch.optim.Optimizer):
            opt.step()  # torch warns when the scheduler steps first
        sched.step() if metrics is None else sched.step(metrics[i])
        out.append(snapshot(opt, sched))
    return out


def lambdas():
    return [lambda e: e // 30 + 1.0, lambda e: 1.0 / (1.0 + 0.1 * e)]


SCHEDULERS = {
    "StepLR": lambda m, o: m.StepLR(o, step_size=7, gamma=0.5),
    "StepLR default gamma": lambda m, o: m.StepLR(o, 30),
    "MultiStepLR": lambda m, o: m.MultiStepLR(o, milestones=[10, 30, 30, 80], gamma=0.3),
    "ExponentialLR": lambda m, o: m.ExponentialLR(o, gamma=0.97),
    "CosineAnnealingLR": lambda m, o: m.CosineAnnealingLR(o, T_max=40, eta_min=0.001),
    "CosineAnnealingLR eta_min 0": lambda m, o: m.CosineAnnealingLR(o, T_max=17),
    "LambdaLR": lambda m, o: m.LambdaLR(o, lambda e: 0.95**e),
    "LambdaLR per group": lambda m, o: m.LambdaLR(o, lambdas()),
    "LinearLR warmup": lambda m, o: m.LinearLR(o, start_factor=0.25, total_iters=20),
    "LinearLR decay": lambda m, o: m.LinearLR(o, start_factor=1.0, end_factor=0.1, total_iters=50),
    "LinearLR defaults": lambda m, o: m.LinearLR(o),
    "OneCycleLR": lambda m, o: m.OneCycleLR(o, max_lr=[0.5, 0.1], total_steps=STEPS),
    "OneCycleLR linear three-phase": lambda m, o: m.OneCycleLR(
        o, max_lr=0.3, epochs=15, steps_per_epoch=10, anneal_strategy="linear", three_phase=True, pct_start=0.25),
    "OneCycleLR no momentum cycle": lambda m, o: m.OneCycleLR(o, max_lr=0.4, total_steps=STEPS, cycle_momentum=False),
}


@pytest.mark.parametrize("name", SCHEDULERS)
def test_learning_rates_match_torch(name):
    make = SCHEDULERS[name]
    a = trajectory(make, ours, FakeOptimizer())
    b = trajectory(make, theirs, torch_optimizer())
    assert len(a) == STEPS + 1
    for step, (x, y) in enumerate(zip(a, b)):
        assert_same(x, y, f"{name}, step {step}")
    assert len({tuple(lr for lr, _ in groups) for groups, _ in a}) > 2  # the schedule does change the lr


@pytest.mark.parametrize("name", SCHEDULERS)
def test_state_dict_round_trip_mid_run(name):
    make = SCHEDULERS[name]
    opt = FakeOptimizer()
    sched = make(ours, opt)
    for _ in range(60):
        sched.step()
    state = pickle.loads(pickle.dumps(sched.state_dict()))  # picklable, lambdas left out
    saved_groups = copy.deepcopy(opt.param_groups)
    rest = [snapshot(opt, sched)]
    for _ in range(60):
        sched.step()
        rest.append(snapshot(opt, sched))

    opt2 = FakeOptimizer()
    sched2 = make(ours, opt2)  # as torch advises: the scheduler first, then the optimizer's state
    opt2.param_groups = saved_groups
    sched2.load_state_dict(state)
    resumed = [snapshot(opt2, sched2)]
    for _ in range(60):
        sched2.step()
        resumed.append(snapshot(opt2, sched2))
    assert resumed == rest
    assert sched2.last_epoch == sched.last_epoch == 120


@pytest.mark.parametrize("kwargs", [
    {},
    {"patience": 3, "factor": 0.5, "cooldown": 2},
    {"mode": "max", "patience": 2, "threshold_mode": "abs", "threshold": 0.01},
    {"patience": 1, "factor": 0.5, "min_lr": [0.01, 0.0001]},
    {"patience": 0, "factor": 0.9, "eps": 0.001, "threshold": 0.0},
])
def test_reduce_lr_on_plateau_matches_torch(kwargs):
    metrics = [1.0 / (1 + i) for i in range(20)] + [0.05 + 0.001 * math.sin(i) for i in range(STEPS - 20)]

    def make(m, o):
        return m.ReduceLROnPlateau(o, **kwargs)

    a = trajectory(make, ours, FakeOptimizer(), metrics=metrics)
    b = trajectory(make, theirs, torch_optimizer(), metrics=metrics)
    for step, (x, y) in enumerate(zip(a, b)):
        assert_same(x, y, f"ReduceLROnPlateau {kwargs}, step {step}")
    assert a[-1][1] != a[0][1]  # it did reduce


def test_reduce_lr_on_plateau_state_round_trip():
    opt = FakeOptimizer()
    sched = ours.ReduceLROnPlateau(opt, patience=2, cooldown=1)
    for v in [1.0, 0.5, 0.6, 0.6, 0.6]:
        sched.step(v)
    state = sched.state_dict()
    sched2 = ours.ReduceLROnPlateau(FakeOptimizer(), patience=2, cooldown=1)
    sched2.load_state_dict(state)
    assert (sched2.best, sched2.num_bad_epochs, sched2.cooldown_counter, sched2.last_epoch) == (0.5, 0, 1, 5)


def test_construction_sets_initial_lr_and_keeps_an_existing_one():
    opt = FakeOptimizer()
    ours.StepLR(opt, 5)
    assert [g["initial_lr"] for g in opt.param_groups] == [0.1, 0.02]
    opt.param_groups[0]["lr"] = 7.0
    sched = ours.ExponentialLR(opt, 0.5)
    assert sched.base_lrs == [0.1, 0.02]


def test_get_last_lr_is_a_copy():
    sched = ours.StepLR(FakeOptimizer(), 5)
    sched.get_last_lr()[0] = 99.0
    assert sched.get_last_lr() == [0.1, 0.02]


@pytest.mark.parametrize("name, make", [
    ("StepLR", lambda m, o, e: m.StepLR(o, 4, gamma=0.5, last_epoch=e)),
    ("ExponentialLR", lambda m, o, e: m.ExponentialLR(o, 0.9, last_epoch=e)),
    ("CosineAnnealingLR", lambda m, o, e: m.CosineAnnealingLR(o, 10, eta_min=0.01, last_epoch=e)),
    ("LinearLR", lambda m, o, e: m.LinearLR(o, 0.5, total_iters=12, last_epoch=e)),
    ("MultiStepLR", lambda m, o, e: m.MultiStepLR(o, [3, 9], last_epoch=e)),
])
def test_resuming_with_last_epoch_matches_torch(name, make):
    runs = []
    for module, opt in ((ours, FakeOptimizer()), (theirs, torch_optimizer())):
        for g in opt.param_groups:
            g["initial_lr"] = g["lr"] * 2
        runs.append(trajectory(lambda m, o: make(m, o, 5), module, opt, steps=30))
    for step, (x, y) in enumerate(zip(*runs)):
        assert_same(x, y, f"{name} resumed, step {step}")


@pytest.mark.parametrize("make, epoch", [
    (lambda m, o: m.StepLR(o, 7, gamma=0.5), 25),
    (lambda m, o: m.MultiStepLR(o, [3, 9, 9], gamma=0.5), 10),
    (lambda m, o: m.ExponentialLR(o, 0.9), 12),
    (lambda m, o: m.CosineAnnealingLR(o, 10, eta_min=0.01), 13),
    (lambda m, o: m.LinearLR(o, 0.5, total_iters=12), 5),
    (lambda m, o: m.LambdaLR(o, lambda e: 1.0 / (1 + e)), 9),
])
def test_step_with_an_epoch_uses_the_closed_form_as_torch(make, epoch):
    results = []
    for module, opt in ((ours, FakeOptimizer()), (theirs, torch_optimizer())):
        sched = make(module, opt)
        if isinstance(opt, torch.optim.Optimizer):
            opt.step()
        with pytest.warns(UserWarning, match="epoch parameter"):
            sched.step(epoch)
        results.append(snapshot(opt, sched))
    assert_same(*results, f"step({epoch})")
    assert results[0][1] != [0.1, 0.02]


def test_one_cycle_steps_no_further_than_total_steps():
    sched = ours.OneCycleLR(FakeOptimizer(), max_lr=0.1, total_steps=5)
    for _ in range(5):
        sched.step()
    with pytest.raises(ValueError, match="Tried to step 6 times. The specified number of total steps is 5"):
        sched.step()


def test_one_cycle_cycles_adam_betas_as_torch():
    groups = [{"lr": 0.1, "betas": (0.9, 0.999)}]
    opt = FakeOptimizer(groups)
    sched = ours.OneCycleLR(opt, max_lr=1.0, total_steps=10)
    topt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=0.1, betas=(0.9, 0.999))
    tsched = theirs.OneCycleLR(topt, max_lr=1.0, total_steps=10)
    assert opt.param_groups[0]["betas"] == (0.95, 0.999)  # max_momentum at the start
    for _ in range(10):
        sched.step()
        topt.step()
        tsched.step()
        assert opt.param_groups[0]["betas"] == pytest.approx(topt.param_groups[0]["betas"], rel=1e-12)
        assert opt.param_groups[0]["lr"] == pytest.approx(topt.param_groups[0]["lr"], rel=1e-12)
    assert opt.param_groups[0]["betas"][1] == 0.999


class NotAnOptimizer:
    pass


@pytest.mark.parametrize("call, error, match", [
    (lambda: ours.StepLR(NotAnOptimizer(), 3), TypeError, "NotAnOptimizer is not an optimizer"),
    (lambda: ours.StepLR(FakeOptimizer([{"momentum": 0.9}]), 3), TypeError, "with an 'lr'"),
    (lambda: ours.StepLR(FakeOptimizer(), 3, last_epoch=4), KeyError, r"param 'initial_lr' .* param_groups\[0\]"),
    (lambda: ours.StepLR(FakeOptimizer(), 0), ValueError, "step_size must be a positive number"),
    (lambda: ours.CosineAnnealingLR(FakeOptimizer(), 0), ValueError, "T_max must be a positive number"),
    (lambda: ours.LambdaLR(FakeOptimizer(), [lambda e: 1.0]), ValueError, "lr_lambda has 1 values, param_groups has 2"),
    (lambda: ours.LambdaLR(FakeOptimizer(), 0.5), TypeError, "lr_lambda should be a function, but got float"),
    (lambda: ours.LinearLR(FakeOptimizer(), start_factor=0.0), ValueError, r"start_factor must be in \(0, 1\]"),
    (lambda: ours.LinearLR(FakeOptimizer(), end_factor=1.5), ValueError, r"end_factor must be in \[0, 1\]"),
    (lambda: ours.OneCycleLR(FakeOptimizer(), 0.1), ValueError, "either total_steps OR"),
    (lambda: ours.OneCycleLR(FakeOptimizer(), 0.1, total_steps=0), ValueError, "positive integer total_steps"),
    (lambda: ours.OneCycleLR(FakeOptimizer(), 0.1, epochs=2, steps_per_epoch=0), ValueError, "steps_per_epoch"),
    (lambda: ours.OneCycleLR(FakeOptimizer(), 0.1, 10, pct_start=1.5), ValueError, "pct_start"),
    (lambda: ours.OneCycleLR(FakeOptimizer(), 0.1, 10, anneal_strategy="cosine"), ValueError, "anneal_strategy"),
    (lambda: ours.OneCycleLR(FakeOptimizer(), [0.1], 10), ValueError, "max_lr must have the same length"),
    (lambda: ours.OneCycleLR(FakeOptimizer([{"lr": 0.1}]), 0.1, 10), ValueError, "support momentum"),
    (lambda: ours.ReduceLROnPlateau(FakeOptimizer(), factor=1.0), ValueError, "Factor should be < 1.0"),
    (lambda: ours.ReduceLROnPlateau(FakeOptimizer(), mode="lowest"), ValueError, "mode 'lowest' is unknown"),
    (lambda: ours.ReduceLROnPlateau(FakeOptimizer(), threshold_mode="x"), ValueError, "threshold mode 'x'"),
    (lambda: ours.ReduceLROnPlateau(FakeOptimizer(), min_lr=[0.1]), ValueError, "min_lr must have the same length"),
])
def test_bad_arguments_raise_clear_errors(call, error, match):
    with pytest.raises(error, match=match):
        call()
