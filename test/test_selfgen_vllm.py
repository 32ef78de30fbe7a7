"""The ``vllm`` chat engine, as self-generation and the ``vllm`` judge use it: greedy fp32 equals ``hf``.

Runs where vLLM is installed (``bash tools/install.sh --vllm``); one engine start, 60-80 s on 2 cores.
"""

from __future__ import annotations

import os

import pytest

pytestmark = pytest.mark.vllm
pytest.importorskip("vllm", reason="vLLM is not installed: bash tools/install.sh --vllm")

from toolkit.assets import asset_dir  # noqa: E402
from toolkit.models.chat_engines import CHAT_ENGINES  # noqa: E402

os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")

SEEDS = ["[00:00-00:02] Excuse me? (Emotion: Neutral, Gender: Female, Duration: 2s)",
         "[00:00-00:05] A dog barks twice. (Sound: dog bark, Duration: 5s)",
         "[00:00-00:03] Bonjour tout le monde. (Language: French, Duration: 3s)"]


def test_vllm_backend_and_judge_equal_hf_greedy_fp32():
    from toolkit.score.judges.vllm import VLLMJudge

    convs = [[{"role": "system", "content": "Focus on the audio clips and instructions."},
              {"role": "user", "content": f"{seed}\nDescribe the audio in one sentence."}] for seed in SEEDS]
    generation = {"max_new_tokens": 24}
    llm = {"name": "hf_causal_lm", "model_path": str(asset_dir("smollm2")), "dtype": "float32"}
    hf = [g.text for g in CHAT_ENGINES.build({"name": "hf", "llm": llm, "generation": generation}, "t").generate(convs)]
    # One engine (a second would double the test): the judge builds the chat engine it answers with.
    judge = VLLMJudge(llm["model_path"], max_new_tokens=24, dtype="float32", max_model_len=1024, gpu_memory_utilization=0.3)
    answers = judge.engine.generate(convs)
    assert [g.text for g in answers] == hf and all(hf)
    assert all(0 < g.num_tokens <= 24 for g in answers)
    assert judge.generate(convs) == hf and judge.name == "vllm:smollm2-135m-instruct"
