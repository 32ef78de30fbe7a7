"""VoiceBench's ``bbh`` rule: reading a yes/no or (A)/(B) verdict out of a spoken-style answer.

Written from MatthewCYM/VoiceBench@533815410e3f4d602bd15a1de7105aea4acd828c ``src/evaluator/bbh.py``
(Apache-2.0).  The official evaluator is a long chain of hand-written phrases per task; the phrases,
their verdicts and their order are the rule, so they are kept here as ordered tables and read by
one small matcher (:func:`extract_bbh`).  Rule, as the official code applies it:

1. the task is the one of ``sports_understanding``, ``hyperbaton``, ``navigate``, ``web_of_lies``
   whose name occurs in the item's ``id`` (tried in that order; any other id is an error);
2. the answer is normalised (:func:`normalize_bbh`): lower case, a trailing ``<|user|>`` and a
   leading ``<1>``/``<2>``/``<3>`` removed, ``<|turn_end|>`` deleted, the characters ``: ** " - , .
   ：`` replaced by blanks, blanks collapsed;
3. for every task but hyperbaton, :data:`YES_NO` is tried first; then the task's own table; the
   first rule that matches gives the verdict (1 = yes / (B) for hyperbaton, 0 = no / (A));
4. nothing matched: the official code draws ``random.choice([0, 1])`` unseeded; here
   :func:`extract_bbh` returns ``None`` and the caller draws with a fixed seed and reports the
   share of such items.

Kept as the official code has them (they are the published numbers' rule), each a quirk worth
knowing: in hyperbaton the bare answer ``b`` counts as (A); in sports ``the sentence ... is not
plausible`` (regex form) counts as plausible; in web_of_lies ``... must be lying`` counts as
telling the truth; phrases holding a ``.`` or ``,`` can never match, since step 2 removed them.
``fix_quirks=True`` (:func:`extract_bbh`) corrects the first three, as a named option only.

A rule is ``(kind, text, verdict)`` with kind ``in`` (substring), ``eq`` (whole answer),
``startswith``, ``endswith`` or ``regex`` (``re.search``).
"""

from __future__ import annotations

import re

Rules = tuple[tuple[str, str, int], ...]

TASKS = ("sports_understanding", "hyperbaton", "navigate", "web_of_lies")

YES_NO: Rules = (
    ('in', 'answer is no', 0),
    ('in', 'answer is yes', 1),
    ('in', 'the answer no', 0),
    ('in', 'the answer yes', 1),
    ('in', 'final answer no', 0),
    ('in', 'final answer yes', 1),
    ('in', 'i would answer no', 0),
    ('in', 'i would answer yes', 1),
    ('in', 'the answer is without any modification no', 0),
    ('in', 'the answer is without any modification yes', 1),
    ('in', 'the answer to the question is no', 0),
    ('in', 'the answer to the question is yes', 1),
    ('in', 'the answer is false', 0),
    ('in', 'the answer is true', 1),
    ('in', 'answer false', 0),
    ('in', 'answer true', 1),
    ('in', 'the answer is $\\boxed{\\text{false}}$', 0),
    ('in', 'the answer is $\\boxed{\\text{true}}$', 1),
    ('in', 'the answer is \\boxed{no}', 0),
    ('in', 'the answer is \\boxed{yes}', 1),
    ('in', 'the answer is \\boxed{\\text{false}}', 0),
    ('in', 'the answer is \\boxed{\\text{true}}', 1),
    ('in', 'the answer is \\boxed{\\text{no}}', 0),
    ('in', 'the answer is \\boxed{\\text{yes}}', 1),
    ('in', 'i will provide the answer as no', 0),
    ('in', 'i will provide the answer as yes', 1),
    ('in', 'prefix answer no', 0),
    ('in', 'prefix answer yes', 1),
    ('in', 'conclusion no', 0),
    ('in', 'conclusion yes', 1),
)

