"""Handles for registered hooks (``torch.utils.hooks``): ``RemovableHandle.remove()`` unregisters
the hook it was returned for; a handle is also a context manager that removes it on exit."""

from __future__ import annotations

import itertools
from typing import Any, Callable, Dict, List, Optional

_next_id = itertools.count()


class RemovableHandle:
    """What every ``register_*_hook`` returns: ``remove()`` unregisters the hook (removing twice
    does nothing), and ``with handle:`` removes it when the block ends."""

    def __init__(self, hooks_dict: Optional[Dict[int, Any]] = None, *, remover: Optional[Callable[[], Any]] = None,
                 id: Optional[int] = None) -> None:  # noqa: A002 (torch's name)
        self.hooks_dict = hooks_dict
        self.extra_dicts: List[Dict[int, Any]] = []  # flags of the hook (with_kwargs, always_call)
        self._remover = remover
        self.id = next(_next_id) if id is None else id

    def remove(self) -> None:
        if self.hooks_dict is not None:
            self.hooks_dict.pop(self.id, None)
        for d in self.extra_dicts:
            d.pop(self.id, None)
        if self._remover is not None:
            remover, self._remover = self._remover, None
            remover()

    def __enter__(self) -> RemovableHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()

    def __repr__(self) -> str:
        return f"<RemovableHandle id={self.id}>"


def _var_hook_handle(var: Any, hook_id: int) -> RemovableHandle:
    """The handle ``Var.register_hook`` returns (the compiled Var calls this)."""
    return RemovableHandle(remover=lambda: var._remove_hook(hook_id), id=hook_id)
