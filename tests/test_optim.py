"""tapegrad.optim against torch.optim: the same float64 problem (a small tanh MLP on fixed random
data) trained by both, parameters compared after every run; and the Optimizer API around it
(zero_grad, state_dict, add_param_group, closures, validation, schedulers, the native step).

Two ways to train side by side. ``train`` lets each library differentiate its own parameters:
the whole loop, but some runs (maximizing, RMSprop's sign-like steps near a minimum) amplify
rounding differences by orders of magnitude within 100 steps. ``train_pair`` computes the gradient
once, with tapegrad, and hands a copy to both optimizers, so the parameters differ only by the
optimizers' arithmetic; that is the 1e-12 comparison of every hyperparameter combination.
"""

from __future__ import annotations

import itertools
from typing import Any, Callable, Dict, List, Sequence

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

import tapegrad as tg
from tapegrad import optim

pytestmark = pytest.mark.usefixtures("torch_one_thread")  # (conftest.py)

torch = pytest.importorskip("torch")

RTOL = 1e-12
ATOL = 1e-15
STEPS = 100

_rng = np.random.default_rng(42)
X = _rng.standard_normal((16, 4))
Y = _rng.standard_normal((16, 3))
INIT = {
    "w1": _rng.standard_normal((4, 6)) * 0.5,
    "b1": _rng.standard_normal(6) * 0.1,
    "w2": _rng.standard_normal((6, 3)) * 0.5,
    "b2": _rng.standard_normal(3) * 0.1,
}




def params(m: Any, dtype: Any = np.float64) -> List[Any]:
    return [m.tensor(INIT[k].astype(dtype), requires_grad=True) for k in ("w1", "b1", "w2", "b2")]


def loss_of(m: Any, ps: Sequence[Any], dtype: Any = np.float64) -> Any:
    w1, b1, w2, b2 = ps
    h = m.tanh(m.tensor(X.astype(dtype)) @ w1 + b1)
    return ((h @ w2 + b2 - m.tensor(Y.astype(dtype))) ** 2).mean()


def train(m: Any, opt: Any, ps: Sequence[Any], steps: int = STEPS, dtype: Any = np.float64,
          each: Callable[[int], None] = lambda i: None) -> List[float]:
    losses = []
    for i in range(steps):
        opt.zero_grad()
        loss = loss_of(m, ps, dtype)
        loss.backward()
        opt.step()
        losses.append(loss.item())
        each(i)
    return losses


def train_pair(topt: Any, popt: Any, tps: Sequence[Any], pps: Sequence[Any], steps: int = STEPS,
               dtype: Any = np.float64) -> None:
    """Both optimizers stepped on the gradient tapegrad computes at tapegrad's parameters."""
    for _ in range(steps):
        topt.zero_grad()
        popt.zero_grad()
        loss_of(tg, tps, dtype).backward()
        for a, b in zip(tps, pps):
            b.grad = None if a.grad is None else torch.tensor(a.grad.numpy().copy())
        topt.step()
        popt.step()


def np_of(t: Any) -> np.ndarray:
    if isinstance(t, torch.Tensor):
        return t.detach().numpy()
    return t.numpy() if isinstance(t, tg.Tensor) else np.asarray(t)  # (NAdam's mu_product is a number)


def assert_same_params(tps: Sequence[Any], pps: Sequence[Any], rtol: float = RTOL, atol: float = ATOL) -> None:
    for k, (a, b) in enumerate(zip(tps, pps)):
        assert a.dtype == np_of(b).dtype
        assert_allclose(np_of(a), np_of(b), rtol=rtol, atol=atol, err_msg=f"parameter {k}")


def compare(name: str, groups: Callable[[List[Any]], Any] = lambda ps: ps, steps: int = STEPS,
            **kwargs: Any) -> tuple:
    """Trains the MLP with tapegrad.optim.<name> and torch.optim.<name> (same kwargs, same groups)
    on the same gradients; the parameters must agree to RTOL and must have moved."""
    tps, pps = params(tg), params(torch)
    topt = getattr(optim, name)(groups(tps), **kwargs)
    popt = getattr(torch.optim, name)(groups(pps), **kwargs)
    train_pair(topt, popt, tps, pps, steps)
    assert_same_params(tps, pps)
    moved = sum(not np.array_equal(a.numpy(), INIT[k]) for a, k in zip(tps, INIT))
    assert moved == 4
    return topt, popt, tps, pps


# --- each optimizer against torch's ------------------------------------------------------------------------

SGD_GRID = list(itertools.product([0.0, 0.9], [0.0, 0.1], [False, True], [0.0, 0.01], [False, True]))


