"""An export directory as a ``transformers`` model: ``AutoConfig`` / ``AutoModel`` know our architecture.

One ``config.json`` serves both ``transformers`` and vLLM:

- ``model_type: desta_lalm`` and ``desta``: the export's model config (the same content as its
  ``config.yaml``), from which :class:`DestaLALMModel` rebuilds the model;
- ``text_config``: the backbone LLM's own config, which vLLM sizes its KV cache and context from
  (``config.get_text_config()``, as for its other multimodal models);
- ``architectures``: the class vLLM's plugin registers (``toolkit/serve/vllm_plugin``).

The pair is registered when ``transformers`` is imported after ``import toolkit`` (a post-import hook
in ``toolkit/__init__.py``, so ``import toolkit`` itself stays free of transformers and torch), or at
once when it was already imported; no ``trust_remote_code`` is involved::

    import toolkit
    from transformers import AutoModel
    model = AutoModel.from_pretrained("exp/desta25/export")        # a DestaLALMModel
    model.generate([{"role": "user", "content": "<|AUDIO|>\\nWhat is said?", "audios": [{"audio": "clip.wav"}]}])

The frozen encoder and LLM are read from the paths in ``desta`` (they are not copied into the
export); ``model.safetensors`` holds the trained weights.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from transformers import AutoConfig, AutoModel, PretrainedConfig, PreTrainedModel

MODEL_TYPE = "desta_lalm"
# Copied from toolkit.serve.vllm_plugin.ARCHITECTURE (models/ may not import serve/); a test keeps them equal.
VLLM_ARCHITECTURE = "DestaLALMForConditionalGeneration"
CONFIG_JSON = "config.json"


class DestaLALMConfig(PretrainedConfig):
    """``config.json`` of an export.

    Args:
        desta: the model config (``encoder``, ``adapter``, ``llm``, ``transcriber``, ``lalm``, ``generation``).
        text_config: the backbone LLM's HF config (a dict or config), for vLLM and for readers.
    """

    model_type = MODEL_TYPE
    sub_configs = {"text_config": AutoConfig}

    def __init__(self, desta: Mapping[str, Any] | None = None, text_config: Any = None, **kwargs: Any):
        self.desta = dict(desta or {})
        if isinstance(text_config, Mapping):
            fields = dict(text_config)
            text_config = AutoConfig.for_model(fields.pop("model_type"), **fields) if "model_type" in fields else None
        self.text_config = text_config
        super().__init__(**kwargs)

    def get_text_config(self, *args: Any, **kwargs: Any) -> PretrainedConfig:
        return self.text_config if self.text_config is not None else self


class DestaLALMModel(PreTrainedModel):
    """A :class:`toolkit.models.lalm.LALM` behind the ``PreTrainedModel`` interface.

    ``from_pretrained`` rebuilds it exactly as ``LALM.from_pretrained`` does (the same weights, the
    same ``generate``); ``self.lalm`` is the model itself.
    """

    config_class = DestaLALMConfig
    base_model_prefix = "lalm"
    main_input_name = "conversations"

    def __init__(self, config: DestaLALMConfig, lalm: Any = None):
        super().__init__(config)
        if lalm is None:  # from the config alone: frozen parts from their paths, trained weights untrained
            from toolkit.models.lalm import LALM

            lalm = LALM.from_config(config.desta)
        self.lalm = lalm

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | Path, *args: Any, config: Any = None,
                        device: str | None = None, device_map: Any = None, overrides: Sequence[str] = (),
                        **kwargs: Any) -> "DestaLALMModel":
        """Load an export directory: ``device`` (or a single-device ``device_map``) places every part."""
        from toolkit.models.lalm import LALM

        root = Path(pretrained_model_name_or_path)
        if not root.is_dir():
            raise FileNotFoundError(f"{root}: not a local export directory. Exports reference their encoder and LLM by "
                                    f"path; download the whole folder first (huggingface-cli download "
                                        f"REPO --local-dir DIR)")
        if isinstance(device_map, Mapping):
            raise ValueError("device_map: a DeSTA export loads on one device; pass device='cuda' (or "
                "device_map='cuda')")
        place = device or (device_map if isinstance(device_map, str) and device_map != "auto" else None) or "cpu"
        if not isinstance(config, DestaLALMConfig):
            config = DestaLALMConfig.from_pretrained(root)
        return cls(config, lalm=LALM.from_pretrained(root, overrides=overrides, device=place))

    def generate(self, messages: Any, generation: Any = None, return_details: bool = False) -> Any:
        """``LALM.generate``: answer one conversation or a batch of them."""
        return self.lalm.generate(messages, generation=generation, return_details=return_details)

    def forward(self, conversations: Any, features: Any = None, encoder_output: Any = None) -> dict[str, Any]:
        """``LALM.forward``: the training loss of tokenized conversations."""
        return self.lalm(conversations, features=features, encoder_output=encoder_output)

    def save_pretrained(self, save_directory: str | Path, *args: Any, **kwargs: Any) -> None:
        """An export directory: the LALM's files plus this ``config.json``."""
        out = self.lalm.save_pretrained(save_directory)
        write_config_json(out)


def hf_config_dict(model_config: Mapping[str, Any], llm_config: Mapping[str, Any] | None) -> dict[str, Any]:
    """The ``config.json`` content of an export (see the module docstring)."""
    config = DestaLALMConfig(desta=dict(model_config), text_config=llm_config, architectures=[VLLM_ARCHITECTURE])
    return config.to_dict()


def write_config_json(export_dir: str | Path) -> Path:
    """(Re)write ``<export_dir>/config.json`` from its ``config.yaml`` and the LLM's own ``config.json``."""
    from toolkit.config import load_config, to_container

    root = Path(export_dir)
    cfg = to_container(load_config(root / "config.yaml"))
    model_config = {k: cfg[k] for k in ("encoder", "adapter", "llm", "transcriber", "lalm", "generation") if k in cfg}
    llm_path = (cfg.get("llm") or {}).get("model_path")
    llm_json = Path(str(llm_path)).expanduser() / CONFIG_JSON if llm_path else None
    llm_config = json.loads(llm_json.read_text()) if llm_json is not None and llm_json.is_file() else None
    path = root / CONFIG_JSON
    path.write_text(json.dumps(hf_config_dict(model_config, llm_config), indent=2, default=str) + "\n")
    return path


def register() -> None:
    """Make ``AutoConfig``/``AutoModel`` resolve ``model_type: desta_lalm`` (idempotent)."""
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    if MODEL_TYPE not in CONFIG_MAPPING:
        AutoConfig.register(MODEL_TYPE, DestaLALMConfig)
    try:
        AutoModel.register(DestaLALMConfig, DestaLALMModel)
    except ValueError:  # already registered (a second call)
        pass
