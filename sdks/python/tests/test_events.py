"""Custom events and scores arrive as OTLP log records, joined to their trace."""

from __future__ import annotations

import json
import sqlite3
import time

from opentelemetry import trace


def stored(collector, event_name, trace_id, timeout=15.0):
    """The log rows named ``event_name`` of ``trace_id`` in the collector's SQLite store."""
    deadline = time.time() + timeout
    while True:
        with sqlite3.connect(collector.tmp / "llmscope.db") as db:
            rows = db.execute(
                "SELECT span_id, attributes FROM logs WHERE event_name = ? AND trace_id = ?",
                (event_name, trace_id),
            ).fetchall()
        if rows or time.time() > deadline:
            return [(span, json.loads(attrs)) for span, attrs in rows]
        time.sleep(0.1)


def test_an_event_is_joined_to_the_current_span_and_a_score_to_its_trace(sdk, collector):
    @sdk.observe(name="checkout")
    def checkout():
        ctx = trace.get_current_span().get_span_context()
        sdk.event("cart.checked_out", {"items": 3, "total_usd": 42.5})
        return format(ctx.trace_id, "032x"), format(ctx.span_id, "016x")

    tid, sid = checkout()
    sdk.score(tid, "helpfulness", 0.8, comment="good answer")
    sdk.score(tid, "resolved", True, span_id=sid)
    assert sdk.flush(timeout=5)

    [(span, attrs)] = stored(collector, "cart.checked_out", tid)
    assert span == sid
    assert (attrs["items"], attrs["total_usd"]) == (3, 42.5)
    scores = {a["llmscope.score.name"]: (s, a) for s, a in stored(collector, "llmscope.score", tid)}
    assert scores["helpfulness"][1]["llmscope.score.value"] == 0.8
    assert scores["helpfulness"][1]["llmscope.score.comment"] == "good answer"
    assert scores["resolved"] == (sid, scores["resolved"][1])
    assert scores["resolved"][1]["llmscope.score.value"] is True


def test_bad_scores_are_reported_not_raised(sdk):
    before = sdk.stats().get("errors.score", 0)
    sdk.score("not-a-trace-id", "x", 1)
    sdk.score("0" * 32, "", 1)
    sdk.score("0" * 32, "x", {"a": 1})  # type: ignore[arg-type]
    sdk.event("", {})
    assert sdk.stats()["errors.score"] == before + 3
    assert sdk.stats()["errors.event"] >= 1
