"""Judges: LLMs that grade free-form answers (``metric: judge`` rows).

``JUDGES`` (in :mod:`.base`) holds ``hf`` (a local transformers model), ``vllm`` and ``openai`` (an
OpenAI-compatible HTTP endpoint); build one with :func:`build_judge` from the ``score.judge:`` node.
The prompts the benchmarks publish are in ``toolkit/score/data/judge_prompts.yaml`` (:mod:`.prompts`),
each with the :class:`JudgeProtocol` its official script asks with (``Judge.sample`` / ``Judge.ask``).
"""

from toolkit.score.judges.base import JUDGES, Judge, JudgeError, JudgeProtocol, build_judge, protocol_note

__all__ = ["JUDGES", "Judge", "JudgeError", "JudgeProtocol", "build_judge", "protocol_note"]
