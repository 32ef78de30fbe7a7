"""Hand-made cases with known answers for toolkit.metrics."""

import math

import pytest

from toolkit.metrics import (
    bleu,
    chrf,
    consecutive_words_match,
    contains_words,
    error_rate,
    extract_choice,
    normalize,
    reference_letter,
)


def test_wer_counts_edits_over_reference_words():
    # ref 6 words; hyp: 1 substitution (dog->cat), 1 deletion (very), 1 insertion (now)
    out = error_rate(["The dog is very happy today"], ["the cat is happy today now"], "word", "english")
    assert (out["substitutions"], out["deletions"], out["insertions"]) == (1, 1, 1)
    assert out["value"] == pytest.approx(50.0)


def test_wer_is_corpus_level_not_mean_of_sentences():
    # sentence WERs 100% (1 word) and 0% (3 words): corpus WER = 1/4, not the mean 50%
    out = error_rate(["yes", "a b c"], ["no", "a b c"], "word", "none")
    assert out["value"] == pytest.approx(25.0)


def test_english_normaliser_makes_case_punctuation_numbers_and_spelling_equal():
    out = error_rate(["Two colours, Mr. Smith!"], ["2 colors mister smith"], "word", "english")
    assert out["value"] == 0.0
    assert normalize("Hello,  World!", "basic") == "hello world"


def test_empty_references_are_skipped_and_counted():
    out = error_rate(["", "hello"], ["anything", "hello"], "word", "english")
    assert out["count"] == 1 and out["empty_references"] == 1 and out["value"] == 0.0
    none = error_rate([""], ["x"], "word", "english")
    assert none["count"] == 0 and math.isnan(none["value"])


def test_cer():
    out = error_rate(["abcd"], ["abxd"], "char", "none")
    assert out["value"] == pytest.approx(25.0)


def test_bleu_and_chrf_extremes():
    assert bleu(["the cat sat on the mat"], ["the cat sat on the mat"]) == pytest.approx(100.0)
    assert bleu(["the cat sat on the mat"], ["completely different words here ok"]) < 5.0
    assert chrf(["abcdef"], ["abcdef"]) == pytest.approx(100.0)


def test_consecutive_words_desta_rule():
    assert consecutive_words_match("I think it's a Dog barking.", "dog barking")
    assert not consecutive_words_match("the barking dog", "dog barking")  # order matters
    assert not consecutive_words_match("hotdog", "dog")  # whole words only
    assert consecutive_words_match("anything", "")  # reference quirk: empty label matches


def test_label_accuracy_rule():
    assert contains_words("The speaker sounds HAPPY.", "happy")
    assert not contains_words("a category", "cat")
    assert contains_words("There are two speakers", "2 speakers")  # English normaliser: numbers
    assert not contains_words("anything", "")  # empty label never matches here


@pytest.mark.parametrize(
    "text, choices, expected",
    [
        ("The answer is (B).", None, "B"),
        ('The correct answer is: "C"', None, "C"),
        ("B. dog", None, "B"),
        ("(d) sheep", None, "D"),
        ("I would choose D because it barks.", None, "D"),
        ("Option c is right", None, "C"),
        ("It is a dog.", ["cat", "dog", "cow", "pig"], "B"),  # option text; article "a" is not A
        ("the answer is a dog", ["cat", "dog", "cow", "pig"], "B"),
        ("a cat and a dog", ["cat", "dog", "cow", "pig"], None),  # two options: ambiguous
        ("one hundred", ["one", "one hundred", "two", "three"], "B"),  # longest contained option
        ("E.", None, None),  # beyond 4 options
        ("", ["x", "y"], None),
    ],
)
def test_extract_choice(text, choices, expected):
    assert extract_choice(text, choices) == expected


def test_reference_letter():
    assert reference_letter("B", None) == "B"
    assert reference_letter("(c) Claws", None) == "C"
    assert reference_letter("dog", ["cat", "dog"]) == "B"
    assert reference_letter("horse", ["cat", "dog"]) is None


def test_reference_letter_prefers_option_text_over_a_letter_reading():
    from toolkit.metrics import reference_letter

    assert reference_letter("D", ["C", "D", "E"]) == "B"  # notes as options: "D" is option B
    assert reference_letter("(b)", ["cat", "dog"]) == "B"
    assert reference_letter("dog", ["cat", "dog"]) == "B"
