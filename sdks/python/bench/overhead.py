"""What wrapping adds to a call, two ways, with spans exported to an OTLP sink on loopback in the
background as in an app:

1. the SDK's own work on the caller's thread: the wrapper around a ``create`` that returns a
   ready ``ChatCompletion`` at once (so nothing else is timed);
2. end to end: the same non-streaming chat completion through an unwrapped and a wrapped
   ``openai.OpenAI`` client, alternating call by call, answered in memory by the HTTP client's
   mock transport (no network). The client itself takes over a millisecond a call, so this
   difference is noisy; (1) is the number to compare with the target.

    python bench/overhead.py [calls]
"""

from __future__ import annotations

import json
import statistics
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import openai

sys.path.insert(0, __file__.rsplit("/bench/", 1)[0] + "/tests")
from fake_provider import chat_completion  # noqa: E402

import llmscope  # noqa: E402

try:
    import httpx
except ImportError:  # openai 3 ships its HTTP client as httpx2
    import httpx2 as httpx  # type: ignore[no-redef]


class Sink(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0")
        self.end_headers()


def client() -> openai.OpenAI:
    body = json.dumps(chat_completion({})).encode()

    def answer(request: Any) -> Any:
        return httpx.Response(200, content=body, headers={"content-type": "application/json"})

    http = openai.DefaultHttpxClient(transport=httpx.MockTransport(answer))
    return openai.OpenAI(api_key="k", base_url="http://provider.test/v1", http_client=http)


def run(c: openai.OpenAI, n: int) -> list[float]:
    out = []
    messages = [{"role": "user", "content": "Capital of France?"}]
    for _ in range(n):
        start = time.perf_counter_ns()
        c.chat.completions.create(model="gpt-4o-mini", messages=messages)
        out.append((time.perf_counter_ns() - start) / 1000)
    return out


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
    sink = ThreadingHTTPServer(("127.0.0.1", 0), Sink)
    threading.Thread(target=sink.serve_forever, daemon=True).start()
    llmscope.init(endpoint=f"http://127.0.0.1:{sink.server_address[1]}", service_name="bench")
    from llmscope import _openai

    canned = openai.types.chat.ChatCompletion.model_validate(chat_completion({}))
    own = _openai.chat_maker(False)(client(), lambda *args, **kwargs: canned)
    messages = [{"role": "user", "content": "Capital of France?"}]
    sdk: list[float] = []
    for i in range(n * 4):
        start = time.perf_counter_ns()
        own(model="gpt-4o-mini", messages=messages)
        sdk.append((time.perf_counter_ns() - start) / 1000)
        if i % 1000 == 999:
            llmscope.flush(timeout=10)  # the worker keeps up between bursts, as in an app
    plain, wrapped = client(), llmscope.wrap(client())
    run(plain, 200), run(wrapped, 200)  # warm-up
    a: list[float] = []
    b: list[float] = []
    for _ in range(n):
        a += run(plain, 1)
        b += run(wrapped, 1)
    llmscope.shutdown(timeout=10)

    def q(xs: list[float], p: float) -> float:
        return statistics.quantiles(xs, n=100)[int(p * 100) - 1]

    print(f"python {sys.version.split()[0]}, openai {openai.__version__}, {n} calls each")
    print(f"SDK work on the caller's thread: median {statistics.median(sdk):.1f} us, "
          f"p90 {q(sdk, 0.9):.1f} us ({len(sdk)} calls)")
    print(f"unwrapped: median {statistics.median(a):.1f} us, p90 {q(a, 0.9):.1f} us")
    print(f"wrapped:   median {statistics.median(b):.1f} us, p90 {q(b, 0.9):.1f} us")
    print(f"added:     median {statistics.median(b) - statistics.median(a):.1f} us")


if __name__ == "__main__":
    main()
