"""``torch.backends.cudnn``: no cuDNN in tapegrad. ``deterministic``, ``benchmark`` and
``enabled`` are attributes programs may set; they change nothing (the CPU kernels are
deterministic)."""

from __future__ import annotations

enabled: bool = True
deterministic: bool = False
benchmark: bool = False
allow_tf32: bool = True


def is_available() -> bool:
    """Whether cuDNN can be used: never, in tapegrad."""
    return False


def version() -> None:
    """cuDNN's version: None (not there), as PyTorch answers without it."""
    return None


__all__ = ["enabled", "deterministic", "benchmark", "allow_tf32", "is_available", "version"]
