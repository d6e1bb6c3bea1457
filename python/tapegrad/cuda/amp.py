"""``torch.cuda.amp``, the old spellings of mixed precision on a GPU: as in PyTorch on a machine
without one, ``GradScaler()`` and ``autocast()`` warn that CUDA is not available and disable
themselves (the scaler passes everything through; the block changes nothing), so an AMP
training loop written for a GPU runs unchanged in float32 on the CPU. ``tapegrad.amp`` has
mixed precision on the CPU (``tapegrad.autocast(dtype=tapegrad.bfloat16)``).
"""

from __future__ import annotations

from typing import Any

from .. import amp as _amp


class GradScaler(_amp.GradScaler):
    """``torch.cuda.amp.GradScaler``: ``tapegrad.amp.GradScaler("cuda", ...)``, disabled (with a
    warning) because there is no CUDA device."""

    def __init__(self, init_scale: float = 2.0**16, growth_factor: float = 2.0, backoff_factor: float = 0.5,
                 growth_interval: int = 2000, enabled: bool = True) -> None:
        super().__init__("cuda", init_scale, growth_factor, backoff_factor, growth_interval, enabled)


class autocast(_amp.autocast):  # noqa: N801 (PyTorch's name)
    """``torch.cuda.amp.autocast``: ``tapegrad.autocast("cuda", ...)``, disabled (with a warning)
    because there is no CUDA device."""

    def __init__(self, enabled: bool = True, dtype: Any = None, cache_enabled: bool = True) -> None:
        super().__init__("cuda", dtype, enabled, cache_enabled)


__all__ = ["GradScaler", "autocast"]
