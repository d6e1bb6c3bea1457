"""JAX's function transformations on tapegrad tensors: ``grad``, ``value_and_grad``,
``vjp``, ``jvp``, ``jacrev``, ``jacfwd``, ``jacobian``, ``hessian`` and ``hvp``.

Inputs may be Python numbers, ``Var``s, NumPy arrays, ``Tensor``s, and lists, tuples and
dicts of them; outputs have the matching structure. The results are ``Tensor``s, except
that a derivative with respect to a ``Var`` argument, when it is a single number, is a
``Var`` (one that does not require grad). A transformation called inside another one
records its derivatives (``create_graph``), so they compose (``grad(grad(f))``,
``jacfwd(jacrev(f))``); the outermost one records nothing it does not need.

How they are computed: ``grad``, ``vjp`` and ``jacrev`` by reverse sweeps; ``jvp`` and
``jacfwd`` by the tangent sweep (forward mode: ``tapegrad.autograd.jvp``), ``jacfwd`` with
all the input directions at once (vector forward mode); ``hessian`` and ``hvp`` forward
over reverse: one recorded reverse sweep, then one tangent sweep over it.
"""

from __future__ import annotations

import threading
from typing import Any, Callable, List, Sequence, Tuple, Union

import numpy as np

from . import _core
from ._core import Tensor
from .autograd import grad as _autograd_grad
from .autograd import jvp as _autograd_jvp

Argnums = Union[int, Sequence[int]]

# How many transformations are running in this thread: an inner one must record its
# derivatives (an outer one differentiates them); the outermost need not.
_state = threading.local()


class _Level:
    """The dynamic extent of one transformation. ``nested`` is true inside another one."""

    def __enter__(self) -> "_Level":
        self.nested = getattr(_state, "depth", 0) > 0
        _state.depth = getattr(_state, "depth", 0) + 1
        return self

    def __exit__(self, *exc: Any) -> None:
        _state.depth -= 1

# --- pytrees (lists, tuples, dicts; everything else is a leaf) ----------------------------------


def _flatten(tree: Any) -> Tuple[List[Any], Any]:
    if isinstance(tree, (list, tuple)):
        leaves: List[Any] = []
        specs = []
        for t in tree:
            sub, spec = _flatten(t)
            leaves.extend(sub)
            specs.append((len(sub), spec))
        return leaves, (type(tree), specs)
    if isinstance(tree, dict):
        keys = list(tree.keys())
        leaves, spec = _flatten([tree[k] for k in keys])
        return leaves, (dict, (keys, spec))
    return [tree], None


def _unflatten(spec: Any, leaves: Sequence[Any]) -> Any:
    if spec is None:
        return leaves[0]
    kind, inner = spec
    if kind is dict:
        keys, sub = inner
        return dict(zip(keys, _unflatten(sub, leaves)))
    out, i = [], 0
    for n, s in inner:
        out.append(_unflatten(s, leaves[i:i + n]))
        i += n
    return kind(out) if kind is not list else out


def _leaf_tensor(x: Any) -> Tensor:
    """x as a tensor to differentiate with respect to: a tensor that already requires grad
    as it is (an outer transformation's variable: so that transformations compose), anything
    else as a fresh leaf that requires grad (Tensors keep their memory)."""
    if isinstance(x, Tensor) and x.requires_grad:
        return x
    if isinstance(x, Tensor):
        t = x.detach()
        if t.dtype.kind != "f":
            t = t.astype(np.float64)
    else:
        a = np.asarray(x.data if isinstance(x, _core.Var) else x)
        t = _core.tensor(a if a.dtype.kind == "f" else a.astype(np.float64))
    return t.requires_grad_()


def _as_tensor(y: Any) -> Tensor:
    if isinstance(y, Tensor):
        return y
    if isinstance(y, _core.Var):
        return _core.tensor(y.data)
    return _core.tensor(np.asarray(y, dtype=np.float64))


def _argnums(argnums: Argnums) -> Tuple[Tuple[int, ...], bool]:
    if isinstance(argnums, int):
        return (argnums,), True
    return tuple(argnums), False


