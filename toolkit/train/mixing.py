"""Data mixing: several training sources with weights, sampled deterministically and resumably.

    train:
      data:
        sources:
          - {name: librispeech, path: dump/selfgen/libri.jsonl, weight: 3, dev: dump/selfgen/libri_dev.jsonl}
          - {name: esc50, path: dump/selfgen/esc50*.jsonl, weight: 1}

An epoch draws as many samples as the sources hold together, source ``s`` getting its share
``weight_s / sum(weights)`` (largest remainders, so the counts add up). Within a source, samples
come from a stream of seeded permutations of its rows (``seed``, source, pass), epoch ``e`` taking
the next slice of that stream: a small source weighted up repeats only after all its rows were
seen, a large one weighted down is seen in full over several epochs. Every draw is a pure function
of (seed, epoch), so a resumed run sees exactly the batches an uninterrupted one does (the batch
sampler's own resume skips the batches already trained on).

Validation: each source's ``dev`` rows (and ``dev_jsonl``, as source ``dev``) are batched one source
at a time, so the training module logs ``val/loss/<name>`` beside the overall ``val/loss``.
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from toolkit.config import ConfigError
from toolkit.data.datadir import UttIndex
from toolkit.train.data import BucketBatchSampler, EvalBatchSampler, Sample, read_rows

log = logging.getLogger(__name__)

SOURCE_KEYS = ("name", "path", "weight", "dev")


def check_sources(sources: Any, where: str = "train.data.sources") -> list[str]:
    """Every problem of a ``sources`` list, each naming the entry and the fix."""
    if not isinstance(sources, Sequence) or isinstance(sources, (str, bytes)) or not sources:
        return [f"{where}: a non-empty list of {{name, path, weight}} entries, got {sources!r}"]
    problems, names = [], set()
    for i, src in enumerate(sources):
        at = f"{where}[{i}]"
        if not isinstance(src, Mapping):
            problems.append(f"{at}: an entry {{name: ..., path: ..., weight: ...}}, got {src!r}")
            continue
        unknown = sorted(set(src) - set(SOURCE_KEYS))
        if unknown:
            problems.append(f"{at}: unknown key(s) {unknown}; valid keys: {', '.join(SOURCE_KEYS)}")
        if not src.get("path"):
            problems.append(f"{at}.path: missing; a JSONL file, glob or list of them")
        weight = src.get("weight", 1.0)
        if not isinstance(weight, (int, float)) or isinstance(weight, bool) or not weight > 0:
            problems.append(f"{at}.weight: must be a number > 0, got {weight!r}")
        name = source_name(src, i)
        if name in names:
            problems.append(f"{at}.name: '{name}' is used twice; give each source its own name")
        names.add(name)
    return problems


def source_name(src: Mapping[str, Any], index: int) -> str:
    return str(src.get("name") or f"source{index}")


def mix_counts(sizes: Sequence[int], weights: Sequence[float], total: int) -> list[int]:
    """Samples per source in an epoch of ``total``: proportional to the weights, largest remainders."""
    share = [total * w / sum(weights) for w in weights]
    counts = [int(math.floor(x)) for x in share]
    for i in sorted(range(len(share)), key=lambda i: (counts[i] - share[i], i))[: total - sum(counts)]:
        counts[i] += 1
    return [c if n else 0 for c, n in zip(counts, sizes)]


@dataclass
class Mixture:
    """The training samples of every source (concatenated), where each source starts, and its weight."""

    samples: list[Sample]
    names: list[str]
    offsets: list[int]  # source s holds samples[offsets[s] : offsets[s] + sizes[s]]
    sizes: list[int]
    weights: list[float]
    rows: dict[str, int]  # rows read per source (before filtering), for the log and the model card

    def epoch_counts(self) -> list[int]:
        return mix_counts(self.sizes, self.weights, sum(self.sizes))

    def summary(self) -> str:
        counts = self.epoch_counts()
        total = sum(counts) or 1
        return "; ".join(f"{n}: {k} rows kept, weight {w:g} -> {c} samples per epoch ({100 * c / total:.1f} %)"
                         for n, k, w, c in zip(self.names, self.sizes, self.weights, counts))


def read_mixture(sources: Sequence[Mapping[str, Any]], audio_root: str | None, utts: UttIndex,
                 max_rows: int | None = None) -> Mixture:
    """Read every source's rows (filtered as ``read_rows`` does) and log the per-source counts."""
    from toolkit.config import raise_if_problems

    raise_if_problems(check_sources(sources))
    samples: list[Sample] = []
    names, offsets, sizes, weights, rows = [], [], [], [], {}
    for i, src in enumerate(sources):
        name = source_name(src, i)
        got, stats = read_rows(src["path"], audio_root, utts, max_rows)
        if not got:
            raise ConfigError(f"train.data.sources[{i}] ({name}): no usable rows in {src['path']} "
                f"({stats.summary(src['path'])})")
        names.append(name), offsets.append(len(samples)), sizes.append(len(got))
        weights.append(float(src.get("weight", 1.0)))
        rows[name] = stats.rows
        samples += got
    mixture = Mixture(samples, names, offsets, sizes, weights, rows)
    log.info("training mix: %s", mixture.summary())
    return mixture