HYPERBATON: Rules = (
    ('eq', 'a', 0),
    ('eq', 'b', 0),
    ('in', 'the answer is (a)', 0),
    ('in', 'the answer is (b)', 1),
    ('in', 'the correct adjective order is option (a)', 0),
    ('in', 'the correct adjective order is option (b)', 1),
    ('in', 'the correct grammatical order is a', 0),
    ('in', 'the correct grammatical order is b', 1),
    ('in', 'the correct sentence is option (a)', 0),
    ('in', 'the correct sentence is option (b)', 1),
    ('in', 'the sentence with the correct adjectives is a', 0),
    ('in', 'the sentence with the correct adjectives is b', 1),
    ('in', 'correct adjective order options is a', 0),
    ('in', 'correct adjective order options is b', 1),
    ('in', 'the correct answer is (a)', 0),
    ('in', 'the correct answer is (b)', 1),
    ('in', 'the correct option is (a)', 0),
    ('in', 'the correct option is (b)', 1),
    ('in', 'the correct order of adjectives in the sentence is option a', 0),
    ('in', 'the correct order of adjectives in the sentence is option b', 1),
    ('in', 'the correct sentence would be option (a)', 0),
    ('in', 'the correct sentence would be option (b)', 1),
    ('in', 'the correct sentence is (a)', 0),
    ('in', 'the correct sentence is (b)', 1),
    ('in', 'the proper adjective order is a', 0),
    ('in', 'the proper adjective order is b', 1),
    ('in', 'the correct adjective order is (a)', 0),
    ('in', 'the correct adjective order is (b)', 1),
    ('in', 'correct adjective order is a', 0),
    ('in', 'correct adjective order is b', 1),
    ('in', 'the adjectives in option a are in the correct order', 0),
    ('in', 'the adjectives in option b are in the correct order', 1),
    ('in', 'the right adjective order is a)', 0),
    ('in', 'the right adjective order is b)', 1),
    ('in', 'the correct adjectivs is (a)', 0),
    ('in', 'the correct adjectivs is (b)', 1),
    ('in', 'the right adjective order is (a)', 0),
    ('in', 'the right adjective order is (b)', 1),
    ('in', 'correct adjectival order is a', 0),
    ('in', 'correct adjectival order is b', 1),
    ('in', 'the proper adjective order is (a)', 0),
    ('in', 'the proper adjective order is (b)', 1),
    ('in', 'the correct sentence order is a', 0),
    ('in', 'the correct sentence order is b', 1),
    ('in', 'option a correctly follows the standard adjective order', 0),
    ('in', 'option b correctly follows the standard adjective order', 1),
    ('in', 'the answer directly is a', 0),
    ('in', 'the answer directly is b', 1),
    ('in', 'the correct order would be option a', 0),
    ('in', 'the correct order would be option b', 1),
    ('in', 'final answer should be a', 0),
    ('in', 'final answer should be b', 1),
    ('in', 'final answer a', 0),
    ('in', 'final answer b', 1),
    ('in', 'option (a) uses the correct adjective sequence', 0),
    ('in', 'option (b) uses the correct adjective sequence', 1),
    ('in', 'the correct option is option a', 0),
    ('in', 'the correct option is option b', 1),
    ('in', 'the answer is without any modification a', 0),
    ('in', 'the answer is without any modification b', 1),
    ('in', 'the correct one is option a', 0),
    ('in', 'the correct one is option b', 1),
    ('in', 'answer is without any modification a', 0),
    ('in', 'answer is without any modification b', 1),
    ('in', 'the answer is without any modification option a', 0),
    ('in', 'the answer is without any modification option b', 1),
    ('in', 'answer is a', 0),
    ('in', 'answer is b', 1),
    ('in', 'the answer is [a]', 0),
    ('in', 'the answer is [b]', 1),
    ('in', 'option a follows the correct adjective order', 0),
    ('in', 'option b follows the correct adjective order', 1),
    ('in', 'the correct order of adjectives is a', 0),
    ('in', 'the correct order of adjectives is b', 1),
    ('in', 'option (a) is the correct answer', 0),
    ('in', 'option (b) is the correct answer', 1),
    ('in', 'the correct order is a', 0),
    ('in', 'the correct order is b', 1),
    ('in', 'the correct object order is a', 0),
    ('in', 'the correct object order is b', 1),
    ('in', 'the correct answer order is a', 0),
    ('in', 'the correct answer order is b', 1),
    ('in', 'the final answer without any modification is a', 0),
    ('in', 'the final answer without any modification is b', 1),
    ('in', 'the correct sentence is a', 0),
    ('in', 'the correct sentence is b', 1),
    ('in', 'correct adjective order option is a', 0),
    ('in', 'correct adjective order option is b', 1),
    ('in', 'correct adjective order is sentence a', 0),
    ('in', 'correct adjective order is sentence b', 1),
    ('in', 'correct objective order option is a', 0),
    ('in', 'correct objective order option is b', 1),
    ('in', 'the answer is is a', 0),
    ('in', 'the answer is is b', 1),
    ('in', 'the correct adjective order is option a', 0),
    ('in', 'the correct adjective order is option b', 1),
    ('in', 'the correct adjective order is provided in option a', 0),
    ('in', 'the correct adjective order is provided in option b', 1),
    ('in', 'option a is more accurate', 0),
    ('in', 'option b is more accurate', 1),
    ('in', 'answer is option a', 0),
    ('in', 'answer is option b', 1),
    ('in', 'option a has the adjectives in the correct order', 0),
    ('in', 'option b has the adjectives in the correct order', 1),
    ('in', 'option a is closer to being correct', 0),
    ('in', 'option b is closer to being correct', 1),
    ('in', 'the most logical order is option a', 0),
    ('in', 'the most logical order is option b', 1),
    ('in', 'in option a the adjectives are in the correct order', 0),
    ('in', 'in option b the adjectives are in the correct order', 1),
    ('in', 'sentence a is the closest to the correct adjective order', 0),
    ('in', 'sentence b is the closest to the correct adjective order', 1),
    ('in', 'option a has the correct order', 0),
    ('in', 'option b has the correct order', 1),
    ('in', 'sentence a has a more logical', 0),
    ('in', 'sentence b has a more logical', 1),
    ('in', 'the closest correct order is option a', 0),
    ('in', 'the closest correct order is option b', 1),
    ('in', 'sentence a has the correct adjective order', 0),
    ('in', 'sentence b has the correct adjective order', 1),
    ('in', 'option a is the closest to the typical order', 0),
    ('in', 'option b is the closest to the typical order', 1),
    ('in', 'the correct answer would be option a', 0),
    ('in', 'the correct answer would be option b', 1),
    ('in', 'the correct option is a', 0),
    ('in', 'the correct option is b', 1),
    ('in', 'option a has a better adjective order', 0),
    ('in', 'option b has a better adjective order', 1),
    ('in', 'option a has the correct adjective order', 0),
    ('in', 'option b has the correct adjective order', 1),
    ('in', 'option a seems to follow the typical order', 0),
    ('in', 'option b seems to follow the typical order', 1),
    ('in', 'the correct order is found in option a', 0),
    ('in', 'the correct order is found in option b', 1),
    ('in', 'the correct adjective order is in the first option', 0),
    ('in', 'the correct adjective order is in the second option', 1),
    ('in', 'the correct adverb order would be a', 0),
    ('in', 'the correct adverb order would be b', 1),
    ('in', 'the correct answer would be the a', 0),
    ('in', 'the correct answer would be the b', 1),
    ('in', 'the correct adjective order is in option a', 0),
    ('in', 'the correct adjective order is in option b', 1),
    ('in', 'the correct adjective order is in sentence a', 0),
    ('in', 'the correct adjective order is in sentence b', 1),
    ('in', 'the adjectives are in the correct order for a', 0),
    ('in', 'the adjectives are in the correct order for b', 1),
    ('in', 'the answer is [option a]', 0),
    ('in', 'the answer is [option b]', 1),
    ('in', 'option (a) has a correct adjective order', 0),
    ('in', 'option (b) has a correct adjective order', 1),
    ('in', 'the correct sentence would be a', 0),
    ('in', 'the correct sentence would be b', 1),
    ('in', 'option a follows the correct sequence of adjectives', 0),
    ('in', 'option b follows the correct sequence of adjectives', 1),
    ('in', 'option a would be closer to the correct order', 0),
    ('in', 'option b would be closer to the correct order', 1),
    ('in', 'the correct sentence with the adjective order is a', 0),
    ('in', 'the correct sentence with the adjective order is b', 1),
    ('in', 'option a is more grammatically correct', 0),
    ('in', 'option b is more grammatically correct', 1),
    ('in', 'option a would be more correct', 0),
    ('in', 'option b would be more correct', 1),
    ('in', 'option a is incorrect and option b is correct', 1),
    ('in', 'option a is the closest match', 0),
    ('in', 'option b is the closest match', 1),
    ('in', 'option b follows the typical order of adjectives', 1),
    ('in', 'the correct sentence with the adjective order is option a', 0),
    ('in', 'the correct sentence with the adjective order is option b', 1),
    ('in', 'the correct sentence is option a', 0),
    ('in', 'the correct sentence is option b', 1),
    ('in', 'the correct objective order is in option a', 0),
    ('in', 'the correct objective order is in option b', 1),
    ('in', 'the answer is option (a)', 0),
    ('in', 'the answer is option (b)', 1),
    ('in', 'the correct option would be (a)', 0),
    ('in', 'the correct option would be (b)', 1),
    ('in', 'the correct order is in option a', 0),
    ('in', 'the correct order is in option b', 1),
    ('in', 'the correct adjective order is found in option a', 0),
    ('in', 'the correct adjective order is found in option b', 1),
    ('in', 'option (a) follows the typical order of adjectives', 0),
    ('in', 'option (b) follows the typical order of adjectives', 1),
    ('in', 'option (a) has the correct adjective order', 0),
    ('in', 'option (b) has the correct adjective order', 1),
    ('in', 'option (a) follows the general adjective order', 0),
    ('in', 'option (b) follows the general adjective order', 1),
    ('in', 'option (a) would be more grammatically correct', 0),
    ('in', 'option (b) would be more grammatically correct', 1),
    ('in', 'option a is the correct', 0),
    ('in', 'option b is the correct', 1),
    ('in', 'option a has the correct word order', 0),
    ('in', 'option b has the correct word order', 1),
    ('in', 'option a follows the correct order', 0),
    ('in', 'option b follows the correct order', 1),
    ('in', 'following the typical order is the first option', 0),
    ('in', 'following the typical order is the second option', 1),
    ('in', 'option a has a slightly better chance of being correct', 0),
    ('in', 'option b has a slightly better chance of being correct', 1),
    ('in', 'the answer is sentence a', 0),
    ('in', 'the answer is sentence b', 1),
    ('in', 'the final answer is (a)', 0),
    ('in', 'the final answer is (b)', 1),
    ('regex', 'sentence a (.+?) seems to have a more logical', 0),
    ('regex', 'sentence b (.+?) seems to have a more logical', 1),
    ('regex', 'the correct adjective order is (.+?) option a', 0),
    ('regex', 'the correct adjective order is (.+?) option b', 1),
    ('startswith', 'a ', 0),
    ('startswith', 'b ', 1),
    ('startswith', 'a)', 0),
    ('startswith', 'b)', 1),
)

