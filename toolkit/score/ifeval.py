"""IFEval-style rule checkers, as Speech-IFEval runs them (and as the original IFEval does).

Speech-IFEval (github.com/kehanlu/Speech-IFEval, ``instruction_following_eval/``) ships a modified
copy of Google's IFEval (Apache-2.0; arXiv 2311.07911).  This file re-implements the rules for
every instruction id that Speech-IFEval and VoiceBench's IFEval subset use; no PyPI package carries
Speech-IFEval's modified rules.  ``variant="speech_ifeval"`` (default) applies its changes:

* ``detectable_format:number_bullet_lists``: a literal ``\\n`` (backslash-n) in the response is
  read as a newline first, and lines starting with ``•`` or a digit count as bullets too (the
  original counts only ``* `` and ``-`` lines).
* ``length_constraints:number_paragraphs``: paragraphs are split at ``***`` *or at any newline*
  (the original splits at ``***`` only); empty first/last pieces are dropped, an empty piece in
  the middle fails the check.
* ``combination:repeat_prompt``: surrounding quotes are stripped from the response before the
  ``startswith`` test.
* ``change_case:english_capital`` / ``english_lowercase``: only ``str.isupper()``/``islower()``;
  the language check (langdetect) is disabled.

``variant="ifeval"`` uses the original rules for those four ids, as VoiceBench's copy of IFEval
(MatthewCYM/VoiceBench@5338154 ``src/evaluator/instruction_following_eval``) runs them: the two
change-case checks also need ``langdetect`` to call the answer English, and instruction arguments
that are empty or zero are dropped (VoiceBench passes only truthy ``kwargs``; Speech-IFEval passes
them as they are, where we drop only nulls).

Both variants: ``language:response_language`` is langdetect's language code of the whole answer;
``change_case:capital_word_frequency`` counts the all-capital tokens of NLTK's ``word_tokenize``
(Punkt sentences, then the Treebank word tokenizer).  langdetect answers at random on hard inputs
unless seeded; here its detector is seeded with 0 (the official code leaves it unseeded).  Where
langdetect finds no features (an answer of digits or punctuation only) the official code counts the
instruction as followed, and so does this one.

Scoring as in both official scripts: *strict* = the check on the response as is; *loose* = the
check passes on any of 8 variants (the response, with ``*`` removed, without its first line,
without its last line, without both, and those three with ``*`` removed).  An empty (blank)
response fails every instruction.

Sentence counting (``length_constraints:number_sentences``): NLTK's Punkt English model, as the
official code (:func:`punkt_tokenizer`; the pinned ``nltk-punkt`` asset, extracted from the
``llama-index-core`` wheel).  Without it the check fails loudly (:class:`PunktMissingError`); there is
no fallback splitter, since any other splitter gives different verdicts.
"""

from __future__ import annotations

import collections
import json
import re
from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache
from typing import Any

VARIANTS = ("speech_ifeval", "ifeval")


class IFEvalError(ValueError):
    """An instruction id or argument the checkers do not know."""


# --------------------------------------------------------------------------------------------
# Word and sentence counting
# --------------------------------------------------------------------------------------------


def count_words(text: str) -> int:
    """Number of ``\\w+`` runs (IFEval uses NLTK's ``RegexpTokenizer(r"\\w+")``, the same thing)."""
    return len(re.findall(r"\w+", text))


class PunktMissingError(IFEvalError):
    """NLTK or its Punkt sentence model is not installed; ``number_sentences`` cannot be checked."""


NLTK_DATA_DIR = "nltk_data"  # the nltk-punkt asset's directory under $DESTA_CACHE (toolkit/assets CATALOG)
PUNKT_FIX = ("Fix: `pip install nltk==3.9.1` and `python tools/prepare_assets.py --only nltk-punkt` (the pinned Punkt "
             "model from the llama-index-core wheel), or point $NLTK_DATA at a folder holding tokenizers/punkt_tab")


