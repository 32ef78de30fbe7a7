"""Registered adapters: ``ADAPTERS`` imports every module here on its first lookup."""

from toolkit.models.adapters.base import ADAPTERS

__all__ = ["ADAPTERS"]