@pytest.mark.parametrize("momentum,dampening,nesterov,weight_decay,maximize", SGD_GRID)
def test_sgd(momentum: float, dampening: float, nesterov: bool, weight_decay: float, maximize: bool) -> None:
    kw = dict(lr=0.05, momentum=momentum, dampening=dampening, nesterov=nesterov, weight_decay=weight_decay,
              maximize=maximize)
    if nesterov and (momentum == 0 or dampening != 0):
        with pytest.raises(ValueError):
            torch.optim.SGD(params(torch), **kw)
        with pytest.raises(ValueError, match="[Nn]esterov"):
            optim.SGD(params(tg), **kw)
        return
    compare("SGD", **kw)


@pytest.mark.parametrize("maximize", [False, True])
@pytest.mark.parametrize("weight_decay", [0.0, 0.05])
@pytest.mark.parametrize("amsgrad", [False, True])
@pytest.mark.parametrize("name", ["Adam", "AdamW"])
def test_adam_adamw(name: str, amsgrad: bool, weight_decay: float, maximize: bool) -> None:
    compare(name, lr=0.01, betas=(0.8, 0.99), eps=1e-8, amsgrad=amsgrad, weight_decay=weight_decay,
            maximize=maximize)


@pytest.mark.parametrize("name", ["Adam", "AdamW"])
def test_adam_adamw_defaults(name: str) -> None:
    compare(name)
    topt = getattr(optim, name)(params(tg))
    popt = getattr(torch.optim, name)(params(torch))
    for k in ("lr", "betas", "eps", "weight_decay", "amsgrad", "maximize"):
        assert topt.defaults[k] == popt.defaults[k], k


@pytest.mark.parametrize("maximize", [False, True])
@pytest.mark.parametrize("weight_decay", [0.0, 0.01])
@pytest.mark.parametrize("momentum", [0.0, 0.9])
@pytest.mark.parametrize("centered", [False, True])
def test_rmsprop(centered: bool, momentum: float, weight_decay: float, maximize: bool) -> None:
    compare("RMSprop", lr=0.005, alpha=0.9, centered=centered, momentum=momentum, weight_decay=weight_decay,
            maximize=maximize)


@pytest.mark.parametrize("maximize", [False, True])
@pytest.mark.parametrize("weight_decay", [0.0, 0.01])
@pytest.mark.parametrize("initial_accumulator_value", [0.0, 0.1])
@pytest.mark.parametrize("lr_decay", [0.0, 0.01])
def test_adagrad(lr_decay: float, initial_accumulator_value: float, weight_decay: float, maximize: bool) -> None:
    compare("Adagrad", lr=0.05, lr_decay=lr_decay, initial_accumulator_value=initial_accumulator_value,
            weight_decay=weight_decay, maximize=maximize)


@pytest.fixture(autouse=True)
def torch_float64_scalars() -> Any:
    """PyTorch keeps NAdam's mu_product (and the step counts) in float64 when its default dtype is, as
    tapegrad's is: the comparisons set it so (test_nadam_float32_scalars checks the float32 case)."""
    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(before)


@pytest.mark.parametrize("maximize", [False, True])
@pytest.mark.parametrize("weight_decay", [0.0, 0.01])
@pytest.mark.parametrize("rho,eps", [(0.9, 1e-6), (0.5, 1e-3)])
def test_adadelta(rho: float, eps: float, weight_decay: float, maximize: bool) -> None:
    compare("Adadelta", lr=0.5, rho=rho, eps=eps, weight_decay=weight_decay, maximize=maximize)


@pytest.mark.parametrize("maximize", [False, True])
@pytest.mark.parametrize("weight_decay", [0.0, 0.01])
@pytest.mark.parametrize("betas", [(0.9, 0.999), (0.5, 0.9)])
def test_adamax(betas: Any, weight_decay: float, maximize: bool) -> None:
    compare("Adamax", lr=0.01, betas=betas, weight_decay=weight_decay, maximize=maximize)


@pytest.mark.parametrize("maximize", [False, True])
@pytest.mark.parametrize("weight_decay,decoupled", [(0.0, False), (0.01, False), (0.05, True)])
@pytest.mark.parametrize("momentum_decay", [4e-3, 0.1])
def test_nadam(momentum_decay: float, weight_decay: float, decoupled: bool, maximize: bool) -> None:
    compare("NAdam", lr=0.01, momentum_decay=momentum_decay, weight_decay=weight_decay,
            decoupled_weight_decay=decoupled, maximize=maximize)


def test_nadam_float32_scalars() -> None:
    """With float32 as both libraries' default dtype, mu_product is rounded to float32 each step, as
    PyTorch's 0-d float32 state tensor is."""
    torch.set_default_dtype(torch.float32)
    tg.set_default_dtype(tg.float32)
    try:
        compare("NAdam", lr=0.01, momentum_decay=0.1)
    finally:
        tg.set_default_dtype(tg.float64)


