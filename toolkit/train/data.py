"""Training data: AQA-style JSONL rows -> tokenized conversations + encoder inputs, in workers.

Reads top to bottom:

1. ``read_rows``: parse the JSONL (our self-generated rows or the published DeSTA-AQA5M ones),
   give every audio its clip id (:func:`clip_id`) and, with data dirs, its audio, segment and
   duration from them; drop rows whose answer was truncated (``finish_reason: length``) or whose
   clip is listed in a data dir's ``bad_utts``; both are counted and logged, never dropped silently.
2. ``AQADataset``: one row -> the prompt turns, the response, transcripts and the audio (read
   with :func:`toolkit.audio.load_audio`) or the cached encoder states (``feats.scp``).  A file
   that cannot be read is logged, listed in ``<exp>/bad_audio.txt`` and its sample skipped.
3. ``Collator``: tokenization (``formatter.encode`` with the response) and feature extraction,
   both in data-loader workers, so the training step only runs the model.
4. ``BucketBatchSampler``: length-bucketed batches (audio duration, then token length),
   deterministic per ``(seed, epoch)``, split across DDP ranks, resumable mid-epoch.

Row format (one JSON object per line)::

    {"id", "utt_id"?, "dataset", "seed_description", "prompt", "response", "finish_reason"?,
     "messages": [{"role": "user", "content": "<|AUDIO|>\\n<prompt>",
                   "audios": [{"audio": path, "text": transcript, "utt_id"?, "duration"?}]},
                  {"role": "assistant", "content": response}]}

A trailing assistant turn is the target and is removed from the prompt; ``response`` wins over
its text when both exist.  Optional per-audio ``start``/``end`` (seconds) cut a segment and an
optional ``duration`` saves a header read.  Dev rows may carry a short ``label`` (or
``reference``) used by the consecutive-words accuracy of validation generations.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from toolkit.audio import SAMPLE_RATE, AudioError, audio_duration, load_audio
from toolkit.data.datadir import UttIndex
from toolkit.models.audio_vectors import AudioVectorCount
from toolkit.models.chat import AUDIO_TOKEN, ConversationError

log = logging.getLogger(__name__)

CACHE_SCP = "feats.scp"
CACHE_INFO = "cache_info.json"
CACHE_KEYS = "utt_id"  # cache_info.json "keys": what feats.scp is keyed by (see clip_id)
CHARS_PER_TOKEN = 4.0  # token-length estimate used for bucketing (exact tokenization of 5M rows is too slow)


class DataError(ValueError):
    """A training JSONL that cannot be used; the message names the file, the line and the fix."""


# ----------------------------------------------------------------------------------- 1. rows


@dataclass
class Sample:
    """One training pair after filtering: prompt turns, target and its audios."""

    id: str
    messages: list[dict[str, Any]]  # prompt turns (no trailing assistant turn); audios resolved
    response: str
    audios: list[dict[str, Any]]  # {"audio": source, "text", "start", "end"} in conversation order
    duration: float  # seconds of audio in the sample (sum over its audios)
    est_tokens: int  # prompt + response length estimate, for bucketing
    label: str | None = None  # short reference for validation accuracy (dev sets)


@dataclass
class RowStats:
    """What ``read_rows`` kept and dropped, for the log."""

    rows: int = 0
    kept: int = 0
    truncated: int = 0
    bad_utts: int = 0
    unreadable_duration: int = 0
    dropped_ids: dict[str, list[str]] = field(default_factory=dict)

    def summary(self, path: str | os.PathLike) -> str:
        return (f"{path}: {self.rows} rows, kept {self.kept}; excluded {self.truncated} with finish_reason=length "
                f"(truncated answers are never supervised), {self.bad_utts} with audio listed in bad_utts")


def clip_id(audio: Mapping[str, Any]) -> str:
    """The one identity of a training clip: its data dir utterance id (``utt_id``).

    Self-generated rows (stage 4) carry ``utt_id``; training, the feature cache and validation use it.
    The published DeSTA-AQA5M rows name a clip only by an audio path relative to ``audio_root`` (they come
    without data dirs), so for them, and only when ``train.data.data_dirs`` is empty, the id is that path as
    written, plus ``@<start>-<end>`` for a segment, with whitespace and ``%`` percent-encoded so it stays one
    Kaldi token (the feature cache's ``feats.scp`` key).
    """
    if audio.get("utt_id") is not None:
        return str(audio["utt_id"])
    from urllib.parse import quote

    key = quote(str(audio["audio"]), safe="/:@+,=;!$&'()*[]")
    if audio.get("start") is not None or audio.get("end") is not None:
        key += f"@{audio.get('start')}-{audio.get('end')}"
    return key


def _resolve(source: str, audio_root: str | None) -> str:
    if audio_root is None or source.rstrip().endswith("|") or os.path.isabs(source) or source.startswith("ark:"):
        return source
    return str(Path(audio_root) / source)


def read_rows(
    path: str | os.PathLike | list,
    audio_root: str | None = None,
    utts: UttIndex | None = None,
    max_rows: int | None = None,
) -> tuple[list[Sample], RowStats]:
    """Parse and filter AQA-style JSONL (see the module docstring for the row format).

    ``path`` is a file, a glob (``dump/selfgen/train*.jsonl`` takes sharded self-generation output
    or the published AQA5M chunks) or a list of them; ``dump/selfgen/train.jsonl`` of a sharded stage 4
    means its shard files.  ``utts``: the data dirs the rows came from (``train.data.data_dirs``); each
    clip is then looked up by its ``utt_id`` there (audio, segment, duration, ``bad_utts``).
    """
    from toolkit.jsonl import JsonlError, numbered_rows
    from toolkit.shards import resolve_files

    try:  # stage 4's shard files are checked as one complete set (toolkit/shards.py); other files pass as they are
        files = resolve_files(path, "training data")
    except FileNotFoundError as err:
        raise DataError(f"{err}: run the self-generation stage (./run.sh --stage 4) or fix train.data.train_jsonl/dev_jsonl "
                        "(a recipe keeps answers per tag: selfgen_dir=dump/selfgen/<tag> reuses another tag's)") from None
    utts = utts if utts is not None else UttIndex()
    stats, samples = RowStats(), []
    for file in files:
        rows = numbered_rows(file)
        while max_rows is None or stats.rows < max_rows:
            try:
                lineno, row = next(rows)
            except StopIteration:
                break
            except JsonlError as err:
                raise DataError(str(err)) from None
            stats.rows += 1
            row_id = str(row.get("id", f"{file.stem}-{lineno}"))
            if row.get("finish_reason") == "length":
                stats.truncated += 1
                stats.dropped_ids.setdefault("finish_reason_length", []).append(row_id)
                continue
            sample = _sample_from_row(row, row_id, f"{file}:{lineno}", audio_root, utts, stats)
            if sample is not None:
                samples.append(sample)
    stats.kept = len(samples)
    log.info(stats.summary(path if isinstance(path, (str, os.PathLike)) else ", ".join(map(str, path))))
    return samples, stats


def _sample_from_row(row: Mapping[str, Any], row_id: str, where: str, audio_root: str | None,
                     utts: UttIndex, stats: RowStats) -> Sample | None:
    messages = row.get("messages")
    if not isinstance(messages, list) or not messages:
        raise DataError(f"{where}: row '{row_id}' has no 'messages' list; expected the AQA5M format (see toolkit/train/data.py)")
    prompt = [dict(m) for m in messages]
    response = row.get("response")
    if prompt[-1].get("role") == "assistant":
        last = prompt.pop()
        response = response if response is not None else last.get("content")
    if not response or not str(response).strip():
        raise DataError(f"{where}: row '{row_id}' has no response (neither 'response' nor a final assistant turn)")
    audios = []
    for m in prompt:
        n_tags = str(m.get("content", "")).count(AUDIO_TOKEN)
        resolved = [{"audio": a} if isinstance(a, str) else dict(a) for a in m.get("audios") or []]
        if n_tags != len(resolved):
            raise DataError(f"{where}: row '{row_id}' has {n_tags} {AUDIO_TOKEN} but {len(resolved)} audios in one turn")
        m["audios"] = resolved
        audios += resolved
    if len(audios) == 1 and audios[0].get("utt_id") is None and row.get("utt_id") is not None:
        audios[0]["utt_id"] = str(row["utt_id"])  # a single-clip row names its clip at the top level
    for a in audios:
        if utts:
            _from_data_dirs(a, row_id, where, utts)
        else:
            a["utt_id"] = clip_id(a)  # before audio_root is joined: the id is the path as the row writes it
            a["audio"] = _resolve(str(a["audio"]), audio_root)
    if any(a["utt_id"] in utts.bad for a in audios):
        stats.bad_utts += 1
        stats.dropped_ids.setdefault("bad_utts", []).append(row_id)
        return None
    for a in audios:
        a["duration"] = _duration(a, stats)
    duration = sum(a["duration"] for a in audios)
    text = " ".join(str(m.get("content", "")) for m in prompt) + " " + str(response)
    est = int(len(text) / CHARS_PER_TOKEN) + sum(len(a.get("text") or "") for a in audios) // int(CHARS_PER_TOKEN)
    label = row.get("label", row.get("reference"))
    return Sample(id=row_id, messages=prompt, response=str(response), audios=audios, duration=duration,
                  est_tokens=est, label=None if label is None else str(label))


def _from_data_dirs(a: dict[str, Any], row_id: str, where: str, utts: UttIndex) -> None:
    """Give audio ``a`` its clip's source, segment and duration from the data dirs, found by its ``utt_id``."""
    if a.get("utt_id") is None:
        raise DataError(f"{where}: row '{row_id}' has no 'utt_id', so its clip cannot be found in train.data.data_dirs "
                        f"({', '.join(str(d.path) for d in utts.dirs)}). Rows written by self-generation before utt "
                        "ids were recorded lack it: rerun stage 4 (./run.sh --stage 4 --stop_stage 4, after moving the "
                        "old output away). Published DeSTA-AQA5M rows come without data dirs: set train.data.data_dirs=[] "
                        "and train.data.audio_root to where their audio is")
    utt = utts.utts.get(str(a["utt_id"]))
    if utt is None:
        raise DataError(f"{where}: row '{row_id}': utt_id '{a['utt_id']}' is in none of train.data.data_dirs "
                        f"({', '.join(str(d.path) for d in utts.dirs)}); list the data dirs the rows were generated "
                        "from, or rerun stage 4 on these ones")
    a["utt_id"], a["audio"] = utt.id, utt.audio
    a.pop("start", None), a.pop("end", None)
    if utt.start is not None:
        a["start"], a["end"] = utt.start, utt.end
    if utt.duration is not None:
        a["duration"] = utt.duration


def _duration(a: Mapping[str, Any], stats: RowStats) -> float:
    if a.get("duration") is not None:
        return float(a["duration"])
    if a.get("start") is not None and a.get("end") not in (None, -1):
        return float(a["end"]) - float(a["start"])
    try:
        return audio_duration(a["audio"])
    except (AudioError, RuntimeError):
        stats.unreadable_duration += 1
        return 0.0  # the sample's audio is read (and reported if broken) in the worker


# ------------------------------------------------------------------------- 2. dataset (workers)


class BadAudioLog:
    """Appends ``<source>\\t<reason>`` lines to ``<exp>/bad_audio.txt`` (safe from many workers: O_APPEND)."""

    def __init__(self, path: str | os.PathLike | None):
        self.path = None if path is None else str(path)
        self._seen: set[str] = set()

    def add(self, source: str, reason: str) -> None:
        if source in self._seen:
            return
        self._seen.add(source)
        log.warning("skipping unreadable audio %s: %s", source, reason)
        if self.path is not None:
            os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(f"{source}\t{reason}\n")


class FeatureCache:
    """Reads the encoder's tapped states written by ``toolkit.bin.cache_features``.

    One matrix per clip, keyed by its :func:`clip_id` (the utt id), ``(frames, num_tapped * output_size)``
    fp16, valid frames only; the taps are concatenated along the feature axis and split back here
    (``cache_info.json`` records ``num_tapped``, ``output_size`` and the encoder config that produced them).
    """

    def __init__(self, cache_dir: str | os.PathLike):
        from toolkit.data.datadir import read_bad_utts, read_table

        root = Path(cache_dir)
        self.root = root
        self.info = json.loads((root / CACHE_INFO).read_text())
        if self.info.get("keys") != CACHE_KEYS:
            raise DataError(f"{root / CACHE_INFO}: this feature cache is keyed by a hash of the audio path (an older "
                            "toolkit); clips are now looked up by utt id. Fix: remove the directory and rebuild it "
                            "with python -m toolkit.bin.cache_features")
        self.num_tapped = int(self.info["num_tapped"])
        # feats.scp names the ark as the builder's working directory saw it (dump/feats/feats.ark); the ark always
        # sits in the cache directory, so a relative entry is read from there, whatever the reader's cwd.
        self.index = {key: self._in_cache_dir(entry) for key, entry in read_table(root / CACHE_SCP).items()}
        self.bad = read_bad_utts(root / "bad_audio.txt")  # clip id -> why it was unreadable when the cache was built

    def _in_cache_dir(self, entry: str) -> str:
        path, sep, offset = entry.rpartition(":")
        if not sep or Path(path).is_absolute():
            return entry
        return f"{self.root / Path(path).name}:{offset}"

    @staticmethod
    def present(cache_dir: str | os.PathLike | None) -> bool:
        return cache_dir is not None and (Path(cache_dir) / CACHE_SCP).is_file() and (Path(cache_dir) / CACHE_INFO).is_file()

    def covers(self, samples: Sequence[Sample]) -> int:
        """How many audios of ``samples`` are missing from the cache."""
        return sum(a["utt_id"] not in self.index and a["utt_id"] not in self.bad for s in samples for a in s.audios)

    def load(self, a: Mapping[str, Any]) -> np.ndarray:
        from toolkit.audio import PICKLE_FIX, PickleRefused, read_ark_entry

        key = a["utt_id"]
        try:
            return np.asarray(read_ark_entry(self.index[key]))
        except PickleRefused as err:  # caches are shared between people: never run code from one
            raise DataError(f"{self.root / CACHE_SCP}: entry {key} ({a['audio']}): {err}. Fix: rebuild the cache with "
                            f"python -m toolkit.bin.cache_features, or {PICKLE_FIX}") from None
        except ValueError as err:  # a pipe or a malformed entry in feats.scp
            raise DataError(f"{self.root / CACHE_SCP}: entry {key} ({a['audio']}): {err}; the cache is corrupt or "
                            f"not ours, rebuild it with python -m toolkit.bin.cache_features") from None


class AQADataset(Dataset):
    """Samples with their audio (or cached encoder states), read lazily in data-loader workers."""

    def __init__(self, samples: Sequence[Sample], bad_audio: BadAudioLog | None = None, cache: FeatureCache | None = None):
        self.samples = list(samples)
        self.bad_audio = bad_audio or BadAudioLog(None)
        self.cache = cache

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict[str, Any]:
        s = self.samples[index]
        item: dict[str, Any] = {"sample": s, "waveforms": [], "cached": [], "error": None}
        for a in s.audios:
            if self.cache is not None:
                if a["utt_id"] in self.cache.bad:
                    self.bad_audio.add(a["audio"], self.cache.bad[a["utt_id"]])
                    item["error"] = f"cannot read audio '{a['audio']}' (listed in the feature cache's bad_audio.txt)"
                    break
                item["cached"].append(self.cache.load(a))
                continue
            try:
                item["waveforms"].append(load_audio(a["audio"], start=a.get("start"), end=a.get("end")))
            except AudioError as err:
                self.bad_audio.add(a["audio"], err.reason)
                item["error"] = str(err)
                break
        return item


# ----------------------------------------------------------------------------- 3. collate


class Collator:
    """Batch = tokenized conversations + padded encoder inputs (or cached states); runs in workers.

    Returns a dict: ``conversations`` (TokenizedConversation list), ``features`` (encoder inputs)
    or ``hidden_states`` + ``lengths`` (cache), ``samples`` (the Sample objects, for generation)
    and ``stats``: samples, skipped (unreadable audio), truncated (response cut at max length),
    audio_seconds, tokens (LLM positions, text + audio vectors, padding excluded).

    ``vector_count`` is the model's declared audio-vector count per clip (``LALM.audio_vector_count()``):
    with it an over-long response is cut at ``max_length`` here, before the encoder runs.
    """

    def __init__(self, formatter: Any, feature_extractor: Callable[[list[np.ndarray]], dict[str, torch.Tensor]] | None,
                 max_length: int | None, vector_count: AudioVectorCount, num_tapped: int | None = None):
        self.formatter = formatter
        self.feature_extractor = feature_extractor
        self.max_length = max_length
        self.vector_count = vector_count
        self.num_tapped = num_tapped

    def __call__(self, items: Sequence[dict[str, Any]]) -> dict[str, Any]:
        convs, waves, cached, samples = [], [], [], []
        stats = {"samples": 0, "skipped": 0, "truncated": 0, "audio_seconds": 0.0, "tokens": 0}
        for item in items:
            s: Sample = item["sample"]
            if item["error"] is not None:
                stats["skipped"] += 1
                continue
            if item["cached"]:  # durations come from the row / utt2dur / header read
                seconds = [float(a.get("duration") or 0.0) for a in s.audios]
                vec_counts = [self.vector_count.seconds(x) for x in seconds]
            else:
                seconds = [len(w) / SAMPLE_RATE for w in item["waveforms"]]
                vec_counts = [self.vector_count(len(w)) for w in item["waveforms"]]
            try:
                conv = self.formatter.encode(s.messages, [a.get("text") for a in s.audios], response=s.response,
                                             max_length=self.max_length, audio_lengths=vec_counts)
            except ConversationError as err:
                log.warning("skipping sample %s: %s", s.id, err)
                stats["skipped"] += 1
                continue
            if not any(t != -100 for t in conv.labels):  # cut to nothing: prompt alone fills max_length
                stats["skipped"] += 1
                stats["truncated"] += 1
                continue
            convs.append(conv)
            samples.append(s)
            waves += item["waveforms"]
            cached += item["cached"]
            stats["samples"] += 1
            stats["truncated"] += int(conv.truncated)
            stats["audio_seconds"] += sum(seconds)
            stats["tokens"] += len(conv.input_ids) + sum(vec_counts)
        batch: dict[str, Any] = {"conversations": convs, "samples": samples, "stats": stats,
                                 "features": None, "hidden_states": None, "lengths": None}
        if waves:
            batch["features"] = self.feature_extractor(waves)
        elif cached:
            batch["hidden_states"], batch["lengths"] = split_cached(cached, self.num_tapped)
        return batch


def split_cached(mats: Sequence[np.ndarray], num_tapped: int) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Pad cached ``(frames, taps * d)`` matrices to a batch and split them into ``taps`` (B, T, d) tensors."""
    lengths = torch.tensor([m.shape[0] for m in mats], dtype=torch.long)
    width = mats[0].shape[1]
    if width % num_tapped:
        raise DataError(f"cached matrix width {width} is not a multiple of num_tapped={num_tapped}; the cache is corrupt, rerun cache_features")
    padded = torch.zeros(len(mats), int(lengths.max()), width, dtype=torch.float32)
    for i, m in enumerate(mats):
        padded[i, : m.shape[0]] = torch.from_numpy(np.asarray(m, dtype=np.float32))
    return list(padded.chunk(num_tapped, dim=-1)), lengths


# --------------------------------------------------------------------------- 4. batch sampler


class BucketBatchSampler(Sampler[list[int]]):
    """Length-bucketed, seeded, DDP-split and resumable batches of indices.

    Per epoch: shuffle all indices with ``seed + epoch``; cut them into mega-batches of
    ``batch_size * bucket_multiplier``; sort each mega-batch by (audio seconds rounded to
    ``duration_quantum``, estimated tokens) and cut it into batches, so a batch holds clips of
    similar length and pads little; shuffle the batch order (same seed).  The batch list is padded
    by wrapping around to a multiple of ``num_replicas`` and rank ``r`` takes batches
    ``r, r + R, ...``: every rank runs the same number of steps (DDP never waits forever).

    ``bucketing=False`` gives plain shuffled batches (the naive path, for the benchmark).

    Budgets: with ``batch_tokens`` and/or ``batch_seconds`` a batch is cut where one more row would
    make ``rows x longest row`` exceed the budget (LLM positions, audio seconds), so short clips
    come many to a batch and long ones few, at a near-constant step cost and memory;
    ``batch_size`` then only caps the row count.  ``tokens`` should count the audio vectors too.
    ``drop_last`` applies to fixed-size batches only.
    ``resume(epoch, batches_done)`` makes the next iteration of that epoch skip the batches a
    killed run had already trained on, so a resumed run sees the same data as an uninterrupted one.
    """

    def __init__(self, durations: Sequence[float], tokens: Sequence[int], batch_size: int, seed: int = 0,
                 num_replicas: int = 1, rank: int = 0, shuffle: bool = True, bucketing: bool = True,
                 bucket_multiplier: int = 100, drop_last: bool = False, duration_quantum: float = 1.0,
                 batch_tokens: int | None = None, batch_seconds: float | None = None):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        for name, value in (("batch_tokens", batch_tokens), ("batch_seconds", batch_seconds)):
            if value is not None and value <= 0:
                raise ValueError(f"train.{name} must be > 0 (or null for fixed-size batches), got {value}")
        self.batch_tokens, self.batch_seconds = batch_tokens, batch_seconds
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank {rank} outside [0, {num_replicas})")
        self.durations, self.tokens = list(durations), list(tokens)
        self.batch_size, self.seed = batch_size, seed
        self.num_replicas, self.rank = num_replicas, rank
        self.shuffle, self.bucketing = shuffle, bucketing
        self.bucket_multiplier, self.drop_last = bucket_multiplier, drop_last
        self.duration_quantum = duration_quantum
        self.epoch = 0
        self._resume: tuple[int, int] | None = None

    @property
    def sampler(self) -> "BucketBatchSampler":
        # Lightning reshuffles each epoch by calling ``set_epoch`` on ``loader.sampler`` and on
        # ``loader.batch_sampler.sampler`` (lightning.fabric.utilities.data._set_sampler_epoch), never on
        # the batch sampler itself; without this every epoch repeated epoch 0's order while a run resumed
        # mid-epoch set its epoch by hand, so its batches differed from the uninterrupted run's.
        return self

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def resume(self, epoch: int, batches_done: int) -> None:
        self._resume = (epoch, batches_done) if batches_done > 0 else None

    def all_batches(self, epoch: int) -> list[list[int]]:
        """Every rank's batches of ``epoch`` in global order (before the rank split)."""
        rng = random.Random(self.seed * 1_000_003 + epoch)
        order = self.epoch_order(epoch, rng)
        n = len(order)
        batches: list[list[int]] = []
        if self.bucketing:
            mega = self.batch_size * max(1, self.bucket_multiplier)
            for start in range(0, n, mega):
                chunk = sorted(order[start : start + mega], key=self._key)
                batches += self._cut(chunk)
            if self.shuffle:
                rng.shuffle(batches)
        else:
            batches = self._cut(order)
        if self.drop_last and not self._budgeted:
            batches = [b for b in batches if len(b) == self.batch_size]
        return batches

    def epoch_order(self, epoch: int, rng: random.Random) -> list[int]:
        """The sample indices of ``epoch``, in order (every sample once; a weighted mix overrides this)."""
        order = list(range(len(self.durations)))
        if self.shuffle:
            rng.shuffle(order)
        return order

    @property
    def _budgeted(self) -> bool:
        return self.batch_tokens is not None or self.batch_seconds is not None

    def _cut(self, order: list[int]) -> list[list[int]]:
        """Consecutive batches of ``order``: ``batch_size`` rows, or as many as the budgets allow."""
        if not self._budgeted:
            return [order[i : i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        batches: list[list[int]] = []
        current: list[int] = []
        longest_tokens, longest_seconds = 0, 0.0
        for i in order:
            tokens = max(longest_tokens, self.tokens[i])
            seconds = max(longest_seconds, self.durations[i])
            rows = len(current) + 1
            over = (rows > self.batch_size
                    or (self.batch_tokens is not None and rows * tokens > self.batch_tokens)
                    or (self.batch_seconds is not None and rows * seconds > self.batch_seconds))
            if over and current:  # a row over budget on its own still gets a batch
                batches.append(current)
                current, tokens, seconds = [], self.tokens[i], self.durations[i]
            current.append(i)
            longest_tokens, longest_seconds = tokens, seconds
        if current:
            batches.append(current)
        return batches

    def _key(self, i: int) -> tuple[float, int]:
        q = self.duration_quantum
        return (round(self.durations[i] / q) * q if q > 0 else self.durations[i], self.tokens[i])

    def rank_batches(self, epoch: int) -> list[list[int]]:
        batches = self.all_batches(epoch)
        if not batches:
            return []
        per_rank = math.ceil(len(batches) / self.num_replicas)
        total = per_rank * self.num_replicas
        padded = batches + [batches[i % len(batches)] for i in range(total - len(batches))]
        return padded[self.rank : total : self.num_replicas]

    def __iter__(self) -> Iterator[list[int]]:
        batches = self.rank_batches(self.epoch)
        skip = 0
        if self._resume is not None and self._resume[0] == self.epoch:
            skip = self._resume[1]
        self._resume = None
        yield from batches[skip:]

    def __len__(self) -> int:
        n = len(self.durations)
        if self.drop_last or self.bucketing or self._budgeted:  # cuts that depend on the rows: count exactly
            return len(self.rank_batches(self.epoch))
        return math.ceil(math.ceil(n / self.batch_size) / self.num_replicas)


class EvalBatchSampler(Sampler[list[int]]):
    """Validation batches: this rank's share of the samples (interleaved), sorted by length (little padding).

    Ranks may get one batch more or less than each other (validation has no per-step collective).
    Lightning refuses a rank with no batch at all, so a dev set smaller than the number of ranks
    gives the empty ranks sample 0 again (counted twice in the loss; only that corner case).
    """

    def __init__(self, durations: Sequence[float], tokens: Sequence[int], batch_size: int, num_replicas: int = 1, rank: int = 0):
        order = sorted(range(len(durations)), key=lambda i: (durations[i], tokens[i]))
        mine = order[rank::num_replicas] or order[:1]
        self.batches = [mine[i : i + batch_size] for i in range(0, len(mine), batch_size)]

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)
