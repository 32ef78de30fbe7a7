"""The ``label_template`` engine (self-generation only): targets built from the clip's labels by a fixed template.

This is the conventional way speech instruction data is built, and the construction the DeSTA2.5-Audio
paper compares self-generation against: whatever the instruction asks, the target states the clip's
labels ("The speaker is female. They speak with a British accent."). No LLM writes these answers, so
they carry the labels exactly but none of the backbone's own style or instruction following.
``egs/mini/ablation_targets`` trains on them beside the self-generated targets.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from toolkit.models.generation import Generation
from toolkit.models.chat_engines.base import CHAT_ENGINES, ChatEngine

# metadata key -> sentence; keys a clip lacks are left out, in this order.
SENTENCES: tuple[tuple[str, str], ...] = (
    ("gender", "The speaker is {value_lower}."),
    ("emotion", "The speaker sounds {value_lower}."),
    ("accent", "They speak with a {value} accent."),
    ("language", "The language is {value}."),
    ("pitch", "The pitch is {value_lower}."),
    ("speed", "The speaking speed is {value_lower}."),
    ("sound", "This is the sound of a {value}."),
    ("genre", "This is {value} music."),
    ("instrument", "This is a {value} playing."),
    ("note", "The note is {value}."),
    ("chord", "The chord is {value}."),
    ("caption", "{value}"),
)


def label_target(metadata: dict[str, Any], text: str = "") -> str:
    """The templated answer for one clip: its transcript, then one sentence per label."""
    parts = [f'The speech says: "{text.strip()}"'] if text and text.strip() else []
    for key, sentence in SENTENCES:
        value = metadata.get(key)
        if value in (None, ""):
            continue
        value = str(value).replace("_", " ")
        parts.append(sentence.format(value=value, value_lower=value.lower()))
    return " ".join(parts) if parts else "This is an audio clip."


@CHAT_ENGINES.register("label_template")
class LabelTemplateBackend(ChatEngine):
    """Answers every instruction with :func:`label_target` of its clip (the prompt is not read)."""

    def generate(self, conversations: Sequence[Sequence[dict[str, Any]]], settings: Any = None) -> list[Generation]:
        raise TypeError("the label_template backend answers from the clips' labels: call answer(items, conversations)")

    def answer(self, items: Sequence[Any], conversations: Sequence[Sequence[dict[str, Any]]]) -> list[Generation]:
        answers = [label_target(item.metadata, item.text) for item in items]
        return [Generation(text=a, num_tokens=len(a.split()), finish_reason="stop") for a in answers]

    def description(self) -> dict[str, Any]:
        return {"backend": "label_template"}
