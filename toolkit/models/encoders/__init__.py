"""Registered encoders: ``ENCODERS`` imports every module here on its first lookup."""

from toolkit.models.encoders.base import ENCODERS

__all__ = ["ENCODERS"]
