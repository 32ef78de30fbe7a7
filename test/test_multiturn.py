"""Two audios in two user turns, end to end: self-generation, training, generate(), decoding, the demo and the server."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import yaml

import test_train_fakes as fakes
from toolkit.selfgen.multiturn import audio_conversation, build_two_turn_items, run_two_turn, text_conversation


class RecordingBackend:
    """A self-generation backend that answers from what it read (so the rows end with finish_reason stop, as the
    tiny random Llama never would) and keeps every conversation it was asked."""

    def __init__(self):
        self.asked = []

    def generate(self, conversations):
        from toolkit.models.generation import Generation

        self.asked += conversations
        answers = []
        for conv in conversations:
            first, last = conv[0]["content"].split("\n")[0], conv[-1]["content"].split("\n")[0]
            text = f"The first clip is {first}; this one is {last}."
            answers.append(Generation(text=text, num_tokens=len(text.split()), finish_reason="stop"))
        return answers


@pytest.fixture(scope="module")
def two_turn(tmp_path_factory):
    root = tmp_path_factory.mktemp("multiturn")
    corpus = fakes.make_corpus(root, n_train=6, n_dev=2)
    singles = [json.loads(line) for line in Path(corpus["train"]).read_text().splitlines()]
    for r in singles:  # absolute audio paths: the two-turn rows are read from anywhere
        r["messages"][0]["audios"][0]["audio"] = str(Path(corpus["audio_root"]) / r["messages"][0]["audios"][0]["audio"])
    items = build_two_turn_items(singles, count=6)
    backend = RecordingBackend()
    out = root / "dump" / "two_turn.jsonl"
    stats = run_two_turn(items, backend, out, batch_size=3)
    return {"root": root, "corpus": corpus, "items": items, "backend": backend, "out": out, "stats": stats}


def test_self_generation_answers_the_last_turn_from_both_descriptions(two_turn):
    items, asked = two_turn["items"], two_turn["backend"].asked
    assert two_turn["stats"]["written"] == len(items) == 6
    for item, conv in zip(items, asked):
        assert [m["role"] for m in conv] == ["user", "assistant", "user"]
        assert item.first["seed_description"] in conv[0]["content"] and item.second["seed_description"] in conv[2]["content"]
        assert conv[1]["content"] == item.first["response"] and item.follow_up in conv[2]["content"]
        assert item.first["messages"][0]["audios"][0]["audio"] != item.second["messages"][0]["audios"][0]["audio"]
    rows = [json.loads(line) for line in two_turn["out"].read_text().splitlines()]
    for row in rows:
        users = [m for m in row["messages"] if m["role"] == "user"]
        assert len(users) == 2 and all(len(m["audios"]) == 1 and m["content"].count("<|AUDIO|>") == 1 for m in users)
        assert row["messages"][-1] == {"role": "assistant", "content": row["response"]}
    again = run_two_turn(two_turn["items"], two_turn["backend"], two_turn["out"])  # resumable: nothing asked twice
    assert again["written"] == 0 and again["already_done"] == 6


def test_training_supervises_only_the_last_answer_and_generate_and_server_answer(two_turn):
    from toolkit.bin.train import main
    from toolkit.models.lalm import LALM
    from toolkit.train.data import read_rows

    samples, _ = read_rows(two_turn["out"])
    model_cfg = yaml.safe_load(fakes.write_config(two_turn["root"] / "probe", two_turn["corpus"]).read_text())
    probe = LALM.from_config(model_cfg)
    conv = probe.formatter.encode(samples[0].messages, [a.get("text") for a in samples[0].audios], response=samples[0].response)
    supervised = probe.llm.tokenizer.decode([t for t in conv.labels if t != -100], skip_special_tokens=True)
    assert supervised.strip() == samples[0].response.strip() and len(conv.audio_slots) == 2

    cfg_path = fakes.write_config(two_turn["root"] / "run", two_turn["corpus"], train={"max_steps": 2, "batch_size": 2})
    cfg = yaml.safe_load(cfg_path.read_text())
    cfg["train"]["data"].update(train_jsonl=str(two_turn["out"]), dev_jsonl=str(two_turn["out"]), max_dev_rows=2)
    cfg_path.write_text(yaml.safe_dump(cfg))
    assert main(["--config", str(cfg_path)]) == 0
    model = LALM.from_pretrained(two_turn["root"] / "run" / "exp" / "model")
    conversation = audio_conversation(two_turn["items"][0])
    got = model.generate(conversation, return_details=True)
    assert isinstance(got["text"], str) and len(got["transcripts"]) == 2 and got["num_tokens"] > 0

    # the decode stage: an eval row that carries its two-turn messages
    from toolkit.models.eval_decoding import decode_rows

    row = {**json.loads(two_turn["out"].read_text().splitlines()[0]), "reference": "x", "metric": "wer"}
    from toolkit.models.chat_engines.hf import HFChatEngine

    decode_rows(HFChatEngine.around(model, {"max_new_tokens": 8}), [row], two_turn["root"] / "decode.jsonl", progress=False)
    decoded = json.loads((two_turn["root"] / "decode.jsonl").read_text())
    want = model.generate(audio_conversation(two_turn["items"][0]), generation={"max_new_tokens": 8}, return_details=True)
    assert decoded["prediction"] == want["text"] and len(decoded["transcripts"]) == 2

    # the web demo's session: the two clips uploaded in two turns
    from toolkit.serve.demo import DemoSession

    item = two_turn["items"][0]
    session = DemoSession(model, generation={"max_new_tokens": 8})
    conv, _ = session.answer([session.user_turn(conversation[0]["audios"][0]["audio"], item.first["prompt"])])
    conv, second = session.answer([*conv, session.user_turn(conversation[2]["audios"][0]["audio"], item.follow_up)])
    assert [m["role"] for m in conv] == ["user", "assistant"] * 2 and len(second["transcripts"]) == 2
    assert second["text"] == model.generate(conv[:3], generation={"max_new_tokens": 8}, return_details=True)["text"]

    # the OpenAI-compatible server: the same two-turn, two-audio conversation
    openai = pytest.importorskip("openai")
    pytest.importorskip("fastapi")
    from toolkit.serve.app import create_app
    from toolkit.serve.backend import HFBackend
    from toolkit.serve.local import serve_in_thread

    def part(audio: dict) -> dict:
        wave, rate = sf.read(audio["audio"], dtype="float32")
        buf = io.BytesIO()
        sf.write(buf, wave, rate, format="WAV")
        return {"type": "input_audio", "input_audio": {"data": base64.b64encode(buf.getvalue()).decode(), "format": "wav",
                                                       "transcript": audio.get("text") or ""}}

    messages = []
    for m in conversation:
        if m["role"] == "user":
            messages.append({"role": "user", "content": [{"type": "text", "text": m["content"]}, part(m["audios"][0])]})
        else:
            messages.append({"role": "assistant", "content": m["content"]})
    with serve_in_thread(create_app(HFBackend(model, "two-turn"), max_batch_size=2, batch_wait_ms=10)) as url:
        client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0, timeout=120)
        reply = client.chat.completions.create(model="two-turn", messages=messages, max_tokens=8, temperature=0)
    direct = model.generate(conversation, generation={"max_new_tokens": 8}, return_details=True)
    assert reply.choices[0].message.content == direct["text"]
    assert np.asarray(reply.choices[0].message.transcripts).shape == (2,)


def test_text_conversation_keeps_the_system_prompt_first(two_turn):
    conv = text_conversation(two_turn["items"][0], system_prompt="Be brief.")
    assert conv[0] == {"role": "system", "content": "Be brief."} and len(conv) == 4
