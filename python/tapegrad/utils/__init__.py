"""Utilities in ``torch.utils``'s layout: ``tapegrad.utils.data`` (datasets, samplers,
``DataLoader``), ``tapegrad.utils.checkpoint`` (trading compute for memory) and
``tapegrad.utils.hooks`` (the handles hooks return)."""

from . import checkpoint, data, hooks

__all__ = ["checkpoint", "data", "hooks"]
