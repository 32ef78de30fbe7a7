"""Registered transcribers: ``TRANSCRIBERS`` imports every module here on its first lookup."""

from toolkit.models.transcribers.base import TRANSCRIBERS

__all__ = ["TRANSCRIBERS"]