class _Args:
    """The arguments of one call with the differentiated ones replaced by leaf tensors:
    ``args`` to call the function with, ``leaves[i]`` the tensors of differentiated argument
    i, ``specs[i]`` its tree structure and ``was_var[i]`` which of its leaves were Vars.
    ``record`` says whether derivatives must be recorded: inside another transformation, or
    when an argument already requires grad (a caller differentiates through the result)."""

    def __init__(self, args: Tuple[Any, ...], argnums: Tuple[int, ...], level: _Level) -> None:
        for i in argnums:
            if not -len(args) <= i < len(args):
                raise ValueError(f"argnums {i} is out of range for {len(args)} positional arguments")
        self.args = list(args)
        self.leaves: List[List[Tensor]] = []
        self.specs: List[Any] = []
        self.was_var: List[List[bool]] = []
        self.record = level.nested
        for i in argnums:
            flat, spec = _flatten(args[i])
            self.record = self.record or any(isinstance(x, Tensor) and x.requires_grad for x in flat)
            ts = [_leaf_tensor(x) for x in flat]
            self.args[i] = _unflatten(spec, ts)
            self.leaves.append(ts)
            self.specs.append(spec)
            self.was_var.append([isinstance(x, _core.Var) for x in flat])
        self.flat = [t for ts in self.leaves for t in ts]

    def split(self, flat: Sequence[Any], scalar_vars: bool = True) -> List[Any]:
        """Values with the differentiated inputs' flat order, regrouped into one tree per
        argument. At the outermost level, a single number for a Var input becomes a Var."""
        out, i = [], 0
        for ts, spec, vs in zip(self.leaves, self.specs, self.was_var):
            part = list(flat[i:i + len(ts)])
            if scalar_vars and not self.record:
                part = [_core.Var(float(p.item()), requires_grad=False)
                        if v and isinstance(p, Tensor) and p.size == 1 and p.ndim == 0 else p
                        for p, v in zip(part, vs)]
            out.append(_unflatten(spec, part))
            i += len(ts)
        return out


def _zeros_like(t: Tensor) -> Tensor:
    return _core._full(t.shape, 0.0, t.dtype, False)


def _gradients(out: Tensor, inputs: List[Tensor], seed: Any = None, record: bool = True) -> List[Tensor]:
    """d<out, seed>/d inputs (recorded with ``record``, so transformations compose); an
    input the output does not use gets zeros."""
    if not out.requires_grad:
        return [_zeros_like(x) for x in inputs]
    gs = _autograd_grad([out], inputs, None if seed is None else [seed], create_graph=record, allow_unused=True)
    return [_zeros_like(x) if g is None else g for g, x in zip(gs, inputs)]


def _tangents(outs: List[Tensor], inputs: List[Tensor], tangents: List[Tensor], record: bool,
              batched: bool = False) -> List[Tensor]:
    """J v for each output by one tangent sweep (zeros for outputs off the graph)."""
    live = [o for o in outs if o.requires_grad]
    res = iter(_autograd_jvp(live, inputs, tangents, create_graph=record, batched=batched) if live else ())
    k = len(tangents[0]) if batched and tangents else None
    out = []
    for o in outs:
        if o.requires_grad:
            out.append(next(res))
        else:
            out.append(_core._full(tuple(o.shape) if k is None else (k,) + tuple(o.shape), 0.0, o.dtype, False))
    return out


# --- the transformations ---------------------------------------------------------------------------


def value_and_grad(fun: Callable[..., Any], argnums: Argnums = 0, has_aux: bool = False) -> Callable[..., Any]:
    """A function returning (f(*args), grad f(*args)); with has_aux, f returns (value, aux)
    and this returns ((value, aux), grad). The value must have one element."""
    nums, single = _argnums(argnums)

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        with _Level() as level:
            a = _Args(args, nums, level)
            result = fun(*a.args, **kwargs)
            value, aux = result if has_aux else (result, None)
            y = _as_tensor(value)
            if y.size != 1:
                raise TypeError(f"grad requires a function with one output element, got shape {y.shape} "
                                "(use jacrev or vjp for other outputs)")
            out = a.split(_gradients(y.reshape(()), a.flat, record=a.record))
        g = out[0] if single else tuple(out)
        return ((y, aux) if has_aux else y), g

    return wrapped


