"""Judges: hf on a tiny random Llama with a real tokenizer, openai against a local http.server."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from toolkit.config import cache_dir
from toolkit.registry import ConfigKeyError
from toolkit.score.base import score_rows
from toolkit.score.judges import JudgeError, build_judge
from toolkit.score.judges import prompts
from toolkit.score.judges.base import Judge, JudgeProtocol, protocol_note
from toolkit.score.judges.prompts import get_prompt

CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def tiny_model_dir(tmp_path_factory) -> Path:
    """The shared tiny-llama when another helper prepared it, else a tiny Llama + a small real tokenizer."""
    shared = cache_dir() / "models" / "tiny-llama"
    if (shared / "config.json").is_file():
        return shared
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    out = tmp_path_factory.mktemp("tiny_judge")
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    corpus = ["Judgement: correct incorrect Explanation: the answer is right or wrong. Result: YES NO",
              "system user assistant Question Ground truth answer Model generated response dog cat"] * 20
    tok.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=300, special_tokens=specials,
                                                        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    from tokenizers import decoders

    tok.decoder = decoders.ByteLevel()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    fast.chat_template = CHATML
    fast.save_pretrained(out)
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(fast), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
                      eos_token_id=fast.eos_token_id, pad_token_id=fast.pad_token_id)
    LlamaForCausalLM(cfg).save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def hf_judge(tmp_path_factory):
    return build_judge({"name": "hf", "model_path": str(tiny_model_dir(tmp_path_factory)), "batch_size": 2,
                        "max_new_tokens": 4})


def test_hf_judge_batched_equals_alone(hf_judge):
    convs = [[{"role": "system", "content": "You are a judge."}, {"role": "user", "content": f"Is {w} right?"}]
             for w in ("dog", "a much longer question about the cat", "x")]
    batched = hf_judge.generate(convs)
    alone = [hf_judge.generate([c])[0] for c in convs]
    assert len(batched) == 3 and all(isinstance(a, str) for a in batched)
    assert batched == alone  # greedy + left padding: batching changes nothing
    assert hf_judge.name.startswith("hf:")


def test_hf_judge_in_judge_scorer(hf_judge):
    rows = [{"id": "u1", "dataset": "d", "metric": "judge", "prompt": "Q? (a) dog (b) cat", "reference": "(a) dog",
             "prediction": "dog", "judge_prompt": "sakura"}]
    res = score_rows(rows, "sakura", judge=hf_judge)
    assert res[0].judge == hf_judge.name and res[0].count == 1
    assert "judge_output" in rows[0]  # a random model rarely follows the format; the row is kept and counted
    assert res[0].value in (0.0, 100.0)


def test_hf_judge_samples_with_the_protocol(hf_judge):
    protocol = JudgeProtocol(samples=3, temperature=0.5, top_p=0.95, max_tokens=3, aggregate="mean")
    convs = [[{"role": "user", "content": f"Rate answer {w}."}] for w in ("one", "two")]
    first = hf_judge.sample(convs, protocol)
    assert [len(a) for a in first] == [3, 3] and all(isinstance(t, str) for a in first for t in a)
    assert hf_judge.sample(convs, protocol) == first  # seeded: a rerun draws the same samples


def test_hf_judge_asks_a_greedy_protocol_greedily(hf_judge):
    # SAKURA's protocol (temperature 0, top_p 0.9) does not sample: a local judge gives its greedy answer
    convs = [[{"role": "user", "content": "Is dog right?"}], [{"role": "user", "content": "Is cat right?"}]]
    sakura = get_prompt("sakura").protocol
    assert hf_judge.ask(convs, sakura) == hf_judge.generate(convs)
    assert protocol_note(hf_judge, sakura).endswith("decodes greedily (a local judge); the official request is "
                                                    "1 answer, temperature 0.0, top_p 0.9")


class GreedyOnly(Judge):
    name = "greedy:only"

    def generate(self, conversations):
        return [f"answer {i}" for i, _ in enumerate(conversations)]


def test_protocol_is_one_mechanism_for_every_benchmark():
    sakura, ifeval_acc, qa = (get_prompt(n).protocol for n in ("sakura", "speech_ifeval_accuracy", "voicebench_qa"))
    assert (sakura.samples, sakura.request, sakura.aggregate) == (1, {"temperature": 0.0, "top_p": 0.9}, None)
    assert (ifeval_acc.samples, ifeval_acc.request) == (1, {})  # the official call sends no sampling field
    assert qa == JudgeProtocol(samples=3, temperature=0.5, top_p=0.95, max_tokens=1024, aggregate="majority")
    assert ifeval_acc.describe() == "1 answer, no sampling fields (API defaults)"
    assert qa.describe() == "3 samples, temperature 0.5, top_p 0.95, max_tokens 1024, majority"
    judge = GreedyOnly()
    convs = [[{"role": "user", "content": "a"}], [{"role": "user", "content": "b"}]]
    assert judge.ask(convs, sakura) == ["answer 0", "answer 1"]  # ask: the one-answer case of sample
    assert judge.sample(convs, ifeval_acc) == [["answer 0"], ["answer 1"]]
    with pytest.raises(JudgeError, match="cannot sample answers.*3 samples, temperature 0.5"):
        judge.sample(convs, qa)
    with pytest.raises(JudgeError, match="one-answer protocol"):
        judge.ask(convs, qa)
    with pytest.raises(JudgeError, match="need a temperature > 0"):
        JudgeProtocol(samples=3, temperature=0.0, aggregate="mean")
    with pytest.raises(JudgeError, match="need an aggregate"):
        JudgeProtocol(samples=2, temperature=0.5)
    with pytest.raises(JudgeError, match="aggregate must be one of mean, majority"):
        JudgeProtocol(aggregate="median")


def test_bad_protocol_in_the_prompt_file_names_the_prompt(monkeypatch, tmp_path):
    bad = tmp_path / "judge_prompts.yaml"
    bad.write_text("mine:\n  parser: yes_no\n  user: '{prediction}'\n  protocol: {samples: 3, temprature: 0.5}\n")
    monkeypatch.setattr(prompts, "PROMPTS_FILE", bad)
    prompts.load_prompts.cache_clear()
    try:
        with pytest.raises(ValueError, match=r"prompt 'mine' has protocol .*temprature.*must be a mapping of"):
            prompts.load_prompts()
        bad.write_text("mine:\n  parser: yes_no\n  user: '{prediction}'\n  protocol: {samples: 3, temperature: 0.5}\n")
        with pytest.raises(ValueError, match="prompt 'mine': judge protocol: 3 samples need an aggregate"):
            prompts.load_prompts()
    finally:
        prompts.load_prompts.cache_clear()


def test_hf_judge_refuses_missing_dir(tmp_path):
    from toolkit.models.loading import AssetMissingError

    with pytest.raises(AssetMissingError):
        build_judge({"name": "hf", "model_path": str(tmp_path / "absent")})


def test_unknown_key_and_no_judge():
    assert build_judge(None) is None and build_judge({"name": None}) is None
    with pytest.raises(ConfigKeyError, match="temprature"):
        build_judge({"name": "openai", "model": "m", "temprature": 0})


def test_vllm_judge_names_the_extra():
    try:
        import vllm  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match=r"desta-toolkit\[vllm\]"):
            build_judge({"name": "vllm", "model_path": "/nonexistent"})
    else:
        with pytest.raises(JudgeError, match="not a local directory"):
            build_judge({"name": "vllm", "model_path": "/nonexistent"})


class _Handler(BaseHTTPRequestHandler):
    """OpenAI-compatible stub: fails the first request with 503 (to exercise retry), then answers."""

    state = {"requests": 0, "auth": None, "max_in_flight": 0, "in_flight": 0, "bodies": []}
    lock = threading.Lock()

    def do_POST(self):  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with self.lock:
            self.state["requests"] += 1
            self.state["bodies"].append(body)
            n = self.state["requests"]
            self.state["auth"] = self.headers.get("Authorization")
            self.state["in_flight"] += 1
            self.state["max_in_flight"] = max(self.state["max_in_flight"], self.state["in_flight"])
        try:
            if self.path != "/v1/chat/completions":
                self._send(404, {"error": "not found"})
            elif n == 1:
                self._send(503, {"error": "busy"})
            elif body["model"] == "bad-model":
                self._send(400, {"error": "model not found"})
            else:
                question = body["messages"][-1]["content"]
                answer = {"role": "assistant", "content": f"Result: YES ({question[-3:]})"}
                self._send(200, {"choices": [{"message": answer}]})
        finally:
            with self.lock:
                self.state["in_flight"] -= 1

    def _send(self, code, obj):
        data = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture()
def server():
    _Handler.state.update(requests=0, auth=None, max_in_flight=0, in_flight=0, bodies=[])
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}/v1"
    srv.shutdown()
    srv.server_close()
    thread.join(timeout=5)


def test_openai_judge_retries_orders_and_limits_concurrency(server, monkeypatch):
    monkeypatch.setenv("DESTA_TEST_KEY", "sk-test")
    judge = build_judge({"name": "openai", "model": "gpt-test", "base_url": server, "api_key_env": "DESTA_TEST_KEY",
                         "max_concurrency": 2, "backoff_s": 0.01, "max_retries": 3, "timeout_s": 5})
    convs = [[{"role": "user", "content": f"q{i:02d}"}] for i in range(6)]
    answers = judge.generate(convs)
    assert answers == [f"Result: YES (q{i:02d})" for i in range(6)]  # in order, despite the 503 retry
    assert _Handler.state["requests"] == 7 and _Handler.state["auth"] == "Bearer sk-test"
    assert _Handler.state["max_in_flight"] <= 2
    assert judge.name == f"openai:gpt-test@{server}"


def test_openai_judge_samples_with_the_protocol(server):
    judge = build_judge({"name": "openai", "model": "gpt-test", "base_url": server, "api_key_env": "",
                         "backoff_s": 0.01})
    protocol = JudgeProtocol(samples=3, temperature=0.5, top_p=0.95, max_tokens=1024, aggregate="majority")
    answers = judge.sample([[{"role": "user", "content": "q01"}], [{"role": "user", "content": "q02"}]], protocol)
    assert answers == [["Result: YES (q01)"] * 3, ["Result: YES (q02)"] * 3]
    sent = _Handler.state["bodies"][1:]  # the first request got the stub's 503 and was retried
    assert len(sent) == 6 and all((b["temperature"], b["top_p"], b["max_tokens"]) == (0.5, 0.95, 1024) for b in sent)


def test_openai_judge_client_error_fails_at_once(server):
    judge = build_judge({"name": "openai", "model": "bad-model", "base_url": server, "api_key_env": "",
                         "backoff_s": 0.01, "max_retries": 2, "timeout_s": 5})
    with pytest.raises(JudgeError, match="HTTP 400"):
        judge.generate([[{"role": "user", "content": "a"}], [{"role": "user", "content": "b"}]])


def test_openai_judge_gives_up_on_dead_endpoint():
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    judge = build_judge({"name": "openai", "model": "m", "base_url": f"http://127.0.0.1:{port}/v1", "api_key_env": "",
                         "backoff_s": 0.01, "max_retries": 1, "timeout_s": 2})
    with pytest.raises(JudgeError, match="gave up after 2 tries"):
        judge.generate([[{"role": "user", "content": "a"}]])