NAVIGATE: Rules = (
    ('in', 'you do not return to the starting point', 0),
    ('in', 'you are not at the starting point', 0),
    ('in', 'you haven t moved back to the starting point', 0),
    ('in', 'you cannot return to the starting point', 0),
    ('in', 'you return to the starting point', 1),
    ('in', 'you are not facing the starting point', 0),
    ('in', 'you haven t returned to the starting point', 0),
    ('in', 'you end up back at the starting point', 1),
    ('in', 'you are not back at the starting point', 0),
    ('in', 'you will not return to the starting point', 0),
    ('in', 'yes following these instructions', 1),
    ('in', 'we end up back at the starting point', 1),
    ('in', 'indeed returns us to the starting point', 1),
    ('in', 'indeed bring us back to the starting point', 1),
    ('in', 'you ll end up right back where you started', 1),
    ('in', 'we ve now returned to the starting point', 1),
    ('in', 'i have returned to the starting position', 1),
    ('in', 'the final position is not directly at the starting point', 0),
    ('in', 'it appears that we did not return to the exact starting point', 0),
    ('in', 'does not return us to the starting point', 0),
    ('in', 'i will end up back where i started', 1),
    ('in', 'indeed return to the starting point', 1),
    ('in', 'i ll be back where i started', 1),
    ('in', 'i ll end up back at the starting point', 1),
    ('in', 'after following these instructions we return to the starting point', 1),
    ('in', 'we are back at the starting point!', 1),
    ('in', 'we are now back at the starting point', 1),
    ('in', 'you ll end up back where you started', 1),
    ('in', 'we have now returned to the starting point', 1),
    ('in', 'i ve returned to the starting point', 1),
    ('in', 'following these instructions will always return us to the starting point', 1),
    ('in', 'indeed return you to the starting point', 1),
    ('in', 'the answer is the starting point', 1),
    ('in', 'following these instructions doesn t return us to the starting point', 0),
    ('in', 'following these directions does not lead you back to your original starting point', 0),
    ('startswith', 'no', 0),
    ('startswith', 'yes', 1),
    ('endswith', 'no', 0),
    ('endswith', 'yes', 1),
)