@pytest.mark.parametrize("maximize", [False, True])
@pytest.mark.parametrize("weight_decay,decoupled", [(0.0, False), (0.01, False), (0.05, True)])
@pytest.mark.parametrize("betas", [(0.9, 0.999), (0.9, 0.8)])  # (0.8: the rectified steps from step 6 on)
def test_radam(betas: Any, weight_decay: float, decoupled: bool, maximize: bool) -> None:
    compare("RAdam", lr=0.01, betas=betas, weight_decay=weight_decay, decoupled_weight_decay=decoupled,
            maximize=maximize)


@pytest.mark.parametrize("name,kw,message", [
    ("Adadelta", dict(rho=1.5), "Invalid rho value: 1.5"), ("Adadelta", dict(eps=-1.0), "Invalid epsilon value: -1.0"),
    ("Adamax", dict(betas=(1.0, 0.9)), "Invalid beta parameter at index 0: 1.0"),
    ("NAdam", dict(momentum_decay=-0.1), "Invalid momentum_decay value: -0.1"),
    ("RAdam", dict(lr=float("nan")), "Invalid learning rate: nan"),
])
def test_new_optimizers_refuse_what_torch_refuses(name: str, kw: Dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        getattr(optim, name)(params(tg), **kw)
    with pytest.raises(ValueError, match=message):
        getattr(torch.optim, name)(params(torch), **kw)


@pytest.mark.parametrize("name,kw", [
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01)),
    ("SGD", dict(lr=0.05, momentum=0.5, dampening=0.1)),
    ("Adam", dict(lr=0.01, amsgrad=True, weight_decay=0.05)),
    ("Adam", dict(lr=0.01, maximize=True)),
    ("AdamW", dict(lr=0.01, amsgrad=True)),
    ("RMSprop", dict(lr=0.005, centered=True, momentum=0.9, weight_decay=0.01)),
    ("Adagrad", dict(lr=0.05, lr_decay=0.01, initial_accumulator_value=0.1, weight_decay=0.01)),
    ("Adagrad", dict(lr=0.05, maximize=True)),
    ("Adadelta", dict(lr=1.0, rho=0.8, weight_decay=0.01)),
    ("Adamax", dict(lr=0.01, weight_decay=0.01)),
    ("NAdam", dict(lr=0.01, decoupled_weight_decay=True, weight_decay=0.01)),
    ("RAdam", dict(lr=0.01, maximize=True)),
])
def test_end_to_end_with_each_librarys_own_gradients(name: str, kw: Dict[str, Any]) -> None:
    tps, pps = params(tg), params(torch)
    tl = train(tg, getattr(optim, name)(tps, **kw), tps)
    pl = train(torch, getattr(torch.optim, name)(pps, **kw), pps)
    assert_allclose(tl, pl, rtol=RTOL)
    assert_same_params(tps, pps)
    assert (tl[-1] > tl[0]) == kw.get("maximize", False)


TWO_GROUPS = {
    "SGD": dict(lr=0.05, momentum=0.9, nesterov=True),
    "Adam": dict(lr=0.01, amsgrad=True),
    "AdamW": dict(lr=0.01),
    "RMSprop": dict(lr=0.005, centered=True, momentum=0.5),
    "Adagrad": dict(lr=0.05, lr_decay=0.01),
    "Adadelta": dict(lr=0.5),
    "Adamax": dict(lr=0.01),
    "NAdam": dict(lr=0.01, momentum_decay=0.01),
    "RAdam": dict(lr=0.01),
}


@pytest.mark.parametrize("name", list(TWO_GROUPS))
def test_two_param_groups_with_their_own_hyperparameters(name: str) -> None:
    def groups(ps: List[Any]) -> Any:
        return [{"params": ps[:2]}, {"params": ps[2:], "lr": 0.002, "weight_decay": 0.1}]

    topt, popt, _, _ = compare(name, groups, **TWO_GROUPS[name])
    assert [g["lr"] for g in topt.param_groups] == [g["lr"] for g in popt.param_groups]
    assert [g["weight_decay"] for g in topt.param_groups] == [g["weight_decay"] for g in popt.param_groups]
    assert [len(g["params"]) for g in topt.param_groups] == [2, 2]


