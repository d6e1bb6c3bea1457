"""Gradient clipping and flattening of parameters (``torch.nn.utils``).

The clipping functions take a tensor, a ``Var`` (micrograd's scalar parameters), or an iterable of either
(a generator included); parameters whose ``grad`` is None are skipped. They change the gradients in place.
"""

from __future__ import annotations

import math
from typing import Any, Iterable, List, Union

import numpy as np

from .._core import Tensor, Var
from .._tensor import concatenate, no_grad
from .._tensor import tensor as _make_tensor
from .init import _assign

_Parameters = Union[Tensor, Var, Iterable[Union[Tensor, Var]]]


def _with_grad(parameters: _Parameters) -> List[Any]:
    items = [parameters] if isinstance(parameters, (Tensor, Var)) else list(parameters)
    for p in items:
        if not isinstance(p, (Tensor, Var)):
            raise TypeError(f"expected tapegrad Tensors or Vars as parameters, got {type(p).__name__}")
    return [p for p in items if p.grad is not None]


def _scalar_grad(v: Var) -> float:
    g = v.grad
    return 0.0 if g is None else float(g)


def _grad_values(p: Any) -> np.ndarray[Any, Any]:
    """A parameter's gradient as an array (a Var's as a 1-element float64 array)."""
    return np.array([_scalar_grad(p)]) if isinstance(p, Var) else p.grad.numpy()


def get_total_norm(tensors: _Parameters, norm_type: Union[float, str] = 2.0, error_if_nonfinite: bool = False,
                   foreach: Any = None) -> Tensor:
    """The ``norm_type``-norm of the gradients of ``tensors`` taken together (the norm of their norms), as a
    0-d tensor (``torch.nn.utils.get_total_norm``, given the parameters, not their gradients)."""
    order = float(norm_type)
    norms = [np.linalg.norm(_grad_values(p).ravel(), ord=order) for p in _with_grad(tensors)]
    if not norms:
        return _make_tensor(0.0)
    total = np.linalg.norm(np.array(norms), ord=order)
    if error_if_nonfinite and not np.isfinite(total):
        raise RuntimeError(f"The total norm of order {order} for gradients from `parameters` is non-finite, so it "
                           "cannot be clipped. To disable this error and scale the gradients by the non-finite norm "
                           "anyway, set `error_if_nonfinite=False`")
    return _make_tensor(total)


def clip_grads_with_norm_(parameters: _Parameters, max_norm: float, total_norm: Any, foreach: Any = None) -> None:
    """Scale the gradients by min(1, max_norm / (total_norm + 1e-6)) (``torch.nn.utils.clip_grads_with_norm_``)."""
    coef = min(float(max_norm) / (float(total_norm) + 1e-6), 1.0)  # min(nan, 1.0) is nan, as torch.clamp
    for p in _with_grad(parameters):
        if isinstance(p, Var):
            p.grad = _scalar_grad(p) * coef
        else:
            with no_grad():
                g = p.grad
                g *= coef


def clip_grad_norm_(parameters: _Parameters, max_norm: float, norm_type: Union[float, str] = 2.0,
                    error_if_nonfinite: bool = False, foreach: Any = None) -> Tensor:
    """Scale the gradients so that their total ``norm_type``-norm is at most ``max_norm``; returns the total
    norm before clipping (``torch.nn.utils.clip_grad_norm_``)."""
    params = _with_grad(parameters)
    total = get_total_norm(params, norm_type, error_if_nonfinite)
    clip_grads_with_norm_(params, max_norm, total)
    return total


def clip_grad_value_(parameters: _Parameters, clip_value: float, foreach: Any = None) -> None:
    """Clamp each gradient element to [-clip_value, clip_value] (``torch.nn.utils.clip_grad_value_``)."""
    c = float(clip_value)
    for p in _with_grad(parameters):
        if isinstance(p, Var):
            p.grad = min(max(_scalar_grad(p), -c), c)
        else:
            _assign(p.grad, np.clip(p.grad.numpy(), -c, c))


def parameters_to_vector(parameters: Iterable[Tensor]) -> Tensor:
    """The parameters flattened and concatenated into one 1-d tensor (recorded: differentiable)."""
    params = list(parameters)
    for p in params:
        if not isinstance(p, Tensor):
            raise TypeError(f"parameters_to_vector: expected tapegrad Tensors, got {type(p).__name__}")
    return concatenate([p.reshape(-1) for p in params])


def vector_to_parameters(vec: Tensor, parameters: Iterable[Tensor]) -> None:
    """Copy consecutive slices of the 1-d ``vec`` into the parameters (their values; not recorded)."""
    if not isinstance(vec, Tensor):
        raise TypeError(f"vector_to_parameters: expected a tapegrad Tensor, but got {type(vec).__name__}")
    params = list(parameters)
    sizes = [math.prod(p.shape) for p in params]
    needed = sum(sizes)
    if vec.shape != (needed,):
        raise ValueError(f"vector_to_parameters: vec has shape {vec.shape}, expected ({needed},) for the parameters")
    values = vec.numpy()
    start = 0
    for p, n in zip(params, sizes):
        _assign(p, values[start:start + n].reshape(p.shape))
        start += n