def grad(fun: Callable[..., Any], argnums: Argnums = 0, has_aux: bool = False) -> Callable[..., Any]:
    """The gradient of a function with one output element, with respect to argument(s)
    ``argnums``, as JAX's ``jax.grad``. With has_aux, returns (grad, aux)."""
    vg = value_and_grad(fun, argnums, has_aux)

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        value, g = vg(*args, **kwargs)
        return (g, value[1]) if has_aux else g

    return wrapped


def vjp(fun: Callable[..., Any], *primals: Any, has_aux: bool = False) -> Any:
    """(f(*primals), vjp_fn) where vjp_fn(cotangents) is the tuple of J^T cotangents, one per
    primal (cotangents with f's output structure). With has_aux: (out, vjp_fn, aux).
    vjp_fn records its gradients (it may be called inside other transformations)."""
    with _Level() as level:
        a = _Args(primals, tuple(range(len(primals))), level)
        result = fun(*a.args)
    out, aux = result if has_aux else (result, None)
    outs, out_spec = _flatten(out)
    outs = [_as_tensor(o) for o in outs]

    def vjp_fn(cotangents: Any) -> Tuple[Any, ...]:
        cts, _ = _flatten(cotangents)
        if len(cts) != len(outs):
            raise ValueError(f"vjp: {len(cts)} cotangents for {len(outs)} outputs")
        total: List[Tensor] = [_zeros_like(x) for x in a.flat]
        for o, c in zip(outs, cts):
            c = _as_tensor(c)
            if tuple(c.shape) != tuple(o.shape):
                raise ValueError(f"vjp: a cotangent of shape {c.shape} for an output of shape {o.shape}")
            total = [p + q for p, q in zip(total, _gradients(o, a.flat, c))]
        return tuple(a.split(total, scalar_vars=False))

    primals_out = _unflatten(out_spec, outs)
    return (primals_out, vjp_fn, aux) if has_aux else (primals_out, vjp_fn)


def _flat_tangents(a: _Args, tangents: Sequence[Any], what: str) -> List[Tensor]:
    flat = [_as_tensor(v) for v in _flatten(list(tangents))[0]]
    if len(flat) != len(a.flat):
        raise ValueError(f"{what}: the tangents do not have the primals' structure "
                         f"({len(flat)} leaves for {len(a.flat)})")
    for x, v in zip(a.flat, flat):
        if tuple(x.shape) != tuple(v.shape):
            raise ValueError(f"{what}: a tangent of shape {v.shape} for a primal of shape {x.shape}")
    return flat


def jvp(fun: Callable[..., Any], primals: Sequence[Any], tangents: Sequence[Any]) -> Tuple[Any, Any]:
    """(f(*primals), J tangents), as JAX's ``jax.jvp`` (tangents with the primals' structure):
    one forward run, then one tangent sweep (forward mode), no reverse sweep."""
    primals, tangents = tuple(primals), tuple(tangents)
    if len(primals) != len(tangents):
        raise ValueError(f"jvp: {len(primals)} primals and {len(tangents)} tangents")
    with _Level() as level:
        a = _Args(primals, tuple(range(len(primals))), level)
        flat_tan = _flat_tangents(a, tangents, "jvp")
        outs, out_spec = _flatten(fun(*a.args))
        outs = [_as_tensor(o) for o in outs]
        results = _tangents(outs, a.flat, flat_tan, a.record)
    return _unflatten(out_spec, outs), _unflatten(out_spec, results)


def _moveaxis0_last(t: Tensor, in_shape: Tuple[int, ...]) -> Tensor:
    """(n, *out) -> (*out, *in_shape) where n = prod(in_shape)."""
    r = t.ndim - 1
    if r > 0:
        t = t.transpose(tuple(range(1, r + 1)) + (0,))
    return t.reshape(tuple(t.shape[:r]) + tuple(in_shape))


