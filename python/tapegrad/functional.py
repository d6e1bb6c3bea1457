"""JAX's function transformations on tapegrad tensors: ``grad``, ``value_and_grad``,
``vjp``, ``jvp``, ``jacrev``, ``jacfwd``, ``jacobian``, ``hessian`` and ``hvp``.

Inputs may be Python numbers, NumPy arrays, ``Tensor``s, and lists, tuples and dicts of
them; outputs have the matching structure. Every transformation records with
``create_graph=True``, so they compose (``grad(grad(f))``, ``jacrev(grad(f))``). The results
are ``Tensor``s.

How they are computed: reverse mode throughout. ``jvp`` and ``jacfwd`` use the
double-vjp identity J v = d/du <J^T u, v> (two reverse sweeps over a graph that is linear
in u), so their cost is that of reverse mode; a tangent sweep over the tape (true forward
mode) is planned and will replace it without changing these functions' results.
"""

from __future__ import annotations

from typing import Any, Callable, List, Sequence, Tuple, Union

import numpy as np

from . import _core
from ._core import Tensor
from .autograd import grad as _autograd_grad

Argnums = Union[int, Sequence[int]]

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
    return _core.tensor(np.asarray(y, dtype=np.float64))


def _argnums(argnums: Argnums) -> Tuple[Tuple[int, ...], bool]:
    if isinstance(argnums, int):
        return (argnums,), True
    return tuple(argnums), False


def _prepare(args: Tuple[Any, ...], argnums: Tuple[int, ...]) -> Tuple[List[Any], List[List[Tensor]], List[Any]]:
    """Replaces the differentiated arguments by leaf tensors; returns the new arguments, the
    leaves of each differentiated argument, and each one's tree structure."""
    for i in argnums:
        if not -len(args) <= i < len(args):
            raise ValueError(f"argnums {i} is out of range for {len(args)} positional arguments")
    new = list(args)
    leaves, specs = [], []
    for i in argnums:
        flat, spec = _flatten(args[i])
        ts = [_leaf_tensor(x) for x in flat]
        new[i] = _unflatten(spec, ts)
        leaves.append(ts)
        specs.append(spec)
    return new, leaves, specs


def _zeros_like(t: Tensor) -> Tensor:
    return _core._full(t.shape, 0.0, t.dtype, False)


def _gradients(out: Tensor, inputs: List[Tensor], seed: Any = None) -> List[Tensor]:
    """d<out, seed>/d inputs, recorded (create_graph) so transformations compose; an input
    the output does not use gets zeros."""
    if not out.requires_grad:
        return [_zeros_like(x) for x in inputs]
    gs = _autograd_grad([out], inputs, None if seed is None else [seed], create_graph=True, allow_unused=True)
    return [_zeros_like(x) if g is None else g for g, x in zip(gs, inputs)]


# --- the transformations ---------------------------------------------------------------------------


