"""Random numbers with PyTorch's API (``torch.Generator``, ``torch.manual_seed``, ``torch.rand``, ...).

The streams are NumPy's PCG64 (``numpy.random.Generator``), not PyTorch's Mersenne Twister: a
seed makes tapegrad's numbers reproducible, but the same seed gives different numbers than torch.
As in torch, ``Generator()`` starts from the fixed seed 67280421310721 and ``default_generator``
from a nondeterministic one, until ``manual_seed``.
"""

from __future__ import annotations

import contextlib
import secrets
from typing import Any, Dict, Iterator, Optional, Sequence, Tuple

import numpy as np

import tapegrad as tg

from . import _device
from ._core import Tensor
from ._device import check as _check_device
from ._dtypes import as_dtype, is_float, is_half
from ._tensor import _size_kw

_TORCH_DEFAULT_SEED = 67280421310721
_SEED_RANGE = (-(2**63), 2**64)


def _int(value: Any, what: str) -> int:
    """``value`` as an int (a Python or NumPy integer, not a bool), or a TypeError naming ``what``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{what} must be an integer, got {type(value).__name__} {value!r}")
    return int(value)


class Generator:
    """A random number generator: ``torch.Generator`` on NumPy's PCG64."""

    def __init__(self, seed: Any = None, device: Any = "cpu") -> None:
        if isinstance(seed, (str, _device.device)):  # torch.Generator("cpu"): PyTorch's first argument is the device
            seed, device = None, seed
        _device.check(device, "Generator")
        self.device = _device.CPU
        self._np = np.random.Generator(np.random.PCG64(0))
        self._seed = 0
        self.manual_seed(_TORCH_DEFAULT_SEED if seed is None else seed)

    def manual_seed(self, seed: int) -> Generator:
        """Restart the stream from ``seed`` (an integer in [-2**63, 2**64)): ``torch.Generator.manual_seed``."""
        value = _int(seed, "a seed")
        if not _SEED_RANGE[0] <= value < _SEED_RANGE[1]:
            raise ValueError(f"a seed must be in [-2**63, 2**64), got {value}")
        self._seed = value % 2**64  # torch's reading of a negative seed
        self._np.bit_generator.state = np.random.PCG64(self._seed).state  # in place: holders of _np stay valid
        return self

    def seed(self) -> int:
        """Reseed from a fresh nondeterministic seed and return it: ``torch.Generator.seed``."""
        value = secrets.randbits(64)
        self.manual_seed(value)
        return value

    def initial_seed(self) -> int:
        """The seed the stream started from: ``torch.Generator.initial_seed``."""
        return self._seed

    def get_state(self) -> Dict[str, Any]:
        """The generator's state (a picklable dict): ``torch.Generator.get_state``."""
        return {"seed": self._seed, "bit_generator": self._np.bit_generator.state}

    def set_state(self, state: Dict[str, Any]) -> Generator:
        """Restore a state from ``get_state()``: ``torch.Generator.set_state``."""
        if not isinstance(state, dict) or set(state) != {"seed", "bit_generator"}:
            raise TypeError(f"set_state() expects a state from Generator.get_state(), got {type(state).__name__}")
        self._np.bit_generator.state = state["bit_generator"]
        self._seed = state["seed"]
        return self

    def __repr__(self) -> str:
        return f"tapegrad.random.Generator(initial_seed={self._seed})"


#: The generator that every function uses when given no ``generator`` (``torch.default_generator``).
default_generator = Generator()
default_generator.seed()


def manual_seed(seed: int) -> Generator:
    """Reseed ``default_generator`` and return it: ``torch.manual_seed``."""
    return default_generator.manual_seed(seed)


def seed() -> int:
    """Reseed ``default_generator`` nondeterministically and return the seed: ``torch.seed``."""
    return default_generator.seed()


def initial_seed() -> int:
    """``default_generator``'s seed: ``torch.initial_seed``."""
    return default_generator.initial_seed()


def get_rng_state() -> Dict[str, Any]:
    """``default_generator``'s state: ``torch.get_rng_state``."""
    return default_generator.get_state()


