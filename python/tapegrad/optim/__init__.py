"""Optimizers with PyTorch's API (``torch.optim``): parameter groups, state, state_dict.

Each step's arithmetic is one native loop per parameter (``tapegrad::optim`` in the C++ core,
torch.optim's formulas step for step, so runs agree with PyTorch's to rounding); what is here
is the bookkeeping. ``lr_scheduler`` has the learning-rate schedules.
"""

from __future__ import annotations

import copy
import numbers
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple, Union

import numpy as np

from .. import _core
from .._core import Tensor
from .._dtypes import is_float
from . import lr_scheduler

_step = _core._optim

ParamGroup = Dict[str, Any]
Params = Union[Iterable[Tensor], Iterable[ParamGroup]]


class Optimizer:
    """The base of the optimizers (``torch.optim.Optimizer``): ``param_groups`` (a list of dicts
    holding ``'params'`` and the hyperparameters), ``state`` (per parameter), ``zero_grad``,
    ``step``, ``state_dict``/``load_state_dict`` and ``add_param_group``."""

    def __init__(self, params: Params, defaults: Dict[str, Any]) -> None:
        self.defaults = dict(defaults)
        self.state: Dict[Tensor, Dict[str, Any]] = {}
        self.param_groups: List[ParamGroup] = []
        if isinstance(params, Tensor):
            raise TypeError("params argument given to the optimizer should be an iterable of Tensors or dicts, "
                            "but got a Tensor (wrap it in a list)")
        items: List[Any] = list(params)
        if not items:
            raise ValueError("optimizer got an empty parameter list")
        groups: List[ParamGroup] = items if isinstance(items[0], dict) else [{"params": items}]
        self._check(self.defaults)  # (the constructor's arguments, even where every group overrides them)
        for g in groups:
            self.add_param_group(g)

    def add_param_group(self, param_group: ParamGroup) -> None:
        """Adds a group (a dict with ``'params'`` and any hyperparameters to override)."""
        if not isinstance(param_group, dict):
            raise TypeError(f"a param group must be a dict, not {type(param_group).__name__}")
        params = param_group["params"]
        params = [params] if isinstance(params, Tensor) else list(params)
        for p in params:
            if not isinstance(p, Tensor):
                raise TypeError(f"optimizer can only optimize Tensors, but one of the params is {type(p).__name__}")
            if not p.is_leaf:
                raise ValueError("can't optimize a non-leaf Tensor")
            if not is_float(p.dtype):
                raise TypeError(f"optimizer can only optimize floating tensors (float16, bfloat16, float32, "
                                f"float64), not {p.dtype}")
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        if any(id(p) in seen for p in params) or len({id(p) for p in params}) != len(params):
            raise ValueError("some parameters appear in more than one parameter group")
        group = {**self.defaults, **param_group, "params": params}
        self._check(group)
        self.param_groups.append(group)

    # The hyperparameters refused below zero, as (key, torch's name in the message), in torch's order; keys a
    # group lacks are skipped. ``_nan_refused``: whether nan is refused too (torch tests ``not 0.0 <= value``,
    # which nan fails, everywhere but in SGD, whose ``value < 0.0`` lets nan through).
    _nonnegative: Tuple[Tuple[str, str], ...] = (
        ("lr", "learning rate"), ("weight_decay", "weight_decay value"), ("eps", "epsilon value"))
    _nan_refused = False

    def _check(self, group: ParamGroup) -> None:
        """Refuses a group's (or the defaults') invalid hyperparameters with torch's ValueError, which names the
        hyperparameter and its value. Unlike torch, the groups given to the constructor or ``add_param_group``
        are checked too, not only the constructor's arguments."""
        lr = group.get("lr", 0.0)
        if not isinstance(lr, numbers.Real):
            raise ValueError(f"Invalid learning rate: {lr}")
        for key, label in self._nonnegative:
            if key == "betas":
                if key in group:
                    _check_betas(group[key])
                continue
            value = group.get(key, 0.0)
            if (not value >= 0.0) if self._nan_refused else value < 0.0:
                raise ValueError(f"Invalid {label}: {value}")

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Drops every parameter's gradient (``set_to_none``, the default) or zeroes it in place."""
        for g in self.param_groups:
            for p in g["params"]:
                if p.grad is None:
                    continue
                if set_to_none:
                    p.grad = None
                else:
                    p.grad.zero_()

    def step(self, closure: Optional[Callable[[], Any]] = None) -> Any:
        """One update of every parameter that has a gradient; ``closure`` (re-evaluating the loss
        with grad enabled) is called first when given, and its value returned."""
        loss = None
        if closure is not None:
            from .._tensor import enable_grad

            with enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                g = p.grad
                if g is None:
                    continue
                if g.requires_grad:
                    g = g.detach()
                self._update(p, g, self.state.setdefault(p, {}), group)
        return loss

    def _update(self, p: Tensor, g: Tensor, state: Dict[str, Any], group: ParamGroup) -> None:
        raise NotImplementedError

    def state_dict(self) -> Dict[str, Any]:
        """``{'state': {index: {...}}, 'param_groups': [{..., 'params': [indices]}]}``, as torch's:
        parameters are numbered in group order; state tensors are copies."""
        index: Dict[int, int] = {}
        groups = []
        for g in self.param_groups:
            ids = []
            for p in g["params"]:
                index.setdefault(id(p), len(index))
                ids.append(index[id(p)])
            groups.append({**{k: v for k, v in g.items() if k != "params"}, "params": ids})
        state = {index[id(p)]: {k: v.clone().detach() if isinstance(v, Tensor) else v for k, v in s.items()}
                 for p, s in self.state.items() if id(p) in index}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: Dict[str, Any]) -> None:
        """Restores hyperparameters and state saved by ``state_dict`` (the same parameter layout)."""
        groups = state_dict["param_groups"]
        if len(groups) != len(self.param_groups):
            raise ValueError(f"loaded state dict has {len(groups)} parameter groups, the optimizer has "
                             f"{len(self.param_groups)}")
        for mine, saved in zip(self.param_groups, groups):
            if len(mine["params"]) != len(saved["params"]):
                raise ValueError("loaded state dict contains a parameter group that doesn't match the size of "
                                 "optimizer's group")
        params = [p for g in self.param_groups for p in g["params"]]
        by_index = dict(zip((i for g in groups for i in g["params"]), params))
        self.state = {}
        for i, s in state_dict["state"].items():
            p = by_index[int(i)]
            self.state[p] = {k: _like(v, p) if isinstance(v, Tensor) else copy.deepcopy(v) for k, v in s.items()}
        for mine, saved in zip(self.param_groups, groups):
            mine.update({k: copy.deepcopy(v) for k, v in saved.items() if k != "params"})

    def __repr__(self) -> str:
        lines = [type(self).__name__ + " ("]
        for i, g in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines += [f"    {k}: {g[k]}" for k in sorted(g) if k != "params"]
        return "\n".join(lines) + "\n)"


