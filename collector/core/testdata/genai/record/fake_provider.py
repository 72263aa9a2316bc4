"""An OpenAI-compatible chat API on loopback, for recording what instrumentation libraries send.

Every call answers 17 output tokens for 42 input tokens (10 of them cached), model
gpt-4o-mini-2024-07-18, with an answer holding a phone number and an email address; streamed
calls end with a usage chunk when asked (stream_options.include_usage).
"""

import itertools
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ANSWER = "Sure: call +1 415 555 0100 or write to jane.doe@example.com."
MODEL = "gpt-4o-mini-2024-07-18"
USAGE = {
    "prompt_tokens": 42,
    "completion_tokens": 17,
    "total_tokens": 59,
    "prompt_tokens_details": {"cached_tokens": 10},
    "completion_tokens_details": {"reasoning_tokens": 0},
}
_ids = itertools.count(1)


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))) or b"{}")
        n = next(_ids)
        if self.path.endswith("/messages"):
            return self.anthropic(body, n)
        if body.get("stream"):
            self.send_response(200)
            self.send_header("content-type", "text/event-stream")
            self.end_headers()
            words = ANSWER.split(" ")
            for i, word in enumerate(words):
                chunk = {
                    "id": f"chatcmpl-rec{n}",
                    "object": "chat.completion.chunk",
                    "created": 1764576000,
                    "model": MODEL,
                    "choices": [{"index": 0, "delta": ({"role": "assistant"} if i == 0 else {}) | {"content": word + (" " if i < len(words) - 1 else "")}, "finish_reason": None}],
                }
                self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
            last = {"id": f"chatcmpl-rec{n}", "object": "chat.completion.chunk", "created": 1764576000, "model": MODEL,
                    "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
            self.wfile.write(f"data: {json.dumps(last)}\n\n".encode())
            if (body.get("stream_options") or {}).get("include_usage"):
                usage = {"id": f"chatcmpl-rec{n}", "object": "chat.completion.chunk", "created": 1764576000,
                         "model": MODEL, "choices": [], "usage": USAGE}
                self.wfile.write(f"data: {json.dumps(usage)}\n\n".encode())
            self.wfile.write(b"data: [DONE]\n\n")
            return
        answer = {
            "id": f"chatcmpl-rec{n}",
            "object": "chat.completion",
            "created": 1764576000,
            "model": MODEL,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": ANSWER}, "finish_reason": "stop"}],
            "usage": USAGE,
        }
        data = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


    def anthropic(self, body, n):
        """Anthropic's Messages API: 42 input tokens (10 read from cache, so 32 uncached), 17
        output, model claude-3-5-haiku-20241022."""
        usage = {"input_tokens": 32, "cache_read_input_tokens": 10, "cache_creation_input_tokens": 0, "output_tokens": 17}
        model = "claude-3-5-haiku-20241022"
        if body.get("stream"):
            self.send_response(200)
            self.send_header("content-type", "text/event-stream")
            self.end_headers()

            def event(kind, data):
                self.wfile.write(f"event: {kind}\ndata: {json.dumps(data)}\n\n".encode())

            event("message_start", {"type": "message_start", "message": {
                "id": f"msg_rec{n}", "type": "message", "role": "assistant", "model": model, "content": [],
                "stop_reason": None, "stop_sequence": None, "usage": usage | {"output_tokens": 1}}})
            event("content_block_start", {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})
            words = ANSWER.split(" ")
            for i, word in enumerate(words):
                event("content_block_delta", {"type": "content_block_delta", "index": 0,
                                              "delta": {"type": "text_delta", "text": word + (" " if i < len(words) - 1 else "")}})
            event("content_block_stop", {"type": "content_block_stop", "index": 0})
            event("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                                    "usage": {"output_tokens": 17}})
            event("message_stop", {"type": "message_stop"})
            return
        answer = {"id": f"msg_rec{n}", "type": "message", "role": "assistant", "model": model,
                  "content": [{"type": "text", "text": ANSWER}], "stop_reason": "end_turn", "stop_sequence": None,
                  "usage": usage}
        data = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def start(port=0):
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/v1"
