"""Conversations -> token ids with audio slots, using the backbone's own chat template.

A user turn's text carries one ``<|AUDIO|>`` per audio (``"<|AUDIO|>\\nWhat is said?"``). The
rendered prompt becomes::

    ...user text <start_audio>[audio vectors][transcript tokens]<end_audio> more user text...

The audio vectors are not known here (they come from the encoder and adapter), so each audio is a
*slot*: an entry of ``audio_slots`` with its position in ``input_ids``; the composite model later
expands a slot into ``n`` copies of one existing placeholder token and overwrites their embeddings
with the audio vectors. The vocabulary is never resized and the tags are plain text.

This module needs only a tokenizer, so it runs inside data-loader workers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

AUDIO_TOKEN = "<|AUDIO|>"
IGNORE_INDEX = -100


def placeholder_token_id(tokenizer: Any, placeholder_token: str | None) -> int:
    """The id that fills audio positions: ``placeholder_token``'s (an existing token), else the pad token's."""
    if placeholder_token is None:
        return int(tokenizer.pad_token_id)
    ids = tokenizer.convert_tokens_to_ids([placeholder_token])
    if not ids or ids[0] is None or ids[0] == tokenizer.unk_token_id:
        from toolkit.config import ConfigError

        raise ConfigError(f"lalm.placeholder_token: '{placeholder_token}' is not a single token of this tokenizer; "
                          f"pick an existing special token")
    return int(ids[0])


class ConversationError(ValueError):
    """A conversation that does not fit the format (audio count, roles, empty text)."""


@dataclass
class TokenizedConversation:
    """Token ids of one conversation; ``audio_slots[k]`` is where audio ``k`` is inserted.

    ``labels`` has one entry per ``input_ids`` entry: the target id on response and end-of-turn
    positions, ``IGNORE_INDEX`` elsewhere (audio slots are never targets).
    """

    input_ids: list[int]
    labels: list[int]
    audio_slots: list[int] = field(default_factory=list)
    truncated: bool = False

    def spliced(self, audio_lengths: Sequence[int], placeholder_id: int) -> tuple[list[int], list[int], list[int]]:
        """``input_ids`` and ``labels`` with ``audio_lengths[k]`` copies of ``placeholder_id`` at slot ``k``.

        Returns the two lists and where each audio's placeholders start; the composite model overwrites
        their embeddings with the audio vectors (the vLLM plugin hands vLLM the same ids and offsets).
        """
        if len(audio_lengths) != len(self.audio_slots):
            raise ValueError(f"{len(audio_lengths)} audio lengths for {len(self.audio_slots)} audio slots")
        ids: list[int] = []
        labels: list[int] = []
        offsets: list[int] = []
        prev = 0
        for slot, n in zip(self.audio_slots, audio_lengths):
            ids += self.input_ids[prev:slot]
            labels += self.labels[prev:slot]
            offsets.append(len(ids))
            ids += [placeholder_id] * int(n)
            labels += [IGNORE_INDEX] * int(n)
            prev = slot
        return ids + self.input_ids[prev:], labels + self.labels[prev:], offsets


@dataclass
class ChatFormatter:
    """Renders conversations with the tokenizer's chat template and splices audio slots.

    Args:
        tokenizer: the backbone's tokenizer (chat template set).
        eos_token_id: end-of-turn id appended to every supervised response.
        audio_start: text tag before each audio (plain text, not a new token).
        audio_end: text tag after the transcript.
        transcript_max_tokens: transcripts are cut to this many LLM tokens (reference: 100 in
            training); None keeps them whole.
        use_transcript: False drops transcripts entirely (an ablation knob).
        system_prompt: prepended as a system turn when the conversation has none.
    """

    tokenizer: Any
    eos_token_id: int
    audio_start: str = "<start_audio>"
    audio_end: str = "<end_audio>"
    transcript_max_tokens: int | None = 100
    use_transcript: bool = True
    system_prompt: str | None = None

    def token_ids(self, text: str) -> list[int]:
        """Ids of a piece of text, no special tokens added (the chat template wrote them)."""
        return self.tokenizer(text, add_special_tokens=False)["input_ids"] if text else []

    def transcript_ids(self, transcript: str | None) -> list[int]:
        if not self.use_transcript or not transcript or not transcript.strip():
            return []
        ids = self.token_ids(transcript.strip())
        if self.transcript_max_tokens is not None:
            ids = ids[: self.transcript_max_tokens]
        return ids

    def render(self, messages: Sequence[dict[str, Any]], add_generation_prompt: bool = True) -> str:
        """The chat template's text for ``messages`` (the system prompt first when they have no system turn)."""
        plain = [{"role": m["role"], "content": m["content"]} for m in messages]
        if self.system_prompt and (not plain or plain[0]["role"] != "system"):
            plain = [{"role": "system", "content": self.system_prompt}, *plain]
        return self.tokenizer.apply_chat_template(plain, tokenize=False, add_generation_prompt=add_generation_prompt)

    def render_prompt(self, messages: Sequence[dict[str, Any]]) -> str:
        """The generation prompt for ``messages`` with each ``<|AUDIO|>`` left in place (what vLLM is sent).

        :meth:`encode_prompt` turns it (or its ids decoded back to text) into what :meth:`encode` gives.
        """
        self.count_audios(messages)
        return self.render(messages, add_generation_prompt=True)

    def count_audios(self, messages: Sequence[dict[str, Any]]) -> int:
        """Number of audios of a conversation, checking each turn's placeholders match its audios."""
        total = 0
        for i, m in enumerate(messages):
            if "role" not in m or "content" not in m:
                raise ConversationError(f"message {i} needs 'role' and 'content', got keys {sorted(m)}")
            n_tags = str(m["content"]).count(AUDIO_TOKEN)
            n_audios = len(m.get("audios") or [])
            if n_tags != n_audios:
                raise ConversationError(
                    f"message {i} ({m['role']}) has {n_tags} {AUDIO_TOKEN} placeholder(s) but {n_audios} audio(s); "
                    f"put one {AUDIO_TOKEN} in the text where each audio goes"
                )
            total += n_audios
        return total

    def tag_audio(self, text: str) -> str:
        """``text`` with each ``<|AUDIO|>`` wrapped in the audio tags (once: tags already there are kept)."""
        tagged = f"{self.audio_start}{AUDIO_TOKEN}{self.audio_end}"
        return text.replace(tagged, AUDIO_TOKEN).replace(AUDIO_TOKEN, tagged)

    def encode_prompt(self, prompt_text: str, transcripts: Sequence[str | None] = ()) -> TokenizedConversation:
        """Ids and audio slots of a rendered prompt whose ``<|AUDIO|>`` mark the audios (tagged or not).

        The text between audios is tokenized piece by piece (the tags wrap the placeholder so they
        tokenize with their neighbouring text), and each audio's transcript ids follow its slot:
        tokenizing the whole string at once could merge tokens across those boundaries.
        """
        pieces = self.tag_audio(prompt_text).split(AUDIO_TOKEN)
        n_audios = len(pieces) - 1
        if len(transcripts) not in (0, n_audios):
            raise ConversationError(f"{n_audios} audios but {len(transcripts)} transcripts")
        transcripts = list(transcripts) or [None] * n_audios
        input_ids: list[int] = []
        slots: list[int] = []
        for k, piece in enumerate(pieces):
            input_ids += self.token_ids(piece)
            if k < n_audios:
                slots.append(len(input_ids))
                input_ids += self.transcript_ids(transcripts[k])
        return TokenizedConversation(input_ids=input_ids, labels=[IGNORE_INDEX] * len(input_ids), audio_slots=slots)

    def encode(
        self,
        messages: Sequence[dict[str, Any]],
        transcripts: Sequence[str | None] = (),
        response: str | None = None,
        max_length: int | None = None,
        audio_lengths: Sequence[int] = (),
    ) -> TokenizedConversation:
        """Tokenize a conversation for training (``response`` given) or generation (None).

        ``transcripts[k]`` is spliced after audio ``k``. ``max_length`` (with the per-audio vector
        counts in ``audio_lengths``) cuts the response from the right; the sample is flagged.
        """
        n_audios = self.count_audios(messages)
        if len(transcripts) not in (0, n_audios):
            raise ConversationError(f"{n_audios} audios but {len(transcripts)} transcripts")
        transcripts = list(transcripts) or [None] * n_audios
        tag = f"{self.audio_start}{AUDIO_TOKEN}{self.audio_end}"
        tagged = [{**m, "content": str(m["content"]).replace(AUDIO_TOKEN, tag)} for m in messages]
        prompt = self.encode_prompt(self.render(tagged, add_generation_prompt=True), transcripts)
        input_ids, slots = prompt.input_ids, prompt.audio_slots
        labels = [IGNORE_INDEX] * len(input_ids)
        truncated = False
        if response is not None:
            if not response.strip():
                raise ConversationError("empty response: a training target needs text")
            target = self.token_ids(response) + [self.eos_token_id]
            if max_length is not None:
                room = max_length - len(input_ids) - sum(audio_lengths)
                if room < len(target):
                    truncated = True
                    target = target[: max(room, 0)]
            input_ids += target
            labels += target
        return TokenizedConversation(input_ids=input_ids, labels=labels, audio_slots=slots, truncated=truncated)


def build_formatter(cfg: Mapping[str, Any]) -> tuple[ChatFormatter, int]:
    """The export's ``ChatFormatter`` and placeholder id, with the tokenizer set up as ``HFCausalLM`` does.

    ``ChatFormatter``'s defaults are ``LALM``'s, so a setting the export's ``lalm:`` leaves out means the same here.
    """
    from toolkit.models.llms.hf_causal_lm import load_tokenizer

    llm, lalm = cfg["llm"], dict(cfg.get("lalm") or {})
    tokenizer = load_tokenizer(str(llm["model_path"]), llm.get("chat_template"))
    keys = ("audio_start", "audio_end", "transcript_max_tokens", "use_transcript", "system_prompt")
    settings = {k: lalm[k] for k in keys if k in lalm}
    formatter = ChatFormatter(tokenizer=tokenizer, eos_token_id=int(tokenizer.eos_token_id), **settings)
    return formatter, placeholder_token_id(tokenizer, lalm.get("placeholder_token"))
