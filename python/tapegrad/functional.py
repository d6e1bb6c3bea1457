"""JAX's function transformations on tapegrad tensors: ``grad``, ``value_and_grad``,
``vjp``, ``jvp``, ``jacrev``, ``jacfwd``, ``jacobian``, ``hessian`` and ``hvp``.

Inputs may be Python numbers, ``Var``s, NumPy arrays, ``Tensor``s, and lists, tuples and
dicts of them; outputs have the matching structure. The results are ``Tensor``s, except
that a derivative with respect to a ``Var`` argument, when it is a single number, is a
``Var`` (one that does not require grad). A transformation called inside another one
records its derivatives (``create_graph``), so they compose (``grad(grad(f))``,
``jacfwd(jacrev(f))``); the outermost one runs on a tape of its own and returns values cut
from any graph, so nothing is left on the caller's tape (an argument that already requires
grad makes it record on the caller's graph instead: the caller differentiates through it).

How they are computed: ``grad``, ``vjp`` and ``jacrev`` by reverse sweeps; ``jvp`` and
``jacfwd`` by the tangent sweep (forward mode: ``tapegrad.autograd.jvp``), ``jacfwd`` with
all the input directions at once (vector forward mode); ``hessian`` and ``hvp`` forward
over reverse: one recorded reverse sweep, then one tangent sweep over it. Those steps are
the core's (``tapegrad._core.transforms``, the code the C++ ``functional.hpp`` calls too);
this module adds pytrees, ``argnums``, ``has_aux`` and ``Var`` results.
"""

from __future__ import annotations

import os
import sys
from typing import Any, Callable, List, Optional, Sequence, Tuple, Union

from . import _core
from ._core import Tape, Tensor
from ._core import transforms as _t
from ._dtypes import is_float

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


def _as_tensor(x: Any) -> Tensor:
    """An argument, output, tangent or cotangent as a Tensor: a Var as its value, anything
    else as ``tapegrad.tensor`` takes it (so what it refuses, complex numbers for one, is
    refused here too)."""
    if isinstance(x, Tensor):
        return x
    if isinstance(x, _core.Var):
        return _core.tensor(x.data)
    return _core.tensor(x)


def _argnums(argnums: Argnums) -> Tuple[Tuple[int, ...], bool]:
    if isinstance(argnums, int) and not isinstance(argnums, bool):
        return (argnums,), True
    if isinstance(argnums, (tuple, list)) and all(isinstance(i, int) and not isinstance(i, bool) for i in argnums):
        return tuple(argnums), False
    raise TypeError(f"argnums must be an int or a tuple of ints, not {argnums!r}")


class _Call:
    """One call of a transformation, as a context manager: the level it runs at (the core's
    ``transforms.Level``: whether it must record its derivatives, because it is nested in
    another one or an argument already requires grad) and, when it need not record, a tape
    of its own, as the C++ transformations have. Inside, ``args`` are the arguments to call
    the function with, the differentiated ones (``argnums``) replaced by variables;
    ``flat`` lists those variables, ``specs[i]`` is argument i's tree structure and
    ``was_var[i]`` says which of its leaves were Vars."""

    def __init__(self, args: Tuple[Any, ...], argnums: Tuple[int, ...]) -> None:
        for i in argnums:
            if not -len(args) <= i < len(args):
                raise ValueError(f"argnums {i} is out of range for {len(args)} positional arguments")
        self.args = list(args)
        self.argnums = argnums
        self.inputs: List[List[Tensor]] = []
        self.specs: List[Any] = []
        self.was_var: List[List[bool]] = []
        for i in argnums:
            flat, spec = _flatten(args[i])
            self.inputs.append([_as_tensor(x) for x in flat])
            self.specs.append(spec)
            self.was_var.append([isinstance(x, _core.Var) for x in flat])

    def __enter__(self) -> "_Call":
        self._level = _t.Level(any(x.requires_grad for xs in self.inputs for x in xs)).__enter__()
        self.record: bool = self._level.record
        self._tape = None if self.record else Tape().__enter__()
        self.flat: List[Tensor] = list(_t.variables([x for xs in self.inputs for x in xs]))
        i = 0
        for k, spec, xs in zip(self.argnums, self.specs, self.inputs):
            self.args[k] = _unflatten(spec, self.flat[i:i + len(xs)])
            i += len(xs)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._tape is not None:
            self._tape.__exit__(None, None, None)
        self._level.__exit__(None, None, None)

    def result(self, ts: Sequence[Tensor]) -> List[Tensor]:
        """The function's outputs as results of the transformation (cut from the graph unless
        recording)."""
        return list(_t.result(list(ts), self.record))

    def split(self, flat: Sequence[Any], scalar_vars: bool = True) -> List[Any]:
        """Values with the variables' flat order, regrouped into one tree per argument. At the
        outermost level, a single number for a Var input becomes a Var."""
        out, i = [], 0
        for xs, spec, vs in zip(self.inputs, self.specs, self.was_var):
            part = list(flat[i:i + len(xs)])
            if scalar_vars and not self.record:
                part = [_core.Var(float(p.item()), requires_grad=False)
                        if v and isinstance(p, Tensor) and p.size == 1 and p.ndim == 0 else p
                        for p, v in zip(part, vs)]
            out.append(_unflatten(spec, part))
            i += len(xs)
        return out