class WeightedMixSampler(BucketBatchSampler):
    """:class:`BucketBatchSampler` over a weighted draw of the sources (see the module docstring).

    Bucketing, the DDP split and ``resume`` are the parent's; only the epoch's index list differs.
    """

    def __init__(self, mixture: Mixture, batch_size: int, seed: int = 0, **kwargs: Any):
        super().__init__([s.duration for s in mixture.samples], [s.est_tokens for s in mixture.samples],
                         batch_size=batch_size, seed=seed, **kwargs)
        self.mixture = mixture

    def source_stream(self, source: int, start: int, count: int) -> list[int]:
        """Positions ``start .. start+count`` of source ``source``'s stream of seeded permutations."""
        size, offset = self.mixture.sizes[source], self.mixture.offsets[source]
        out, position = [], start
        while len(out) < count:
            passno, within = divmod(position, size)
            perm = list(range(size))
            random.Random(f"{self.seed}/{self.mixture.names[source]}/{passno}").shuffle(perm)
            take = perm[within : within + count - len(out)]
            out += [offset + j for j in take]
            position += len(take)
        return out

    def epoch_order(self, epoch: int, rng: random.Random) -> list[int]:
        order: list[int] = []
        for s, count in enumerate(self.mixture.epoch_counts()):
            order += self.source_stream(s, epoch * count, count)
        if self.shuffle:
            rng.shuffle(order)
        return order

    def __len__(self) -> int:
        return len(self.rank_batches(self.epoch))


class PerSourceEvalBatchSampler(EvalBatchSampler):
    """Validation batches that never mix sources, so a batch's loss belongs to one ``val/loss/<source>``."""

    def __init__(self, samples: Sequence[Sample], source_of: Mapping[str, str], batch_size: int,
                 num_replicas: int = 1, rank: int = 0):
        self.batches = []
        for name in dict.fromkeys(source_of[s.id] for s in samples):
            idx = [i for i, s in enumerate(samples) if source_of[s.id] == name]
            part = EvalBatchSampler([samples[i].duration for i in idx], [samples[i].est_tokens for i in idx],
                                    batch_size, num_replicas, rank)
            self.batches += [[idx[j] for j in batch] for batch in part.batches]


def mixed_datamodule_class():
    """:class:`MixedDataModule`, built on first use (Lightning loads only when training)."""
    from toolkit.train.datamodule import AQADataModule, data_dir_index
    from toolkit.train.data import AQADataset

    class MixedDataModule(AQADataModule):
        """``AQADataModule`` with ``sources`` (weighted) instead of one ``train_jsonl``.

        Args (the ``data:`` YAML section): ``sources`` (see the module docstring), and every
        ``AQADataModule`` argument except ``train_jsonl``.
        """

        def __init__(self, sources: list[dict[str, Any]], dev_jsonl: str | list[str] | None = None, **kwargs: Any):
            super().__init__(train_jsonl=[str(s.get("path")) for s in sources if isinstance(s, Mapping)],
                             dev_jsonl=dev_jsonl, **kwargs)
            self.sources = [dict(s) for s in sources]
            self.mixture: Mixture | None = None
            self.dev_source_of: dict[str, str] = {}

        def setup(self, stage: str | None = None) -> None:
            if self._train_set is not None:
                return
            utts = data_dir_index(self.data_dirs)
            self.mixture = read_mixture(self.sources, self.audio_root, utts, self.max_train_rows)
            self.train_samples = self.mixture.samples
            self.stats["train"] = self.mixture.rows
            self._train_set = AQADataset(self.train_samples, self.bad_audio, self._cache(self.train_samples, "train"))
            dev: list[Sample] = []
            for i, src in enumerate(self.sources):
                if src.get("dev"):
                    got, _ = read_rows(src["dev"], self.audio_root, utts, self.max_dev_rows)
                    dev += got
                    self.dev_source_of.update({s.id: source_name(src, i) for s in got})
            if self.dev_path:
                got, _ = read_rows(self.dev_path, self.audio_root, utts, self.max_dev_rows)
                dev += got
                self.dev_source_of.update({s.id: "dev" for s in got})
            self.dev_samples = dev
            if dev:
                self._dev_set = AQADataset(dev, self.bad_audio, self._cache(dev, "dev"))

        def source_rows(self) -> dict[str, int]:
            """Training rows kept per source (what the model card lists)."""
            self.setup("fit")
            return dict(zip(self.mixture.names, self.mixture.sizes))

        def dev_sources(self) -> list[str]:
            return list(dict.fromkeys(self.dev_source_of.values()))

        def train_dataloader(self):
            self.setup("fit")
            rank, world = self._rank_world()
            sampler = WeightedMixSampler(self.mixture, batch_size=self.batch_size, seed=self.seed, num_replicas=world,
                                         rank=rank, bucketing=self.bucketing, bucket_multiplier=self.bucket_multiplier)
            self._resume_position(sampler)
            self._train_sampler = sampler
            return self._loader(self._train_set, sampler)

        def val_dataloader(self):
            self.setup("validate")
            if self._dev_set is None or not len(self._dev_set):
                return []
            rank, world = self._rank_world()
            sampler = PerSourceEvalBatchSampler(self.dev_samples, self.dev_source_of, self.eval_batch_size, world, rank)
            return self._loader(self._dev_set, sampler)

        def state_dict(self) -> dict[str, Any]:
            return {**super().state_dict(), "sources": self.sources}

    return MixedDataModule
