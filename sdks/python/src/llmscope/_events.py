"""``llmscope.event(name, attributes)`` and ``llmscope.score(trace_id, name, value)``: OTLP log
records, batched and exported like spans (to ``/v1/logs``).

The shape, for any OTLP client to send the same:

- a custom event: ``event.name`` (the record's event name, and the attribute of that name for
  older collectors), the caller's attributes, and the trace and span ids of the span current
  when it was sent;
- a score: event name ``llmscope.score``, attributes ``llmscope.score.name``,
  ``llmscope.score.value`` (a number, a boolean or a category string) and optionally
  ``llmscope.score.comment``, with the trace id (and span id) it judges.

Bad arguments are reported (logged once, counted), never raised."""

from __future__ import annotations

import math
import re
import threading
import time
from typing import Any

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor

from . import _client

SCORE_EVENT = "llmscope.score"
# The collector's limits (llmscope_core::score): longer names, categories and comments are refused.
_MAX_NAME = 256
_MAX_COMMENT = 16 * 1024
_HEX_TRACE = re.compile(r"^[0-9a-f]{32}$")
_HEX_SPAN = re.compile(r"^[0-9a-f]{16}$")

_lock = threading.Lock()
_provider: tuple[_client._State, LoggerProvider] | None = None


def _logger() -> Any:
    """The logger of the current settings, made on first use."""
    global _provider
    state = _client.state()
    if state is None:
        return None
    with _lock:
        if _provider is None or _provider[0] is not state:
            s = state.settings
            headers = {"authorization": f"Bearer {s.api_key}"} if s.api_key else {}
            exporter = OTLPLogExporter(
                endpoint=s.endpoint.rstrip("/") + "/v1/logs",
                headers=headers,
                timeout=s.export_timeout,
                compression=Compression.Gzip,
            )
            provider = LoggerProvider(resource=state.provider.resource)
            provider.add_log_record_processor(BatchLogRecordProcessor(exporter))
            old, _provider = _provider, (state, provider)
            if old is not None:
                _client._bounded(old[1].shutdown, 0.5)
        return _provider[1].get_logger("llmscope", _client.VERSION)


def flush(timeout: float) -> bool:
    current = _provider
    if current is None:
        return True
    return bool(current[1].force_flush(int(timeout * 1000)))


def _emit(name: str, attributes: dict[str, Any], trace_id: int, span_id: int) -> None:
    from opentelemetry._logs import LogRecord

    logger = _logger()
    if logger is None:
        return
    now = time.time_ns()
    attrs = {"event.name": name, **attributes}
    joined = trace.SpanContext(
        trace_id, span_id, is_remote=False, trace_flags=trace.TraceFlags(trace.TraceFlags.SAMPLED)
    )
    ctx = trace.set_span_in_context(trace.NonRecordingSpan(joined))
    try:
        record = LogRecord(
            timestamp=now, observed_timestamp=now, context=ctx, attributes=attrs, event_name=name
        )
    except TypeError:  # an SDK from before log records had event names and contexts
        record = LogRecord(  # type: ignore[call-overload,unused-ignore]
            timestamp=now,
            observed_timestamp=now,
            trace_id=trace_id,
            span_id=span_id,
            trace_flags=joined.trace_flags,
            attributes=attrs,
        )
    logger.emit(record)


def event(name: str, attributes: dict[str, Any] | None = None) -> None:
    """A custom event, joined to the current span."""
    with _client.guard("event"):
        if not isinstance(name, str) or not name:
            raise ValueError("an event needs a non-empty name")
        ctx = trace.get_current_span().get_span_context()
        _emit(name, dict(attributes or {}), ctx.trace_id, ctx.span_id)


def score(
    trace_id: str,
    name: str,
    value: float | bool | str,
    comment: str | None = None,
    span_id: str | None = None,
) -> None:
    """Feedback on a trace (or one span of it): a number, a boolean or a category."""
    with _client.guard("score"):
        tid, sid = str(trace_id).lower(), (str(span_id).lower() if span_id else None)
        if not _HEX_TRACE.match(tid) or int(tid, 16) == 0:
            raise ValueError(f"trace_id must be 32 hex digits, not all zero: {trace_id!r}")
        if sid is not None and not _HEX_SPAN.match(sid):
            raise ValueError(f"span_id must be 16 hex digits, not {span_id!r}")
        if not isinstance(name, str) or not name.strip() or len(name.encode()) > _MAX_NAME:
            raise ValueError(f"a score needs a non-empty name of at most {_MAX_NAME} bytes")
        if not isinstance(value, (int, float, bool, str)):
            raise ValueError(f"a score is a number, a boolean or a string, not {type(value)}")
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError("a score's number must be finite")
        if isinstance(value, str) and not 0 < len(value.encode()) <= _MAX_NAME:
            raise ValueError(f"a category must be a non-empty string of at most {_MAX_NAME} bytes")
        attributes: dict[str, Any] = {"llmscope.score.name": name, "llmscope.score.value": value}
        if comment:
            text = str(comment)
            if len(text.encode()) > _MAX_COMMENT:
                raise ValueError(f"a score's comment is longer than {_MAX_COMMENT} bytes")
            attributes["llmscope.score.comment"] = text
        _emit(SCORE_EVENT, attributes, int(tid, 16), int(sid, 16) if sid else 0)
