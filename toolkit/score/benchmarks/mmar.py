"""``mmar``: MMAR (ddlBoJack/MMAR) from ``MMAR-meta.jsonl`` and its audio folder, scored like MMAU.

MMAR's official scorer is MMAU's string-match rule (:mod:`toolkit.score.mmau`), so rows get
``metric: mmau``; ``modality``, ``category`` and ``sub_category`` travel with each row, and stage 7
breaks accuracy down by the first two (they are in :data:`toolkit.score.base.DEFAULT_BREAKDOWN`).
The question is put as DeSTA2.5-Audio puts MMAU's (:func:`toolkit.score.benchmarks.mmau.desta_mc_prompt`).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from toolkit.jsonl import JsonlError, iter_jsonl
from toolkit.score.benchmarks.base import BENCHMARKS, Benchmark, BenchmarkError, manifest_row, require_dir, safe_id
from toolkit.score.benchmarks.mmau import desta_mc_prompt

REQUIRED = ("id", "audio_path", "question", "choices", "answer", "modality", "category")


@BENCHMARKS.register("mmar")
class MMAR(Benchmark):
    """Args:
        meta_path: ``MMAR-meta.jsonl`` (one JSON object a line: ``id, audio_path, question, choices,
            answer, modality, category, sub-category, ...``).
        audio_root: folder that ``audio_path`` (``./audio/<id>.wav``) is relative to.
        check_audio: fail listing missing audio files (off for a quick look at the questions).
    """

    def __init__(self, meta_path: str, audio_root: str, check_audio: bool = True):
        self.meta_path = Path(meta_path).expanduser()
        if not self.meta_path.is_file():
            raise BenchmarkError(f"mmar.meta_path: file not found: {self.meta_path}")
        self.audio_root = require_dir(audio_root, "mmar.audio_root")
        self.check_audio = check_audio

    def rows(self) -> Iterator[dict[str, Any]]:
        missing = []
        try:
            items = list(iter_jsonl(self.meta_path))
        except JsonlError as err:
            raise BenchmarkError(str(err)) from None
        for lineno, item in enumerate(items, 1):
            absent = [k for k in REQUIRED if k not in item]
            if absent:
                raise BenchmarkError(f"{self.meta_path}: row {lineno} lacks {', '.join(absent)}; "
                                     "use the MMAR-meta.jsonl of github.com/ddlBoJack/MMAR")
            audio = self.audio_root / str(item["audio_path"]).replace("./", "", 1)
            if self.check_audio and not audio.is_file():
                missing.append(str(audio))
                continue
            yield manifest_row(
                id=f"mmar_{safe_id(item['id'])}", dataset="MMAR", audio=str(audio),
                prompt=desta_mc_prompt(item["question"], item["choices"]), reference=item["answer"], metric="mmau",
                choices=list(item["choices"]), question=item["question"], modality=item["modality"],
                category=item["category"], sub_category=item.get("sub-category"), language=item.get("language"),
            )
        if missing:
            raise BenchmarkError(f"mmar: {len(missing)} audio files missing under {self.audio_root}, "
                                 f"e.g. {missing[:3]}")