def set_rng_state(state: Dict[str, Any]) -> None:
    """Restore ``default_generator``'s state: ``torch.set_rng_state``."""
    default_generator.set_state(state)


@contextlib.contextmanager
def fork_rng(devices: Any = None, enabled: bool = True) -> Iterator[None]:
    """Restore ``default_generator``'s state on exit: ``torch.random.fork_rng`` (``devices`` is ignored)."""
    state = get_rng_state()
    try:
        yield
    finally:
        if enabled:
            set_rng_state(state)


# --- helpers -------------------------------------------------------------------------------------


def _gen(generator: Optional[Generator]) -> np.random.Generator:
    """The NumPy generator behind ``generator`` (``default_generator`` for None)."""
    if generator is None:
        return default_generator._np
    if not isinstance(generator, Generator):
        kind = type(generator)
        raise TypeError(f"generator must be a tapegrad.random.Generator, got {kind.__module__}.{kind.__qualname__}")
    return generator._np


def _float_dtype(dtype: Any) -> Any:
    """``dtype`` (the default dtype for None) checked to be floating: float16, bfloat16, float32 or float64."""
    dt = as_dtype(tg.get_default_dtype() if dtype is None else dtype)
    if not is_float(dt):
        raise TypeError(f"expected a floating dtype (float16, bfloat16, float32 or float64), got {dt}")
    return dt


def _drawn(dt: Any) -> np.dtype[Any]:
    """The dtype NumPy draws samples of ``dt`` in: float32 for the 16-bit ones, rounded once after."""
    return np.dtype(np.float32) if dt.itemsize == 2 else np.dtype(dt)


def _size(size: Sequence[Any]) -> Tuple[int, ...]:
    """``(2, 3)`` from ``f(2, 3)``, ``f((2, 3))`` or ``f([2, 3])``; ``()`` from ``f(())``; ``(5,)`` from ``(5,)``."""
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        size = size[0]
    dims = tuple(_int(d, "a size") for d in size)
    if any(d < 0 for d in dims):
        raise ValueError(f"negative dimension in size {dims}")
    return dims


def _values(x: Any) -> np.ndarray[Any, Any]:
    """A tensor's values (a view), or a number's or array's."""
    return x.numpy() if isinstance(x, Tensor) else np.asarray(x)


def _make(values: np.ndarray[Any, Any], dtype: Any, requires_grad: bool = False) -> Tensor:
    """A fresh array as a tensor of ``dtype``."""
    if is_half(dtype):
        t = tg.tensor(np.asarray(values), dtype=dtype)  # (rounded to 16 bits once)
    else:
        t = tg.from_numpy(np.asarray(values, dtype=dtype))
    return t.requires_grad_() if requires_grad else t


def _gaussian(g: np.random.Generator, shape: Tuple[int, ...], dtype: np.dtype[Any], mean: Any,
              std: Any) -> np.ndarray[Any, Any]:
    """``mean + std * N(0, 1)`` of ``shape`` (mean and std broadcast to it) in ``dtype``."""
    mean, std = np.asarray(mean, dtype=np.float64), np.asarray(std, dtype=np.float64)
    if not np.all(std >= 0):
        raise ValueError(f"normal(): std must be >= 0 (and not NaN), got {std.min() if std.size else std}")
    try:
        fits = np.broadcast_shapes(mean.shape, std.shape, shape) == shape
    except ValueError:
        fits = False
    if not fits:
        raise ValueError(f"normal(): mean of shape {mean.shape} and std of shape {std.shape} do not broadcast "
                         f"to size {shape}")
    drawn = _drawn(dtype)
    out: np.ndarray[Any, Any] = mean + std * g.standard_normal(shape, dtype=drawn)
    return out.astype(drawn, copy=False)


# --- factories -----------------------------------------------------------------------------------


def rand(*size: Any, generator: Optional[Generator] = None, dtype: Any = None,
         requires_grad: bool = False, device: Any = None, **kwargs: Any) -> Tensor:
    """Uniform samples in [0, 1): ``torch.rand``."""
    _check_device(device, "rand")
    size = _size_kw(size, kwargs, "rand")
    dt = _float_dtype(dtype)
    return _make(_gen(generator).random(_size(size), dtype=_drawn(dt)), dt, requires_grad)