def _like(v: Tensor, p: Tensor) -> Tensor:
    """A state tensor loaded for parameter p: a copy of p's dtype (a step count stays as is)."""
    if v.shape == p.shape and is_float(v.dtype):
        return v.astype(p.dtype).detach() if v.dtype != p.dtype else v.clone().detach()
    return v.clone().detach()


def _zeros(p: Tensor, value: float = 0.0) -> Tensor:
    return _core._full(p.shape, value, p.dtype, False)


def _check_betas(betas: Any) -> None:
    for i, b in enumerate(betas):
        if not 0.0 <= b < 1.0:  # (nan fails it)
            raise ValueError(f"Invalid beta parameter at index {i}: {b}")


def _betas(betas: Tuple[float, float]) -> Tuple[float, float]:
    """The pair as floats (numbers only: anything else is left for ``_check_betas`` to refuse)."""
    b1, b2 = betas
    return tuple(float(b) if isinstance(b, numbers.Real) else b for b in (b1, b2))  # type: ignore[return-value]


class SGD(Optimizer):
    """``torch.optim.SGD``: plain or momentum gradient descent (dampening, Nesterov, weight
    decay, maximize)."""

    # torch's SGD refuses negative values only: nan passes (as does any dampening).
    _nonnegative = (("lr", "learning rate"), ("momentum", "momentum value"), ("weight_decay", "weight_decay value"))

    def __init__(self, params: Params, lr: float = 1e-3, momentum: float = 0.0, dampening: float = 0.0,
                 weight_decay: float = 0.0, nesterov: bool = False, *, maximize: bool = False) -> None:
        self._check(dict(lr=lr, momentum=momentum, weight_decay=weight_decay))  # (before the Nesterov check)
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                                      nesterov=nesterov, maximize=maximize))

    def _update(self, p: Tensor, g: Tensor, state: Dict[str, Any], group: ParamGroup) -> None:
        buf = _step.sgd(p, g, state.get("momentum_buffer"), group["lr"], group["momentum"], group["dampening"],
                        group["weight_decay"], group["nesterov"], group["maximize"])
        if buf is not None:
            state["momentum_buffer"] = buf


