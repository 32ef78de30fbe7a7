"""``mmau``: an MMAU prediction file scored as the official ``evaluation.py`` scores it.

The file is the benchmark's JSON list (``mmau-test-mini.json``) with one more key per item holding
the model's answer.  The official README names that key ``model_prediction`` (and so does the copy
DeSTA2.5-Audio published with its results); the script at the commit below reads ``model_output``
instead: ``prediction_key=model_output`` selects that.  Rules (:mod:`toolkit.score.mmau`, shared
with stage 7's ``mmau`` scorer):

* an item without the prediction key is skipped, not counted (the official loop ``continue``\\ s);
  we say how many in the summary (``skipped``) and in a note line, since the official "No prediction
  count" line always prints 0;
* the string-match rule decides each item; accuracy per task (sound, music, speech, in that order),
  per difficulty (easy, hard, medium) and per sub-category (first-seen order), then the total, all
  printed with two decimals.

Input the official code would crash on (a null or non-text prediction, a task or difficulty outside
the fixed lists, a missing ``answer``/``choices``) fails here with the item and field named.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from toolkit.score.mmau import GroupTable, accuracy_report, mmau_selected_choice, mmau_verdict
from toolkit.score.predictions import PREDICTION_SCORERS, ItemVerdict, OfficialScore, PredictionScorer


class StringMatchPredictions(PredictionScorer):
    """MMAU-style scoring shared by ``mmau`` and ``mmar``: the subclass names fields and tables."""

    default_key: str = ""
    group_fields: tuple[str, ...] = ()
    tables: tuple[GroupTable, ...] = ()

    def __init__(self, subset: str | None = None, judge: Any = None, seed: int = 0,
                 prediction_key: str | None = None):
        super().__init__(subset, judge, seed)
        self.prediction_key = prediction_key

    def load_items(self, path: Path) -> list[Any]:
        return self.read_json_list(path)

    def pick_key(self, path: Path, items: list[Any]) -> str:
        """The prediction key: the option, else the default; no item carrying it is a format error."""
        key = self.prediction_key or self.default_key
        if not any(isinstance(it, Mapping) and key in it for it in items):
            raise self.format_error(path, "every item", f"field '{key}' (the model's answer) is missing")
        return key

    def score_file(self, path: Path) -> OfficialScore:
        path = Path(path)
        items = self.load_items(path)
        key = self.pick_key(path, items)
        verdicts: list[ItemVerdict] = []
        scored: list[tuple[Mapping[str, Any], bool]] = []
        skipped = 0
        for index, item in enumerate(items):
            self.require(path, item, index, ())
            item_id = str(item["id"]) if "id" in item else str(index)
            if key not in item:
                skipped += 1
                verdicts.append(ItemVerdict(item_id, None, None, f"no '{key}': skipped, as the official scorer does"))
                continue
            self.require(path, item, index, ("answer", "choices", *self.group_fields))
            self.check_item(path, item, index, key)
            ok, why = mmau_verdict(item["answer"], item[key], item["choices"])
            verdicts.append(ItemVerdict(item_id, mmau_selected_choice(item[key], item["choices"]), float(ok), why))
            scored.append((item, ok))
        summary, lines = accuracy_report(scored, self.tables)
        summary["skipped"] = skipped
        if skipped:
            lines.append(f"(toolkit note) {skipped} items have no '{key}' and were skipped, as the official "
                         "scorer skips them; its 'No prediction count' line does not count them")
        summary["prediction_key"] = key
        return OfficialScore(verdicts, summary, lines)

    def check_item(self, path: Path, item: Mapping[str, Any], index: int, key: str) -> None:
        """Refuse what the official loop would crash on, naming the field."""
        for name in (key, "answer"):
            if not isinstance(item[name], str):
                raise self.format_error(path, f"item {index}", f"field '{name}' is {type(item[name]).__name__}, "
                                        "not text (the official scorer fails on it)")
        choices = item["choices"]
        if not isinstance(choices, list) or not all(isinstance(c, str) for c in choices):
            raise self.format_error(path, f"item {index}", "field 'choices' must be a list of strings")
        for table in self.tables:
            if table.names is not None and item[table.field] not in table.names:
                raise self.format_error(path, f"item {index}", f"field '{table.field}' is {item[table.field]!r}, "
                                        f"not one of {', '.join(table.names)}")


@PREDICTION_SCORERS.register("mmau")
class MmauPredictions(StringMatchPredictions):
    """Args:
        prediction_key: the item key holding the answer (default ``model_prediction``, the README's;
            ``model_output`` is what the script at this commit reads).
    """

    official = "Sakshi113/MMAU@110127f54c0dfba3faa5ec9feee4a7e4148679c5 evaluation.py"
    expected_format = ("a JSON list of the benchmark's items (id, choices, answer, task, difficulty, sub-category) "
                       "each with the model's answer under 'model_prediction'")
    default_key = "model_prediction"
    group_fields = ("task", "difficulty")
    tables = (
        GroupTable("Task-wise Accuracy:", "task", ("sound", "music", "speech")),
        GroupTable("Difficulty-wise Accuracy:", "difficulty", ("easy", "hard", "medium")),
        GroupTable("Sub-category-wise Accuracy:", "sub-category", None, required=False),
    )

    def __init__(self, subset: str | None = None, judge: Any = None, seed: int = 0,
                 prediction_key: str | None = None):
        super().__init__(subset, judge, seed, prediction_key)