# --- the Optimizer API -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("set_to_none", [True, False])
def test_zero_grad(set_to_none: bool) -> None:
    for m, o in ((tg, optim), (torch, torch.optim)):
        ps = params(m)
        opt = o.SGD(ps, lr=0.1)
        loss_of(m, ps).backward()
        assert all(p.grad is not None for p in ps)
        opt.zero_grad(set_to_none=set_to_none)
        if set_to_none:
            assert all(p.grad is None for p in ps)
        else:
            for p in ps:
                assert p.grad is not None and p.grad.shape == p.shape
                assert_array_equal(np_of(p.grad), np.zeros(p.shape))
        opt.zero_grad()  # the default drops them
        assert all(p.grad is None for p in ps)


def test_zero_grad_in_place_keeps_accumulating_correctly() -> None:
    tps, pps = params(tg), params(torch)
    topt, popt = optim.SGD(tps, lr=0.1, momentum=0.5), torch.optim.SGD(pps, lr=0.1, momentum=0.5)
    for _ in range(5):
        for m, ps, opt in ((tg, tps, topt), (torch, pps, popt)):
            opt.zero_grad(set_to_none=False)
            loss_of(m, ps).backward()
            opt.step()
    assert_same_params(tps, pps)


STATE_KEYS = {
    "SGD": (dict(lr=0.05, momentum=0.9), {"momentum_buffer"}),
    "Adam": (dict(lr=0.01, amsgrad=True), {"step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"}),
    "AdamW": (dict(lr=0.01), {"step", "exp_avg", "exp_avg_sq"}),
    "RMSprop": (dict(lr=0.005, centered=True, momentum=0.9), {"step", "square_avg", "momentum_buffer", "grad_avg"}),
    "Adagrad": (dict(lr=0.05, lr_decay=0.01), {"step", "sum"}),
    "Adadelta": (dict(lr=0.5, rho=0.8), {"step", "square_avg", "acc_delta"}),
    "Adamax": (dict(lr=0.01), {"step", "exp_avg", "exp_inf"}),
    "NAdam": (dict(lr=0.01), {"step", "mu_product", "exp_avg", "exp_avg_sq"}),
    "RAdam": (dict(lr=0.01), {"step", "exp_avg", "exp_avg_sq"}),
}


@pytest.mark.parametrize("name", list(STATE_KEYS))
def test_state_dict_round_trip_mid_run(name: str) -> None:
    kw, keys = STATE_KEYS[name]
    tps, pps = params(tg), params(torch)
    topt = getattr(optim, name)([{"params": tps[:3]}, {"params": tps[3:], "lr": 0.003}], **kw)
    popt = getattr(torch.optim, name)([{"params": pps[:3]}, {"params": pps[3:], "lr": 0.003}], **kw)
    train_pair(topt, popt, tps, pps, 30)
    sd, psd = topt.state_dict(), popt.state_dict()
    # torch's layout: 'state' by integer index, 'param_groups' listing indices
    assert set(sd) == set(psd) == {"state", "param_groups"}
    assert sorted(sd["state"]) == sorted(psd["state"]) == [0, 1, 2, 3]
    assert all(type(i) is int for i in sd["state"])
    assert [g["params"] for g in sd["param_groups"]] == [g["params"] for g in psd["param_groups"]] == [[0, 1, 2],
                                                                                                      [3]]
    for i in range(4):
        assert set(sd["state"][i]) == set(psd["state"][i]) == keys
        for k in keys - {"step"}:
            assert_allclose(np_of(sd["state"][i][k]), np_of(psd["state"][i][k]), rtol=1e-10, atol=1e-15)
        if "step" in keys:
            assert float(sd["state"][i]["step"]) == float(psd["state"][i]["step"]) == 30
    for g, pg in zip(sd["param_groups"], psd["param_groups"]):
        for k, v in g.items():
            assert k in pg and pg[k] == v, k
    # the state_dict is a copy: stepping on does not change it
    before = {i: {k: np_of(v).copy() for k, v in s.items() if k != "step"} for i, s in sd["state"].items()}
    # a fresh optimizer on a copy of the parameters continues identically
    copies = [tg.tensor(p.numpy().copy(), requires_grad=True) for p in tps]
    fresh = getattr(optim, name)([{"params": copies[:3]}, {"params": copies[3:]}], **kw)
    fresh.load_state_dict(sd)
    assert [g["lr"] for g in fresh.param_groups] == [kw["lr"], 0.003]
    train_pair(topt, popt, tps, pps, 30)
    train(tg, fresh, copies, 30)
    for a, b in zip(tps, copies):
        assert_array_equal(a.numpy(), b.numpy())
    assert_same_params(tps, pps)
    for i, s in before.items():
        for k, v in s.items():
            assert_array_equal(np_of(sd["state"][i][k]), v)


def test_load_state_dict_checks_the_layout() -> None:
    opt = optim.Adam(params(tg))
    sd = opt.state_dict()
    other = optim.Adam([{"params": params(tg)[:2]}, {"params": params(tg)[2:]}])
    with pytest.raises(ValueError):
        other.load_state_dict(sd)
    short = optim.Adam(params(tg)[:3])
    with pytest.raises(ValueError):
        short.load_state_dict(sd)