class Adam(Optimizer):
    """``torch.optim.Adam`` (amsgrad, weight decay added to the gradient, maximize)."""

    _decoupled = False
    _nonnegative = (("lr", "learning rate"), ("eps", "epsilon value"), ("betas", "beta parameter"),
                    ("weight_decay", "weight_decay value"))
    _nan_refused = True

    def __init__(self, params: Params, lr: float = 1e-3, betas: Tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0, amsgrad: bool = False, *,
                 maximize: bool = False) -> None:
        super().__init__(params, dict(lr=lr, betas=_betas(betas), eps=eps, weight_decay=weight_decay,
                                      amsgrad=amsgrad, maximize=maximize))

    def _update(self, p: Tensor, g: Tensor, state: Dict[str, Any], group: ParamGroup) -> None:
        if not state:
            state["step"] = 0
            state["exp_avg"] = _zeros(p)
            state["exp_avg_sq"] = _zeros(p)
            if group["amsgrad"]:
                state["max_exp_avg_sq"] = _zeros(p)
        state["step"] += 1
        b1, b2 = group["betas"]
        _step.adam(p, g, state["exp_avg"], state["exp_avg_sq"], state.get("max_exp_avg_sq"), state["step"],
                   group["lr"], b1, b2, group["eps"], group["weight_decay"], group["amsgrad"], group["maximize"],
                   self._decoupled)


class AdamW(Adam):
    """``torch.optim.AdamW``: Adam with decoupled weight decay (``p *= 1 - lr * weight_decay``,
    default 0.01)."""

    _decoupled = True

    def __init__(self, params: Params, lr: float = 1e-3, betas: Tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 1e-2, amsgrad: bool = False, *,
                 maximize: bool = False) -> None:
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, maximize=maximize)


class RMSprop(Optimizer):
    """``torch.optim.RMSprop`` (centered, momentum, weight decay, maximize)."""

    _nonnegative = (("lr", "learning rate"), ("eps", "epsilon value"), ("momentum", "momentum value"),
                    ("weight_decay", "weight_decay value"), ("alpha", "alpha value"))
    _nan_refused = True

    def __init__(self, params: Params, lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8,
                 weight_decay: float = 0.0, momentum: float = 0.0, centered: bool = False, *,
                 maximize: bool = False) -> None:
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum,
                                      centered=centered, maximize=maximize))

    def _update(self, p: Tensor, g: Tensor, state: Dict[str, Any], group: ParamGroup) -> None:
        if not state:
            state["step"] = 0
            state["square_avg"] = _zeros(p)
            if group["momentum"] > 0:
                state["momentum_buffer"] = _zeros(p)
            if group["centered"]:
                state["grad_avg"] = _zeros(p)
        state["step"] += 1
        _step.rmsprop(p, g, state["square_avg"], state.get("momentum_buffer"), state.get("grad_avg"), group["lr"],
                      group["alpha"], group["eps"], group["weight_decay"], group["momentum"], group["centered"],
                      group["maximize"])


class Adagrad(Optimizer):
    """``torch.optim.Adagrad`` (lr decay, initial accumulator value, weight decay, maximize)."""

    _nonnegative = (("lr", "learning rate"), ("lr_decay", "lr_decay value"), ("weight_decay", "weight_decay value"),
                    ("initial_accumulator_value", "initial_accumulator_value value"), ("eps", "epsilon value"))
    _nan_refused = True

    def __init__(self, params: Params, lr: float = 1e-2, lr_decay: float = 0.0, weight_decay: float = 0.0,
                 initial_accumulator_value: float = 0.0, eps: float = 1e-10, *, maximize: bool = False) -> None:
        super().__init__(params, dict(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                                      initial_accumulator_value=initial_accumulator_value, eps=eps,
                                      maximize=maximize))
        for group in self.param_groups:  # (torch makes the state at construction)
            for p in group["params"]:
                self.state[p] = {"step": 0, "sum": _zeros(p, group["initial_accumulator_value"])}

    def _update(self, p: Tensor, g: Tensor, state: Dict[str, Any], group: ParamGroup) -> None:
        if not state:
            state.update(step=0, sum=_zeros(p, group["initial_accumulator_value"]))
        state["step"] += 1
        _step.adagrad(p, g, state["sum"], state["step"], group["lr"], group["lr_decay"], group["weight_decay"],
                      group["eps"], group["maximize"])


