"""Chat engines: who answers text-only chat conversations with an LLM (``CHAT_ENGINES``: hf, vllm, openai).

One engine per way of running an LLM, each returning one :class:`~toolkit.models.generation.Generation` per
answer: self-generation uses one as its ``selfgen.backend`` node, and the judges (toolkit/score/judges) ask
through one. ``CHAT_ENGINES`` imports every module here on its first lookup.
"""

from toolkit.models.chat_engines.base import CHAT_ENGINES, ChatEngine

__all__ = ["CHAT_ENGINES", "ChatEngine"]