@pytest.mark.parametrize("name", ["SGD", "Adam", "RMSprop", "Adagrad"])
def test_add_param_group(name: str) -> None:
    kw = STATE_KEYS[name][0]
    tps, pps = params(tg), params(torch)
    topt = getattr(optim, name)(tps[:2], **kw)
    popt = getattr(torch.optim, name)(pps[:2], **kw)
    train(tg, topt, tps, 20)
    train(torch, popt, pps, 20)
    topt.add_param_group({"params": tps[2:], "lr": 0.002})
    popt.add_param_group({"params": pps[2:], "lr": 0.002})
    assert len(topt.param_groups) == 2 and topt.param_groups[1]["lr"] == 0.002
    assert {k: v for k, v in topt.param_groups[1].items() if k not in ("params", "lr")} == {
        k: v for k, v in topt.defaults.items() if k != "lr"}
    train(tg, topt, tps, 20)
    train(torch, popt, pps, 20)
    assert_same_params(tps, pps)
    with pytest.raises(ValueError):
        topt.add_param_group({"params": tps[:1]})  # already optimized


@pytest.mark.parametrize("name", ["SGD", "Adam", "AdamW", "RMSprop", "Adagrad"])
def test_parameter_without_grad_is_skipped(name: str) -> None:
    kw = dict(STATE_KEYS[name][0], weight_decay=0.1)
    unused = tg.tensor([1.0, -2.0], requires_grad=True)
    punused = torch.tensor([1.0, -2.0], requires_grad=True)
    tps, pps = params(tg), params(torch)
    topt = getattr(optim, name)(tps + [unused], **kw)
    popt = getattr(torch.optim, name)(pps + [punused], **kw)
    train(tg, topt, tps, 10)
    train(torch, popt, pps, 10)
    assert unused.grad is None
    assert_array_equal(unused.numpy(), [1.0, -2.0])  # untouched, weight decay and all
    assert_same_params(tps, pps)
    if name != "Adagrad":  # (Adagrad makes its state at construction, as torch's does)
        assert unused not in topt.state or not topt.state[unused]


@pytest.mark.parametrize("name,kw", [
    ("SGD", dict(lr=-0.1)), ("Adam", dict(lr=-1e-3)), ("AdamW", dict(lr=-1.0)), ("RMSprop", dict(lr=-0.01)),
    ("Adagrad", dict(lr=-0.01)),
])
def test_negative_learning_rate_is_refused(name: str, kw: Dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="Invalid learning rate"):
        getattr(torch.optim, name)(params(torch), **kw)
    with pytest.raises(ValueError, match="Invalid learning rate"):
        getattr(optim, name)(params(tg), **kw)


@pytest.mark.parametrize("name,kw", [
    ("SGD", dict(lr=0.1, momentum=-0.5)), ("SGD", dict(lr=0.1, weight_decay=-1.0)),
    ("Adam", dict(betas=(1.0, 0.999))), ("Adam", dict(betas=(0.9, -0.1))), ("Adam", dict(eps=-1e-8)),
    ("Adam", dict(weight_decay=-0.1)), ("AdamW", dict(betas=(-0.1, 0.9))), ("RMSprop", dict(alpha=-0.1)),
    ("RMSprop", dict(momentum=-0.1)), ("RMSprop", dict(eps=-1.0)), ("Adagrad", dict(lr_decay=-0.1)),
    ("Adagrad", dict(initial_accumulator_value=-0.1)), ("Adagrad", dict(eps=-1.0)),
])
def test_invalid_hyperparameters_are_refused(name: str, kw: Dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="Invalid"):
        getattr(torch.optim, name)(params(torch), **kw)
    with pytest.raises(ValueError, match="Invalid"):
        getattr(optim, name)(params(tg), **kw)


HYPERPARAMETERS = {
    "SGD": ["lr", "momentum", "dampening", "weight_decay"],
    "Adam": ["lr", "eps", "betas[0]", "betas[1]", "weight_decay"],
    "AdamW": ["lr", "eps", "betas[0]", "betas[1]", "weight_decay"],
    "RMSprop": ["lr", "alpha", "eps", "weight_decay", "momentum"],
    "Adagrad": ["lr", "lr_decay", "weight_decay", "initial_accumulator_value", "eps"],
}
EDGE_VALUES = [float("nan"), -1e-3, -0.0, 0.0, 0.5, 1.0, 2.0, float("inf"), float("-inf"), np.float32(0.25)]
# (torch refuses betas that are not Python floats, np.float32 and ints included, "betas must be either both floats
# or both Tensors"; tapegrad takes any real numbers there)
VALIDATION = [(n, h, v) for n, hs in HYPERPARAMETERS.items() for h in hs for v in EDGE_VALUES
              if not (h.startswith("betas") and not isinstance(v, float))]


