"""``mmar``: an MMAR prediction file scored as the official ``code/evaluation.py`` scores it.

MMAR (Ma et al. 2025) adapts MMAU's scorer: the same string-match rule
(:func:`toolkit.score.mmau.mmau_verdict`), items without a prediction skipped, accuracy printed with
two decimals per modality (sound, music, speech, mix-sound-music, mix-sound-speech,
mix-music-speech, mix-sound-music-speech), per category (Signal, Perception, Semantic, Cultural
Layer), per sub-category (first-seen order) and in total.  The input is ``MMAR-meta.jsonl`` (or the
same items as a JSON list: the script picks the reader by the file's extension, ``.json`` or
``.jsonl``) with the model's answer under ``answer_prediction``; the script's first version
(commit 6249700) read ``model_prediction``, which ``prediction_key=model_prediction`` selects and
which is used by default when no item has ``answer_prediction``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from toolkit.score.mmau import GroupTable
from toolkit.score.official.mmau import StringMatchPredictions
from toolkit.score.predictions import PREDICTION_SCORERS, PredictionFormatError

MODALITIES = ("sound", "music", "speech", "mix-sound-music", "mix-sound-speech", "mix-music-speech",
              "mix-sound-music-speech")
CATEGORIES = ("Signal Layer", "Perception Layer", "Semantic Layer", "Cultural Layer")


@PREDICTION_SCORERS.register("mmar")
class MmarPredictions(StringMatchPredictions):
    """Args:
        prediction_key: the item key holding the answer (default: ``answer_prediction``, or
            ``model_prediction`` when no item has the first).
    """

    official = "ddlBoJack/MMAR@3bce090a967db576c8ad433b290a8da582d6d2a0 code/evaluation.py"
    expected_format = ("MMAR-meta.jsonl rows (id, choices, answer, modality, category, sub-category), one JSON "
                       "object a line in a .jsonl file or a JSON list in a .json file, each with the model's "
                       "answer under 'answer_prediction'")
    default_key = "answer_prediction"
    group_fields = ("modality", "category")
    tables = (
        GroupTable("Modality-wise Accuracy:", "modality", MODALITIES),
        GroupTable("Category-wise Accuracy:", "category", CATEGORIES),
        GroupTable("Sub-category-wise Accuracy:", "sub-category", None, required=False),
    )

    def __init__(self, subset: str | None = None, judge: Any = None, seed: int = 0,
                 prediction_key: str | None = None):
        super().__init__(subset, judge, seed, prediction_key)

    def load_items(self, path: Path) -> list[Any]:
        # The official script dispatches on the name: *json -> one JSON document, *jsonl -> lines.
        if str(path).endswith("jsonl"):
            return self.read_jsonl(path)
        if str(path).endswith("json"):
            return self.read_json_list(path)
        raise PredictionFormatError(f"{path}: the official MMAR scorer reads only files named *.json or *.jsonl; "
                                    f"rename it. {self.name} predictions must be {self.expected_format}.")

    def pick_key(self, path: Path, items: list[Any]) -> str:
        if self.prediction_key is None and not any(isinstance(it, dict) and self.default_key in it for it in items):
            if any(isinstance(it, dict) and "model_prediction" in it for it in items):
                return "model_prediction"  # the key of the script's first version (6249700)
        return super().pick_key(path, items)
