"""``torch.backends.cuda``: no CUDA in tapegrad. ``matmul.allow_tf32`` (and
``matmul.allow_fp16_reduced_precision_reduction``) may be set; they change nothing."""

from __future__ import annotations

from types import SimpleNamespace

matmul = SimpleNamespace(allow_tf32=False, allow_fp16_reduced_precision_reduction=True,
                         allow_bf16_reduced_precision_reduction=True)


def is_built() -> bool:
    """Whether this build supports CUDA: no."""
    return False


__all__ = ["matmul", "is_built"]