@lru_cache(maxsize=1)
def punkt_tokenizer():
    """NLTK's Punkt English sentence tokenizer, the one the official code counts sentences with.

    Speech-IFEval's ``instructions_util.count_sentences`` loads ``tokenizers/punkt/english.pickle``;
    NLTK >= 3.9 serves that name with the pickle-free ``PunktTokenizer("english")`` (punkt_tab data),
    which is what this returns.  The ``nltk-punkt`` asset's directory is searched first, then NLTK's own
    paths.  There is no fallback splitter: a missing model raises :class:`PunktMissingError`.
    """
    try:
        import nltk
        from nltk.tokenize import PunktTokenizer
    except ImportError as err:
        raise PunktMissingError(f"length_constraints:number_sentences needs NLTK's Punkt model, but nltk is not "
                                f"installed ({err}). {PUNKT_FIX}") from err
    from toolkit.config import cache_dir

    # the asset's directory, as model configs name theirs (${cache:}/...): a path, not the asset builders
    path = cache_dir() / NLTK_DATA_DIR
    if path.is_dir() and str(path) not in nltk.data.path:
        nltk.data.path.insert(0, str(path))
    try:
        return PunktTokenizer("english")
    except LookupError as err:
        raise PunktMissingError(f"length_constraints:number_sentences needs NLTK's Punkt model "
                                f"(tokenizers/punkt_tab/english), which was not found. {PUNKT_FIX}") from err


def sentence_splitter_name() -> str:
    """Which sentence splitter counts sentences (for results tables); raises when Punkt is missing."""
    import nltk

    punkt_tokenizer()
    return f"nltk {nltk.__version__} punkt_tab (english)"


def count_sentences(text: str) -> int:
    """Number of sentences by NLTK Punkt (English), as the official ``count_sentences``."""
    return len(punkt_tokenizer().tokenize(text))


# --------------------------------------------------------------------------------------------
# Checkers: check(response, **kwargs) -> bool.  Arguments are the instruction's ``kwargs``.
# --------------------------------------------------------------------------------------------

_RELATIONS = ("less than", "at least")


def _compare(actual: int, relation: str, threshold: int, what: str) -> bool:
    if relation == "less than":
        return actual < threshold
    if relation == "at least":
        return actual >= threshold
    raise IFEvalError(f"{what}: relation must be one of {_RELATIONS}, got {relation!r}")


def _bullets(value: str, *, num_bullets: int, variant: str) -> bool:
    if variant == "speech_ifeval":
        value = value.replace("\\n", "\n")
    n = len(re.findall(r"^\s*\*[^\*].*$", value, flags=re.MULTILINE))
    n += len(re.findall(r"^\s*-.*$", value, flags=re.MULTILINE))
    if variant == "speech_ifeval":
        n += len(re.findall(r"^\s*•.*$", value, flags=re.MULTILINE))
        n += len(re.findall(r"^\s*\d.*$", value, flags=re.MULTILINE))
    return n == num_bullets


def _paragraphs(value: str, *, num_paragraphs: int, variant: str) -> bool:
    if variant == "speech_ifeval":
        pieces = re.split(r"\s*\*\*\*\s*|\n{1,}", value.strip())
    else:
        pieces = re.split(r"\s?\*\*\*\s?", value)
    count = len(pieces)
    for i, piece in enumerate(pieces):
        if not piece.strip():
            if i == 0 or i == len(pieces) - 1:
                count -= 1
            else:
                return False
    return count == num_paragraphs


def _repeat_prompt(value: str, *, prompt_to_repeat: str, variant: str) -> bool:
    text = value.strip().lower()
    if variant == "speech_ifeval":
        text = text.strip("\"'")
    return text.startswith(prompt_to_repeat.strip().lower())


@lru_cache(maxsize=1)
def _langdetect_factory():
    """langdetect's detector factory with its language profiles, seeded (see the module docstring)."""
    try:
        from langdetect import detector_factory
    except ImportError as err:
        raise IFEvalError("IFEval's language checks need langdetect: pip install langdetect==1.0.9") from err
    factory = detector_factory.DetectorFactory()
    factory.load_profile(detector_factory.PROFILES_DIRECTORY)
    factory.seed = 0
    return factory