def randn(*size: Any, generator: Optional[Generator] = None, dtype: Any = None,
          requires_grad: bool = False, device: Any = None, **kwargs: Any) -> Tensor:
    """Standard normal samples: ``torch.randn``."""
    _check_device(device, "randn")
    size = _size_kw(size, kwargs, "randn")
    dt = _float_dtype(dtype)
    return _make(_gen(generator).standard_normal(_size(size), dtype=_drawn(dt)), dt, requires_grad)


def randint(low: Any = 0, high: Any = None, size: Any = None, *, generator: Optional[Generator] = None,
            dtype: Any = np.int64, requires_grad: bool = False, device: Any = None) -> Tensor:
    """Uniform integers in [low, high): ``torch.randint`` (``randint(high, size)`` or ``randint(low, high, size)``)."""
    _check_device(device, "randint")
    if size is None and high is not None and not isinstance(high, (int, np.integer)):
        low, high, size = 0, low, high  # randint(high, size)
    elif high is None:
        low, high = 0, low  # randint(high, size=...)
    if size is None:
        raise TypeError("randint() needs a size")
    lo, hi = _int(low, "randint(): low"), _int(high, "randint(): high")
    if hi <= lo:
        raise ValueError(f"randint(): high ({hi}) must be greater than low ({lo})")
    return _make(_gen(generator).integers(lo, hi, _size((size,)), dtype=np.int64), dtype, requires_grad)


def randperm(n: int, *, generator: Optional[Generator] = None, dtype: Any = np.int64,
             requires_grad: bool = False, device: Any = None) -> Tensor:
    """A random permutation of 0, ..., n - 1: ``torch.randperm``."""
    _check_device(device, "randperm")
    count = _int(n, "randperm(): n")
    if count < 0:
        raise ValueError(f"randperm(): n must be >= 0, got {count}")
    return _make(_gen(generator).permutation(count), dtype, requires_grad)


def _like(input: Any, dtype: Any) -> Tuple[Tuple[int, ...], Any]:
    """``input``'s shape, and ``dtype`` or else ``input``'s dtype."""
    if not isinstance(input, Tensor):
        raise TypeError(f"expected a tapegrad Tensor, got {type(input).__name__}")
    return input.shape, input.dtype if dtype is None else dtype


def rand_like(input: Tensor, *, dtype: Any = None, requires_grad: bool = False, device: Any = None,
              generator: Optional[Generator] = None) -> Tensor:
    """``rand`` of ``input``'s shape and dtype: ``torch.rand_like``."""
    _check_device(device, "rand_like")
    shape, dt = _like(input, dtype)
    return rand(shape, generator=generator, dtype=dt, requires_grad=requires_grad)


def randn_like(input: Tensor, *, dtype: Any = None, requires_grad: bool = False, device: Any = None,
               generator: Optional[Generator] = None) -> Tensor:
    """``randn`` of ``input``'s shape and dtype: ``torch.randn_like``."""
    _check_device(device, "randn_like")
    shape, dt = _like(input, dtype)
    return randn(shape, generator=generator, dtype=dt, requires_grad=requires_grad)


def randint_like(input: Tensor, low: Any = 0, high: Any = None, *, dtype: Any = None, requires_grad: bool = False,
                 device: Any = None, generator: Optional[Generator] = None) -> Tensor:
    """``randint`` of ``input``'s shape and dtype: ``torch.randint_like`` (``(t, high)`` or ``(t, low, high)``)."""
    _check_device(device, "randint_like")
    shape, dt = _like(input, dtype)
    return randint(low, high, shape, generator=generator, dtype=dt, requires_grad=requires_grad)


