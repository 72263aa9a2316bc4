"""Delivery: the app never waits for or hears about the collector."""

from __future__ import annotations

import http.server
import socket
import threading
import time

import openai
from conftest import Collector, free_port
from helpers import in_trace, model_calls


def test_with_the_collector_down_calls_work_flush_is_bounded_and_spans_arrive_later(
    provider, tmp_path
):
    import llmscope

    down = Collector(tmp_path)
    llmscope.init(endpoint=down.endpoint, service_name="sdk-outage", export_timeout=30)
    c = llmscope.wrap(openai.OpenAI(api_key="k", base_url=provider.url + "/v1", max_retries=0))
    tid, r = in_trace(
        llmscope,
        lambda: c.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
        ),
    )
    assert r.choices[0].message.content
    started = time.monotonic()
    assert llmscope.flush(timeout=1) is False
    assert time.monotonic() - started < 2.0
    # The collector comes up on that address: the exporter's retries deliver the queued spans.
    down.start()
    try:
        assert llmscope.flush(timeout=30)
        assert len(model_calls(down.trace(tid, spans=2))) == 1
    finally:
        llmscope.shutdown(timeout=5)
        down.stop()


def test_an_sdk_error_never_reaches_the_app(provider, collector):
    import llmscope

    def broken(text):
        raise RuntimeError("a redactor that fails")

    llmscope.init(endpoint=collector.endpoint, redact=broken)
    before = llmscope.stats().get("errors", 0)
    c = llmscope.wrap(openai.OpenAI(api_key="k", base_url=provider.url + "/v1", max_retries=0))
    r = c.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}])
    assert r.choices[0].message.content
    assert llmscope.shutdown(timeout=5)  # spans are built off the call's thread: wait for it
    assert llmscope.stats()["errors"] > before


SPAN_COUNTS = ("spans_exported", "spans_failed", "spans_dropped")


def span_counts(llmscope, before=None):
    now = llmscope.stats()
    return {k: now.get(k, 0) - (before or {}).get(k, 0) for k in SPAN_COUNTS}


def test_every_span_is_counted_once_as_exported(collector):
    import llmscope

    llmscope.init(endpoint=collector.endpoint, service_name="sdk-counted")
    before = span_counts(llmscope)

    @llmscope.observe(name="step")
    def step():
        pass

    tid, _ = in_trace(llmscope, lambda: [step() for _ in range(50)])
    assert llmscope.flush(timeout=5)
    assert len(collector.trace(tid, spans=51)["spans"]) == 51
    assert span_counts(llmscope, before) == {
        "spans_exported": 51,
        "spans_failed": 0,
        "spans_dropped": 0,
    }
    llmscope.shutdown(timeout=5)


def test_a_full_queue_drops_new_spans_counted_and_never_blocks():
    import llmscope

    # A collector that takes connections and never answers: the first batch waits out the
    # export timeout, the next fills the queue, the rest are dropped at once.
    silent = socket.create_server(("127.0.0.1", 0), backlog=64)
    port = silent.getsockname()[1]
    llmscope.init(endpoint=f"http://127.0.0.1:{port}", max_queue_size=16, export_timeout=0.5)
    before = span_counts(llmscope)

    @llmscope.observe(name="step")
    def step():
        pass

    started = time.monotonic()
    for _ in range(200):
        step()
    assert time.monotonic() - started < 1.0, "ending spans never waits for the exporter"
    assert llmscope.flush(timeout=0.2) is False
    llmscope.shutdown(timeout=1)
    # The batch in the exporter's hands is counted when its retries end.
    deadline = time.monotonic() + 10
    while sum(span_counts(llmscope, before).values()) < 200 and time.monotonic() < deadline:
        time.sleep(0.05)
    counts = span_counts(llmscope, before)
    assert sum(counts.values()) == 200, counts
    assert counts["spans_exported"] == 0
    assert counts["spans_dropped"] >= 200 - 2 * 16, counts
    silent.close()


def test_shutdown_with_nothing_to_send_is_immediate():
    import llmscope

    llmscope.init(endpoint=f"http://127.0.0.1:{free_port()}")
    started = time.monotonic()
    assert llmscope.shutdown(timeout=5)
    assert time.monotonic() - started < 2.0


CHILD = r"""
import sys, time
import openai, llmscope
from helpers import in_trace

endpoint, provider = sys.argv[1], sys.argv[2]
llmscope.init(endpoint=endpoint, service_name="sdk-sigterm")
c = llmscope.wrap(openai.OpenAI(api_key="k", base_url=provider + "/v1", max_retries=0))
tid, _ = in_trace(llmscope, lambda: c.chat.completions.create(
    model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]))
print(tid, flush=True)
time.sleep(60)
"""


def test_sigterm_right_after_a_call_still_delivers_its_span(collector, provider, tmp_path):
    import os
    import signal
    import subprocess
    import sys

    script = tmp_path / "child.py"
    script.write_text(CHILD)
    env = dict(os.environ, PYTHONPATH=os.path.dirname(__file__))
    child = subprocess.Popen(
        [sys.executable, str(script), collector.endpoint, provider.url],
        stdout=subprocess.PIPE,
        env=env,
        text=True,
    )
    assert child.stdout is not None
    tid = child.stdout.readline().strip()
    child.send_signal(signal.SIGTERM)
    assert child.wait(timeout=10) == -signal.SIGTERM, "the default SIGTERM action still happens"
    assert len(model_calls(collector.trace(tid, spans=2))) == 1


def test_a_forked_workers_spans_arrive(sdk, collector, provider):
    import os

    c = sdk.wrap(openai.OpenAI(api_key="k", base_url=provider.url + "/v1", max_retries=0))
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the worker
        try:
            tid, _ = in_trace(
                sdk,
                lambda: c.chat.completions.create(
                    model="gpt-4o-mini", messages=[{"role": "user", "content": "from a worker"}]
                ),
            )
            os.write(write, tid.encode())
            sdk.flush(timeout=5)
        finally:
            os._exit(0)
    os.close(write)
    tid = os.read(read, 64).decode()
    os.waitpid(pid, 0)
    [call] = model_calls(collector.trace(tid, spans=2))
    assert call["gen_ai"]["input_messages"][0]["parts"][0]["content"] == "from a worker"


class Throttling(http.server.BaseHTTPRequestHandler):
    """Answers the first export 429 with ``Retry-After: 2``, then accepts."""

    arrivals: list[tuple[float, dict[str, str]]] = []

    def do_POST(self) -> None:  # noqa: N802 - the handler's protocol
        self.rfile.read(int(self.headers.get("content-length", 0)))
        headers = {k.lower(): v for k, v in self.headers.items()}
        type(self).arrivals.append((time.monotonic(), headers))
        if len(self.arrivals) == 1:
            self.send_response(429)
            self.send_header("Retry-After", "2")
        else:
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_a_throttled_export_waits_as_retry_after_says_then_delivers():
    import llmscope

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Throttling)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        llmscope.init(endpoint=f"http://127.0.0.1:{server.server_port}", export_timeout=10)
        before = span_counts(llmscope)

        @llmscope.observe(name="step")
        def step():
            pass

        step()
        assert llmscope.flush(timeout=10)
        [(first, headers), (second, _)] = Throttling.arrivals
        assert headers["content-type"] == "application/x-protobuf"
        assert headers["content-encoding"] == "gzip"
        # The exporter's own first backoff is about 1 s; Retry-After asked for 2.
        assert second - first >= 1.9
        assert span_counts(llmscope, before)["spans_exported"] == 1
    finally:
        llmscope.shutdown(timeout=2)
        server.shutdown()
