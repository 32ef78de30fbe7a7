"""The self-generation stage's settings: the ``selfgen:`` section, and what its shards must agree on.

``toolkit.bin.selfgen`` (the stage) and ``toolkit.bin.launch`` (which decides, from the shard markers and
no model, which shards still need to run) both read them from here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from toolkit.config import build_section, to_container


@dataclass
class SelfGenConfig:
    """The ``selfgen:`` section.

    Args:
        data_dirs: Kaldi data dirs with seed descriptions (one output file per dir).
        output_dir: where the JSONL rows go.
        backend: the chat engine that answers, ``{name: hf|vllm|openai, ...}`` (toolkit/models/chat_engines/);
            ``hf`` and ``vllm`` take the same ``llm:`` node, so ``selfgen.backend.name=vllm`` swaps them.
        prompts_per_clip: instructions drawn per clip (each a separate training row).
        batch_size: conversations per backend call (hf: one padded batch).
        instructions: InstructionPool arguments (categories, files, seed).
        template: how description and instruction become the LLM's user turn.
        system_prompt: optional system turn for the generator.
    """

    data_dirs: list[str]
    output_dir: str
    backend: dict[str, Any]
    prompts_per_clip: int = 1
    batch_size: int = 16
    instructions: dict[str, Any] = field(default_factory=dict)
    template: str = "{seed_description}\n\n{prompt}"
    system_prompt: str | None = None

    def __post_init__(self) -> None:
        if self.prompts_per_clip < 1:
            raise ValueError("selfgen.prompts_per_clip must be >= 1")
        if "{seed_description}" not in self.template or "{prompt}" not in self.template:
            raise ValueError("selfgen.template must contain {seed_description} and {prompt}")


def output_name(data_dir: str, shard: int, nshards: int) -> str:
    from toolkit.shards import output_name as shard_file

    return shard_file(Path(data_dir).name, shard, nshards)


def shard_identity(section: SelfGenConfig, nshards: int) -> dict[str, Any]:
    """What this stage's shards must agree on, computed from the config and the files alone (no model loads).

    The hash covers everything that shapes an answer (backend node, decoding, template, system prompt,
    instruction draw) but not where it runs (``device``) or how fast (``batch_size``); the model hash is the
    backbone's weight files (``llm.model_path`` or ``model_path``)."""
    from toolkit.shards import make_identity

    backend = {k: v for k, v in (to_container(section.backend) or {}).items() if k != "device"}
    llm = backend.get("llm") if isinstance(backend.get("llm"), dict) else {}
    model_path = llm.get("model_path") or backend.get("model_path")
    # The pool by what it draws, not by where its files are: a moved checkout keeps its shards.
    from toolkit.selfgen.instructions import InstructionPool

    config = {"backend": backend, "template": section.template, "system_prompt": section.system_prompt,
              "instructions": InstructionPool(**to_container(section.instructions)).digest(),
              "prompts_per_clip": section.prompts_per_clip,
              "sets": [Path(d).name for d in section.data_dirs]}
    return make_identity("selfgen", config, model_path, nshards)


def shard_plan(cfg: Any, nshards: int) -> tuple[Path, dict[str, Any], list[tuple[Path, str]]]:
    """(marker dir, identity, [(directory, stem) of each output set]) for the launcher and the readers."""
    if "selfgen" not in cfg:
        raise SystemExit("the config has no 'selfgen:' section; see egs/mini/desta25/conf/desta25.yaml for one")
    section = build_section(cfg.selfgen, SelfGenConfig, "selfgen")
    out_dir = Path(section.output_dir)
    return out_dir, shard_identity(section, nshards), [(out_dir, Path(d).name) for d in section.data_dirs]
