"""Our LALM as an out-of-tree vLLM model (issue 9, part 1).

Reads in this order:

1. ``prepare``: ``prepare_vllm_dir(export_dir)`` adds what vLLM needs beside an export
   (``config.json`` naming our architecture, the LLM's tokenizer, a chat template with the export's
   system prompt, its decoding defaults), and ``check_servable`` refuses what the plugin cannot load.
2. ``processing``: what the plugin computes, without vLLM (chat text -> our own piecewise tokenization,
   each audio's declared number of placeholder positions, transcripts spliced after them; the audio
   vectors), through the functions ``LALM.generate`` uses.
3. ``model``: vLLM's multimodal processor and model classes around ``processing`` (our encoder + adapter,
   the LLM as vLLM's own registered implementation).
4. ``lora``: trained LoRA pairs merged into the LLM's base weights while vLLM loads them.
5. ``middleware``: what ``python -m toolkit.bin.serve --backend vllm`` puts in front of vLLM's own
   OpenAI server (the hf server's request checks, ASR transcripts in and out, decoding defaults).

vLLM finds the model through the ``vllm.general_plugins`` entry point, which calls ``register``::

    entry_points={"vllm.general_plugins": ["desta_lalm = toolkit.serve.vllm_plugin:register"]}

Nothing here imports vLLM at module level, so the package imports without the ``vllm`` extra.
"""

from __future__ import annotations

ARCHITECTURE = "DestaLALMForConditionalGeneration"


def register() -> None:
    """Tell vLLM's model registry where our architecture lives (lazily imported by vLLM)."""
    from vllm import ModelRegistry

    from toolkit.models.hf_auto import register as register_hf_config

    register_hf_config()  # config.json's model_type (desta_lalm) must resolve in every vLLM process

    if ARCHITECTURE not in ModelRegistry.get_supported_archs():
        ModelRegistry.register_model(ARCHITECTURE, "toolkit.serve.vllm_plugin.model:DestaLALMForConditionalGeneration")


__all__ = ["ARCHITECTURE", "register"]
