"""The instruction pool: prompts drawn at random for self-generation (DeSTA2.5's "instruction pool").

Instructions live in ``toolkit/selfgen/instructions/<category>.txt``, one per line (``#`` lines are
comments). Which categories a clip may draw from depends on what the clip is, so a dog bark is not
asked for its speaker's accent:

    speech -> general, content, speaker, paralinguistic, reasoning, format
    sound  -> general, sound, reasoning, format
    music  -> general, music, reasoning, format

The draw for a clip depends only on ``(seed, utt_id)``, never on order or on which shard runs it, so
a resumed or sharded run asks exactly the same prompts.
"""

from __future__ import annotations

import random
from pathlib import Path

from toolkit.jsonl import stable_hash

INSTRUCTIONS_DIR = Path(__file__).resolve().parent / "instructions"

# clip category (metadata "category") -> instruction categories it may draw from
TASK_CATEGORIES: dict[str, tuple[str, ...]] = {
    "speech": ("general", "content", "speaker", "paralinguistic", "reasoning", "format"),
    "sound": ("general", "sound", "reasoning", "format"),
    "music": ("general", "music", "reasoning", "format"),
}


def available_categories(directory: Path = INSTRUCTIONS_DIR) -> list[str]:
    """The instruction categories of a folder (by default the ones shipped with the toolkit)."""
    return sorted(p.stem for p in Path(directory).glob("*.txt"))


def read_instructions(path: str | Path) -> list[str]:
    """Instructions of one file, blank and ``#`` lines skipped, duplicates dropped (order kept)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"instruction file not found: {path}")
    lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    return list(dict.fromkeys(line for line in lines if line and not line.startswith("#")))


class InstructionPool:
    """Instructions grouped by category, sampled deterministically per utterance.

    Args:
        categories: which shipped categories to load (default: all of ``instructions/*.txt``).
        files: extra instruction files; each becomes a category named after its file stem and is
            drawn for every clip type.
        seed: changes every draw; the same (seed, utt_id) always gives the same instruction.
        directory: a folder of ``<category>.txt`` files that replace the shipped files of the same name (a
            corpus's own questions; a category keeps its meaning above, so a sound clip still draws from sound.txt,
            and a category the folder lacks comes from the shipped pool).
        category_weights: draw a category first, with these relative weights (a category not named weighs 1),
            then an instruction from it; null draws uniformly over all of a clip's instructions. Weighting the
            attribute categories (speaker, music, sound) makes more answers name what the audio shows.
    """

    def __init__(self, categories: list[str] | None = None, files: list[str] | None = None, seed: int = 0,
                 category_weights: dict[str, float] | None = None, directory: str | None = None):
        own = Path(directory) if directory is not None else None
        if own is not None and not own.is_dir():
            raise FileNotFoundError(f"selfgen.instructions.directory: {own} is not a folder (give a folder of "
                                    f"<category>.txt files, relative to where the stage runs, or leave it unset)")
        files_of = {c: INSTRUCTIONS_DIR / f"{c}.txt" for c in available_categories()}
        files_of.update({c: own / f"{c}.txt" for c in available_categories(own)} if own is not None else {})
        shipped = sorted(files_of)
        chosen = list(categories) if categories is not None else shipped
        unknown = sorted(set(chosen) - set(shipped))
        if unknown:
            raise ValueError(f"unknown instruction categories {unknown}; available: {', '.join(shipped)} "
                             f"(in {INSTRUCTIONS_DIR}{'' if own is None else ' and ' + str(own)}); "
                             f"add your own with files: [path.txt]")
        self.seed = seed
        self.category_weights = dict(category_weights) if category_weights is not None else None
        self.by_category: dict[str, list[str]] = {c: read_instructions(files_of[c]) for c in chosen}
        self.extra_categories: list[str] = []
        for f in files or []:
            name = Path(f).stem
            self.by_category[name] = read_instructions(f)
            self.extra_categories.append(name)
        if not any(self.by_category.values()):
            raise ValueError("the instruction pool is empty: give at least one category or file with instructions")
        unknown = sorted(set(self.category_weights or ()) - set(self.by_category))
        if unknown:
            raise ValueError(f"selfgen.instructions.category_weights: unknown categories {unknown}; loaded: "
                             f"{', '.join(self.by_category)}")
        if any(float(w) < 0 for w in (self.category_weights or {}).values()):
            raise ValueError("selfgen.instructions.category_weights: weights must be >= 0")

    def categories_for(self, category_hint: str | None) -> list[str]:
        """Instruction categories a clip of type ``category_hint`` draws from (loaded ones only).

        An unknown or missing hint draws from every loaded category; if none of the hint's categories
        is loaded, every loaded category is used rather than failing.
        """
        loaded = [c for c in self.by_category if self.by_category[c]]
        if category_hint not in TASK_CATEGORIES:
            return loaded
        wanted = [c for c in loaded if c in TASK_CATEGORIES[category_hint] or c in self.extra_categories]
        return wanted or loaded

    def pool(self, category_hint: str | None = None) -> list[str]:
        """Every instruction a clip of type ``category_hint`` may get (no duplicates)."""
        return list(dict.fromkeys(i for c in self.categories_for(category_hint) for i in self.by_category[c]))

    def sample(self, utt_id: str, category_hint: str | None = None) -> str:
        """The instruction for ``utt_id``: uniform over its pool, fixed by (seed, utt_id)."""
        rng = random.Random(stable_hash(f"{self.seed}\x00{utt_id}"))
        if self.category_weights is None:
            return rng.choice(self.pool(category_hint))
        categories = self.categories_for(category_hint)
        weights = [float(self.category_weights.get(c, 1.0)) for c in categories]
        if not any(weights):
            raise ValueError(f"selfgen.instructions.category_weights: every category of a {category_hint} clip "
                             f"({', '.join(categories)}) weighs 0")
        category = rng.choices(categories, weights=weights)[0]
        return rng.choice(self.by_category[category])

    def __len__(self) -> int:
        return len(self.pool(None))

    def digest(self) -> str:
        """SHA-256 of what can be drawn (every category's instructions, in order) and how: the draw's identity
        whatever folder the files were read from."""
        from toolkit.shards import canonical_sha256

        return canonical_sha256({"seed": self.seed, "weights": self.category_weights, "by_category": self.by_category,
                                 "extra": self.extra_categories})
