"""Text metrics shared by scoring and training's validation: WER/CER, BLEU/chrF, word matches, choices.

Each function states its rule in its docstring; the rules are the ones the benchmarks and the
DeSTA2.5-Audio reference use, so numbers stay comparable with published ones:

* WER/CER: jiwer over the whole set (total edits / total reference words), after the Whisper text
  normaliser (``EnglishTextNormalizer`` for English, ``BasicTextNormalizer`` otherwise), as in
  Whisper's and most LALM papers' ASR tables.
* consecutive-words accuracy: DeSTA2.5-Audio's validation rule (``desta/utils/metrics.py``).
* label accuracy: the normalised label appears in the normalised prediction as whole words.
* BLEU/chrF: sacrebleu corpus scores.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache

NORMALIZERS = ("english", "basic", "none")


@lru_cache(maxsize=None)
def _normalizer(kind: str):
    if kind == "english":
        from whisper_normalizer.english import EnglishTextNormalizer

        return EnglishTextNormalizer()
    if kind == "basic":
        from whisper_normalizer.basic import BasicTextNormalizer

        return BasicTextNormalizer()
    if kind == "none":
        return lambda s: s
    raise ValueError(f"unknown text normalizer '{kind}'; choose one of {', '.join(NORMALIZERS)} (or 'auto')")


def pick_normalizer(normalizer: str, language: str | None) -> str:
    """Resolve ``auto``: the English normaliser for English (or unknown language), Basic otherwise."""
    if normalizer != "auto":
        return normalizer
    if language is None or str(language).lower() in {"en", "eng", "english"}:
        return "english"
    return "basic"


def normalize(text: str | None, kind: str = "english") -> str:
    """Normalise ``text`` with the Whisper normaliser ``kind`` (english, basic or none).

    Whitespace is collapsed afterwards, so ``"a  b "`` and ``"a b"`` compare equal.
    """
    return " ".join(_normalizer(kind)(text or "").split())


def error_rate(
    references: Sequence[str], predictions: Sequence[str], unit: str = "word", normalizer: str = "english"
) -> dict[str, float | int]:
    """Corpus-level WER (``unit="word"``) or CER (``unit="char"``) in percent.

    Rule: normalise both sides, drop pairs whose normalised reference is empty (counted in
    ``empty_references``: an error rate over no reference words is undefined), then total
    substitutions + deletions + insertions over total reference units (jiwer).
    Returns ``{"value", "count", "substitutions", "deletions", "insertions", "reference_units",
    "empty_references"}``.
    """
    import jiwer

    if len(references) != len(predictions):
        raise ValueError(f"{len(references)} references but {len(predictions)} predictions")
    refs, hyps, empty = [], [], 0
    for ref, hyp in zip(references, predictions):
        ref_n, hyp_n = normalize(ref, normalizer), normalize(hyp, normalizer)
        if not ref_n:
            empty += 1
            continue
        refs.append(ref_n)
        hyps.append(hyp_n)
    if not refs:
        return {"value": float("nan"), "count": 0, "substitutions": 0, "deletions": 0, "insertions": 0,
                "reference_units": 0, "empty_references": empty}
    if unit == "word":
        out = jiwer.process_words(refs, hyps)
        rate = out.wer
    elif unit == "char":
        out = jiwer.process_characters(refs, hyps)
        rate = out.cer
    else:
        raise ValueError(f"unit must be 'word' or 'char', got {unit!r}")
    n_ref = out.substitutions + out.deletions + out.hits
    return {
        "value": 100.0 * rate,
        "count": len(refs),
        "substitutions": out.substitutions,
        "deletions": out.deletions,
        "insertions": out.insertions,
        "reference_units": n_ref,
        "empty_references": empty,
    }


def bleu(references: Sequence[str], predictions: Sequence[str], tokenize: str = "13a") -> float:
    """Corpus BLEU (sacrebleu, one reference per sentence, default ``13a`` tokenizer), 0-100."""
    import sacrebleu

    return float(sacrebleu.corpus_bleu(list(predictions), [list(references)], tokenize=tokenize).score)


def chrf(references: Sequence[str], predictions: Sequence[str]) -> float:
    """Corpus chrF (sacrebleu defaults: character n-grams up to 6, beta 2), 0-100."""
    import sacrebleu

    return float(sacrebleu.corpus_chrf(list(predictions), [list(references)]).score)


def consecutive_words_match(prediction: str, label: str) -> bool:
    """DeSTA2.5-Audio's validation rule (``ConsecutiveWordsAccuracyMetric``).

    Rule: apply Whisper's ``BasicTextNormalizer`` to both, lower-case, split on whitespace; the
    answer is correct when the label's words occur as one consecutive run in the prediction's
    words.  As in the reference, an empty label matches anything (a window of zero words is
    always found); that quirk is kept so validation numbers match.
    """
    pred_words = normalize(prediction, "basic").lower().split()
    label_words = normalize(label, "basic").lower().split()
    n = len(label_words)
    return any(pred_words[i : i + n] == label_words for i in range(len(pred_words) - n + 1))


def contains_words(prediction: str, label: str, normalizer: str = "english") -> bool:
    """Label accuracy rule: the normalised label occurs in the normalised prediction as whole words.

    Both are normalised (Whisper English normaliser by default: ``"Two"`` and ``"2"`` agree,
    punctuation and case are ignored), then the label's words must appear as one consecutive run
    of whole words: label ``"cat"`` matches ``"it is a cat."`` but not ``"a category"``.  An
    empty normalised label never matches (unlike the DeSTA rule above).
    """
    label_words = normalize(label, normalizer).split()
    if not label_words:
        return False
    pred_words = normalize(prediction, normalizer).split()
    n = len(label_words)
    return any(pred_words[i : i + n] == label_words for i in range(len(pred_words) - n + 1))


LETTERS = "ABCDEFGHIJ"

# Answer statements, most explicit first.  Keywords are case-insensitive; a bare letter must be
# upper case (so the article "a" is never option A) unless it is bracketed or quoted.
_BRACKETED = r"[\(\[\"']([A-Ja-j])[\)\]\"']"
_LETTER_PATTERNS = [re.compile(p, re.MULTILINE) for p in (
    r"(?i:\b(?:answer|choice)\b)(?:\s+(?i:is|would be|should be|will be))?\s*[:\-]?\s*\**\s*(?:" + _BRACKETED + r"|([A-J])(?![\w']))",
    r"(?i:\boption\s+)\**(?:" + _BRACKETED + r"|([A-Ja-j])(?![\w']))",
    r"(?i:\b(?:select|choose|pick)\s+)(?:" + _BRACKETED + r"|([A-J])(?![\w']))",
    r"^\s*\**\s*[\(\[]([A-Ja-j])[\)\]]",
    r"^\s*\**\s*([A-J])\s*(?:[\.\):,]|$)",
    r"[\(\[]([A-Ja-j])[\)\]]",
)]


def extract_choice(prediction: str, choices: Sequence[str] | None = None, num_choices: int | None = None) -> str | None:
    """The option letter a free-form answer picks, or ``None`` when it cannot be told.

    Rule, in order:
      1. a stated letter: ``"The answer is (B)"``, ``"Option C"``, ``"B."``/``"(B)"`` at the start,
         ``"I would choose D"``, any ``"(C)"``; letters beyond the number of options are ignored;
         when step 1 finds different letters in different places, the first match of the most
         explicit pattern wins (patterns are tried from most to least explicit).
      2. otherwise, option text: the one option whose normalised words occur as whole words in
         the normalised answer (longest such option if one contains another, e.g. "one
         hundred" over "one"); two unrelated options found -> ``None`` (ambiguous).
    A bare single letter must be upper case in step 1 (bracketed or quoted ones may be lower
    case), so the article "a" in running text is never read as option A.
    """
    if not prediction:
        return None
    n = num_choices or (len(choices) if choices else 4)
    valid = LETTERS[:n]
    text = prediction.strip()
    for pattern in _LETTER_PATTERNS:
        for m in pattern.finditer(text):
            letter = next(g for g in m.groups() if g).upper()
            if letter in valid:
                return letter
    if choices:
        hits = [i for i, c in enumerate(choices) if contains_words(prediction, c, "basic")]
        # Drop an option whose words are contained in another hit ("one" inside "one hundred").
        hits = [i for i in hits if not any(j != i and contains_words(choices[j], choices[i], "basic") for j in hits)]
        if len(hits) == 1:
            return LETTERS[hits[0]]
    return None


def reference_letter(reference: str, choices: Sequence[str] | None) -> str | None:
    """The option letter of a reference given as a letter (``"B"``, ``"(b)"``) or as option text."""
    ref = (reference or "").strip()
    if choices:  # option text first: with options like notes ("C", "D", "E") "D" is an option, not letter D
        norm = normalize(ref, "basic")
        for i, c in enumerate(choices):
            if normalize(c, "basic") == norm:
                return LETTERS[i]
    m = re.fullmatch(r"[\(\[]?([A-Ja-j])[\)\]\.]?", ref)
    if m and (not choices or len(ref) <= 3):
        return m.group(1).upper()
    m = re.match(r"^\s*\(([A-Ja-j])\)", ref)  # SAKURA style "(a) dog"
    return m.group(1).upper() if m else None
