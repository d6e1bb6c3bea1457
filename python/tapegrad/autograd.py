"""``tapegrad.autograd.grad``: PyTorch's ``torch.autograd.grad`` for tapegrad tensors."""

from __future__ import annotations

from typing import Any, Optional, Sequence, Tuple, Union

from . import _core
from ._core import Tensor

Tensors = Union[Tensor, Sequence[Tensor]]


def _as_tuple(x: Any) -> Tuple[Any, ...]:
    return (x,) if isinstance(x, Tensor) or x is None else tuple(x)


def grad(
    outputs: Tensors,
    inputs: Tensors,
    grad_outputs: Optional[Any] = None,
    retain_graph: Optional[bool] = None,
    create_graph: bool = False,
    allow_unused: bool = False,
) -> Tuple[Optional[Tensor], ...]:
    """The gradients of ``outputs`` with respect to ``inputs``, as a tuple (one per input).

    ``grad_outputs`` weights each output (ones by default, needed for outputs with more than
    one element: without it they are summed, as seeded with ones). No ``.grad`` is changed.
    With ``create_graph=True`` the gradients are recorded results that can be differentiated
    again, to any order. ``retain_graph`` is accepted for PyTorch compatibility: graphs are
    kept while a result reaches them. An input the outputs do not depend on raises
    ``RuntimeError``, or gives ``None`` with ``allow_unused=True``.
    """
    del retain_graph  # always retained
    outs = _as_tuple(outputs)
    seeds = None if grad_outputs is None else _as_tuple(grad_outputs)
    if seeds is not None and len(seeds) != len(outs):
        raise ValueError(f"grad_outputs has {len(seeds)} entries for {len(outs)} outputs")
    return _core._grad(outs, _as_tuple(inputs), seeds, create_graph, allow_unused)


__all__ = ["grad"]
