"""Derivatives of recorded tensors: ``grad`` (reverse mode, PyTorch's
``torch.autograd.grad``), ``jvp`` (forward mode: a tangent sweep over the tape), and
``Function`` (a differentiable function with your own backward, PyTorch's
``torch.autograd.Function``)."""

from __future__ import annotations

import functools
from typing import Any, Callable, List, Optional, Sequence, Tuple, TypeVar, Union, overload

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


# --- custom differentiable functions -------------------------------------------------------------


class FunctionCtx:
    """What a ``Function``'s ``forward`` shares with its ``backward`` (PyTorch's ``ctx``): save
    tensors with ``save_for_backward`` (read back as ``saved_tensors``), any other value as an
    attribute; ``needs_input_grad`` says, per argument of ``forward``, whether a gradient is
    wanted for it."""

    def __init__(self) -> None:
        self.needs_input_grad: Tuple[bool, ...] = ()
        self._saved: Tuple[Optional[Tensor], ...] = ()
        self._saved_forward: Optional[Tuple[Optional[Tensor], ...]] = None
        self._in_jvp = False
        self._non_differentiable: List[Tensor] = []
        self._materialize_grads = True

    def save_for_backward(self, *tensors: Optional[Tensor]) -> None:
        """Keep tensors (or None) for ``backward``: it refuses to run if one of them is changed in
        place meanwhile (its version moved), as PyTorch does."""
        for t in tensors:
            if t is not None and not isinstance(t, Tensor):
                raise TypeError(f"save_for_backward can only save Tensors or None, not {type(t).__name__} "
                                "(keep other values as attributes of ctx)")
        self._saved = tensors

    def save_for_forward(self, *tensors: Optional[Tensor]) -> None:
        """Keep tensors (or None) for ``jvp``, where ``saved_tensors`` reads them back (PyTorch's
        ``save_for_forward``; without it, ``jvp`` reads what ``save_for_backward`` kept)."""
        for t in tensors:
            if t is not None and not isinstance(t, Tensor):
                raise TypeError(f"save_for_forward can only save Tensors or None, not {type(t).__name__} "
                                "(keep other values as attributes of ctx)")
        self._saved_forward = tensors

    @property
    def saved_tensors(self) -> Tuple[Optional[Tensor], ...]:
        """What ``save_for_backward`` kept (in ``jvp``: what ``save_for_forward`` kept, if it was
        called)."""
        if self._in_jvp and self._saved_forward is not None:
            return self._saved_forward
        return self._saved

    def mark_non_differentiable(self, *tensors: Tensor) -> None:
        """Outputs of ``forward`` that are not differentiable (indices, masks): not recorded, they
        do not require grad, and ``backward`` gets zeros for them."""
        for t in tensors:
            if not isinstance(t, Tensor):
                raise TypeError(f"mark_non_differentiable takes Tensors, not {type(t).__name__}")
        self._non_differentiable.extend(tensors)

    def set_materialize_grads(self, value: bool) -> None:
        """Whether ``backward`` gets zeros (True, the default) or None for outputs the backward pass
        did not reach."""
        self._materialize_grads = bool(value)


def _overridden(cls: type, name: str) -> bool:
    return getattr(cls, name) is not getattr(Function, name)