def _flat_tangents(c: _Call, tangents: Sequence[Any], what: str) -> List[Tensor]:
    """The tangents' leaves, which must have the primals' structure (their shapes are checked
    by the core)."""
    flat = [_as_tensor(v) for v in _flatten(list(tangents))[0]]
    if len(flat) != len(c.flat):
        raise ValueError(f"{what}: the tangents do not have the primals' structure "
                         f"({len(flat)} leaves for {len(c.flat)})")
    return flat


# --- the transformations ---------------------------------------------------------------------------


def value_and_grad(fun: Callable[..., Any], argnums: Argnums = 0, has_aux: bool = False) -> Callable[..., Any]:
    """A function returning (f(*args), grad f(*args)); with has_aux, f returns (value, aux)
    and this returns ((value, aux), grad). The value must have one element."""
    nums, single = _argnums(argnums)

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        with _Call(args, nums) as c:
            result = fun(*c.args, **kwargs)
            value, aux = result if has_aux else (result, None)
            y = _as_tensor(value)
            out = c.split(_t.vjp([y], c.flat, None, c.record))
            y, = c.result([y])
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
    with _Call(primals, tuple(range(len(primals)))) as c:
        result = fun(*c.args)
        out, aux = result if has_aux else (result, None)
        outs, out_spec = _flatten(out)
        outs = [_as_tensor(o) for o in outs]
        primals_out = _unflatten(out_spec, c.result(outs))

    def vjp_fn(cotangents: Any) -> Tuple[Any, ...]:
        cts, _ = _flatten(cotangents)
        if len(cts) != len(outs):
            raise ValueError(f"vjp: {len(cts)} cotangents for {len(outs)} outputs")
        return tuple(c.split(_t.vjp(outs, c.flat, [_as_tensor(u) for u in cts], True), scalar_vars=False))

    return (primals_out, vjp_fn, aux) if has_aux else (primals_out, vjp_fn)


def jvp(fun: Callable[..., Any], primals: Sequence[Any], tangents: Sequence[Any]) -> Tuple[Any, Any]:
    """(f(*primals), J tangents), as JAX's ``jax.jvp`` (tangents with the primals' structure):
    one forward run, then one tangent sweep (forward mode), no reverse sweep."""
    primals, tangents = tuple(primals), tuple(tangents)
    if len(primals) != len(tangents):
        raise ValueError(f"jvp: {len(primals)} primals and {len(tangents)} tangents")
    with _Call(primals, tuple(range(len(primals)))) as c:
        flat_tan = _flat_tangents(c, tangents, "jvp")
        outs, out_spec = _flatten(fun(*c.args))
        outs = [_as_tensor(o) for o in outs]
        results = _t.jvp(outs, c.flat, flat_tan, c.record)
        outs = c.result(outs)
    return _unflatten(out_spec, outs), _unflatten(out_spec, list(results))


def _memory_bytes() -> Optional[int]:
    """This machine's memory: its physical RAM, or its cgroup's limit where lower (a container); None where
    neither can be read."""
    limits = []
    try:
        limits.append(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, ValueError, OSError):  # (no sysconf: Windows)
        pass
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            with open(path) as f:
                text = f.read().strip()
        except OSError:
            continue
        if text.isdigit():  # ("max": no limit)
            limits.append(int(text))
    positive = [n for n in limits if n > 0]
    return min(positive) if positive else None


def _shapes(ts: Sequence[Tensor]) -> str:
    shown = ", ".join(str(t.shape) for t in ts[:3 if len(ts) > 4 else 4])
    return shown + (f", ... ({len(ts)} in all)" if len(ts) > 4 else "")


