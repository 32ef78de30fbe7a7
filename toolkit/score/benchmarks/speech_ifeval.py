"""``speech_ifeval``: Speech-IFEval (kehanlu/Speech-IFEval) from ``data/eval_data/*.jsonl`` + ``data/audios/``.

Subsets and how they are scored:
  * ``closed_ended_questions`` and ``creative_writing``: IFEval rules (``metric: ifeval``; the
    benchmark's own rules, :mod:`toolkit.score.ifeval`);
  * ``chain-of-thought`` and ``closed_ended_questions-woprompt`` (task-level baseline): the judged
    steps of ``script/llm_evaluation.py`` (``metric: speech_ifeval_llm``; accuracy per dataset, the CoT
    rate, and WER on the transcript the judge cuts out of the answer, Basic normaliser);
  * ``closed_ended_questions`` with ``step: llm``: the same judged steps on the constrained answers,
    the task-level accuracy with constraints (the official README's Table 4).
IFrate is the mean of the first three subsets' following rates.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from toolkit.jsonl import numbered_rows

from toolkit.score.benchmarks.base import BENCHMARKS, Benchmark, BenchmarkError, manifest_row, require_dir, safe_id

SUBSETS = ("closed_ended_questions", "creative_writing", "chain-of-thought", "closed_ended_questions-woprompt")
IFEVAL_SUBSETS = ("closed_ended_questions", "creative_writing")


@BENCHMARKS.register("speech_ifeval")
class SpeechIFEval(Benchmark):
    """Args:
        root: the benchmark's ``data/`` folder (``eval_data/`` and ``audios/`` inside).
        subset: one of ``closed_ended_questions``, ``creative_writing``, ``chain-of-thought``,
            ``closed_ended_questions-woprompt``.
        check_audio: fail listing missing audio files.
        step: ``ifeval`` (the IFEval rules) or ``llm`` (the judged task accuracy / WER); ``auto``:
            ``ifeval`` for the two IFEval subsets, ``llm`` for the others.
    """

    def __init__(self, root: str, subset: str = "closed_ended_questions", check_audio: bool = True, step: str = "auto"):
        self.root = require_dir(root, "speech_ifeval.root")
        if subset not in SUBSETS:
            raise BenchmarkError(f"speech_ifeval.subset: {subset!r} is not one of {', '.join(SUBSETS)}")
        if step not in ("auto", "ifeval", "llm"):
            raise BenchmarkError(f"speech_ifeval.step: {step!r} is not one of auto, ifeval, llm")
        if step == "ifeval" and subset not in IFEVAL_SUBSETS:
            raise BenchmarkError(f"speech_ifeval.step: ifeval needs subset {' or '.join(IFEVAL_SUBSETS)}, "
                                 f"not {subset!r}")
        if step == "llm" and subset == "creative_writing":
            raise BenchmarkError("speech_ifeval.step: creative_writing has no judged task (its rows' metric is 'open')")
        self.subset = subset
        self.check_audio = check_audio
        self.step = step if step != "auto" else ("ifeval" if subset in IFEVAL_SUBSETS else "llm")

    def rows(self) -> Iterator[dict[str, Any]]:
        path = self.root / "eval_data" / f"{self.subset}.jsonl"
        if not path.is_file():
            raise BenchmarkError(f"speech_ifeval: {path} not found")
        missing = []
        for lineno, item in numbered_rows(path):
            i = lineno - 1  # the 0-based line, the fallback id
            audio = self.root / "audios" / item["audio_filepath"]
            if self.check_audio and not audio.is_file():
                missing.append(str(audio))
                continue
            extra: dict[str, Any] = {"task_metric": item.get("metric"), "subset": self.subset,
                                     "textual_audio": item.get("textual_audio")}
            if self.step == "ifeval":
                metric = "ifeval"
                extra["instruction_id_list"] = item["instruction_id_list"]
                extra["kwargs"] = item["kwargs"]
            else:
                metric = "speech_ifeval_llm"
            uid = item.get("id", item.get("key", i))
            yield manifest_row(
                id=f"sifeval_{safe_id(self.subset)}_{safe_id(uid)}", dataset=item.get("dataset", "speech_ifeval"),
                audio=str(audio), prompt=item["instruction"], reference=item.get("label"), metric=metric, **extra,
            )
        if missing:
            raise BenchmarkError(f"speech_ifeval: {len(missing)} audio files missing under {self.root / 'audios'}, e.g. {missing[:3]}")
