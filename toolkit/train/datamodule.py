"""The one LightningDataModule: train/dev JSONL -> bucketed, DDP-split, resumable batches.

The ``data:`` YAML section holds this class's constructor arguments (paths, bucketing, the
feature cache); the training CLI adds what only exists at run time (batch size and workers from
``train:``, the model's formatter and feature extractor).  Tokenization and feature extraction
run in the data-loader workers (see :class:`toolkit.train.data.Collator`).

Batch size: ``batch_size`` is per device.  The global batch is
``batch_size x devices x num_nodes x accumulate_grad_batches`` whatever the device count; the
training CLI states it in the log.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader

from toolkit.config import ConfigError, to_container
from toolkit.train.data import (
    CACHE_INFO,
    AQADataset,
    BadAudioLog,
    BucketBatchSampler,
    Collator,
    EvalBatchSampler,
    FeatureCache,
    Sample,
    read_rows,
)
from toolkit.data.datadir import DataDirError, UttIndex

log = logging.getLogger(__name__)


def data_dir_index(data_dirs: Sequence[str]) -> UttIndex:
    """The utterances of ``train.data.data_dirs`` by id (the rows' clips are looked up there)."""
    try:
        return UttIndex(data_dirs)
    except DataDirError as err:
        raise ConfigError(f"train.data.data_dirs: {err}") from None


class AQADataModule(L.LightningDataModule):
    """AQA-style JSONL rows for training and validation.

    Args (the ``data:`` YAML section):
        train_jsonl: training JSONL (self-generated rows or DeSTA-AQA5M rows): a file, a glob
            (``dump/selfgen/train*.jsonl`` for sharded self-generation or AQA5M's chunks) or a list.
        dev_jsonl: held-out JSONL for validation loss and generations (null: no validation).
        audio_root: directory that relative audio paths in the rows are read from (null: as written).
        data_dirs: Kaldi data dirs the rows came from: each row's clip is looked up there by its
            ``utt_id`` (audio from ``wav.scp``/``segments``, duration from ``utt2dur``, ``bad_utts``
            excluded); empty for the published DeSTA-AQA5M rows, whose clips are named by their audio
            path under ``audio_root`` (see ``toolkit.train.data.clip_id``).
        feature_cache: directory written by ``toolkit.bin.cache_features``; used when its
            ``feats.scp`` exists and covers every audio of a split, else audio is read.
        bucketing: length-bucketed batches (false: plain shuffled batches).
        bucket_multiplier: batches per sorted mega-batch (larger pads less, shuffles less).
        max_train_rows, max_dev_rows: read only the first N rows (smoke runs).

    Keyword-only arguments are filled by the training CLI at run time.
    """

    RUNTIME = frozenset({"collator", "batch_size", "eval_batch_size", "num_workers", "seed", "bad_audio_path", "encoder_config",
                         "batch_tokens", "batch_seconds"})

    def __init__(
        self,
        train_jsonl: str | list[str],
        dev_jsonl: str | list[str] | None = None,
        audio_root: str | None = None,
        data_dirs: Sequence[str] = (),
        feature_cache: str | None = None,
        bucketing: bool = True,
        bucket_multiplier: int = 100,
        max_train_rows: int | None = None,
        max_dev_rows: int | None = None,
        *,
        collator: Collator,
        batch_size: int = 12,
        eval_batch_size: int | None = None,
        num_workers: int = 2,
        seed: int = 0,
        bad_audio_path: str | None = None,
        encoder_config: dict[str, Any] | None = None,
        batch_tokens: int | None = None,
        batch_seconds: float | None = None,
    ):
        super().__init__()
        self.train_path, self.dev_path = train_jsonl, dev_jsonl
        self.audio_root = audio_root
        self.data_dirs = list(data_dirs or [])
        self.feature_cache = feature_cache
        self.bucketing, self.bucket_multiplier = bucketing, bucket_multiplier
        self.max_train_rows, self.max_dev_rows = max_train_rows, max_dev_rows
        self.collator = collator
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.num_workers = num_workers
        self.seed = seed
        self.bad_audio = BadAudioLog(bad_audio_path)
        self.encoder_config = encoder_config
        self.batch_tokens, self.batch_seconds = batch_tokens, batch_seconds
        self.train_samples: list[Sample] = []
        self.dev_samples: list[Sample] = []
        self.stats: dict[str, Any] = {}
        self._train_set: AQADataset | None = None
        self._dev_set: AQADataset | None = None
        self._train_sampler: BucketBatchSampler | None = None

    # ------------------------------------------------------------------------------ setup
    def setup(self, stage: str | None = None) -> None:
        if self._train_set is not None:
            return
        utts = data_dir_index(self.data_dirs)
        self.train_samples, train_stats = read_rows(self.train_path, self.audio_root, utts, self.max_train_rows)
        if not self.train_samples:
            raise ConfigError(f"train.data.train_jsonl: no usable rows in {self.train_path} ({train_stats.summary(self.train_path)})")
        self.stats["train"] = train_stats
        cache = self._cache(self.train_samples, "train")
        self._train_set = AQADataset(self.train_samples, self.bad_audio, cache)
        if self.dev_path:
            self.dev_samples, dev_stats = read_rows(self.dev_path, self.audio_root, utts, self.max_dev_rows)
            self.stats["dev"] = dev_stats
            self._dev_set = AQADataset(self.dev_samples, self.bad_audio, self._cache(self.dev_samples, "dev"))

    def _cache(self, samples: Sequence[Sample], split: str) -> FeatureCache | None:
        """The feature cache for a split, or None (audio is read) when absent or incomplete."""
        if not self.feature_cache:
            return None
        if not FeatureCache.present(self.feature_cache):
            log.info("train.data.feature_cache: %s has no feats.scp yet; reading audio (run toolkit.bin.cache_features to build it)", self.feature_cache)
            return None
        cache = FeatureCache(self.feature_cache)
        made_with = cache.info.get("encoder")
        if self.encoder_config is not None and made_with != to_container(self.encoder_config):
            raise ConfigError(
                f"train.data.feature_cache: {Path(self.feature_cache) / CACHE_INFO} was made with encoder {json.dumps(made_with)} "
                f"but this model's encoder is {json.dumps(to_container(self.encoder_config))}; rebuild the cache "
                f"(python -m toolkit.bin.cache_features) or point data.feature_cache elsewhere"
            )
        missing = cache.covers(samples)
        if missing:
            log.warning("train.data.feature_cache: %d audios of the %s set are not in %s; reading audio for this split "
                        "(rerun toolkit.bin.cache_features on it)", missing, split, self.feature_cache)
            return None
        log.info("train.data.feature_cache: %s set reads cached encoder states from %s", split, self.feature_cache)
        self.collator.num_tapped = cache.num_tapped
        return cache

    def uses_cache(self, split: str = "train") -> bool:
        ds = self._train_set if split == "train" else self._dev_set
        return ds is not None and ds.cache is not None

    # ------------------------------------------------------------------------------ loaders
    def _rank_world(self) -> tuple[int, int]:
        trainer = getattr(self, "trainer", None)
        if trainer is None:
            return 0, 1
        return trainer.global_rank, trainer.world_size

    def _loader(self, dataset: AQADataset, sampler: Any) -> DataLoader:
        return DataLoader(
            dataset, batch_sampler=sampler, collate_fn=self.collator, num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0, pin_memory=torch.cuda.is_available(),
            # An own generator: creating the loader iterator must not consume the global RNG, or a
            # resumed run would draw different dropout masks than an uninterrupted one.
            generator=torch.Generator().manual_seed(self.seed),
        )

    def train_dataloader(self) -> DataLoader:
        self.setup("fit")
        rank, world = self._rank_world()
        sampler = BucketBatchSampler(
            [s.duration for s in self.train_samples], self.sample_tokens(),
            batch_size=self.batch_size, seed=self.seed, num_replicas=world, rank=rank,
            bucketing=self.bucketing, bucket_multiplier=self.bucket_multiplier,
            batch_tokens=self.batch_tokens, batch_seconds=self.batch_seconds,
        )
        self._resume_position(sampler)
        self._train_sampler = sampler
        return self._loader(self._train_set, sampler)

    def sample_tokens(self) -> list[int]:
        """Per-sample length estimates for the sampler; with a token budget they count the audio vectors too."""
        if self.batch_tokens is None:
            return [s.est_tokens for s in self.train_samples]
        count = self.collator.vector_count
        return [s.est_tokens + sum(count.seconds(float(a.get("duration") or 0.0)) for a in s.audios)
                for s in self.train_samples]

    def _resume_position(self, sampler: BucketBatchSampler) -> None:
        """After a restart, skip the batches of the current epoch that the checkpoint already trained on.

        Lightning restores its loop progress before it asks for the loader; ``ready`` counts the
        batches of this epoch fetched up to the checkpoint (it also offsets its own batch count by it).
        A checkpoint written at the last batch of epoch ``e`` still says epoch ``e``; the next batch is
        epoch ``e + 1``'s first, so the sampler starts there: the loader iterator (and its workers'
        prefetch) exists before Lightning's own ``set_epoch(e + 1)``, which would come too late.
        """
        trainer = getattr(self, "trainer", None)
        if trainer is None or not trainer.fit_loop.restarting:
            return
        epoch = trainer.current_epoch
        done = trainer.fit_loop.epoch_loop.batch_progress.current.ready
        if done >= len(sampler):
            epoch, done = epoch + 1, 0
        sampler.set_epoch(epoch)
        if done > 0:
            sampler.resume(epoch, done)
            log.info("resuming epoch %d at batch %d of %d", epoch, done, len(sampler))
        else:
            log.info("resuming at the start of epoch %d", epoch)

    def val_dataloader(self) -> DataLoader | list:
        self.setup("validate")
        if self._dev_set is None or not len(self._dev_set):
            return []
        rank, world = self._rank_world()
        sampler = EvalBatchSampler([s.duration for s in self.dev_samples], [s.est_tokens for s in self.dev_samples],
                                   self.eval_batch_size, world, rank)
        return self._loader(self._dev_set, sampler)

    def state_dict(self) -> dict[str, Any]:
        return {"train": self.train_path, "dev": self.dev_path, "seed": self.seed, "batch_size": self.batch_size}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("batch_size") not in (None, self.batch_size) or state.get("seed") not in (None, self.seed):
            log.warning("resuming with batch_size/seed %s/%s but the checkpoint used %s/%s: the data order differs "
                        "from an uninterrupted run", self.batch_size, self.seed, state.get("batch_size"), state.get("seed"))
