"""bfloat16 on the Python side: ml_dtypes' NumPy type where it is installed, else a marker.

NumPy has no bfloat16. With ``ml_dtypes`` installed (``pip install tapegrad[bf16]``), a
bfloat16 tensor's ``dtype`` is ml_dtypes' NumPy dtype and ``.numpy()`` views its memory
without a copy. Without it, bfloat16 tensors still work (the storage is tapegrad's own 16
bits), their ``dtype`` is the marker below, and ``.numpy()`` raises, naming ml_dtypes.
"""

from __future__ import annotations

from typing import Any

import numpy as np


class _BFloat16:
    """``tapegrad.bfloat16`` when ``ml_dtypes`` is not installed: names the dtype (as ``dtype=``
    and as a tensor's ``.dtype``), compares equal to the string ``'bfloat16'``."""

    name = "bfloat16"
    itemsize = 2
    kind = "V"

    def __repr__(self) -> str:
        return "tapegrad.bfloat16"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return other is self or other == "bfloat16"

    def __hash__(self) -> int:
        return hash("bfloat16")

    def __reduce__(self) -> str:
        return "bfloat16"


bfloat16: Any
bfloat16_dtype: Any
try:
    import ml_dtypes

    bfloat16 = ml_dtypes.bfloat16
    bfloat16_dtype = np.dtype(ml_dtypes.bfloat16)
    have_ml_dtypes = True
except ImportError:  # pragma: no cover - exercised by the no-ml_dtypes test in a subprocess
    bfloat16 = bfloat16_dtype = _BFloat16()
    have_ml_dtypes = False


def is_float(dtype: Any) -> bool:
    """Whether a tensor's dtype is floating: float16, bfloat16, float32 or float64 (bfloat16's NumPy
    kind is 'V', so ``dtype.kind == 'f'`` alone misses it)."""
    return getattr(dtype, "kind", None) == "f" or getattr(dtype, "name", None) == "bfloat16"


def is_half(dtype: Any) -> bool:
    """Whether a tensor's dtype is one of the 16-bit floats, float16 or bfloat16."""
    return is_float(dtype) and getattr(dtype, "itemsize", 0) == 2


def as_dtype(x: Any) -> Any:
    """A dtype argument as the dtype object a tensor's ``.dtype`` would be: NumPy's, or bfloat16's
    (ml_dtypes' dtype, or the marker). TypeError for what is no dtype."""
    if x is None:
        raise TypeError("expected a dtype, got None")
    if (isinstance(x, str) and x == "bfloat16") or x is bfloat16 or x is bfloat16_dtype:
        return bfloat16_dtype
    dt = np.dtype(x)
    return bfloat16_dtype if dt.name == "bfloat16" else dt


def is_dtype(x: Any) -> bool:
    """Whether x names a dtype (``as_dtype`` takes it)."""
    try:
        as_dtype(x)
    except TypeError:
        return False
    return True


def numpy_values(t: Any) -> Any:
    """A tensor's values as an ndarray for NumPy-side work (sorting, printing): bfloat16 as float32
    (exact; NumPy has no bfloat16 of its own, and ml_dtypes' orders NaN apart)."""
    return t.astype(np.float32).numpy() if t.dtype.name == "bfloat16" else t.numpy()