def _jacobian(fun: Callable[..., Any], argnums: Argnums, forward: bool) -> Callable[..., Any]:
    nums, single = _argnums(argnums)

    def wrapped(*args: Any) -> Any:
        with _Level() as level:
            a = _Args(args, nums, level)
            flat_in = a.flat
            outs, out_spec = _flatten(fun(*a.args))
            outs = [_as_tensor(o) for o in outs]
            blocks: List[List[Tensor]] = []  # [output][input] -> out.shape + in.shape
            if forward:
                # Vector forward mode: every input direction at once, K = total input size.
                sizes = [x.size for x in flat_in]
                total = int(sum(sizes))
                tans, off = [], 0
                for x, n in zip(flat_in, sizes):
                    if n == total:  # one input: the identity
                        block = _core._eye(total, total, x.dtype)
                    else:  # its columns of the identity: ones where row == column + off
                        block = _core.tensor(np.eye(total, n, -off), dtype=x.dtype)
                    tans.append(block.reshape((total,) + tuple(x.shape)))
                    off += n
                cols = _tangents(outs, flat_in, tans, a.record, batched=True) if total else [
                    _core._full((0,) + tuple(o.shape), 0.0, o.dtype, False) for o in outs]
                for c in cols:
                    row, off = [], 0
                    for x, n in zip(flat_in, sizes):
                        row.append(_moveaxis0_last(c[off:off + n], tuple(x.shape)))
                        off += n
                    blocks.append(row)
            else:  # rows: e_i^T J by vjp, one per output element
                for o in outs:
                    per_input: List[List[Tensor]] = [[] for _ in flat_in]
                    for i in range(o.size):
                        e = np.zeros(o.size)
                        e[i] = 1.0
                        gs = _gradients(o, flat_in, _core.tensor(e.reshape(o.shape), dtype=o.dtype), a.record)
                        for k, g in enumerate(gs):
                            per_input[k].append(g)
                    row = []
                    for k, x in enumerate(flat_in):
                        rows = per_input[k]
                        stacked = _core.tensor_ops.stack(rows, 0) if rows else _core._full(
                            (0,) + tuple(x.shape), 0.0, x.dtype, False)
                        row.append(stacked.reshape(tuple(o.shape) + tuple(x.shape)))
                    blocks.append(row)
            # structure: outputs' tree of (inputs' tree per argnum)
            per_out = []
            for row in blocks:
                res = a.split(row)
                per_out.append(res[0] if single else tuple(res))
        return _unflatten(out_spec, per_out)

    return wrapped


def jacrev(fun: Callable[..., Any], argnums: Argnums = 0) -> Callable[..., Any]:
    """The Jacobian by reverse mode (one vjp per output element): shape out.shape + in.shape."""
    return _jacobian(fun, argnums, forward=False)


def jacfwd(fun: Callable[..., Any], argnums: Argnums = 0) -> Callable[..., Any]:
    """The Jacobian by forward mode: one tangent sweep carrying every input direction at
    once (vector forward mode). The same result as jacrev."""
    return _jacobian(fun, argnums, forward=True)


jacobian = jacrev


def hessian(fun: Callable[..., Any], argnums: Argnums = 0) -> Callable[..., Any]:
    """The Hessian of a function with one output element: jacfwd(jacrev(f)), forward over
    reverse, as JAX's: one recorded reverse sweep, then one vector tangent sweep over it."""
    return jacfwd(jacrev(fun, argnums), argnums)


def hvp(fun: Callable[..., Any], primals: Sequence[Any], tangents: Sequence[Any]) -> Tuple[Any, Any]:
    """(f(*primals), H v) for f with one output element: the Hessian-vector product, forward
    over reverse (one recorded reverse sweep, one tangent sweep), as
    ``torch.autograd.functional.hvp``."""
    primals = tuple(primals)
    with _Level() as level:
        a = _Args(primals, tuple(range(len(primals))), level)
        flat_tan = _flat_tangents(a, tangents, "hvp")
        y = _as_tensor(fun(*a.args))
        if y.size != 1:
            raise TypeError(f"hvp requires a function with one output element, got shape {y.shape}")
        gs = _gradients(y.reshape(()), a.flat, record=True)
        hv = _tangents(gs, a.flat, flat_tan, a.record)
        res = a.split(hv)
    return y, tuple(res)


__all__ = ["grad", "value_and_grad", "vjp", "jvp", "jacrev", "jacfwd", "jacobian", "hessian", "hvp"]