class Adadelta(Optimizer):
    """``torch.optim.Adadelta``: steps scaled by the ratio of running RMS of past steps and of gradients
    (rho, eps, weight decay, maximize; lr 1.0 by default)."""

    _nonnegative = (("lr", "learning rate"), ("eps", "epsilon value"), ("weight_decay", "weight_decay value"))
    _nan_refused = True

    def __init__(self, params: Params, lr: float = 1.0, rho: float = 0.9, eps: float = 1e-6,
                 weight_decay: float = 0.0, *, maximize: bool = False) -> None:
        if not 0.0 <= rho <= 1.0:
            raise ValueError(f"Invalid rho value: {rho}")
        super().__init__(params, dict(lr=lr, rho=rho, eps=eps, weight_decay=weight_decay, maximize=maximize))

    def _update(self, p: Tensor, g: Tensor, state: Dict[str, Any], group: ParamGroup) -> None:
        if not state:
            state.update(step=0, square_avg=_zeros(p), acc_delta=_zeros(p))
        state["step"] += 1
        _step.adadelta(p, g, state["square_avg"], state["acc_delta"], group["lr"], group["rho"], group["eps"],
                       group["weight_decay"], group["maximize"])


class Adamax(Optimizer):
    """``torch.optim.Adamax``: Adam with the infinity norm (a decayed running maximum of |grad|) in place of
    the second moment (weight decay, maximize; lr 2e-3 by default)."""

    _nonnegative = (("lr", "learning rate"), ("eps", "epsilon value"), ("betas", "beta parameter"),
                    ("weight_decay", "weight_decay value"))
    _nan_refused = True

    def __init__(self, params: Params, lr: float = 2e-3, betas: Tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0, *, maximize: bool = False) -> None:
        super().__init__(params, dict(lr=lr, betas=_betas(betas), eps=eps, weight_decay=weight_decay,
                                      maximize=maximize))

    def _update(self, p: Tensor, g: Tensor, state: Dict[str, Any], group: ParamGroup) -> None:
        if not state:
            state.update(step=0, exp_avg=_zeros(p), exp_inf=_zeros(p))
        state["step"] += 1
        b1, b2 = group["betas"]
        _step.adamax(p, g, state["exp_avg"], state["exp_inf"], state["step"], group["lr"], b1, b2, group["eps"],
                     group["weight_decay"], group["maximize"])


class NAdam(Optimizer):
    """``torch.optim.NAdam``: Adam with Nesterov momentum, its coefficient decayed by ``momentum_decay``
    (weight decay added to the gradient, or decoupled as AdamW's; maximize; lr 2e-3 by default). The
    product of the momentum coefficients is kept in the state as ``mu_product``, rounded to float32 unless
    the default dtype is float64, as PyTorch keeps it."""

    _nonnegative = (("lr", "learning rate"), ("eps", "epsilon value"), ("betas", "beta parameter"),
                    ("weight_decay", "weight_decay value"), ("momentum_decay", "momentum_decay value"))
    _nan_refused = True

    def __init__(self, params: Params, lr: float = 2e-3, betas: Tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0, momentum_decay: float = 4e-3, *,
                 decoupled_weight_decay: bool = False, maximize: bool = False) -> None:
        super().__init__(params, dict(lr=lr, betas=_betas(betas), eps=eps, weight_decay=weight_decay,
                                      momentum_decay=momentum_decay, decoupled_weight_decay=decoupled_weight_decay,
                                      maximize=maximize))

    def _update(self, p: Tensor, g: Tensor, state: Dict[str, Any], group: ParamGroup) -> None:
        if not state:
            state.update(step=0, mu_product=1.0, exp_avg=_zeros(p), exp_avg_sq=_zeros(p))
        state["step"] += 1
        b1, b2 = group["betas"]
        mu = _step.nadam_mu(b1, group["momentum_decay"], state["step"])
        mu_product = float(state["mu_product"]) * mu
        if _core.get_default_dtype() != np.float64:  # (PyTorch's scalar dtype: float32 then)
            mu_product = float(np.float32(state["mu_product"]) * np.float32(mu))
        state["mu_product"] = mu_product
        _step.nadam(p, g, state["exp_avg"], state["exp_avg_sq"], state["step"], mu_product, group["lr"], b1, b2,
                    group["eps"], group["weight_decay"], group["momentum_decay"], group["decoupled_weight_decay"],
                    group["maximize"])


