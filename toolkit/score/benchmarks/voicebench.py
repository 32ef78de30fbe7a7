"""``voicebench``: VoiceBench (hlt-lab/voicebench on the HF hub) from a local copy of its parquet files.

Layout: ``<root>/<subset>/<split>-00000-of-0000N.parquet`` (columns ``audio`` + ``prompt`` + the
subset's fields).  The audio bytes are written once to ``audio_dir``.  Scoring per subset follows
the official ``evaluate.py`` evaluators:

=====================================  ==========================================================
alpacaeval, alpacaeval_full,           ``judge`` with ``voicebench_open`` (mean 1-5 rating of 3
commoneval, wildvoice                  samples at temperature 0.5, top_p 0.95, as api_judge.py)
sd-qa (split = region: usa, aus ...)   ``judge`` with ``voicebench_qa`` (majority of 3 samples);
                                       PEDANT (``panda``) only through ``score_predictions``
mmsu, openbookqa                       ``voicebench_mcq`` (official letter rule, seeded random
                                       fill of unparsed answers, fail rate reported)
ifeval                                 ``ifeval``, original IFEval rules with langdetect (``ifeval_final``)
advbench                               ``refusal`` (refusal-string rate)
bbh                                    ``voicebench_bbh`` (the official phrase rules; the task
                                       is read from the item's own id, kept as ``source_id``)
=====================================  ==========================================================

The rules are :mod:`toolkit.score.voicebench`'s, the ones ``score_predictions`` applies to a
VoiceBench result file.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from toolkit.score.benchmarks.base import (
    BENCHMARKS,
    Benchmark,
    BenchmarkError,
    audio_cell_to_file,
    manifest_row,
    read_hf_table,
    require_dir,
    safe_id,
)

SUBSET_METRIC = {
    "alpacaeval": ("judge", "voicebench_open"),
    "alpacaeval_full": ("judge", "voicebench_open"),
    "commoneval": ("judge", "voicebench_open"),
    "wildvoice": ("judge", "voicebench_open"),
    "sd-qa": ("judge", "voicebench_qa"),
    "mmsu": ("voicebench_mcq", None),
    "openbookqa": ("voicebench_mcq", None),
    "ifeval": ("ifeval", None),
    "advbench": ("refusal", None),
    "bbh": ("voicebench_bbh", None),
}


@BENCHMARKS.register("voicebench")
class VoiceBench(Benchmark):
    """Args:
        root: local copy of the VoiceBench dataset repository (one folder per subset).
        subset: ``alpacaeval``, ``commoneval``, ``wildvoice``, ``sd-qa``, ``mmsu``, ``openbookqa``,
            ``ifeval``, ``advbench``, ``bbh`` or ``alpacaeval_full``.
        audio_dir: where the embedded audio clips are written.
        split: ``test`` for most subsets; a region code (``usa``, ``aus`` ...) for ``sd-qa``.
    """

    def __init__(self, root: str, subset: str, audio_dir: str, split: str = "test"):
        self.root = require_dir(root, "voicebench.root")
        if subset not in SUBSET_METRIC:
            raise BenchmarkError(f"voicebench.subset: {subset!r} is not one of {', '.join(SUBSET_METRIC)}")
        self.subset = subset
        self.split = split
        self.audio_dir = Path(audio_dir)

    def rows(self) -> Iterator[dict[str, Any]]:
        folder = self.root / self.subset
        if not folder.exists():
            raise BenchmarkError(f"voicebench: {folder} not found (expected <root>/<subset>/<split>-*.parquet)")
        metric, judge_prompt = SUBSET_METRIC[self.subset]
        for i, item in enumerate(read_hf_table(folder, self.split)):
            uid = f"voicebench_{safe_id(self.subset)}_{safe_id(self.split)}_{i:05d}"
            audio = audio_cell_to_file(item.get("audio"), self.audio_dir / self.subset / self.split, uid, folder)
            extra: dict[str, Any] = {"subset": self.subset}
            if judge_prompt:
                extra["judge_prompt"] = judge_prompt
            if metric == "ifeval":
                extra["instruction_id_list"] = list(item["instruction_id_list"])
                extra["kwargs"] = [dict(k or {}) for k in item["kwargs"]]
                extra["ifeval_variant"] = "ifeval"
            for key in ("id", "key", "question_id"):
                if key in item:
                    extra[f"source_{key}"] = item[key]
            reference = item.get("reference")
            if metric in ("voicebench_mcq", "voicebench_bbh") and reference is None:
                raise BenchmarkError(f"voicebench {self.subset} row {i}: no 'reference' column")
            yield manifest_row(
                id=uid, dataset=f"voicebench_{self.subset}", audio=audio, prompt=item.get("prompt") or "",
                reference=reference, metric=metric, choices=None, **extra,
            )