def detect_language(text: str) -> str | None:
    """langdetect's language code of ``text`` (``en``, ``fr`` ...), ``None`` when it finds no features."""
    from langdetect.lang_detect_exception import LangDetectException

    detector = _langdetect_factory().create()
    detector.append(text)
    try:
        return detector.detect()
    except LangDetectException:
        return None


def _is_language(value: str, language: str) -> bool:
    found = detect_language(value)
    return True if found is None else found == language  # undetectable counts as followed (official)


def _capital(value: str, *, variant: str) -> bool:
    if variant == "speech_ifeval":  # Speech-IFEval comments the language check out
        return value.isupper()
    return value.isupper() and _is_language(value, "en")


def _lowercase(value: str, *, variant: str) -> bool:
    if variant == "speech_ifeval":
        return value.islower()
    return value.islower() and _is_language(value, "en")


def _response_language(value: str, *, language: str, variant: str) -> bool:
    return _is_language(value, language)


def word_tokens(text: str) -> list[str]:
    """NLTK's ``word_tokenize(text)``: Punkt English sentences, each split by NLTK's Treebank word tokenizer."""
    tok = punkt_tokenizer()  # the same Punkt model number_sentences counts with; raises PunktMissingError
    from nltk.tokenize.destructive import NLTKWordTokenizer

    words = NLTKWordTokenizer()
    return [w for sentence in tok.tokenize(text) for w in words.tokenize(sentence)]


def _capital_word_frequency(value: str, *, capital_frequency: int, capital_relation: str, variant: str) -> bool:
    capitals = sum(1 for w in word_tokens(value) if w.isupper())
    return _compare(capitals, capital_relation, capital_frequency, "capital_word_frequency")


def _sentences(value: str, *, num_sentences: int, relation: str, variant: str) -> bool:
    return _compare(count_sentences(value), relation, num_sentences, "number_sentences")


def _words(value: str, *, num_words: int, relation: str, variant: str) -> bool:
    return _compare(count_words(value), relation, num_words, "number_words")


def _keywords(value: str, *, keywords: Sequence[str], variant: str) -> bool:
    # As the original: each keyword is used as a regular expression, case-insensitive, anywhere.
    return all(re.search(k, value, flags=re.IGNORECASE) for k in sorted(keywords))


def _forbidden(value: str, *, forbidden_words: Sequence[str], variant: str) -> bool:
    return not any(re.search(r"\b" + w + r"\b", value, flags=re.IGNORECASE) for w in sorted(set(forbidden_words)))


def _json(value: str, *, variant: str) -> bool:
    value = value.strip()
    for prefix in ("```json", "```Json", "```JSON", "```"):
        value = value.removeprefix(prefix)
    value = value.removesuffix("```").strip()
    try:
        json.loads(value)
    except ValueError:
        return False
    return True


def _title(value: str, *, variant: str) -> bool:
    return any(t.lstrip("<").rstrip(">").strip() for t in re.findall(r"<<[^\n]+>>", value))


def _end(value: str, *, end_phrase: str, variant: str) -> bool:
    return value.strip().strip('"').lower().endswith(end_phrase.strip().lower())


def _quotation(value: str, *, variant: str) -> bool:
    value = value.strip()
    return len(value) > 1 and value[0] == '"' and value[-1] == '"'


def _placeholders(value: str, *, num_placeholders: int, variant: str) -> bool:
    return len(re.findall(r"\[.*?\]", value)) >= num_placeholders


def _postscript(value: str, *, postscript_marker: str, variant: str) -> bool:
    value = value.lower()
    if postscript_marker == "P.P.S":
        pattern = r"\s*p\.\s?p\.\s?s.*$"
    elif postscript_marker == "P.S.":
        pattern = r"\s*p\.\s?s\..*$"
    else:
        pattern = r"\s*" + postscript_marker.lower() + r".*$"
    return bool(re.findall(pattern, value, flags=re.MULTILINE))