def value_and_grad(fun: Callable[..., Any], argnums: Argnums = 0, has_aux: bool = False) -> Callable[..., Any]:
    """A function returning (f(*args), grad f(*args)); with has_aux, f returns (value, aux)
    and this returns ((value, aux), grad). The value must have one element."""
    nums, single = _argnums(argnums)

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        new, leaves, specs = _prepare(args, nums)
        result = fun(*new, **kwargs)
        value, aux = result if has_aux else (result, None)
        y = _as_tensor(value)
        if y.size != 1:
            raise TypeError(f"grad requires a function with one output element, got shape {y.shape} "
                            "(use jacrev or vjp for other outputs)")
        flat_all = [t for ts in leaves for t in ts]
        gs = _gradients(y.reshape(()), flat_all)
        out, i = [], 0
        for ts, spec in zip(leaves, specs):
            out.append(_unflatten(spec, gs[i:i + len(ts)]))
            i += len(ts)
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
    primal (cotangents with f's output structure). With has_aux: (out, vjp_fn, aux)."""
    new, leaves, specs = _prepare(primals, tuple(range(len(primals))))
    result = fun(*new)
    out, aux = result if has_aux else (result, None)
    outs, out_spec = _flatten(out)
    outs = [_as_tensor(o) for o in outs]
    flat_in = [t for ts in leaves for t in ts]

    def vjp_fn(cotangents: Any) -> Tuple[Any, ...]:
        cts, _ = _flatten(cotangents)
        if len(cts) != len(outs):
            raise ValueError(f"vjp: {len(cts)} cotangents for {len(outs)} outputs")
        total: List[Tensor] = [_zeros_like(x) for x in flat_in]
        for o, c in zip(outs, cts):
            c = _as_tensor(c)
            if tuple(c.shape) != tuple(o.shape):
                raise ValueError(f"vjp: a cotangent of shape {c.shape} for an output of shape {o.shape}")
            total = [a + b for a, b in zip(total, _gradients(o, flat_in, c))]
        res, i = [], 0
        for ts, spec in zip(leaves, specs):
            res.append(_unflatten(spec, total[i:i + len(ts)]))
            i += len(ts)
        return tuple(res)

    primals_out = _unflatten(out_spec, outs)
    return (primals_out, vjp_fn, aux) if has_aux else (primals_out, vjp_fn)


def jvp(fun: Callable[..., Any], primals: Sequence[Any], tangents: Sequence[Any]) -> Tuple[Any, Any]:
    """(f(*primals), J tangents), as JAX's ``jax.jvp`` (tangents with the primals' structure)."""
    primals, tangents = tuple(primals), tuple(tangents)
    if len(primals) != len(tangents):
        raise ValueError(f"jvp: {len(primals)} primals and {len(tangents)} tangents")
    new, leaves, _ = _prepare(primals, tuple(range(len(primals))))
    flat_in = [t for ts in leaves for t in ts]
    flat_tan = [_as_tensor(v) for v in _flatten(list(tangents))[0]]
    for x, v in zip(flat_in, flat_tan):
        if tuple(x.shape) != tuple(v.shape):
            raise ValueError(f"jvp: a tangent of shape {v.shape} for a primal of shape {x.shape}")
    outs, out_spec = _flatten(fun(*new))
    outs = [_as_tensor(o) for o in outs]
    results = []
    for o in outs:
        # J v = d/du <J^T u, v>: J^T u is linear in u, so its gradient in u is J v at any u.
        u = _zeros_like(o).requires_grad_()
        gs = _gradients(o, flat_in, u)
        inner = None
        for g, v in zip(gs, flat_tan):
            term = (g * v).sum()
            inner = term if inner is None else inner + term
        if inner is None or not inner.requires_grad:
            results.append(_zeros_like(o))
            continue
        (jv,) = _autograd_grad([inner], [u], create_graph=True, allow_unused=True)
        results.append(_zeros_like(o) if jv is None else jv)
    return _unflatten(out_spec, outs), _unflatten(out_spec, results)


def _jacobian(fun: Callable[..., Any], argnums: Argnums, forward: bool) -> Callable[..., Any]:
    nums, single = _argnums(argnums)

    def wrapped(*args: Any) -> Any:
        new, leaves, specs = _prepare(args, nums)
        flat_in = [t for ts in leaves for t in ts]
        outs, out_spec = _flatten(fun(*new))
        outs = [_as_tensor(o) for o in outs]
        blocks: List[List[Tensor]] = []  # [output][input] -> out.shape + in.shape
        for o in outs:
            row = []
            if forward:  # columns: J e_j by jvp (double vjp), one per input element
                u = _zeros_like(o).requires_grad_()
                gs = _gradients(o, flat_in, u)  # J^T u, linear in u
                for k, x in enumerate(flat_in):
                    cols = []
                    for j in range(x.size):
                        e = np.zeros(x.size)
                        e[j] = 1.0
                        inner = (gs[k] * _core.tensor(e.reshape(x.shape), dtype=x.dtype)).sum()
                        jv = None if not inner.requires_grad else _autograd_grad(
                            [inner], [u], create_graph=True, allow_unused=True)[0]
                        cols.append(_zeros_like(o) if jv is None else jv)
                    stacked = _core.tensor_ops.stack(cols, -1) if cols else _core._full(
                        tuple(o.shape) + (0,), 0.0, o.dtype, False)
                    row.append(stacked.reshape(tuple(o.shape) + tuple(x.shape)))
            else:  # rows: e_i^T J by vjp, one per output element
                per_input: List[List[Tensor]] = [[] for _ in flat_in]
                for i in range(o.size):
                    e = np.zeros(o.size)
                    e[i] = 1.0
                    gs = _gradients(o, flat_in, _core.tensor(e.reshape(o.shape), dtype=o.dtype))
                    for k, g in enumerate(gs):
                        per_input[k].append(g)
                for k, x in enumerate(flat_in):
                    rows = per_input[k]
                    stacked = _core.tensor_ops.stack(rows, 0) if rows else _core._full(
                        (0,) + tuple(x.shape), 0.0, x.dtype, False)
                    row.append(stacked.reshape(tuple(o.shape) + tuple(x.shape)))
            blocks.append(row)
        # structure: outputs' tree of (inputs' tree per argnum)
        per_out = []
        for row in blocks:
            res, i = [], 0
            for ts, spec in zip(leaves, specs):
                res.append(_unflatten(spec, row[i:i + len(ts)]))
                i += len(ts)
            per_out.append(res[0] if single else tuple(res))
        return _unflatten(out_spec, per_out)

    return wrapped


def jacrev(fun: Callable[..., Any], argnums: Argnums = 0) -> Callable[..., Any]:
    """The Jacobian by reverse mode (one vjp per output element): shape out.shape + in.shape."""
    return _jacobian(fun, argnums, forward=False)


def jacfwd(fun: Callable[..., Any], argnums: Argnums = 0) -> Callable[..., Any]:
    """The Jacobian column by column (one jvp per input element): the same result as jacrev."""
    return _jacobian(fun, argnums, forward=True)


jacobian = jacrev


def hessian(fun: Callable[..., Any], argnums: Argnums = 0) -> Callable[..., Any]:
    """The Hessian of a function with one output element: jacfwd(jacrev(f)), as JAX's."""
    return jacfwd(jacrev(fun, argnums), argnums)


def hvp(fun: Callable[..., Any], primals: Sequence[Any], tangents: Sequence[Any]) -> Tuple[Any, Any]:
    """(f(*primals), H v) for f with one output element: the Hessian-vector product
    (reverse over reverse), as ``torch.autograd.functional.hvp``."""
    primals = tuple(primals)
    new, leaves, specs = _prepare(primals, tuple(range(len(primals))))
    flat_in = [t for ts in leaves for t in ts]
    flat_tan = [_as_tensor(v) for v in _flatten(list(tangents))[0]]
    y = _as_tensor(fun(*new))
    if y.size != 1:
        raise TypeError(f"hvp requires a function with one output element, got shape {y.shape}")
    gs = _gradients(y.reshape(()), flat_in)
    inner = None
    for g, v in zip(gs, flat_tan):
        term = (g * v).sum()
        inner = term if inner is None else inner + term
    hv = [_zeros_like(x) for x in flat_in]
    if inner is not None and inner.requires_grad:
        hv = _gradients(inner, flat_in)
    res, i = [], 0
    for ts, spec in zip(leaves, specs):
        res.append(_unflatten(spec, hv[i:i + len(ts)]))
        i += len(ts)
    return y, tuple(res)


__all__ = ["grad", "value_and_grad", "vjp", "jvp", "jacrev", "jacfwd", "jacobian", "hessian", "hvp"]