SPORTS: Rules = (
    ('in', 'final answer the sentence is plausible', 1),
    ('in', 'the answer is directly yes', 1),
    ('in', 'no the sentence is not possible', 0),
    ('in', 'the answer is it is not possible', 0),
    ('in', 'the answer is the sentence is plausible', 1),
    ('in', 'the sentence is not particularly plausible', 0),
    ('in', 'the sentence is not plausible', 0),
    ('in', 'yes the sentence is structurally plausible', 1),
    ('in', 'is the sentence plausible? yes it is', 1),
    ('in', 'i would say that it is not a plausible sentence.', 0),
    ('in', 'no the original sentence is not plausible', 0),
    ('in', 'it s not a plausible', 0),
    ('in', 'to answer your original question no', 0),
    ('in', 'making it plausible', 1),
    ('in', 'making it implausible', 0),
    ('in', 'it is indeed a plausible sentence', 1),
    ('in', 'considering these points the sentence is plausible', 1),
    ('in', 'i would say the sentence is plausible', 1),
    ('in', 'i would say that the sentence is plausible', 1),
    ('in', 'i d say it s not entirely plausible', 0),
    ('in', 'therefore not plausible', 0),
    ('in', 'making it an implausible statement', 0),
    ('in', 'the following sentence is not plausible', 0),
    ('in', 'considering these points the sentence is unlikely to be true', 0),
    ('in', 'considering these points the sentence is not plausible', 0),
    ('in', 'yes the sentence is plausible', 1),
    ('in', 'based on this analysis the sentence is plausible', 1),
    ('in', 'considering these points the sentence seems plausible', 1),
    ('in', 'given the context the sentence is plausible', 1),
    ('in', 'considering these factors the sentence is plausible', 1),
    ('in', 'considering these points the sentence is unlikely to be plausible', 0),
    ('in', 'given the context of sports particularly basketball this sentence is plausible', 1),
    ('in', 'considering these points the sentence is likely true', 1),
    ('in', 'considering these elements the sentence is plausible', 1),
    ('in', 'i would say it s unlikely', 0),
    ('in', 'it seems unlikely', 0),
    ('in', 'given this analysis the sentence is plausible', 1),
    ('in', 'considering these points the sentence is the plausible', 1),
    ('in', 'the sentence is not entirely possible', 0),
    ('in', 'the sentence is not entirely accurate', 0),
    ('in', 'the sentence is not entirely plausible', 0),
    ('in', 'the answer is plausible', 1),
    ('in', 'modification of answer not possible', 0),
    ('in', 'the answer is without any modification no', 0),
    ('in', 'i would say that the sentence is generally plausible', 1),
    ('in', 'given these points the sentence is plausible', 1),
    ('in', 'yes the sentence is plausible', 1),
    ('in', 'considering these points the sentence seems to be a plausible', 1),
    ('in', 'the sentence appears to be a plausible', 1),
    ('eq', 'not plausible', 0),
    ('regex', 'considering these points the sentence (.+?) is grammatically correct and makes sense', 1),
    ('regex', 'considering these points the sentence (.+?) is plausible', 1),
    ('regex', 'considering these points the sentence (.+?) is unlikely', 0),
    ('regex', 'based on this analysis the sentence (.+?) is plausible', 1),
    ('regex', 'considering these points the sentence (.+?) seems to be a possible', 1),
    ('regex', 'based on these steps the sentence (.+?) is plausible', 1),
    ('regex', 'based on this analysis the sentence (.+?) seems plausible', 1),
    ('regex', 'considering these points the sentence (.+?) appears to be plausible', 1),
    ('regex', 'considering these points the sentence (.+?) seems plausible', 1),
    ('regex', 'the sentence (.+?) is not very plausible', 0),
    ('regex', 'considering these points (.+?) is a plausible sentence', 1),
    ('regex', 'given this information the sentence (.+?) is plausible', 1),
    ('regex', 'given the context the sentence (.+?) is plausible', 1),
    ('regex', 'the sentence (.+?) is flexible and realistic', 1),
    ('regex', 'considering these points the sentence (.+?) is not a plausible statement', 0),
    ('regex', 'the sentence (.+?) is not plausible', 1),
    ('startswith', 'no', 0),
    ('startswith', 'yes', 1),
    ('startswith', 'the following sentence is plausible', 1),
    ('endswith', 'no', 0),
    ('endswith', 'yes', 1),
)