@pytest.mark.parametrize("name,hyperparameter,value", VALIDATION, ids=[f"{n}-{h}={v!r}" for n, h, v in VALIDATION])
def test_hyperparameters_are_validated_as_torch_validates_them(name: str, hyperparameter: str, value: float) -> None:
    """Where torch's constructor raises (nan included: ``not 0.0 <= value``; but SGD's ``value < 0.0`` lets nan
    through), ours raises the same ValueError, naming the hyperparameter and the value; where it accepts, so do
    we, and keep the value."""
    if hyperparameter.startswith("betas"):
        kw: Dict[str, Any] = {"betas": (value, 0.999) if hyperparameter == "betas[0]" else (0.9, value)}
    else:
        kw = {hyperparameter: value}
    try:
        theirs = getattr(torch.optim, name)(params(torch), **kw)
    except ValueError as e:
        with pytest.raises(ValueError) as ours:
            getattr(optim, name)(params(tg), **kw)
        assert str(ours.value) == str(e)  # e.g. "Invalid learning rate: nan", "Invalid beta parameter at index 1: 1.0"
        return
    opt = getattr(optim, name)(params(tg), **kw)
    key = hyperparameter.split("[")[0]
    assert_array_equal(np.asarray(opt.param_groups[0][key], float), np.asarray(theirs.param_groups[0][key], float))


def test_nan_learning_rate_is_refused_by_adam_rmsprop_adagrad_and_in_param_groups() -> None:
    for name in ("Adam", "AdamW", "RMSprop", "Adagrad"):
        with pytest.raises(ValueError, match="^Invalid learning rate: nan$"):
            getattr(optim, name)(params(tg), lr=float("nan"))
    ps = params(tg)
    opt = optim.Adam(ps[:2], lr=0.1)
    with pytest.raises(ValueError, match="^Invalid epsilon value: nan$"):
        opt.add_param_group({"params": ps[2:], "eps": float("nan")})  # (stricter than torch, which checks no group)
    with pytest.raises(ValueError, match="^Invalid beta parameter at index 1: nan$"):
        optim.AdamW([{"params": ps[:2], "betas": (0.9, float("nan"))}])
    with pytest.raises(ValueError, match="^Invalid learning rate: nan$"):
        optim.RMSprop([{"params": ps, "lr": 0.1}], lr=float("nan"))  # the default counts, even when overridden
    assert len(opt.param_groups) == 1


def test_bad_parameters_are_refused() -> None:
    w = tg.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(ValueError, match="non-leaf"):
        optim.SGD([w * 2], lr=0.1)
    with pytest.raises(ValueError, match="non-leaf"):
        torch.optim.SGD([torch.tensor([1.0], requires_grad=True) * 2], lr=0.1)
    with pytest.raises((TypeError, ValueError)):
        optim.Adam([tg.tensor(np.array([1, 2]))])
    with pytest.raises((TypeError, ValueError)):
        optim.Adam([tg.tensor(np.array([True]))])
    with pytest.raises(TypeError):
        optim.SGD(w, lr=0.1)  # a tensor, not an iterable of them (torch: TypeError too)
    with pytest.raises(TypeError):
        torch.optim.SGD(torch.ones(2, requires_grad=True), lr=0.1)
    with pytest.raises(ValueError, match="empty"):
        optim.SGD([], lr=0.1)
    with pytest.raises(TypeError):
        optim.SGD([w, 3.0], lr=0.1)
    with pytest.raises(ValueError):
        optim.SGD([{"params": [w]}, {"params": [w]}], lr=0.1)


@pytest.mark.parametrize("name", ["SGD", "Adam", "RMSprop"])
def test_step_with_closure_returns_its_loss(name: str) -> None:
    kw = STATE_KEYS[name][0]
    tps, pps = params(tg), params(torch)
    topt, popt = getattr(optim, name)(tps, **kw), getattr(torch.optim, name)(pps, **kw)
    calls = []

    def closure_for(m: Any, ps: List[Any], opt: Any) -> Callable[[], Any]:
        def closure() -> Any:
            calls.append(m.is_grad_enabled())
            opt.zero_grad()
            loss = loss_of(m, ps)
            loss.backward()
            return loss

        return closure

    for _ in range(10):
        with tg.no_grad():  # the closure gets grad mode back, as in torch
            tloss = topt.step(closure_for(tg, tps, topt))
        with torch.no_grad():
            ploss = popt.step(closure_for(torch, pps, popt))
        assert isinstance(tloss, tg.Tensor)
        assert_allclose(tloss.item(), ploss.item(), rtol=1e-11)
    assert calls == [True] * 20
    assert_same_params(tps, pps)
    assert topt.step() is None


