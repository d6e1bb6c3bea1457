"""``torch.accelerator`` as it answers on a machine without one (tapegrad computes on the CPU):
the opening of PyTorch's current tutorials,

    device = torch.accelerator.current_accelerator().type if torch.accelerator.is_available() else "cpu"

picks ``"cpu"``.
"""

from __future__ import annotations

from typing import Any, Optional


def is_available() -> bool:
    """Whether an accelerator (a GPU) can be used: never, in tapegrad."""
    return False


def device_count() -> int:
    """How many accelerators there are: 0."""
    return 0


def current_accelerator(check_available: bool = False) -> Optional[Any]:
    """The accelerator in use: None (there is none), as PyTorch answers without one."""
    return None


__all__ = ["is_available", "device_count", "current_accelerator"]