class RAdam(Optimizer):
    """``torch.optim.RAdam``: Adam whose adaptive rate is rectified by the variance of its estimate, and
    plain momentum while that variance is intractable (the first steps); weight decay added to the gradient
    or decoupled; maximize."""

    _nonnegative = (("lr", "learning rate"), ("eps", "epsilon value"), ("betas", "beta parameter"),
                    ("weight_decay", "weight_decay value"))
    _nan_refused = True

    def __init__(self, params: Params, lr: float = 1e-3, betas: Tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0, decoupled_weight_decay: bool = False, *,
                 maximize: bool = False) -> None:
        super().__init__(params, dict(lr=lr, betas=_betas(betas), eps=eps, weight_decay=weight_decay,
                                      decoupled_weight_decay=decoupled_weight_decay, maximize=maximize))

    def _update(self, p: Tensor, g: Tensor, state: Dict[str, Any], group: ParamGroup) -> None:
        if not state:
            state.update(step=0, exp_avg=_zeros(p), exp_avg_sq=_zeros(p))
        state["step"] += 1
        b1, b2 = group["betas"]
        _step.radam(p, g, state["exp_avg"], state["exp_avg_sq"], state["step"], group["lr"], b1, b2, group["eps"],
                    group["weight_decay"], group["decoupled_weight_decay"], group["maximize"])


class LBFGS(Optimizer):
    """``torch.optim.LBFGS``: limited-memory BFGS, each ``step(closure)`` up to ``max_iter`` iterations with
    the curvature pairs of the last ``history_size`` steps and, with ``line_search_fn="strong_wolfe"``, a
    line search satisfying the strong Wolfe conditions; ``closure`` re-evaluates the loss (zero_grad,
    forward, backward) and returns it. One parameter group. The iterations run natively
    (``tapegrad::optim::lbfgs_step``, PyTorch's algorithm step for step), calling the closure back."""

    _nonnegative = (("lr", "learning rate"),)
    _nan_refused = True

    def __init__(self, params: Params, lr: float = 1, max_iter: int = 20, max_eval: Optional[int] = None,
                 tolerance_grad: float = 1e-7, tolerance_change: float = 1e-9, history_size: int = 100,
                 line_search_fn: Optional[str] = None) -> None:
        if max_eval is None:
            max_eval = max_iter * 5 // 4
        if line_search_fn not in (None, "strong_wolfe"):
            raise ValueError(f"only 'strong_wolfe' is supported as line_search_fn, not {line_search_fn!r}")
        super().__init__(params, dict(lr=lr, max_iter=max_iter, max_eval=max_eval, tolerance_grad=tolerance_grad,
                                      tolerance_change=tolerance_change, history_size=history_size,
                                      line_search_fn=line_search_fn))
        if len(self.param_groups) != 1:
            raise ValueError("LBFGS doesn't support per-parameter options (parameter groups)")
        self._params = self.param_groups[0]["params"]
        self._memory = _step.LBFGSState()

    def step(self, closure: Optional[Callable[[], Any]] = None) -> Any:
        """Up to ``max_iter`` LBFGS iterations; returns the loss of the closure's first evaluation."""
        if closure is None:
            raise TypeError("LBFGS.step() needs a closure that re-evaluates the model and returns the loss")
        from .._tensor import enable_grad, no_grad

        group = self.param_groups[0]
        first: List[Any] = []

        def evaluate() -> float:
            with enable_grad():
                loss = closure()
            if not first:
                first.append(loss)
            return float(loss)

        with no_grad():
            _step.lbfgs(self._params, evaluate, self._memory, float(group["lr"]), int(group["max_iter"]),
                        int(group["max_eval"]), float(group["tolerance_grad"]), float(group["tolerance_change"]),
                        int(group["history_size"]), group["line_search_fn"] == "strong_wolfe")
        m = self._memory
        self.state[self._params[0]] = {
            "func_evals": m.func_evals, "n_iter": m.n_iter, "d": m.d, "t": m.t, "old_dirs": m.old_dirs,
            "old_stps": m.old_stps, "ro": list(m.ro), "H_diag": m.H_diag, "prev_flat_grad": m.prev_flat_grad,
            "prev_loss": m.prev_loss}
        return first[0] if first else None

    def load_state_dict(self, state_dict: Dict[str, Any]) -> None:
        """Restores the hyperparameters and LBFGS's memory saved by ``state_dict``."""
        super().load_state_dict(state_dict)
        self._memory = m = _step.LBFGSState()
        for key, value in self.state.get(self._params[0], {}).items():
            if key in ("old_dirs", "old_stps"):
                setattr(m, key, [v.detach() for v in value])
            elif key in ("d", "prev_flat_grad"):
                setattr(m, key, None if value is None else value.detach())
            elif key in ("func_evals", "n_iter"):
                setattr(m, key, int(value))
            elif key == "ro":
                m.ro = [float(v) for v in value]
            elif key in ("t", "H_diag", "prev_loss"):
                setattr(m, key, float(value))


__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "Adadelta", "Adamax", "NAdam", "RAdam",
           "LBFGS", "lr_scheduler"]
