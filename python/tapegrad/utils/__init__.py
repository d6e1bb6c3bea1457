"""Utilities in ``torch.utils``'s layout: ``tapegrad.utils.data`` (datasets, samplers, ``DataLoader``)."""

from . import data

__all__ = ["data"]