class Function:
    """A differentiable function with your own derivative (PyTorch's ``torch.autograd.Function``).

    Subclass it with ``forward(ctx, *args)`` and ``backward(ctx, *grad_outputs)`` staticmethods
    and call ``MyFn.apply(*args)``::

        class Exp(tg.autograd.Function):
            @staticmethod
            def forward(ctx, x):
                y = x.exp()
                ctx.save_for_backward(y)
                return y

            @staticmethod
            def backward(ctx, g):
                (y,) = ctx.saved_tensors
                return g * y

    ``forward`` runs with grad mode off and returns a Tensor or a tuple (non-tensor items pass
    through). ``backward`` gets one gradient per output and returns one per argument of
    ``forward`` (None for no gradient, and for arguments that are not tensors). Written with
    tapegrad's ops, the backward is itself recorded under ``create_graph=True``, so its result
    can be differentiated again (decorate it with ``once_differentiable`` if it cannot).
    The ``forward(*args)`` + ``setup_context(ctx, inputs, output)`` spelling works too. An
    optional ``jvp(ctx, *tangents)`` staticmethod serves forward mode (``autograd.jvp``,
    ``functional.jvp``): one tangent per argument in, one per output out; forward mode
    through a Function without one raises.
    """

    @staticmethod
    def forward(ctx: Any, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError("a tapegrad.autograd.Function subclass must define forward(ctx, *args)")

    @staticmethod
    def setup_context(ctx: Any, inputs: Tuple[Any, ...], output: Any) -> None:
        raise NotImplementedError("setup_context is not defined (forward takes ctx as its first argument)")

    @staticmethod
    def backward(ctx: Any, *grad_outputs: Any) -> Any:
        raise NotImplementedError("a tapegrad.autograd.Function subclass must define backward(ctx, *grad_outputs)")

    @staticmethod
    def jvp(ctx: Any, *grad_inputs: Any) -> Any:
        raise NotImplementedError("jvp is not defined")

    # PyTorch's alias
    @staticmethod
    def vjp(ctx: Any, *grad_outputs: Any) -> Any:
        raise NotImplementedError("a tapegrad.autograd.Function subclass must define backward(ctx, *grad_outputs)")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise RuntimeError("tapegrad.autograd.Function is not instantiated: call its classmethod apply(*args)")

    @classmethod
    def apply(cls, *args: Any, **kwargs: Any) -> Any:
        name = f"{cls.__name__}Backward"
        ctx = FunctionCtx()
        from ._tensor import no_grad  # (the package's grad-mode switch)

        recording = _core.is_grad_enabled()
        ctx.needs_input_grad = tuple(recording and isinstance(a, Tensor) and a.requires_grad for a in args)
        with no_grad():
            if _overridden(cls, "setup_context"):
                output = cls.forward(*args, **kwargs)
                cls.setup_context(ctx, args, output)
            else:
                output = cls.forward(ctx, *args, **kwargs)
        single = not isinstance(output, tuple)
        outs = (output,) if single else output
        tpos = [i for i, a in enumerate(args) if isinstance(a, Tensor)]
        opos = [j for j, o in enumerate(outs) if isinstance(o, Tensor)]
        n_args, n_outs = len(args), len(outs)
        if not opos:
            return output
        backward = cls.backward if _overridden(cls, "backward") else cls.vjp
        if backward is Function.vjp:
            raise NotImplementedError(f"{cls.__name__} must define backward(ctx, *grad_outputs)")

        def run_backward(*grads: Optional[Tensor]) -> List[Optional[Tensor]]:
            full: List[Any] = [None] * n_outs
            for j, g in zip(opos, grads):
                full[j] = g
            result = backward(ctx, *full)
            res = result if isinstance(result, tuple) else (result,)
            if len(res) < n_args or any(r is not None for r in res[n_args:]):
                raise RuntimeError(f"function {name} returned an incorrect number of gradients "
                                   f"(expected {n_args}, got {len(res)})")
            for i in range(n_args):
                if i not in tpos and res[i] is not None:
                    raise RuntimeError(f"function {name} returned a gradient different than None at position {i}, "
                                       f"but the corresponding forward input was not a Tensor")
            return [res[i] for i in tpos]

        run_jvp: Optional[Callable[..., List[Optional[Tensor]]]] = None
        if _overridden(cls, "jvp"):
            def run_jvp(*tangents: Optional[Tensor]) -> List[Optional[Tensor]]:
                full: List[Any] = [None] * n_args
                for i, t in zip(tpos, tangents):
                    full[i] = t
                ctx._in_jvp = True
                try:
                    result = cls.jvp(ctx, *full)
                finally:
                    ctx._in_jvp = False
                res = result if isinstance(result, tuple) else (result,)
                if len(res) != n_outs:
                    raise RuntimeError(f"function {name}'s jvp returned {len(res)} tangents for {n_outs} outputs")
                return [res[j] for j in opos]

        tensor_outs = [outs[j] for j in opos]
        non_diff = {id(t) for t in ctx._non_differentiable}
        differentiable = [id(o) not in non_diff for o in tensor_outs]
        saved = [t for t in ctx._saved if t is not None]
        recorded = _core._custom_apply(name, run_backward, run_jvp, [args[i] for i in tpos], tensor_outs,
                                       differentiable, saved, ctx._materialize_grads)
        # Saved outputs are the recorded ones from now on (so a backward that reads them is
        # differentiable through them under create_graph); ctx keeps handles that are no roots
        # (a root there would keep this very record alive through ctx, a cycle through C++ that
        # Python's gc cannot break).
        by_id = {id(o): r for o, r in zip(tensor_outs, recorded)}

        def keep(ts: Tuple[Optional[Tensor], ...]) -> Tuple[Optional[Tensor], ...]:
            kept = (by_id.get(id(t), t) if t is not None else None for t in ts)
            return tuple(_core._unrooted(t) if t is not None and not t.is_leaf else t for t in kept)

        ctx._saved = keep(ctx._saved)
        if ctx._saved_forward is not None:
            ctx._saved_forward = keep(ctx._saved_forward)
        new_outs = list(outs)
        for j, r in zip(opos, recorded):
            new_outs[j] = r
        return new_outs[0] if single else tuple(new_outs)


_F = TypeVar("_F", bound=Callable[..., Any])


class _DelayedError(Function):
    """Stands for the result of a ``once_differentiable`` backward under ``create_graph``: the
    values pass, and differentiating them again raises."""

    @staticmethod
    def forward(ctx: Any, value: Tensor, *inputs: Tensor) -> Tensor:
        return value

    @staticmethod
    def backward(ctx: Any, *grads: Any) -> Any:
        raise RuntimeError("trying to differentiate twice a function that was marked with @once_differentiable")


def once_differentiable(fn: _F) -> _F:
    """Decorates a ``Function``'s ``backward`` that is not itself differentiable (it leaves
    tapegrad, or computes in place): it runs with grad mode off, and under ``create_graph=True``
    its results raise if a later sweep differentiates them (PyTorch's
    ``torch.autograd.function.once_differentiable``)."""

    @functools.wraps(fn)
    def wrapper(ctx: Any, *args: Any) -> Any:
        from ._tensor import no_grad

        with no_grad():
            outputs = fn(ctx, *args)
        if not _core.is_grad_enabled():
            return outputs
        recorded = [a for a in args if isinstance(a, Tensor) and a.requires_grad]
        if not recorded:
            return outputs
        single = not isinstance(outputs, tuple)
        outs = (outputs,) if single else outputs
        wrapped = tuple(_DelayedError.apply(o, *recorded) if isinstance(o, Tensor) else o for o in outs)
        return wrapped[0] if single else wrapped

    return wrapper  # type: ignore[return-value]


class _VariableMeta(type):
    def __instancecheck__(cls, obj: Any) -> bool:
        return isinstance(obj, Tensor)


class Variable(metaclass=_VariableMeta):
    """``torch.autograd.Variable``, PyTorch's old name: since PyTorch 0.4 every tensor is one.
    ``Variable(t)`` is ``t.detach()`` (``requires_grad_()`` when ``requires_grad=True``); data
    that is not a tensor becomes one; ``isinstance(t, Variable)`` holds for every tensor."""

    def __new__(cls, data: Any, requires_grad: bool = False, volatile: bool = False) -> Any:
        t = data.detach() if isinstance(data, Tensor) else _core.tensor(data)
        return t.requires_grad_() if requires_grad else t


__all__ = ["Function", "FunctionCtx", "grad", "jvp", "once_differentiable", "Variable"]
