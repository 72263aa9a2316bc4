"""A fake OpenAI and Anthropic API on loopback, answering with the providers' documented
response shapes (JSON and server-sent events), for the real ``openai`` and ``anthropic``
packages to call."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

ANSWER = "The capital of France is Paris."


def chat_completion(body: dict[str, Any]) -> dict[str, Any]:
    tools = body.get("tools")
    message: dict[str, Any] = {"role": "assistant", "content": ANSWER, "refusal": None}
    reason = "stop"
    if tools:
        message = {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_abc123",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                }
            ],
        }
        reason = "tool_calls"
    return {
        "id": "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT",
        "object": "chat.completion",
        "created": 1741569952,
        "model": "gpt-4o-mini-2024-07-18",
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": reason}],
        "usage": {
            "prompt_tokens": 1200,
            "completion_tokens": 40,
            "total_tokens": 1240,
            "prompt_tokens_details": {"cached_tokens": 1024, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": 0,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        },
        "service_tier": "default",
        "system_fingerprint": "fp_06737a9306",
    }


def chat_chunks(body: dict[str, Any]) -> list[dict[str, Any]]:
    base = {
        "id": "chatcmpl-stream-1",
        "object": "chat.completion.chunk",
        "created": 1741569952,
        "model": "gpt-4o-mini-2024-07-18",
        "system_fingerprint": "fp_06737a9306",
    }
    words = ["The", " capital", " of", " France", " is", " Paris", "."]
    chunks = [
        dict(
            base,
            choices=[
                {
                    "index": 0,
                    "delta": {"role": "assistant", "content": ""},
                    "logprobs": None,
                    "finish_reason": None,
                }
            ],
        )
    ]
    for w in words:
        chunks.append(
            dict(
                base,
                choices=[
                    {"index": 0, "delta": {"content": w}, "logprobs": None, "finish_reason": None}
                ],
            )
        )
    chunks.append(
        dict(base, choices=[{"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}])
    )
    if (body.get("stream_options") or {}).get("include_usage"):
        chunks.append(
            dict(
                base,
                choices=[],
                usage={
                    "prompt_tokens": 20,
                    "completion_tokens": 7,
                    "total_tokens": 27,
                    "prompt_tokens_details": {"cached_tokens": 0},
                    "completion_tokens_details": {"reasoning_tokens": 0},
                },
            )
        )
    return chunks


def message(body: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-20250514",
        "content": [{"type": "text", "text": ANSWER}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {
            "input_tokens": 100,
            "cache_creation_input_tokens": 200,
            "cache_read_input_tokens": 700,
            "output_tokens": 30,
        },
    }


def message_events() -> list[dict[str, Any]]:
    start = message({})
    start["content"] = []
    start["stop_reason"] = None
    start["usage"] = {
        "input_tokens": 25,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "output_tokens": 1,
    }
    events: list[dict[str, Any]] = [
        {"type": "message_start", "message": start},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    ]
    for w in ["The", " capital", " of", " France", " is", " Paris", "."]:
        events.append(
            {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": w}}
        )
    events += [
        {"type": "content_block_stop", "index": 0},
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn", "stop_sequence": None},
            "usage": {"output_tokens": 12},
        },
        {"type": "message_stop"},
    ]
    return events


def response(body: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": "resp_67ccd2bed1ec8190b14f964abc054267",
        "object": "response",
        "created_at": 1741476542,
        "status": "completed",
        "model": "gpt-4o-mini-2024-07-18",
        "output": [
            {
                "type": "message",
                "id": "msg_67ccd2bf17f0819081ff3bb2cf6508e6",
                "status": "completed",
                "role": "assistant",
                "content": [{"type": "output_text", "text": ANSWER, "annotations": []}],
            }
        ],
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "usage": {
            "input_tokens": 36,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": 87,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": 123,
        },
    }


def response_events() -> list[dict[str, Any]]:
    done = response({})
    started = dict(done, status="in_progress", output=[], usage=None)
    events: list[dict[str, Any]] = [
        {"type": "response.created", "sequence_number": 0, "response": started}
    ]
    for i, w in enumerate(["The", " capital", " of", " France", " is", " Paris", "."]):
        events.append(
            {
                "type": "response.output_text.delta",
                "sequence_number": i + 1,
                "item_id": "msg_1",
                "output_index": 0,
                "content_index": 0,
                "delta": w,
                "logprobs": [],
            }
        )
    events.append({"type": "response.completed", "sequence_number": 9, "response": done})
    return events


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:
        pass

    def _json(self, status: int, payload: Any) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _sse(self, events: list[Any], named: bool) -> None:
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        for e in events:
            head = f"event: {e['type']}\n" if named else ""
            self._chunk((head + "data: " + json.dumps(e) + "\n\n").encode())
            time.sleep(0.005)
        if not named:
            self._chunk(b"data: [DONE]\n\n")
        self._chunk(b"")

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def do_POST(self) -> None:  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))) or b"{}")
        self.server.requests.append((self.path, body))  # type: ignore[attr-defined]
        if body.get("model") == "fail":
            self._json(
                400,
                {
                    "error": {
                        "message": "The model `fail` does not exist",
                        "type": "invalid_request_error",
                        "code": "model_not_found",
                    }
                },
            )
        elif self.path.endswith("/chat/completions"):
            if body.get("stream"):
                self._sse(chat_chunks(body), named=False)
            else:
                self._json(200, chat_completion(body))
        elif self.path.endswith("/responses"):
            if body.get("stream"):
                self._sse(response_events(), named=True)
            else:
                self._json(200, response(body))
        elif self.path.endswith("/embeddings"):
            self._json(
                200,
                {
                    "object": "list",
                    "model": "text-embedding-3-small",
                    "data": [{"object": "embedding", "index": 0, "embedding": [0.1, 0.2]}],
                    "usage": {"prompt_tokens": 8, "total_tokens": 8},
                },
            )
        elif self.path.endswith("/messages"):
            if body.get("stream"):
                self._sse(message_events(), named=True)
            else:
                self._json(200, message(body))
        else:
            self._json(404, {"error": {"message": "not found"}})


class FakeProvider:
    def __init__(self) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.requests = []  # type: ignore[attr-defined]
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def requests(self) -> list[Any]:
        return self.server.requests  # type: ignore[attr-defined,no-any-return]

    def close(self) -> None:
        self.server.shutdown()
