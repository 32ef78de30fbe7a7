"""Registered LLM backbones: ``LLMS`` imports every module here on its first lookup."""

from toolkit.models.llms.base import LLMS

__all__ = ["LLMS"]
