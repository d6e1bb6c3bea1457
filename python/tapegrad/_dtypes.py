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
