"""tapegrad: automatic differentiation on an arena tape.

``Var`` is a scalar that records the operations applied to it; ``backward()`` runs one
native reverse sweep over the tape. ``Value`` is the same type under micrograd's name.
Every op of the C++ op table is a function here (``tapegrad.exp(x)``, ``tapegrad.pow(x, y)``,
...) and a method of ``Var`` (``x.exp()``); the functions also take plain numbers.
"""

from __future__ import annotations

import os as _os

from . import _core
from ._core import Tape, Var, active_tape, op_table

__version__: str = _core.__version__

Value = Var

# One function per op of the table: neg, exp, log, ..., add, sub, mul, div, pow, atan2, min, max.
for _name, _arity in op_table:
    globals()[_name] = getattr(_core, _name)
maximum = _core.max
minimum = _core.min

from . import nn  # noqa: E402


def get_cmake_dir() -> str:
    """The folder holding tapegrad's CMake package (for ``-Dtapegrad_DIR=...``)."""
    return _os.path.join(_os.path.dirname(__file__), "lib", "cmake", "tapegrad")


def get_include() -> str:
    """The folder holding tapegrad's C++ headers."""
    return _os.path.join(_os.path.dirname(__file__), "include")


__all__ = [
    "Tape", "Var", "Value", "active_tape", "op_table", "nn", "maximum", "minimum",
    "get_cmake_dir", "get_include", *[name for name, _ in op_table],
]
