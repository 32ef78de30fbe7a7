"""Self-generation runner: sharding, resume after a kill, truncation marks, AQA5M-compatible rows."""

import json

import pytest

from toolkit.jsonl import read_done_ids
from toolkit.models.generation import Generation
from toolkit.models.chat_engines import CHAT_ENGINES, ChatEngine
from toolkit.selfgen.runner import SelfGenItem, run_selfgen, shard_of


class Killed(RuntimeError):
    pass


class EchoBackend(ChatEngine):
    """Answers with the prompt's last line; dies after ``die_after`` calls (a simulated kill)."""

    def __init__(self, die_after=None):
        self.calls, self.die_after = 0, die_after

    def generate(self, conversations, settings=None):
        self.calls += 1
        if self.die_after is not None and self.calls > self.die_after:
            raise Killed()
        return [Generation(text="answer: " + c[-1]["content"].splitlines()[-1], num_tokens=3,
                           finish_reason="length" if "long" in c[-1]["content"] else "stop") for c in conversations]

    def description(self):
        return {"backend": "echo"}


def items(n=20):
    return [SelfGenItem(id=f"utt{i:03d}-p0", utt_id=f"utt{i:03d}", dataset="mini", audio={"audio": f"/a/{i}.wav", "text": "hi"},
                        seed_description="[00:00-00:01] hi (Gender: Female, Duration: 1s)", prompt=("long " if i == 3 else "") + f"question {i}")
            for i in range(n)]


def rows(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_kill_then_rerun_writes_every_id_exactly_once(tmp_path):
    out = tmp_path / "train.jsonl"
    with pytest.raises(Killed):
        run_selfgen(items(), EchoBackend(die_after=2), out, batch_size=4, progress=False)
    assert len(rows(out)) == 8  # two finished batches survived the kill
    # a kill in the middle of a write leaves a partial line: the rerun must cut it, not choke on it
    with open(out, "a") as f:
        f.write('{"id": "utt019-p0", "respo')
    stats = run_selfgen(items(), EchoBackend(), out, batch_size=4, progress=False)
    ids = [r["id"] for r in rows(out)]
    assert sorted(ids) == sorted(it.id for it in items()) and len(ids) == len(set(ids))
    assert stats["already_done"] == 8 and stats["written"] == 12
    assert run_selfgen(items(), EchoBackend(die_after=0), out, batch_size=4, progress=False)["written"] == 0


def test_rows_are_aqa5m_compatible_and_truncation_marked(tmp_path):
    out = tmp_path / "x.jsonl"
    run_selfgen(items(5), EchoBackend(), out, batch_size=2, progress=False)
    by_id = {r["id"]: r for r in rows(out)}
    row = by_id["utt001-p0"]
    assert {"id", "dataset", "seed_description", "prompt", "response", "messages"} <= set(row)
    user, assistant = row["messages"]
    assert user["content"] == "<|AUDIO|>\nquestion 1" and user["audios"] == [{"audio": "/a/1.wav", "text": "hi"}]
    assert assistant == {"role": "assistant", "content": row["response"]} and row["response"] == "answer: question 1"
    assert by_id["utt003-p0"]["finish_reason"] == "length" and row["finish_reason"] == "stop"


def test_shards_partition_the_items(tmp_path):
    all_ids = set()
    for shard in range(3):
        out = tmp_path / f"s{shard}.jsonl"
        run_selfgen(items(), EchoBackend(), out, batch_size=4, shard=shard, nshards=3, progress=False)
        ids = read_done_ids(out)
        assert not ids & all_ids
        all_ids |= ids
        assert all(shard_of(i, 3) == shard for i in ids)
    assert all_ids == {it.id for it in items()}


def test_hf_backend_answers_with_the_shared_generate(tiny_dirs):
    backend = CHAT_ENGINES.build({"name": "hf", "llm": {"name": "hf_causal_lm", "model_path": tiny_dirs["tiny-llama"], "dtype": "float32"},
                                      "generation": {"max_new_tokens": 5}})
    convs = [[{"role": "user", "content": "Say hi."}], [{"role": "user", "content": "A much longer question about many things?"}]]
    batched = backend.generate(convs)
    single = [backend.generate([c])[0] for c in convs]
    assert [b.text for b in batched] == [s.text for s in single]
    assert all(b.num_tokens <= 5 for b in batched) and backend.description()["generation"]["max_new_tokens"] == 5


def test_unknown_backend_lists_choices():
    from toolkit.registry import RegistryError

    with pytest.raises(RegistryError, match="hf"):
        CHAT_ENGINES.get("tgi")


def test_resuming_with_another_generator_is_refused(tmp_path):
    import json as _json

    from toolkit.bin.selfgen import check_same_generator

    (tmp_path / "selfgen_meta.shard0of1.json").write_text(_json.dumps({"generator": {"backend": "hf", "llm": {"model_path": "/a"}}}))
    check_same_generator(tmp_path, {"backend": "hf", "llm": {"model_path": "/a"}})  # same generator: resume
    with pytest.raises(SystemExit, match="another generator"):
        check_same_generator(tmp_path, {"backend": "hf", "llm": {"model_path": "/b"}})


def test_openai_backend_against_a_local_server_retries_and_keeps_order():
    """A bounded local OpenAI-compatible server on 127.0.0.1: one 503, then answers that echo the question."""
    import json as _json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    calls = {"n": 0}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = _json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            calls["n"] += 1
            if calls["n"] == 1:
                self.send_response(503), self.end_headers()
                return
            text = "echo: " + body["messages"][-1]["content"]
            payload = _json.dumps({"choices": [{"message": {"content": text}, "finish_reason": "stop"}],
                                   "usage": {"completion_tokens": 2}}).encode()
            self.send_response(200), self.send_header("Content-Type", "application/json"), self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        backend = CHAT_ENGINES.build({"name": "openai", "base_url": f"http://127.0.0.1:{server.server_port}/v1", "model": "m",
                                          "concurrency": 2, "max_retries": 3, "timeout": 10})
        out = backend.generate([[{"role": "user", "content": f"q{i}"}] for i in range(4)])
        assert [g.text for g in out] == [f"echo: q{i}" for i in range(4)] and calls["n"] == 5
    finally:
        server.shutdown()


def test_the_audio_tag_stands_where_the_template_put_the_description():
    from toolkit.selfgen.runner import DEFAULT_TEMPLATE, audio_turn

    assert audio_turn("What is it?", DEFAULT_TEMPLATE) == "<|AUDIO|>\nWhat is it?"
    assert audio_turn("What is it?", "{prompt}\n\n{seed_description}") == "What is it?\n\n<|AUDIO|>"
