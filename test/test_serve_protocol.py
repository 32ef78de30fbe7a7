"""OpenAI chat requests -> our conversations: placeholders, roles, decoding settings, refusals."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
import soundfile as sf

from toolkit.models.chat import AUDIO_TOKEN
from toolkit.serve.protocol import RequestError, apply_stop, parse_chat_request


def audio_part(seconds: float = 0.5, transcript: str | None = None) -> dict:
    buf = io.BytesIO()
    sf.write(buf, np.zeros(int(16000 * seconds), dtype=np.float32), 16000, format="WAV")
    inner = {"data": base64.b64encode(buf.getvalue()).decode(), "format": "wav"}
    if transcript is not None:
        inner["transcript"] = transcript
    return {"type": "input_audio", "input_audio": inner}


def parse(messages, **body):
    return parse_chat_request({"model": "m", "messages": messages, **body}, ["m"], max_audio_seconds=2.0)


def test_text_only():
    req = parse([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}])
    assert req.conversation == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    assert req.num_audios == 0 and not req.stream and req.generation == {}


def test_placeholders_prepended_one_per_audio_when_absent():
    req = parse([{"role": "user", "content": [{"type": "text", "text": "Compare them."}, audio_part(), audio_part(transcript="hi")]}])
    msg = req.conversation[0]
    assert msg["content"] == f"{AUDIO_TOKEN}{AUDIO_TOKEN}\nCompare them."
    assert [a["text"] for a in msg["audios"]] == [None, "hi"]
    assert msg["audios"][0]["audio"].dtype == np.float32 and len(msg["audios"][0]["audio"]) == 8000


def test_placeholders_kept_where_the_user_put_them():
    text = f"First {AUDIO_TOKEN} then {AUDIO_TOKEN}: same speaker?"
    req = parse([{"role": "user", "content": [audio_part(), {"type": "text", "text": text}, audio_part()]}])
    assert req.conversation[0]["content"] == text


def test_audio_only_message():
    req = parse([{"role": "user", "content": [audio_part()]}])
    assert req.conversation[0]["content"] == AUDIO_TOKEN


def test_multi_turn_history_with_audio_in_earlier_turn():
    req = parse([{"role": "user", "content": [audio_part(), {"type": "text", "text": "What is it?"}]},
                 {"role": "assistant", "content": "A tone."},
                 {"role": "user", "content": "Is it loud?"}])
    assert [m["role"] for m in req.conversation] == ["user", "assistant", "user"]
    assert req.num_audios == 1


@pytest.mark.parametrize("messages, status, words", [
    ([{"role": "user", "content": [{"type": "text", "text": f"{AUDIO_TOKEN}{AUDIO_TOKEN} hi"}, audio_part()]}], 400,
     r"2 <\|AUDIO\|> placeholder\(s\) but the message has 1"),
    ([{"role": "user", "content": f"{AUDIO_TOKEN} what is it?"}], 400, r"1 <\|AUDIO\|> placeholder\(s\) but the message has 0"),
    ([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}], 400, "'image_url' is not supported"),
    ([{"role": "tool", "content": "x"}], 400, "'tool' is not supported"),
    ([{"role": "assistant", "content": [audio_part()]}, {"role": "user", "content": "x"}], 400, "only accepted in user messages"),
    ([{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}], 400, "last message must be from the user"),
    ([{"role": "user", "content": [audio_part(seconds=3.0)]}], 400, "over this server's limit of 2 s"),
    ([], 400, "non-empty list"),
])
def test_refusals_name_the_problem(messages, status, words):
    with pytest.raises(RequestError, match=words) as info:
        parse(messages)
    assert info.value.status == status
    assert info.value.body()["error"]["message"] == info.value.message


def test_unknown_model_is_404_and_lists_the_served_one():
    with pytest.raises(RequestError, match="'gpt-4o' is not served here; this server serves 'm'") as info:
        parse_chat_request({"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}]}, ["m"], None)
    assert info.value.status == 404 and info.value.code == "model_not_found"


def test_decoding_fields_map_to_generation_settings():
    msgs = [{"role": "user", "content": "x"}]
    assert parse(msgs, max_tokens=5, temperature=0).generation == {"max_new_tokens": 5, "do_sample": False}
    assert parse(msgs, max_completion_tokens=7, temperature=0.7, top_p=0.9, seed=3).generation == {
        "max_new_tokens": 7, "do_sample": True, "temperature": 0.7, "top_p": 0.9, "seed": 3}
    req = parse(msgs, stream=True, stream_options={"include_usage": True}, stop="\n")
    assert req.stream and req.include_usage and req.stop == ["\n"]
    for bad in ({"max_tokens": 0}, {"temperature": -1}, {"n": 2}, {"top_p": 1.5}, {"stop": [""]}):
        with pytest.raises(RequestError) as info:
            parse(msgs, **bad)
        assert info.value.status == 400 and next(iter(bad)) in info.value.message


def test_apply_stop():
    assert apply_stop("Hello. World", "length", ["."]) == ("Hello", "stop")
    assert apply_stop("Hello", "length", ["."]) == ("Hello", "length")
