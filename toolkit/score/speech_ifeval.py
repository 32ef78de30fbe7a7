"""Speech-IFEval's judged steps (github.com/kehanlu/Speech-IFEval @ e2e9c14, ``script/llm_evaluation.py``),
shared by stage 7 (``metric: speech_ifeval_llm``) and ``score_predictions``.

Its IFEval rules (``instruction_following_eval/``) are in :mod:`toolkit.score.ifeval`.  Here, per row
``metric``:

* ``accuracy``: a judge compares the answer with the label (prompt ``speech_ifeval_accuracy``); the
  verdict is the first ``Result: yes|no`` (case-insensitive, exactly one blank after the colon, and
  ``Result: Yesterday`` reads as yes, as the official regular expression does); accuracy per ``dataset``.
* ``cot``: a judge says whether the answer shows reasoning (``speech_ifeval_cot``); one ``cot`` accuracy.
* ``wer``: a judge cuts the transcript out of the answer (``speech_ifeval_wer``); the cut and the label
  are normalised with ``<``/``>`` removed and Whisper's **Basic** normaliser (the
  ``whisper_normalizer`` package's ``BasicTextNormalizer``, not the English one: numbers, currency and
  spellings are not rewritten), then one corpus WER (jiwer) over all ``wer`` rows; per row its own WER.

The official call sends no temperature, top_p or max_tokens (``request: {}``).  A reply with no
``Result: yes|no`` makes the official script stop with an AttributeError; we count it as wrong and
report it as ``unparsed``.  The script cuts the instruction at its first newline only for input files
named ``close`` or ``close.1`` (:func:`instruction_for_judge`).  It prints ``WER: <x>`` and
``<dataset> ACC: <x>`` as fractions; the same names are used in the summary.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from toolkit.score.judges.base import JudgeProtocol

JUDGE_MODEL = "gpt-4o-2024-11-20"
METRICS = ("accuracy", "wer", "cot")
PROMPTS = {"accuracy": "speech_ifeval_accuracy", "wer": "speech_ifeval_wer", "cot": "speech_ifeval_cot"}
_RESULT_RE = re.compile(r"(?i)(?<=result:\s)(yes|no)")


class SpeechIFEvalError(ValueError):
    """A row the judged steps cannot score (unknown metric, missing label)."""


def extract_result(text: str) -> str | None:
    """The first ``yes``/``no`` right after ``result:`` and one blank, as matched (``YES``, ``No`` ...)."""
    m = _RESULT_RE.search(text)
    return m.group(0) if m else None


def normalize_text(text: str) -> str:
    """``<`` and ``>`` removed, then Whisper's Basic normaliser, then stripped (the official ``normalize_text``)."""
    from whisper_normalizer.basic import BasicTextNormalizer

    return BasicTextNormalizer()(text.replace("<", "").replace(">", "")).strip()


def instruction_for_judge(instruction: str, file_stem: str | None = None) -> str:
    """The question the judge sees: the instruction, cut at its first newline for files named ``close``/``close.1``."""
    return instruction.split("\n")[0] if file_stem in ("close", "close.1") else instruction


def judge_messages(metric: str, instruction: str, label: str | None, response: str) -> list[dict[str, str]]:
    """The official conversation for one row."""
    from toolkit.score.judges.prompts import get_prompt

    if metric not in PROMPTS:
        raise SpeechIFEvalError(f"metric {metric!r} is not judged; Speech-IFEval judges {', '.join(METRICS)}")
    if metric == "accuracy" and not label:
        raise SpeechIFEvalError("an 'accuracy' row needs a non-empty 'label' (the official script asserts it)")
    return get_prompt(PROMPTS[metric]).messages(instruction, str(label or ""), response)


def judge_protocol(metric: str) -> JudgeProtocol:
    """How the official call asks for ``metric``: one answer, no sampling fields sent."""
    from toolkit.score.judges.prompts import get_prompt

    protocol = get_prompt(PROMPTS[metric]).protocol
    assert protocol is not None, f"judge_prompts.yaml: '{PROMPTS[metric]}' lost its protocol"
    return protocol


def row_wer(reference: str, hypothesis: str) -> float:
    """WER of one row after :func:`normalize_text` (jiwer; an empty normalised label is an error, as in jiwer)."""
    return corpus_wer([reference], [hypothesis])


def corpus_wer(references: Sequence[str], hypotheses: Sequence[str]) -> float:
    """One WER over all rows after :func:`normalize_text`, as the official ``wer(truth=refs, hypothesis=hyps)``."""
    import jiwer

    refs = [normalize_text(r) for r in references]
    if not all(refs):
        bad = next(i for i, r in enumerate(refs) if not r)
        raise SpeechIFEvalError(f"label {references[bad]!r} is empty after normalisation; jiwer (and the official "
                                "script) cannot score it. Fix the label")
    return float(jiwer.wer(reference=refs, hypothesis=[normalize_text(h) for h in hypotheses]))


def verdict(metric: str, eval_response: str, label: str | None) -> tuple[Any, float, str]:
    """``(extracted, score, reason)`` of one judged row from the judge's reply ``eval_response``."""
    if metric == "wer":
        hyp = normalize_text(eval_response)
        value = row_wer(str(label or ""), eval_response)
        return hyp, value, f"WER {value:.4f} of the judge's transcript cut against the label (Basic normaliser)"
    found = extract_result(eval_response)
    if found is None:
        return None, 0.0, "the judge's reply has no 'Result: YES/NO' (the official script stops here); counted wrong"
    ok = found.lower() == "yes"
    what = "reasoning shown" if metric == "cot" else "matches the label"
    return found, float(ok), f"judge: Result: {found} ({what if ok else 'no: ' + what})"


def report(rows: Sequence[dict[str, Any]]) -> tuple[dict[str, Any], list[str]]:
    """Summary and printed lines of judged rows (``metric``, ``dataset``, ``label``, ``eval_response``).

    Accuracy groups are per ``dataset`` for ``accuracy`` rows and one ``cot`` group, in first-seen
    order; ``WER`` is the corpus WER over the ``wer`` rows.
    """
    groups: dict[str, list[float]] = {}
    refs, hyps = [], []
    unparsed = 0
    for row in rows:
        metric = row["metric"]
        if metric == "wer":
            refs.append(str(row.get("label") or ""))
            hyps.append(row["eval_response"])
            continue
        found = extract_result(row["eval_response"])
        unparsed += found is None
        group = "cot" if metric == "cot" else str(row.get("dataset"))
        groups.setdefault(group, []).append(float(found is not None and found.lower() == "yes"))
    summary: dict[str, Any] = {}
    lines = []
    if refs:
        summary["WER"] = corpus_wer(refs, hyps)
        lines.append(f"WER: {summary['WER']}")
    for group, scores in groups.items():
        summary[f"{group} ACC"] = sum(scores) / len(scores)
        lines.append(f"{group} ACC: {summary[f'{group} ACC']}")
    summary["count"] = len(rows)
    summary["unparsed"] = unparsed
    if unparsed:
        lines.append(f"{unparsed} judge replies had no 'Result: YES/NO' (the official script stops with an "
                     "AttributeError on them); counted as wrong")
    return summary, lines