_CONSTRAINED = ("My answer is yes.", "My answer is no.", "My answer is maybe.")


def _constrained(value: str, *, variant: str) -> bool:
    return any(option in value.strip() for option in _CONSTRAINED)


def _highlights(value: str, *, num_highlights: int, variant: str) -> bool:
    n = sum(1 for h in re.findall(r"\*[^\n\*]*\*", value) if h.strip("*").strip())
    n += sum(1 for h in re.findall(r"\*\*[^\n\*]*\*\*", value) if h.removeprefix("**").removesuffix("**").strip())
    return n >= num_highlights


def _sections(value: str, *, section_spliter: str, num_sections: int, variant: str) -> bool:
    sections = re.split(r"\s?" + section_spliter + r"\s?\d+\s?", value)
    return len(sections) - 1 >= num_sections


def _keyword_frequency(value: str, *, keyword: str, frequency: int, relation: str, variant: str) -> bool:
    return _compare(len(re.findall(keyword, value, flags=re.IGNORECASE)), relation, frequency, "keywords:frequency")


def _letter_frequency(value: str, *, letter: str, let_frequency: int, let_relation: str, variant: str) -> bool:
    count = collections.Counter(value.lower())[letter.lower()]
    return count < let_frequency if let_relation == "less than" else count >= let_frequency


def _no_comma(value: str, *, variant: str) -> bool:
    return "," not in value


def _two_responses(value: str, *, variant: str) -> bool:
    valid = []
    parts = value.split("******")
    for i, part in enumerate(parts):
        if not part.strip():
            if i not in (0, len(parts) - 1):
                return False
        else:
            valid.append(part)
    return len(valid) == 2 and valid[0].strip() != valid[1].strip()


def _nth_paragraph_first_word(value: str, *, num_paragraphs: int, nth_paragraph: int, first_word: str,
                              variant: str) -> bool:
    paragraphs = re.split(r"\n\n", value)
    count = sum(1 for p in paragraphs if p.strip())
    if nth_paragraph > count:
        return False
    paragraph = paragraphs[nth_paragraph - 1].strip()
    if not paragraph:
        return False
    word = paragraph.split()[0].strip().lstrip("'").lstrip('"')
    first = ""
    for ch in word:
        if ch in {".", ",", "?", "!", "'", '"'}:
            break
        first += ch.lower()
    return count == num_paragraphs and first == first_word.lower()


CHECKERS: dict[str, Callable[..., bool]] = {
    "detectable_format:number_bullet_lists": _bullets,
    "length_constraints:number_paragraphs": _paragraphs,
    "combination:repeat_prompt": _repeat_prompt,
    "change_case:english_capital": _capital,
    "change_case:english_lowercase": _lowercase,
    "length_constraints:number_sentences": _sentences,
    "length_constraints:number_words": _words,
    "keywords:existence": _keywords,
    "keywords:forbidden_words": _forbidden,
    "detectable_format:json_format": _json,
    "detectable_format:title": _title,
    "startend:end_checker": _end,
    "startend:quotation": _quotation,
    # Used by the original IFEval (VoiceBench's ifeval subset), not by Speech-IFEval:
    "detectable_content:number_placeholders": _placeholders,
    "detectable_content:postscript": _postscript,
    "detectable_format:constrained_response": _constrained,
    "detectable_format:number_highlighted_sections": _highlights,
    "detectable_format:multiple_sections": _sections,
    "keywords:frequency": _keyword_frequency,
    "keywords:letter_frequency": _letter_frequency,
    "punctuation:no_comma": _no_comma,
    "combination:two_responses": _two_responses,
    "length_constraints:nth_paragraph_first_word": _nth_paragraph_first_word,
    "language:response_language": _response_language,
    "change_case:capital_word_frequency": _capital_word_frequency,
}
"""Supported instruction ids: every id of IFEval's registry (VoiceBench's and Speech-IFEval's copies)."""

