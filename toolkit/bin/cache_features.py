"""Stage 5 (optional, before training): dump the frozen encoder's tapped states to a kaldiio cache.

    python -m toolkit.bin.cache_features --config conf/desta25.yaml train.data.feature_cache=dump/feats [--batch_size 8]

Every audio of ``train.data.train_jsonl`` and ``train.data.dev_jsonl`` is encoded once; training
then reads the cache instead of decoding audio and re-running the encoder every step, and every
adapter/backbone variant of an ablation with the same encoder reuses it.

Format (``train.data.feature_cache`` = ``<cache>``):

- ``feats.ark`` / ``feats.scp``: one fp16 matrix per audio, ``(valid frames, num_tapped * output_size)``:
  the tapped states concatenated along the feature axis (one ark read per audio instead of one
  per tap), valid frames only (no padding stored).  Kaldi's own matrix format has no fp16, so
  entries use kaldiio's ``numpy`` write function (``.npy`` bytes inside the ark); ``kaldiio.load_mat``
  / ``load_scp`` read them back as fp16 arrays.  Keys are the clips' utt ids
  (:func:`toolkit.train.data.clip_id`: the data dir id; for published DeSTA-AQA5M rows, which come
  without data dirs, the audio path and segment); ``keys.tsv`` maps them to the audio sources for humans.
- ``cache_info.json``: ``num_tapped``, ``output_size``, ``frame_rate``, ``dtype`` and the encoder
  config that made it; training refuses a cache made by another encoder config.
- ``bad_audio.txt``: unreadable clips (``utt_id<TAB>reason``, the reason naming the source); training skips them.

``feats.scp`` is written last (renamed into place): it exists only for a complete cache.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

log = logging.getLogger("toolkit.cache_features")


def main(argv: Sequence[str] | None = None) -> int:
    from toolkit.config import ConfigError, parse_cli, save_resolved, to_container

    def extra(parser):
        parser.add_argument("--batch_size", type=int, default=8, help="audios per encoder forward")
        parser.add_argument("--device", default="auto", help="auto (cuda when available), cpu or cuda")

    args, cfg = parse_cli(argv, description=__doc__.splitlines()[0], extra_args=extra)
    from toolkit.data.section import allow_pickle

    allow_pickle(cfg)  # data.allow_pickle: may pickled ark entries be read (they run code)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    # 1. read and check
    data = to_container(cfg.get("train", {}).get("data")) or {}
    cache_dir = data.get("feature_cache")
    if not cache_dir:
        # The recipe runs this before every training; without a cache dir training reads audio.
        log.info("train.data.feature_cache is not set: nothing to cache, training reads audio "
                 "(set train.data.feature_cache=<dir>, e.g. dump/feats, to encode once and reuse)")
        return 0
    if "encoder" not in cfg:
        raise ConfigError("the config has no 'encoder:' node; cache_features needs the encoder the model will use")
    out = Path(cache_dir)
    if (out / "feats.scp").is_file():
        from toolkit.train.data import FeatureCache

        FeatureCache(out)  # a cache keyed the old way (a hash of the audio path) fails here, naming the fix
        log.info("%s already holds a cache (feats.scp); remove the directory to rebuild it", out)
        return 0

    import kaldiio
    import numpy as np
    import torch

    from toolkit.audio import AudioError, load_audio
    from toolkit.data.datadir import DataDirError, UttIndex
    from toolkit.files import atomic_path, atomic_write_text
    from toolkit.models.encoders import ENCODERS
    from toolkit.train.data import CACHE_INFO, CACHE_KEYS, CACHE_SCP, read_rows

    try:
        utts = UttIndex(data.get("data_dirs") or [])
    except DataDirError as err:
        raise ConfigError(f"train.data.data_dirs: {err}") from None
    audios: dict[str, dict] = {}  # utt id -> the clip (read_rows gave it its id, source, segment and duration)
    for key in ("train_jsonl", "dev_jsonl"):
        if data.get(key):
            samples, _ = read_rows(data[key], data.get("audio_root"), utts)
            for s in samples:
                for a in s.audios:
                    audios.setdefault(a["utt_id"], a)
    order = sorted(audios, key=lambda k: audios[k].get("duration") or 0.0)  # similar lengths per batch: little padding

    # 2. set up
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else "cpu" if args.device == "auto" else args.device)
    encoder = ENCODERS.build(cfg.encoder, "encoder").to(device).eval()
    fx = encoder.feature_extractor()
    out.mkdir(parents=True, exist_ok=True)
    log.info("Stage 5: feature cache: %d audios -> %s (encoder %s, %d taps x %d, fp16, valid frames only)",
             len(order), out, cfg.encoder.get("name"), encoder.num_tapped, encoder.output_size)

    # 3. run; feats.scp is renamed into place last: it exists only for a complete cache
    n_ok = n_bad = 0
    with atomic_path(out / CACHE_SCP) as scp_tmp:
        with kaldiio.WriteHelper(f"ark,scp:{out / 'feats.ark'},{scp_tmp}", write_function="numpy") as writer, \
                open(out / "keys.tsv", "w", encoding="utf-8") as keys, \
                open(out / "bad_audio.txt", "w", encoding="utf-8") as bad:
            for start in range(0, len(order), args.batch_size):
                batch_keys, waves = [], []
                for k in order[start : start + args.batch_size]:
                    a = audios[k]
                    try:
                        waves.append(load_audio(a["audio"], start=a.get("start"), end=a.get("end")))
                        batch_keys.append(k)
                    except AudioError as err:
                        bad.write(f"{k}\t{str(err).replace(chr(9), ' ')}\n")  # the reason names the source
                        n_bad += 1
                if not waves:
                    continue
                with torch.no_grad():
                    enc = encoder(**{k: v.to(device) for k, v in fx(waves).items()})
                states = torch.cat(enc.hidden_states, dim=-1).to(torch.float16).cpu().numpy()
                for i, k in enumerate(batch_keys):
                    writer(k, np.ascontiguousarray(states[i, : int(enc.lengths[i])]))
                    keys.write(f"{k}\t{audios[k]['audio']}\n")
                    n_ok += 1
                log.info("%d / %d audios cached", n_ok + n_bad, len(order))

        # 4. info and resolved config, before the scp
        atomic_write_text(out / CACHE_INFO, json.dumps({
            "num_tapped": encoder.num_tapped, "output_size": encoder.output_size, "frame_rate": encoder.frame_rate,
            "dtype": "float16", "layout": "taps concatenated along the feature axis", "keys": CACHE_KEYS,
            "encoder": to_container(cfg.encoder), "audios": n_ok, "bad_audios": n_bad}, indent=2))
        save_resolved(cfg, out, "config.cache_features.yaml")
    log.info("done: %d audios cached, %d unreadable (listed in %s)", n_ok, n_bad, out / "bad_audio.txt")
    return 0


if __name__ == "__main__":
    sys.exit(main())
