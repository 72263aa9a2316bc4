from __future__ import annotations

from typing import Any, Callable

from opentelemetry import trace


def in_trace(llmscope: Any, fn: Callable[[], Any]) -> tuple[str, Any]:
    """Runs ``fn`` inside an observed span; its trace id (hex) and result."""

    @llmscope.observe(name="test-root")
    def run() -> tuple[str, Any]:
        tid = format(trace.get_current_span().get_span_context().trace_id, "032x")
        return tid, fn()

    return run()


def model_calls(t: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for s in t["spans"] if (s.get("gen_ai") or {}).get("model_call")]