@pytest.mark.parametrize("name", ["SGD", "Adam", "AdamW", "RMSprop", "Adagrad"])
def test_float32_parameters(name: str) -> None:
    kw = STATE_KEYS[name][0]
    tps, pps = params(tg, np.float32), params(torch, np.float32)
    topt, popt = getattr(optim, name)(tps, **kw), getattr(torch.optim, name)(pps, **kw)
    train_pair(topt, popt, tps, pps, 50, np.float32)
    tl = train(tg, topt, tps, 5, np.float32)
    pl = train(torch, popt, pps, 5, np.float32)
    for p in tps:
        assert p.dtype == np.float32
    for s in topt.state.values():
        for k, v in s.items():
            if isinstance(v, tg.Tensor) and v.ndim:
                assert v.dtype == np.float32, k
    assert tl[-1] < loss_of(tg, params(tg, np.float32), np.float32).item()
    assert_allclose(tl, pl, rtol=1e-5)
    assert_same_params(tps, pps, rtol=1e-5, atol=1e-6)


def test_step_lr_matches_torch() -> None:
    tps, pps = params(tg), params(torch)
    topt = optim.SGD([{"params": tps[:2]}, {"params": tps[2:], "lr": 0.02}], lr=0.1, momentum=0.9)
    popt = torch.optim.SGD([{"params": pps[:2]}, {"params": pps[2:], "lr": 0.02}], lr=0.1, momentum=0.9)
    tsched = optim.lr_scheduler.StepLR(topt, step_size=3, gamma=0.5)
    psched = torch.optim.lr_scheduler.StepLR(popt, step_size=3, gamma=0.5)
    tlrs, plrs = [], []
    for _ in range(10):
        train(tg, topt, tps, 2)
        train(torch, popt, pps, 2)
        tsched.step()
        psched.step()
        tlrs.append(tsched.get_last_lr())
        plrs.append(psched.get_last_lr())
        assert [g["lr"] for g in topt.param_groups] == [g["lr"] for g in popt.param_groups]
    assert tlrs == plrs
    assert tlrs[-1] == [0.1 * 0.5 ** 3, 0.02 * 0.5 ** 3]
    assert_same_params(tps, pps)


@pytest.mark.parametrize("name,native", [("SGD", "sgd"), ("Adam", "adam"), ("AdamW", "adam"),
                                         ("RMSprop", "rmsprop"), ("Adagrad", "adagrad")])
def test_update_is_one_native_call_per_parameter(name: str, native: str, monkeypatch: pytest.MonkeyPatch) -> None:
    module = tg._core._optim
    real = getattr(module, native)
    calls = []

    def counting(p: Any, g: Any, *rest: Any) -> Any:
        calls.append((id(p), g.shape))
        return real(p, g, *rest)

    monkeypatch.setattr(module, native, counting)
    kw = dict(STATE_KEYS[name][0], lr=0.01)
    ps = params(tg)
    extra = tg.tensor([0.5], requires_grad=True)  # no gradient: no call
    opt = getattr(optim, name)(ps + [extra], **kw)
    train(tg, opt, ps, 3)
    assert len(calls) == 3 * len(ps)
    assert calls[:4] == [(id(p), p.shape) for p in ps]
    # the numbers are those of the unwrapped kernel: the same as torch's
    pps = params(torch)
    train(torch, getattr(torch.optim, name)(pps + [torch.tensor([0.5], requires_grad=True)], **kw), pps, 3)
    assert_same_params(ps, pps)


# --- LBFGS ---------------------------------------------------------------------------------------------------


def lbfgs_run(m: Any, steps: int, dtype: Any = np.float64, **kw: Any) -> tuple:
    ps = params(m, dtype)
    opt = m.optim.LBFGS(ps, **kw)

    def closure() -> Any:
        opt.zero_grad()
        loss = loss_of(m, ps, dtype)
        loss.backward()
        return loss

    losses = [float(opt.step(closure).detach()) for _ in range(steps)]
    return opt, ps, losses


