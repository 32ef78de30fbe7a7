"""A judge that answers exactly what the official judge answered when the official script ran on a fixture.

The fixture folders under ``test/fixtures/official/`` hold ``expected/requests@<name>.jsonl`` (every
request body the official script sent to a stand-in OpenAI endpoint) and the replies that endpoint
gave, in order.  This judge looks each conversation up by its exact messages, so a prompt that differs
from the official one by a single byte finds no reply and the test fails.  Items with identical messages
get their replies in the official order.
"""

from __future__ import annotations

import json
from pathlib import Path

from toolkit.score.judges.base import Judge


class OfficialReplayJudge(Judge):
    applies_request = True

    def __init__(self, requests_jsonl: Path, replies_json: Path):
        bodies = [json.loads(line) for line in Path(requests_jsonl).read_text(encoding="utf-8").splitlines()]
        replies = json.loads(Path(replies_json).read_text(encoding="utf-8"))
        assert len(bodies) == len(replies)
        self.replies: dict[str, list[str]] = {}
        for body, reply in zip(bodies, replies):
            self.replies.setdefault(json.dumps(body["messages"], ensure_ascii=False), []).append(reply)
        self.official_requests = [{k: v for k, v in b.items() if k not in ("model", "messages")} for b in bodies]
        self.requests: list[dict] = []

    @property
    def name(self) -> str:
        return "replay:official"

    def generate(self, conversations):
        raise AssertionError("the official scripts ask with their own request fields; generate() was called")

    def sample(self, conversations, protocol):
        assert protocol.samples == 1, "the official SAKURA and Speech-IFEval scripts ask for one answer"
        out = []
        for conv in conversations:
            key = json.dumps(conv, ensure_ascii=False)
            assert self.replies.get(key), f"no (more) official requests with these exact messages: {key[:300]}"
            out.append([self.replies[key].pop(0)])
            self.requests.append(protocol.request)
        return out