def normal(mean: Any, std: Any = 1.0, size: Any = None, *, generator: Optional[Generator] = None, dtype: Any = None,
           requires_grad: bool = False, device: Any = None) -> Tensor:
    """Normal samples of (tensor or float) ``mean`` and ``std``, broadcast: ``torch.normal``."""
    _check_device(device, "normal")
    tensors = [x.dtype for x in (mean, std) if isinstance(x, Tensor)]
    if not tensors and size is None:
        raise TypeError("normal(): with a float mean and a float std, give a size")
    dt = _float_dtype(np.result_type(*tensors) if tensors and dtype is None else dtype)
    m, s = _values(mean), _values(std)
    shape = np.broadcast_shapes(m.shape, s.shape) if size is None else _size((size,))
    return _make(_gaussian(_gen(generator), shape, dt, m, s), dt, requires_grad)


def bernoulli(input: Any, p: Optional[float] = None, *, generator: Optional[Generator] = None) -> Tensor:
    """1 with probability ``input`` (or ``p``) elementwise, else 0, in ``input``'s dtype: ``torch.bernoulli``."""
    values = _values(input)
    dt = _float_dtype(input.dtype if isinstance(input, Tensor) else None)
    probs = values if p is None else np.full(values.shape, p, dtype=np.float64)
    if not np.all((probs >= 0) & (probs <= 1)):
        raise ValueError("bernoulli(): probabilities must be in [0, 1] (and not NaN)")
    return _make(_gen(generator).random(values.shape) < probs, dt)


def multinomial(input: Any, num_samples: int, replacement: bool = False, *,
                generator: Optional[Generator] = None) -> Tensor:
    """``num_samples`` category indices per row of (unnormalised) probabilities: ``torch.multinomial``."""
    probs = _values(input).astype(np.float64)
    n = _int(num_samples, "multinomial(): num_samples")
    if probs.ndim not in (1, 2) or probs.shape[-1] == 0:
        raise ValueError(f"multinomial(): probabilities must be 1-d or 2-d with a category, got shape {probs.shape}")
    if n <= 0:
        raise ValueError(f"multinomial(): num_samples must be positive, got {n}")
    rows = probs.reshape(-1, probs.shape[-1])
    if not np.all(np.isfinite(rows) & (rows >= 0)):
        raise ValueError("multinomial(): probabilities must be finite and non-negative")
    totals = rows.sum(axis=1)
    if np.any(totals <= 0):
        raise ValueError(f"multinomial(): the probabilities of row {int(np.argmin(totals > 0))} sum to 0")
    if not replacement and np.any((rows > 0).sum(axis=1) < n):
        raise ValueError(f"multinomial(): cannot draw {n} samples without replacement from a row with fewer "
                         f"than {n} non-zero probabilities")
    g = _gen(generator)
    out = [g.choice(rows.shape[1], n, replace=bool(replacement), p=row / total) for row, total in zip(rows, totals)]
    return _make(np.stack(out).reshape(probs.shape[:-1] + (n,)), np.int64)


# --- the draws of Tensor.uniform_ and Tensor.normal_ (tapegrad/_torch.py writes them in place) ----------


def _draw(shape: Tuple[int, ...], dtype: Any, kind: str, a: float, b: float,
          generator: Optional[Generator] = None) -> np.ndarray[Any, Any]:
    """The values of ``uniform_`` (in [a, b)) or ``normal_`` (mean a, std b) for a float tensor of ``shape``."""
    g, dt = _gen(generator), _float_dtype(dtype)
    if kind == "normal":
        return _gaussian(g, tuple(shape), dt, a, b)
    if kind != "uniform":
        raise ValueError(f"_draw(): kind must be 'uniform' or 'normal', got {kind!r}")
    if not a <= b:
        raise ValueError(f"uniform_(): expected a <= b, got a={a}, b={b}")
    drawn = _drawn(dt)
    return (a + (b - a) * g.random(shape, dtype=drawn)).astype(drawn, copy=False)


__all__ = [
    "Generator", "default_generator", "manual_seed", "seed", "initial_seed", "get_rng_state", "set_rng_state",
    "fork_rng", "rand", "randn", "randint", "randperm", "rand_like", "randn_like", "randint_like", "normal",
    "bernoulli", "multinomial",
]
