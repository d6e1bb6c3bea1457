"""Checkpointing (``torch.utils.checkpoint``): trade compute for memory.

``checkpoint(fn, *args)`` runs ``fn`` without keeping its intermediate values: the graph gets
one record for the whole call, holding only its inputs and outputs. When a backward pass
reaches it, ``fn`` runs again and that run is swept (on a tape of its own, dropped right after,
so only one segment's intermediates exist at a time). Gradients are the same as without
checkpointing, ``create_graph=True`` included (then the segment is recomputed on the graph's
tape, so the gradients can be differentiated again), and weights ``fn`` reads from outside
(a layer's parameters) get their gradients too.

``checkpoint_sequential(functions, segments, input)`` splits a sequence of layers into
``segments`` and checkpoints all but the last, as PyTorch does.

``fn`` must compute the same thing when run again: tapegrad's random numbers are put back to
where they were (``preserve_rng_state=True``), so that dropout draws the same mask. A tensor
that requires grad and is computed outside ``fn`` must come in as an argument (an error says so).
Forward mode (``jvp``) through a checkpointed call raises: it keeps nothing to save.
"""

from __future__ import annotations

from typing import Any, Callable, List, Optional, Sequence, Union

from .. import _core
from .._core import Tensor

__all__ = ["checkpoint", "checkpoint_sequential"]

_SLOT = object()  # where a tensor of the output goes


def checkpoint(function: Callable[..., Any], *args: Any, use_reentrant: Optional[bool] = None,
               context_fn: Optional[Callable[[], Any]] = None, determinism_check: str = "default",
               debug: bool = False, preserve_rng_state: bool = True, **kwargs: Any) -> Any:
    """``function(*args, **kwargs)`` without its intermediate values kept: they are recomputed
    when the backward pass reaches the call.

    ``function`` returns a Tensor, or a tuple or list of them (other items are passed through).
    ``use_reentrant`` is accepted for PyTorch's signature: tapegrad has one implementation, with
    the non-reentrant variant's abilities (``autograd.grad``, weights read from outside,
    inputs that do not require grad). ``preserve_rng_state`` puts tapegrad's random numbers
    back for the recomputation. ``context_fn`` (PyTorch's selective checkpointing) is not
    supported; ``determinism_check`` and ``debug`` are accepted and ignored (a recomputation
    that gives outputs of other shapes raises).
    """
    if not callable(function):
        raise TypeError(f"checkpoint: function must be callable, not {type(function).__name__}")
    if context_fn is not None:
        raise NotImplementedError("checkpoint: context_fn (selective checkpointing) is not supported")
    if use_reentrant is not None and not isinstance(use_reentrant, bool):
        raise TypeError(f"checkpoint: use_reentrant must be a bool or None, not {type(use_reentrant).__name__}")
    del determinism_check, debug
    from .. import random as _random

    tpos = [i for i, a in enumerate(args) if isinstance(a, Tensor)]
    tensors = [args[i] for i in tpos]
    # What the recompute needs, without a tensor: the graph keeps this closure, and a tensor
    # here would keep the graph (and a forward tape) alive through it.
    others = [None if isinstance(a, Tensor) else a for a in args]
    layout: List[Any] = []  # the first run's output with its tensors taken out
    rng_state = _random.get_rng_state() if preserve_rng_state else None

    def run(xs: Sequence[Tensor]) -> List[Tensor]:
        full = list(others)
        for i, x in zip(tpos, xs):
            full[i] = x
        if layout and rng_state is not None:
            now = _random.get_rng_state()
            _random.set_rng_state(rng_state)
            try:
                out = function(*full, **kwargs)
            finally:
                _random.set_rng_state(now)
        else:
            out = function(*full, **kwargs)
        is_tensor = isinstance(out, Tensor)
        items = [out] if is_tensor else (list(out) if isinstance(out, (tuple, list)) else [])
        found = [o for o in items if isinstance(o, Tensor)]
        if not layout:
            if not found:
                raise TypeError(f"checkpoint: the function must return a Tensor or a sequence with Tensors, "
                                f"not {type(out).__name__}")
            kind = "tensor" if is_tensor else ("tuple" if isinstance(out, tuple) else "list")
            layout.append((kind, [_SLOT if isinstance(o, Tensor) else o for o in items]))
        return found

    results = list(_core._checkpoint(run, tensors))
    kind, items = layout[0]
    if kind == "tensor":
        return results[0]
    filled = list(items)
    k = 0
    for j, o in enumerate(items):
        if o is _SLOT:
            filled[j] = results[k]
            k += 1
    return tuple(filled) if kind == "tuple" else filled


def checkpoint_sequential(functions: Union[Sequence[Callable[[Any], Any]], Any], segments: int, input: Any,
                          use_reentrant: Optional[bool] = None, **kwargs: Any) -> Any:
    """Runs ``functions`` (an ``nn.Sequential`` or a list of callables) one after the other on
    ``input``, in ``segments`` chunks of ``len(functions) // segments``: every chunk but the last
    is checkpointed (PyTorch's ``checkpoint_sequential``, the same split)."""
    preserve = kwargs.pop("preserve_rng_state", True)
    if kwargs:
        raise TypeError(f"checkpoint_sequential: unexpected keyword arguments {sorted(kwargs)}")
    if not isinstance(segments, int) or isinstance(segments, bool) or segments < 1:
        raise ValueError(f"checkpoint_sequential: segments must be a positive int, not {segments!r}")
    from ..nn import Sequential

    fns = list(functions.children()) if isinstance(functions, Sequential) else list(functions)
    if segments > len(fns) and fns:
        raise ValueError(f"checkpoint_sequential: {segments} segments for {len(fns)} functions")

    def run_function(start: int, end: int) -> Callable[[Any], Any]:
        def forward(x: Any) -> Any:
            for j in range(start, end + 1):
                x = fns[j](x)
            return x

        return forward

    segment_size = len(fns) // segments
    end = -1
    for start in range(0, segment_size * (segments - 1), segment_size):
        end = start + segment_size - 1
        input = checkpoint(run_function(start, end), input, use_reentrant=use_reentrant,
                           preserve_rng_state=preserve)
    return run_function(end + 1, len(fns) - 1)(input)
