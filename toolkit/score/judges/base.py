"""The judge interface and registry.

A judge turns chat conversations (``[{"role": "system"|"user", "content": str}, ...]``) into
answers.  Benchmarks ask it the way their official judge call does, described by a
:class:`JudgeProtocol` (in ``data/judge_prompts.yaml``): how many answers per item, the request's
sampling fields and how several answers are combined.  :meth:`Judge.sample` returns
``protocol.samples`` answers per conversation (VoiceBench: 3 at temperature 0.5, top_p 0.95, mean or
majority); :meth:`Judge.ask` is its one-answer case (SAKURA: temperature 0 and top_p 0.9;
Speech-IFEval: no sampling fields at all, the API's defaults).  The ``openai`` judge sends exactly the
protocol's fields; the local judges (``hf``, ``vllm``) sample, seeded, where the protocol samples
(temperature > 0) and decode greedily otherwise; :func:`protocol_note` says which happened.
:meth:`Judge.generate` answers greedily with the judge's own settings, for prompts without a protocol.
``name`` identifies the judge in every score row it produced (``hf:<dir>``, ``openai:<model>@<url>``),
so a judged number never travels without its judge.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from toolkit.registry import Registry

Conversation = list[dict[str, str]]


class JudgeError(RuntimeError):
    """A judge that cannot be built or that failed to answer."""


AGGREGATES = ("mean", "majority")


@dataclass(frozen=True)
class JudgeProtocol:
    """How a benchmark's official script asks its judge.

    Args:
        samples: answers per judged item (``n`` of the official request).
        temperature: the request's sampling temperature (``None``: not sent, the API's default).
        top_p: the request's nucleus sampling parameter (``None``: not sent).
        max_tokens: the request's answer length limit (``None``: not sent).
        aggregate: how several answers become one score: ``mean`` (of ratings, VoiceBench ``open.py``) or
            ``majority`` (vote over yes/no answers, VoiceBench ``qa.py``); ``None``: one answer, parsed by the
            prompt's parser.  Needed when ``samples`` > 1.
        seed: seeds the sampling of local judges (hf, vllm); API judges sample on their side.
    """

    samples: int = 1
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    aggregate: str | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if self.samples < 1:
            raise JudgeError(f"judge protocol: samples must be >= 1, got {self}")
        if self.samples > 1 and not self.sampled:
            raise JudgeError(f"judge protocol: {self.samples} samples need a temperature > 0 (greedy answers would "
                             f"all be the same), got {self}")
        if self.aggregate is not None and self.aggregate not in AGGREGATES:
            raise JudgeError(f"judge protocol: aggregate must be one of {', '.join(AGGREGATES)}, "
                             f"got {self.aggregate!r}")
        if self.samples > 1 and self.aggregate is None:
            raise JudgeError(f"judge protocol: {self.samples} samples need an aggregate ({', '.join(AGGREGATES)})")

    @property
    def sampled(self) -> bool:
        """True when the official request samples (temperature > 0); local judges then sample too."""
        return self.temperature is not None and self.temperature > 0

    @property
    def request(self) -> dict[str, Any]:
        """The sampling fields of the official request, exactly (``{}``: none)."""
        fields = {"temperature": self.temperature, "top_p": self.top_p, "max_tokens": self.max_tokens}
        return {k: v for k, v in fields.items() if v is not None}

    def describe(self) -> str:
        """One line for result rows and RESULTS.md, e.g. ``3 samples, temperature 0.5, top_p 0.95, max_tokens
        1024, majority`` or ``1 answer, no sampling fields (API defaults)``."""
        parts = [f"{self.samples} samples" if self.samples > 1 else "1 answer"]
        parts += [f"{k} {v}" for k, v in self.request.items()] or ["no sampling fields (API defaults)"]
        return ", ".join(parts + ([self.aggregate] if self.aggregate else []))


class Judge(abc.ABC):
    """Base class of the judges."""

    @property
    @abc.abstractmethod
    def name(self) -> str:
        """Identifies the judge in every score row it produced."""

    #: True when the judge sends a protocol's request fields as they are (an API judge).
    applies_request: bool = False

    @abc.abstractmethod
    def generate(self, conversations: Sequence[Conversation]) -> list[str]:
        """One greedy answer per conversation, in order, with the judge's own settings."""

    def sample(self, conversations: Sequence[Conversation], protocol: JudgeProtocol) -> list[list[str]]:
        """``protocol.samples`` answers per conversation, asked as ``protocol`` says.

        Here, for a judge that only decodes greedily: a protocol that does not sample gets the greedy
        answer (:meth:`generate`); one that samples fails with the fix.  The hf, vllm and openai judges
        sample.
        """
        if protocol.sampled:
            raise JudgeError(f"judge {self.name} cannot sample answers, and this benchmark's judge protocol "
                             f"({protocol.describe()}) samples; use the hf, vllm or openai judge")
        return [[answer] for answer in self.generate(conversations)]

    def ask(self, conversations: Sequence[Conversation], protocol: JudgeProtocol) -> list[str]:
        """One answer per conversation: :meth:`sample` for a one-answer protocol."""
        if protocol.samples != 1:
            raise JudgeError(f"Judge.ask takes a one-answer protocol; this one is {protocol.describe()} "
                             "(use Judge.sample)")
        return [answers[0] for answers in self.sample(conversations, protocol)]


class LocalJudge(Judge):
    """A judge that runs a model here through a chat engine (``hf``, ``vllm``): greedy with its own settings,
    sampling (seeded) only where a protocol samples, with the protocol's temperature, top_p and max_tokens
    (unset top_p: 1; unset max_tokens: the judge's own answer limit)."""

    engine: Any  # a toolkit.models.chat_engines.ChatEngine

    def prepare(self, conversation: Conversation) -> Conversation:
        """The conversation as this judge's model is asked it (unchanged here)."""
        return conversation

    def generate(self, conversations: Sequence[Conversation]) -> list[str]:
        return [g.text for g in self.engine.generate([self.prepare(c) for c in conversations])]

    def sample(self, conversations: Sequence[Conversation], protocol: JudgeProtocol) -> list[list[str]]:
        if not protocol.sampled:
            return super().sample(conversations, protocol)
        from dataclasses import replace

        own = self.engine.settings
        settings = replace(own, do_sample=True, temperature=protocol.temperature,
                           top_p=1.0 if protocol.top_p is None else protocol.top_p,
                           max_new_tokens=protocol.max_tokens or own.max_new_tokens, seed=protocol.seed)
        answers = self.engine.sample([self.prepare(c) for c in conversations], settings, protocol.samples)
        return [[g.text for g in group] for group in answers]


def protocol_note(judge: Judge, protocol: JudgeProtocol | None) -> str:
    """One line for a results table: how the judge was actually asked, beside the official protocol."""
    if protocol is None:
        return f"{judge.name}: 1 greedy answer with the judge's own settings (the prompt names no protocol)"
    if judge.applies_request:
        return f"{judge.name} sent the official request: {protocol.describe()}"
    if protocol.sampled:
        return f"{judge.name} sampled locally as the official request: {protocol.describe()}, seed {protocol.seed}"
    return f"{judge.name} decodes greedily (a local judge); the official request is {protocol.describe()}"


JUDGES = Registry("judge", base=Judge, variable="JUDGES", components="toolkit.score.judges")


def build_judge(node: Mapping[str, Any] | None) -> Judge | None:
    """Build the judge of a ``score.judge:`` node (``None`` or ``{name: null}``: no judge)."""
    if not node or node.get("name") in (None, "", "none"):
        return None
    return JUDGES.build(node, where="score.judge")
