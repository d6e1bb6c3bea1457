"""Derivatives of recorded tensors: ``grad`` (reverse mode, PyTorch's
``torch.autograd.grad``) and ``jvp`` (forward mode: a tangent sweep over the tape)."""

from __future__ import annotations

from typing import Any, Optional, Sequence, Tuple, Union, overload

import numpy as np

from . import _core
from ._core import Tensor, Var

Tensors = Union[Tensor, Sequence[Tensor]]
Vars = Union[Var, Sequence[Var]]


def _as_tuple(x: Any, fn: str = "grad", what: str = "outputs") -> Tuple[Any, ...]:
    """x as a tuple: one Tensor, array, number or None is one item (as PyTorch takes one
    tensor for one output, so that ``grad_outputs=np.ones(3)`` is one seed, not three)."""
    if isinstance(x, (Tensor, np.ndarray, np.generic, int, float)) or x is None:
        return (x,)
    if isinstance(x, (str, bytes)) or not hasattr(x, "__iter__"):
        raise TypeError(f"tapegrad.autograd.{fn}: {what} must be a Tensor, a Var or a sequence of them, "
                        f"not {type(x).__name__}")
    return tuple(x)


def _tensors(xs: Tuple[Any, ...], fn: str, what: str) -> Tuple[Tensor, ...]:
    for x in xs:
        if not isinstance(x, Tensor):
            raise TypeError(f"tapegrad.autograd.{fn}: {what} must be Tensors (or all Vars), not {type(x).__name__}")
    return xs


@overload
def grad(outputs: Tensors, inputs: Tensors, grad_outputs: Optional[Any] = ..., retain_graph: Optional[bool] = ...,
         create_graph: bool = ..., allow_unused: bool = ...) -> Tuple[Optional[Tensor], ...]: ...


@overload
def grad(outputs: Vars, inputs: Vars, grad_outputs: Optional[Any] = ..., retain_graph: Optional[bool] = ...,
         create_graph: bool = ..., allow_unused: bool = ...) -> Tuple[Optional[Var], ...]: ...


def grad(
    outputs: Any,
    inputs: Any,
    grad_outputs: Optional[Any] = None,
    retain_graph: Optional[bool] = None,
    create_graph: bool = False,
    allow_unused: bool = False,
) -> Tuple[Any, ...]:
    """The gradients of ``outputs`` with respect to ``inputs``, as a tuple (one per input).

    ``outputs`` and ``inputs`` are Tensors, or all ``Var``s: then the gradients are ``Var``s
    (with ``create_graph=True``, recorded Vars that can be differentiated again).

    ``grad_outputs`` weights each output (ones by default, needed for outputs with more than
    one element: without it they are summed, as seeded with ones). No ``.grad`` is changed.
    With ``create_graph=True`` the gradients are recorded results that can be differentiated
    again, to any order. ``retain_graph`` is accepted for PyTorch compatibility: graphs are
    kept while a result reaches them. An input the outputs do not depend on raises
    ``RuntimeError``, or gives ``None`` with ``allow_unused=True``.
    """
    del retain_graph  # always retained
    if isinstance(outputs, (list, tuple)) and not outputs:
        raise ValueError("tapegrad.autograd.grad: outputs is empty (nothing to differentiate)")
    if isinstance(outputs, Var) or (isinstance(outputs, (list, tuple)) and outputs and isinstance(outputs[0], Var)):
        outs_v = (outputs,) if isinstance(outputs, Var) else tuple(outputs)
        ins_v = (inputs,) if isinstance(inputs, Var) else _as_tuple(inputs, "grad", "inputs")
        seeds_v = None if grad_outputs is None else (
            (grad_outputs,) if isinstance(grad_outputs, (int, float, Var)) else _as_tuple(grad_outputs, "grad",
                                                                                           "grad_outputs"))
        return _core._var_grad(outs_v, ins_v, seeds_v, create_graph, allow_unused)
    outs = _as_tuple(outputs)
    seeds = None if grad_outputs is None else _as_tuple(grad_outputs, "grad", "grad_outputs")
    if seeds is not None and len(seeds) != len(outs):
        raise ValueError(f"grad_outputs has {len(seeds)} entries for {len(outs)} outputs")
    return _core._grad(outs, _as_tuple(inputs, "grad", "inputs"), seeds, create_graph, allow_unused)


@overload
def jvp(outputs: Tensors, inputs: Tensors, tangents: Any, create_graph: bool = ...,
        batched: bool = ...) -> Tuple[Tensor, ...]: ...


@overload
def jvp(outputs: Vars, inputs: Vars, tangents: Any, create_graph: bool = ...,
        batched: bool = ...) -> Tuple[Var, ...]: ...


def jvp(
    outputs: Any,
    inputs: Any,
    tangents: Any,
    create_graph: bool = False,
    batched: bool = False,
) -> Tuple[Any, ...]:
    """Forward mode: the directional derivatives J v of ``outputs`` along ``tangents`` of
    ``inputs`` (one per input, of its shape), as a tuple (one per output).

    One tangent sweep runs forward over the records between the inputs and the outputs, so
    no reverse sweep is built, and no ``.grad`` changes. The inputs must require grad (their
    use must have been recorded). With ``batched=True`` every tangent has an extra leading
    axis of K directions, ``(K, *input.shape)``, and each result is ``(K, *output.shape)``:
    vector forward mode, a whole Jacobian in one sweep with identity tangents. An output
    that does not depend on the inputs gets zeros. With ``create_graph=True`` the results
    are recorded, so they can be differentiated again (reverse over forward). A ``None``
    tangent is zero. ``outputs`` and ``inputs`` may also be ``Var``s (tangents are numbers or
    Vars): then one loop runs forward over the scalar records, on doubles, or with
    ``create_graph=True`` on Vars, and the results are ``Var``s.
    """
    if isinstance(outputs, (list, tuple)) and not outputs:
        raise ValueError("tapegrad.autograd.jvp: outputs is empty (nothing to differentiate)")
    if isinstance(outputs, Var) or (isinstance(outputs, (list, tuple)) and outputs and isinstance(outputs[0], Var)):
        if batched:
            raise ValueError("jvp on Vars: batched tangents are for tensors (a Var has one tangent)")
        outs_v = (outputs,) if isinstance(outputs, Var) else tuple(outputs)
        single = isinstance(inputs, Var)
        ins_v = (inputs,) if single else _as_tuple(inputs, "jvp", "inputs")
        return _core._var_jvp(outs_v, ins_v, (tangents,) if single else _as_tuple(tangents, "jvp", "tangents"),
                              create_graph)
    ins = _tensors(_as_tuple(inputs, "jvp", "inputs"), "jvp", "inputs")
    # one input: one tangent
    tans = (tangents,) if isinstance(inputs, Tensor) else _as_tuple(tangents, "jvp", "tangents")
    if len(tans) != len(ins):
        raise ValueError(f"jvp: {len(tans)} tangents for {len(ins)} inputs")
    k = None
    if batched:
        for t in tans:
            if t is not None:
                k = len(t)
                break
    filled = []
    for x, t in zip(ins, tans):
        if t is None:
            shape = tuple(x.shape) if k is None else (k,) + tuple(x.shape)
            t = _core._full(shape, 0.0, x.dtype, False)
        filled.append(t)
    return _core._jvp(_as_tuple(outputs, "jvp"), ins, filled, create_graph, batched)


__all__ = ["grad", "jvp"]