@pytest.mark.parametrize("line_search_fn", [None, "strong_wolfe"])
@pytest.mark.parametrize("max_iter,history_size", [(1, 100), (3, 100), (8, 100), (8, 3)])
def test_lbfgs_against_torch(line_search_fn: Any, max_iter: int, history_size: int) -> None:
    """The same iterates, evaluations and memory as torch.optim.LBFGS (the dot products round in
    another order, which long runs amplify: compared within a step of up to eight iterations, twice)."""
    kw = dict(max_iter=max_iter, history_size=history_size, line_search_fn=line_search_fn)
    topt, tps, tl = lbfgs_run(tg, 2, **kw)
    popt, pps, pl = lbfgs_run(torch, 2, **kw)
    assert_allclose(tl, pl, rtol=1e-12)
    assert_same_params(tps, pps, rtol=1e-10, atol=1e-13)
    ts, ps_ = topt.state_dict()["state"][0], popt.state_dict()["state"][0]
    assert set(ts) == set(ps_) - {"al"}  # (torch keeps its scratch list too)
    for k in ("func_evals", "n_iter"):
        assert ts[k] == ps_[k], k
    assert len(ts["old_dirs"]) == len(ps_["old_dirs"]) <= history_size
    for k in ("t", "H_diag", "prev_loss"):
        assert_allclose(float(ts[k]), float(ps_[k]), rtol=1e-9, err_msg=k)
    assert_allclose(np_of(ts["d"]), np_of(ps_["d"]), rtol=1e-8, atol=1e-12)


@pytest.mark.parametrize("line_search_fn", [None, "strong_wolfe"])
def test_lbfgs_converges_as_torchs(line_search_fn: Any) -> None:
    _, tps, tl = lbfgs_run(tg, 5, line_search_fn=line_search_fn)
    _, pps, pl = lbfgs_run(torch, 5, line_search_fn=line_search_fn)
    assert tl[-1] < 0.5 * tl[0]
    assert_allclose(tl, pl, rtol=1e-6)


def test_lbfgs_minimises_rosenbrock() -> None:
    """The classic check: from (-1.5, 2) to the minimum (1, 1), with the strong-Wolfe line search."""
    x = tg.tensor([-1.5, 2.0], requires_grad=True)
    opt = optim.LBFGS([x], lr=1, max_iter=100, line_search_fn="strong_wolfe", tolerance_grad=1e-12,
                      tolerance_change=1e-15)

    def closure() -> Any:
        opt.zero_grad()
        loss = (1 - x[0]) ** 2 + 100 * (x[1] - x[0] ** 2) ** 2
        loss.backward()
        return loss

    for _ in range(3):
        opt.step(closure)
    assert_allclose(x.numpy(), [1.0, 1.0], atol=1e-8)


def test_lbfgs_state_dict_round_trip_and_float32() -> None:
    kw = dict(max_iter=4, line_search_fn="strong_wolfe")
    topt, tps, _ = lbfgs_run(tg, 2, **kw)
    sd = topt.state_dict()
    copies = [tg.tensor(p.numpy().copy(), requires_grad=True) for p in tps]
    fresh = optim.LBFGS(copies, **kw)
    fresh.load_state_dict(sd)

    def closure_of(opt: Any, ps: Sequence[Any]) -> Callable[[], Any]:
        def closure() -> Any:
            opt.zero_grad()
            loss = loss_of(tg, ps)
            loss.backward()
            return loss
        return closure

    topt.step(closure_of(topt, tps))
    fresh.step(closure_of(fresh, copies))
    for a, b in zip(tps, copies):
        assert_array_equal(a.numpy(), b.numpy())
    # float32 parameters: float32 vectors, as PyTorch's
    topt32, tps32, tl32 = lbfgs_run(tg, 2, np.float32, max_iter=4)
    popt32, pps32, pl32 = lbfgs_run(torch, 2, np.float32, max_iter=4)
    assert tps32[0].dtype == np.float32 and topt32.state_dict()["state"][0]["d"].dtype == np.float32
    assert_allclose(tl32, pl32, rtol=1e-5)


def test_lbfgs_errors() -> None:
    ps = params(tg)
    with pytest.raises(ValueError, match="LBFGS doesn't support per-parameter options"):
        optim.LBFGS([{"params": ps[:2]}, {"params": ps[2:]}])
    with pytest.raises(ValueError, match="only 'strong_wolfe' is supported"):
        optim.LBFGS(ps, line_search_fn="armijo")
    with pytest.raises(ValueError, match="Invalid learning rate: -1"):
        optim.LBFGS(ps, lr=-1)
    opt = optim.LBFGS(ps)
    with pytest.raises(TypeError, match="needs a closure"):
        opt.step()

    def failing() -> Any:
        raise RuntimeError("the closure failed")

    with pytest.raises(RuntimeError, match="the closure failed"):
        opt.step(failing)
    mixed = optim.LBFGS([tg.tensor([1.0], requires_grad=True), tg.tensor(np.float32([1.0]), requires_grad=True)])
    with pytest.raises(TypeError, match="must all be float32 or all float64"):
        mixed.step(lambda: 0.0)
