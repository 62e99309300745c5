"""Utilities with PyTorch's ``torch.utils`` layout: ``tj.utils.data`` (datasets, samplers,
``DataLoader``)."""

from . import data

__all__ = ["data"]