# Speech-IFEval's report groups (evaluation_main.py, print_report).
SPEECH_IFEVAL_GROUPS = {
    "detectable_format:number_bullet_lists": "bullet_lists",
    "length_constraints:number_words": "length_constraints",
    "length_constraints:number_sentences": "length_constraints",
    "length_constraints:number_paragraphs": "length_constraints",
    "keywords:forbidden_words": "keywords",
    "keywords:existence": "keywords",
    "change_case:english_capital": "change_case",
    "change_case:english_lowercase": "change_case",
    "detectable_format:json_format": "json_format",
    "startend:quotation": "wrapping",
    "detectable_format:title": "wrapping",
    "combination:repeat_prompt": "startend",
    "startend:end_checker": "startend",
}


def check_instruction(instruction_id: str, response: str, kwargs: Mapping[str, Any] | None,
                      variant: str = "speech_ifeval") -> bool:
    """Strict check of one instruction on one response (a blank response always fails).

    ``kwargs`` are the benchmark row's arguments for this instruction; keys whose value is
    ``None`` are dropped (the IFEval data fills unused keys with null), and under ``variant="ifeval"``
    also empty and zero values (VoiceBench keeps only truthy ones).
    """
    if variant not in VARIANTS:
        raise IFEvalError(f"unknown IFEval variant {variant!r}; choose one of {', '.join(VARIANTS)}")
    if instruction_id not in CHECKERS:
        raise IFEvalError(
            f"unsupported instruction id {instruction_id!r}; supported: {', '.join(sorted(CHECKERS))}"
        )
    if variant == "ifeval":  # VoiceBench: {k: v ... if v}
        args = {k: v for k, v in (kwargs or {}).items() if v}
    else:
        args = {k: v for k, v in (kwargs or {}).items() if v is not None}
    if instruction_id in ("combination:repeat_prompt",) and "prompt_to_repeat" not in args:
        raise IFEvalError(f"{instruction_id}: kwargs need 'prompt_to_repeat'")
    if not response.strip():
        return False
    try:
        return bool(CHECKERS[instruction_id](response, variant=variant, **args))
    except TypeError as err:
        raise IFEvalError(f"{instruction_id}: bad kwargs {sorted(args)} ({err})") from err


def loose_variants(response: str) -> list[str]:
    """The 8 response variants of IFEval's loose mode (see module docstring)."""
    lines = response.split("\n")
    remove_first = "\n".join(lines[1:]).strip()
    remove_last = "\n".join(lines[:-1]).strip()
    remove_both = "\n".join(lines[1:-1]).strip()
    return [
        response, response.replace("*", ""),
        remove_first, remove_last, remove_both,
        remove_first.replace("*", ""), remove_last.replace("*", ""), remove_both.replace("*", ""),
    ]


def check_instruction_loose(instruction_id: str, response: str, kwargs: Mapping[str, Any] | None,
                            variant: str = "speech_ifeval") -> bool:
    """Loose check: the strict check passes on any of :func:`loose_variants`."""
    return any(check_instruction(instruction_id, r, kwargs, variant) for r in loose_variants(response))


def evaluate_response(
    response: str, instruction_ids: Sequence[str], kwargs_list: Sequence[Mapping[str, Any] | None] | None,
    variant: str = "speech_ifeval",
) -> dict[str, list[bool] | list[str]]:
    """Strict and loose results of every instruction of one row.

    Returns ``{"strict": [...], "loose": [...], "unsupported": [ids]}``; unsupported ids are left
    out of both lists.
    """
    kwargs_list = list(kwargs_list) if kwargs_list is not None else [{}] * len(instruction_ids)
    if len(kwargs_list) != len(instruction_ids):
        raise IFEvalError(f"{len(instruction_ids)} instruction ids but {len(kwargs_list)} kwargs entries")
    strict, loose, unsupported = [], [], []
    for iid, kw in zip(instruction_ids, kwargs_list):
        if iid not in CHECKERS:
            unsupported.append(iid)
            continue
        strict.append(check_instruction(iid, response, kw, variant))
        loose.append(check_instruction_loose(iid, response, kw, variant))
    return {"strict": strict, "loose": loose, "unsupported": unsupported}
