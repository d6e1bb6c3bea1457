"""``torch.backends.mps``: Apple's GPUs, which tapegrad does not use."""

from __future__ import annotations


def is_available() -> bool:
    """Whether an MPS device can be used: never, in tapegrad."""
    return False


def is_built() -> bool:
    """Whether this build supports MPS: no."""
    return False


__all__ = ["is_available", "is_built"]