WEB_OF_LIES: Rules = (
    ('in', 'the prefix no applies to the statement', 0),
    ('in', 'veena s statement cannot be true', 0),
    ('in', 'therefore truly lorene tells the truth', 1),
    ('in', 'the answer is the truth', 1),
    ('in', 'affirmatively alejandro tells the truth', 1),
    ('regex', 'answer is (.+?) tells a lie', 0),
    ('regex', 'answer is (.+?) lies', 0),
    ('regex', 'answer is (.+?) says lie', 0),
    ('regex', 'answer is (.+?) doesn t tell the truth', 0),
    ('regex', 'answer is (.+?) does not tell the truth', 0),
    ('regex', 'answer is (.+?) didn t tell the truth', 0),
    ('regex', 'answer is (.+?) tells the truth', 1),
    ('regex', 'answer is (.+?) does tell the truth', 1),
    ('regex', 'answer to the question (.+?) is no', 0),
    ('regex', 'answer to the question (.+?) is yes', 1),
    ('regex', 'from the above steps we can conclude that (.+?) tells the truth', 1),
    ('endswith', 'does not tell the truth', 0),
    ('endswith', 'cannot be telling the truth', 0),
    ('endswith', 'is lying', 0),
    ('endswith', 'tells the lie', 0),
    ('endswith', 'is also telling the truth', 1),
    ('endswith', 'must be lying', 1),
    ('endswith', 'must be telling the truth', 1),
    ('endswith', 'tells the truth', 1),
    ('endswith', 'delfina does tell the truth', 1),
    ('endswith', 'osvaldo is telling the truth', 1),
    ('endswith', 'lies', 0),
    ('startswith', 'no', 0),
    ('startswith', 'yes', 1),
    ('endswith', 'no', 0),
    ('endswith', 'yes', 1),
)

