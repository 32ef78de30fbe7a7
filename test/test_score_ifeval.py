"""IFEval checkers against the published rule definitions (Speech-IFEval's modified IFEval)."""

import pytest

from toolkit.score import ifeval
from toolkit.score.ifeval import check_instruction, check_instruction_loose, count_sentences, evaluate_response


def ok(iid, response, variant="speech_ifeval", **kwargs):
    return check_instruction(iid, response, kwargs, variant)


def test_change_case():
    assert ok("change_case:english_capital", "HELLO WORLD 123")
    assert not ok("change_case:english_capital", "HELLO World")
    assert ok("change_case:english_lowercase", "hello world.")
    assert not ok("change_case:english_lowercase", "Hello")


def test_blank_response_fails_everything():
    assert not ok("change_case:english_lowercase", "   ")
    assert not ok("keywords:forbidden_words", "", forbidden_words=["x"])


def test_json_format_with_markdown_fence():
    assert ok("detectable_format:json_format", '```json\n{"answer": "happy"}\n```')
    assert not ok("detectable_format:json_format", "answer: happy")


def test_quotation_title_end():
    assert ok("startend:quotation", ' "happy" ')
    assert not ok("startend:quotation", '"')
    assert ok("detectable_format:title", "<<Answer>> happy")
    assert not ok("detectable_format:title", "<< >> happy")
    assert ok("startend:end_checker", 'Happy. Is there anything else I can help with?"',
              end_phrase="Is there anything else I can help with?")
    assert not ok("startend:end_checker", "Is there anything else I can help with? Bye",
                  end_phrase="Is there anything else I can help with?")


def test_repeat_prompt_quote_strip_is_speech_ifeval_only():
    kw = {"prompt_to_repeat": "Answer:"}
    assert ok("combination:repeat_prompt", '"Answer: happy"', **kw)
    assert not ok("combination:repeat_prompt", '"Answer: happy"', variant="ifeval", **kw)
    assert ok("combination:repeat_prompt", "answer: happy", variant="ifeval", **kw)


def test_bullets_modified_rule():
    text = "* one\n- two\n• three\n1. four"
    assert ok("detectable_format:number_bullet_lists", text, num_bullets=4)
    assert ok("detectable_format:number_bullet_lists", text, variant="ifeval", num_bullets=2)
    # literal backslash-n is read as a newline by Speech-IFEval
    assert ok("detectable_format:number_bullet_lists", "* a\\n* b", num_bullets=2)
    assert not ok("detectable_format:number_bullet_lists", "**bold** line", num_bullets=1)


def test_paragraphs_modified_rule():
    assert ok("length_constraints:number_paragraphs", "one line\nsecond line", num_paragraphs=2)
    assert ok("length_constraints:number_paragraphs", "one line\nsecond line", variant="ifeval", num_paragraphs=1)
    assert ok("length_constraints:number_paragraphs", "a\n***\nb", num_paragraphs=2)
    assert ok("length_constraints:number_paragraphs", "a *** b", variant="ifeval", num_paragraphs=2)
    assert not ok("length_constraints:number_paragraphs", "a\n*** ***\nb", variant="ifeval", num_paragraphs=2)


def test_keywords_and_counts():
    assert ok("keywords:existence", "It was SPICY food", keywords=["spicy"])
    assert not ok("keywords:existence", "mild", keywords=["spicy"])
    assert ok("keywords:forbidden_words", "He was bewilderedly calm", forbidden_words=["bewildered"])  # whole word
    assert not ok("keywords:forbidden_words", "He was Bewildered.", forbidden_words=["bewildered"])
    assert ok("length_constraints:number_words", "one two three", num_words=3, relation="at least")
    assert not ok("length_constraints:number_words", "one two three", num_words=3, relation="less than")
    text = "It rained. Then it stopped! Did it? Yes."
    assert ok("length_constraints:number_sentences", text, num_sentences=4, relation="at least")
    assert not ok("length_constraints:number_sentences", text, num_sentences=5, relation="at least")


def test_sentences_are_counted_by_punkt():
    # Punkt knows "Dr." and "3.5" and does not split at a lower-case "today" after "p.m."
    assert count_sentences("Dr. Smith came. He left at 3.5 p.m. today! Why?") == 3
    assert count_sentences("") == 0


def test_missing_punkt_is_a_loud_error(monkeypatch, tmp_path):
    import nltk

    ifeval.punkt_tokenizer.cache_clear()
    monkeypatch.setattr(nltk.data, "path", [str(tmp_path)])
    monkeypatch.setenv("DESTA_CACHE", str(tmp_path / "no-cache"))
    try:
        with pytest.raises(ifeval.PunktMissingError, match="prepare_assets.py --only nltk-punkt"):
            check_instruction("length_constraints:number_sentences", "One. Two.",
                              {"num_sentences": 2, "relation": "at least"})
        with pytest.raises(ifeval.PunktMissingError, match="prepare_assets.py --only nltk-punkt"):
            ifeval.word_tokens("VoiceBench's capital_word_frequency counts NLTK word tokens.")
    finally:
        ifeval.punkt_tokenizer.cache_clear()


def test_loose_mode_drops_first_line_and_stars():
    response = "Sure, here it is:\nHAPPY"
    assert not check_instruction("change_case:english_capital", response, {})
    assert check_instruction_loose("change_case:english_capital", response, {})


def test_original_ifeval_extras():
    assert ok("punctuation:no_comma", "no commas here", variant="ifeval")
    assert ok("detectable_content:number_placeholders", "[name] at [address]", num_placeholders=2)
    assert ok("combination:two_responses", "first******second")
    assert not ok("combination:two_responses", "same******same")
    assert ok("detectable_format:number_highlighted_sections", "*one* and **two**", num_highlights=2)


def test_evaluate_response_reports_unsupported():
    out = evaluate_response("hello", ["multi-turn:constrained_start", "change_case:english_lowercase"], [{}, {}])
    assert out == {"strict": [True], "loose": [True], "unsupported": ["multi-turn:constrained_start"]}


def test_unknown_id_and_bad_kwargs_fail_clearly():
    with pytest.raises(ifeval.IFEvalError, match="unsupported instruction id"):
        check_instruction("nope:nope", "x", {})
    with pytest.raises(ifeval.IFEvalError, match="bad kwargs"):
        check_instruction("length_constraints:number_words", "x", {"words": 3})


def test_the_scorer_reads_punkt_where_the_asset_is_built():
    """ifeval names the nltk-punkt asset's directory itself (score code does not import the asset builders)."""
    from toolkit.assets import CATALOG

    assert CATALOG["nltk-punkt"].path == ifeval.NLTK_DATA_DIR
