"""Registered self-generation backends: ``SELFGEN_BACKENDS`` imports every module here on its first lookup."""

from toolkit.selfgen.backends.base import SELFGEN_BACKENDS

__all__ = ["SELFGEN_BACKENDS"]
