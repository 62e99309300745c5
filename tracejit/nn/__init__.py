"""`tj.nn`: neural-network building blocks. So far the stateless `functional` ops; Modules,
layers and losses arrive with the [tensor] issue."""

from . import functional

__all__ = ["functional"]
