"""Custom events and scores arrive as OTLP log records, joined to their trace."""

from __future__ import annotations

import time

import openai
import pytest
from conftest import Collector
from opentelemetry import trace


def eventually(collector, path, ready, timeout=15.0):
    """The API's answer at ``path`` once ``ready`` accepts it."""
    deadline = time.time() + timeout
    while True:
        answer = collector.get(path)
        if ready(answer) or time.time() > deadline:
            return answer
        time.sleep(0.1)


@pytest.fixture
def own_collector(tmp_path, sdk):
    """A collector of this test's own: the fake provider answers every call with one response
    id, and the summary counts a response id once across the project."""
    c = Collector(tmp_path)
    c.start()
    sdk.init(endpoint=c.endpoint, service_name="sdk-tests")
    yield c
    sdk.shutdown(timeout=5)
    c.stop()


def test_an_event_is_joined_to_the_current_span_and_scores_to_their_trace(
    sdk, own_collector, provider
):
    collector = own_collector
    client = sdk.wrap(openai.OpenAI(api_key="sk-test", base_url=provider.url + "/v1"))

    @sdk.observe(name="checkout")
    def checkout():
        ctx = trace.get_current_span().get_span_context()
        client.chat.completions.create(
            model="gpt-4o-scored", messages=[{"role": "user", "content": "Capital of France?"}]
        )
        sdk.event("cart.checked_out", {"items": 3, "total_usd": 42.5})
        return format(ctx.trace_id, "032x"), format(ctx.span_id, "016x")

    tid, sid = checkout()
    sdk.score(tid, "helpfulness", 0.8, comment="good answer")
    sdk.score(tid, "resolved", True, span_id=sid)
    assert sdk.flush(timeout=5)

    collector.trace(tid, spans=2)
    t = eventually(
        collector,
        f"/api/v1/traces/{tid}",
        lambda t: len(t["scores"]) == 2 and len(t["events"]) == 1,
    )
    [event] = t["events"]
    assert (event["name"], event["span_id"], event["service"]) == (
        "cart.checked_out",
        sid,
        "sdk-tests",
    )
    assert (event["attributes"]["items"], event["attributes"]["total_usd"]) == (3, 42.5)
    scores = {s["name"]: s for s in t["scores"]}
    helpful = scores["helpfulness"]
    assert (helpful["value"], helpful["data_type"], helpful["comment"]) == (
        0.8,
        "numeric",
        "good answer",
    )
    assert helpful["span_id"] is None
    resolved = scores["resolved"]
    assert (resolved["value"], resolved["data_type"], resolved["span_id"]) == (
        True,
        "boolean",
        sid,
    )

    listed = collector.get(f"/api/v1/events?name=cart.checked_out&trace_id={tid}")
    assert [e["attributes"]["items"] for e in listed["events"]] == [3]

    # The trace-level score judges the trace's one call: by model, its count and mean.
    summary = collector.get(
        "/api/v1/analytics/summary?group_by=model&model=gpt-4o-scored&score=helpfulness"
    )
    [group] = summary["groups"]
    assert group["key"] == {"model": "gpt-4o-scored"}
    assert group["score"] == {"name": "helpfulness", "count": 1, "mean": 0.8}


def test_bad_scores_are_reported_not_raised(sdk):
    before = sdk.stats().get("errors.score", 0)
    sdk.score("not-a-trace-id", "x", 1)
    sdk.score("0" * 32, "x", 1)
    sdk.score("0" * 32, "", 1)
    sdk.score("0" * 32, "x", {"a": 1})  # type: ignore[arg-type]
    sdk.score("0" * 32, "x" * 257, 1)
    sdk.score("0" * 32, "x", float("nan"))
    sdk.score("0" * 32, "x", "")
    sdk.score("0" * 32, "x", 1, comment="c" * 20_000)
    sdk.event("", {})
    assert sdk.stats()["errors.score"] == before + 8
    assert sdk.stats()["errors.event"] >= 1