def _check_jacobian_size(name: str, outs: Sequence[Tensor], inputs: Sequence[Tensor], forward: bool) -> None:
    """Refuses, before any sweep, a Jacobian bigger than this machine's memory (``_memory_bytes``) or than
    any address space: a MemoryError naming the shapes and the bytes it needs."""
    need = 0
    for y in outs:
        for x in inputs:  # a block per (output, input): y.shape + x.shape, of the input's dtype in reverse
            dtype = y.dtype if forward else x.dtype  # mode, the output's (a floating one) in forward mode
            itemsize = int(getattr(dtype, "itemsize", 8)) if is_float(dtype) else 8
            need += y.size * x.size * itemsize
    limit = _memory_bytes()
    if need <= sys.maxsize and (limit is None or need <= limit):
        return
    what = (f"an output of shape {outs[0].shape} with respect to an input of shape {inputs[0].shape}"
            if len(outs) == len(inputs) == 1 else
            f"outputs of shapes {_shapes(outs)} with respect to inputs of shapes {_shapes(inputs)}")
    room = (f"this machine's memory ({limit} bytes, {limit / 2**30:.1f} GiB)" if limit is not None and
            limit < sys.maxsize else f"any address space ({sys.maxsize} bytes)")
    raise MemoryError(f"tapegrad.{name}: the Jacobian of {what} needs {need} bytes ({need / 2**30:.1f} GiB), "
                      f"more than {room}; nothing was computed. Compute it in parts (vjp or jvp with chosen "
                      f"vectors, hvp), or differentiate a function with fewer outputs or inputs")


def _jacobian(fun: Callable[..., Any], argnums: Argnums, forward: bool, name: str) -> Callable[..., Any]:
    nums, single = _argnums(argnums)

    def wrapped(*args: Any) -> Any:
        with _Call(args, nums) as c:
            outs, out_spec = _flatten(fun(*c.args))
            outs = [_as_tensor(o) for o in outs]
            _check_jacobian_size(name, outs, c.flat, forward)
            blocks = _t.jacobian(outs, c.flat, forward, c.record)
            # structure: the outputs' tree of (the inputs' tree per argnum)
            per_out = []
            for row in blocks:
                res = c.split(row)
                per_out.append(res[0] if single else tuple(res))
        return _unflatten(out_spec, per_out)

    return wrapped


def jacrev(fun: Callable[..., Any], argnums: Argnums = 0) -> Callable[..., Any]:
    """The Jacobian by reverse mode (one vjp per output element): shape out.shape + in.shape.

    Its size is checked after ``fun`` runs and before any sweep: a Jacobian that needs more bytes (output
    elements x input elements x itemsize, summed over the outputs and inputs) than this machine's memory (its
    RAM, or its container's memory limit where lower) raises a MemoryError at once, naming the shapes and the
    bytes, rather than after hours of sweeps (as JAX's ``jacrev`` fails up front, when it allocates its
    basis). The sweeps need memory of their own on top of that, so a Jacobian close to that size may still
    run out."""
    return _jacobian(fun, argnums, forward=False, name="jacrev")


def jacfwd(fun: Callable[..., Any], argnums: Argnums = 0) -> Callable[..., Any]:
    """The Jacobian by forward mode: one tangent sweep carrying every input direction at
    once (vector forward mode). The same result as jacrev, and the same MemoryError, before any sweep, for a
    Jacobian bigger than this machine's memory. (Its sweep carries one direction per input element through
    every op, so it needs more memory than jacrev, whose sweeps are one at a time.)"""
    return _jacobian(fun, argnums, forward=True, name="jacfwd")


jacobian = jacrev


def hessian(fun: Callable[..., Any], argnums: Argnums = 0) -> Callable[..., Any]:
    """The Hessian of a function with one output element: jacfwd(jacrev(f)), forward over
    reverse, as JAX's: one recorded reverse sweep, then one vector tangent sweep over it. A Hessian bigger
    than this machine's memory is a MemoryError before that sweep, as in jacrev."""
    return _jacobian(jacrev(fun, argnums), argnums, forward=True, name="hessian")


def hvp(fun: Callable[..., Any], primals: Sequence[Any], tangents: Sequence[Any]) -> Tuple[Any, Any]:
    """(f(*primals), H v) for f with one output element: the Hessian-vector product, forward
    over reverse (one recorded reverse sweep, one tangent sweep), as
    ``torch.autograd.functional.hvp``."""
    primals = tuple(primals)
    with _Call(primals, tuple(range(len(primals)))) as c:
        flat_tan = _flat_tangents(c, tangents, "hvp")
        y = _as_tensor(fun(*c.args))
        res = c.split(_t.hvp([y], c.flat, flat_tan, c.record))
        y, = c.result([y])
    return y, tuple(res)


__all__ = ["grad", "value_and_grad", "vjp", "jvp", "jacrev", "jacfwd", "jacobian", "hessian", "hvp"]
