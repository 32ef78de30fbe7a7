"""Make an export directory loadable by ``vllm.LLM(model=dir)`` and ``vllm serve dir``.

An export holds ``config.yaml`` (how to rebuild the model) and ``model.safetensors`` (adapter
weights only). vLLM also wants, in the same folder:

- ``config.json``: the export's HF config (``toolkit/models/hf_auto.py``, also what
  ``transformers.AutoModel`` reads), whose ``architectures`` names our model and whose
  ``text_config`` is the *LLM's* config, so vLLM sizes the KV cache, context length and vocabulary
  from the backbone it actually runs;
- the tokenizer files of the LLM;
- ``chat_template.jinja``: the chat template our ``ChatFormatter`` renders with (``llm.chat_template``,
  else the tokenizer's), with the export's ``lalm.system_prompt`` put first when a conversation
  has no system turn, so ``vllm serve dir`` builds the prompt ``LALM.generate`` builds;
- ``generation_config.json``: the LLM's (its end-of-turn ids stop generation) with the export's
  ``generation:`` settings as vLLM's request defaults (greedy is ``temperature: 0`` there).

The files are copied, not linked, so the folder can be moved with its references in config.yaml.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from toolkit.serve.vllm_plugin import ARCHITECTURE


class UnsupportedExportError(ValueError):
    """An export the vLLM plugin does not serve (a fine-tuned LLM); the message names --backend hf."""


def check_servable(cfg: dict[str, Any]) -> None:
    """Refuse, before vLLM starts, an export the plugin cannot load (every encoder and adapter declares its counts)."""
    if (cfg.get("llm") or {}).get("frozen") is False:
        raise UnsupportedExportError("llm.frozen: false: this export fine-tuned the LLM's own weights, which the vLLM plugin "
                                     "does not load (it reads the base LLM from llm.model_path); serve it with --backend hf")


TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja",
                   "vocab.json", "merges.txt", "tokenizer.model", "added_tokens.json", "generation_config.json")


def llm_dir(export_dir: str | Path) -> Path:
    """The LLM directory an export references (``llm.model_path`` in its config.yaml)."""
    from toolkit.config import load_config, to_container

    root = Path(export_dir)
    if not (root / "config.yaml").is_file():
        raise FileNotFoundError(f"{root} is not an exported model (no config.yaml); run the export stage (./run.sh --stage 8)")
    cfg = to_container(load_config(root / "config.yaml"))
    llm = cfg.get("llm") or {}
    if llm.get("name") != "hf_causal_lm" or not llm.get("model_path"):
        raise ValueError(f"{root}/config.yaml: llm must be hf_causal_lm with a local model_path to serve with vLLM, got {llm}")
    path = Path(str(llm["model_path"])).expanduser()
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"{root}/config.yaml: llm.model_path {path} has no config.json; point it at a local HF model directory")
    return path


def chat_template(cfg: dict[str, Any], tokenizer_dir: Path) -> str:
    """The Jinja chat template ``ChatFormatter`` renders with, the system prompt built in."""
    from transformers import AutoTokenizer

    from toolkit.models.llms.hf_causal_lm import PLAIN_CHAT_TEMPLATE

    template = cfg["llm"].get("chat_template")
    if template is None:
        template = getattr(AutoTokenizer.from_pretrained(str(tokenizer_dir)), "chat_template", None) or PLAIN_CHAT_TEMPLATE
    system_prompt = (cfg.get("lalm") or {}).get("system_prompt")
    if not system_prompt:
        return template
    # json.dumps gives a quoted literal Jinja reads back unchanged (its strings take the same escapes);
    # non-ASCII stays literal, since Jinja would turn a \\ud83d\\ude00 escape pair into two lone surrogates.
    first = ("{%- if not messages or messages[0]['role'] != 'system' -%}"
             f"{{%- set messages = [{{'role': 'system', 'content': {json.dumps(system_prompt, ensure_ascii=False)}}}] + messages -%}}"
             "{%- endif -%}\n")
    return first + template


def generation_defaults(cfg: dict[str, Any]) -> dict[str, Any]:
    """The export's ``generation:`` as ``generation_config.json`` fields vLLM reads as request defaults.

    All sampling fields are written, so none of the LLM's own (e.g. Llama-3.1's top_p 0.9) leaks into
    a request that samples; ``top_k: 0`` means no limit for both HF and vLLM.
    """
    from toolkit.models.generation import GenerationSettings

    settings = GenerationSettings(**(cfg.get("generation") or {}))
    greedy = settings.vllm_kwargs()
    return {"max_new_tokens": settings.max_new_tokens, "repetition_penalty": settings.repetition_penalty,
            "temperature": greedy["temperature"], "top_p": settings.top_p, "top_k": settings.top_k}


def prepare_vllm_dir(export_dir: str | Path) -> Path:
    """Write ``config.json``, the LLM's tokenizer files, the chat template and generation defaults into ``export_dir``."""
    from toolkit.config import load_config, to_container

    root = Path(export_dir)
    source = llm_dir(root)
    cfg = to_container(load_config(root / "config.yaml"))
    # One config.json for transformers (AutoModel) and vLLM: the LLM's config travels as its text_config.
    from toolkit.models.hf_auto import VLLM_ARCHITECTURE, write_config_json

    if VLLM_ARCHITECTURE != ARCHITECTURE:
        raise RuntimeError(f"toolkit.models.hf_auto.VLLM_ARCHITECTURE {VLLM_ARCHITECTURE!r} != "
            f"{ARCHITECTURE!r}; make them equal")
    write_config_json(root)
    for name in TOKENIZER_FILES:
        if (source / name).is_file():
            shutil.copyfile(source / name, root / name)
    (root / "chat_template.jinja").write_text(chat_template(cfg, source))
    gen_path = root / "generation_config.json"
    generation = json.loads(gen_path.read_text()) if gen_path.is_file() else {}
    generation.pop("min_p", None)  # a sampling default of the LLM's that the export does not set
    generation.update(generation_defaults(cfg))
    gen_path.write_text(json.dumps(generation, indent=2) + "\n")
    return root