TABLES: dict[str, Rules] = {
    "sports_understanding": SPORTS, "hyperbaton": HYPERBATON, "navigate": NAVIGATE, "web_of_lies": WEB_OF_LIES,
}

# The three verdicts ``fix_quirks`` turns around: (task, rule) -> corrected verdict.
QUIRK_FIXES: dict[tuple[str, tuple[str, str]], int] = {
    ("hyperbaton", ("eq", "b")): 1,
    ("sports_understanding", ("regex", r"the sentence (.+?) is not plausible")): 0,
    ("web_of_lies", ("endswith", "must be lying")): 0,
}


class BbhError(ValueError):
    """An item whose id names none of the four BBH tasks VoiceBench scores."""


def bbh_task(item_id: str) -> str:
    """The task an item belongs to, read from its id as the official code does (first name found)."""
    for task in TASKS:
        if task in str(item_id):
            return task
    raise BbhError(f"bbh item id {item_id!r} names none of the tasks {', '.join(TASKS)}; VoiceBench's bbh ids "
                   f"look like 'sports_understanding_12' (the official evaluator stops here with NotImplementedError)")


def normalize_bbh(response: str) -> str:
    """Step 2 of the module rule."""
    text = response.lower()
    if text.endswith("<|user|>"):
        text = text[:-8].strip()
    if text.startswith(("<1>", "<2>", "<3>")):
        text = text[3:].strip()
    text = text.replace("<|turn_end|>", "")
    for mark in (":", "**", '"', "-", ",", ".", "："):
        text = text.replace(mark, " ")
    return " ".join(text.split())


def _matches(kind: str, pattern: str, text: str) -> bool:
    if kind == "in":
        return pattern in text
    if kind == "eq":
        return text == pattern
    if kind == "startswith":
        return text.startswith(pattern)
    if kind == "endswith":
        return text.endswith(pattern)
    return re.search(pattern, text) is not None


def extract_bbh(response: str, item_id: str, fix_quirks: bool = False) -> int | None:
    """The verdict (1 or 0) the official rule reads from ``response``, ``None`` when no rule matches."""
    task = bbh_task(item_id)
    text = normalize_bbh(response)
    tables = (TABLES[task],) if task == "hyperbaton" else (YES_NO, TABLES[task])
    for table in tables:
        for kind, pattern, verdict in table:
            if _matches(kind, pattern, text):
                if fix_quirks:
                    verdict = QUIRK_FIXES.get((task, (kind, pattern)), verdict)
                return verdict
    return None


BBH_REFERENCES = {"yes": 1, "no": 0, "(a)": 0, "(b)": 1}


def bbh_reference(reference: str) -> int:
    """The official mapping of a bbh reference (``Yes``/``No``/``(A)``/``(B)``, any case) to 1/0."""
    key = str(reference).lower()
    if key not in BBH_REFERENCES:
        raise BbhError(f"bbh reference {reference!r} is not one of Yes, No, (A), (B)")
    return BBH_REFERENCES[key]
