"""One model call as a span in the current OpenTelemetry GenAI conventions: started before the
request, ended exactly once with the response, the error, or the end of its stream."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from . import _client, _context


def get(obj: Any, key: str, default: Any = None) -> Any:
    """A field of an SDK response object or of a plain dict."""
    if obj is None:
        return default
    if isinstance(obj, dict):
        return obj.get(key, default)
    return getattr(obj, key, default)


def plain(obj: Any) -> Any:
    """A response object (pydantic model) as plain JSON-able data."""
    if hasattr(obj, "model_dump"):
        try:
            return obj.model_dump(mode="json", exclude_none=True)
        except Exception:  # noqa: BLE001
            return str(obj)
    if isinstance(obj, dict):
        return {k: plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(v) for v in obj]
    return obj


REQUEST_PARAMS = {
    "temperature": "gen_ai.request.temperature",
    "top_p": "gen_ai.request.top_p",
    "top_k": "gen_ai.request.top_k",
    "max_tokens": "gen_ai.request.max_tokens",
    "max_completion_tokens": "gen_ai.request.max_tokens",
    "frequency_penalty": "gen_ai.request.frequency_penalty",
    "presence_penalty": "gen_ai.request.presence_penalty",
    "seed": "gen_ai.request.seed",
}


class Call:
    """One call. On the caller's thread it only notes times, the parent context and references
    (a shallow copy of the request's messages); the span is built and its content serialized on
    the SDK's worker thread once the call ends (:func:`_client.submit`). Every method is safe: an
    SDK error is reported, never raised."""

    def __init__(
        self,
        provider: str,
        operation: str,
        kwargs: dict[str, Any],
        server: str | None = None,
    ) -> None:
        self.active = False
        self.ended = False
        self.attrs: dict[str, Any] = {}
        self.contents: list[tuple[str, Any]] = []
        self.later: list[Callable[[], None]] = []
        self.error: BaseException | None = None
        try:
            if _client.state() is None:
                return
            self.start_ns = time.time_ns()
            self.parent = otel_context.get_current()
            self.context = _context.current()
            self.provider, self.operation, self.server = provider, operation, server
            self.params = {k: v for k, v in kwargs.items() if k in _PARAMS}
            self.active = True
        except Exception as e:  # noqa: BLE001 - a plain try: this runs on every call
            _client.report("span start", e)

    def content(self, key: str, value: Any) -> None:
        """Message content (or a function making it), when content is captured."""
        if self.active:
            self.contents.append((key, value))

    def set(self, key: str, value: Any) -> None:
        if self.active and value is not None:
            self.attrs[key] = value

    def after(self, fn: Callable[[], None]) -> None:
        """Runs ``fn`` (reading the response into attributes) on the worker, before the span."""
        if self.active:
            self.later.append(fn)

    def usage(
        self,
        input_tokens: int | None,
        output_tokens: int | None,
        cache_read: int | None = None,
        cache_creation: int | None = None,
        reasoning: int | None = None,
    ) -> None:
        """Token counts as the conventions count them: input includes cache reads and writes,
        output includes reasoning."""
        for key, value in (
            ("gen_ai.usage.input_tokens", input_tokens),
            ("gen_ai.usage.output_tokens", output_tokens),
            ("gen_ai.usage.cache_read.input_tokens", cache_read),
            ("gen_ai.usage.cache_creation.input_tokens", cache_creation),
            ("gen_ai.usage.reasoning.output_tokens", reasoning),
        ):
            if isinstance(value, int) and not isinstance(value, bool):
                self.set(key, value)

    def fail(self, error: BaseException) -> None:
        if self.active and not self.ended:
            self.error = error
        self.end()

    def end(self) -> None:
        if not self.active or self.ended:
            return
        self.ended = True
        self.end_ns = time.time_ns()
        _client.submit(self.build)

    def build(self, tracer: trace.Tracer, settings: _client.Settings) -> None:
        """On the worker: the span, as it would have been made on the caller's thread."""
        model = self.params.get("model")
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": self.operation,
            "gen_ai.provider.name": self.provider,
        }
        if isinstance(model, str):
            attributes["gen_ai.request.model"] = model
        for param, key in REQUEST_PARAMS.items():
            value = self.params.get(param)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                attributes[key] = value
        stop = self.params.get("stop") or self.params.get("stop_sequences")
        if isinstance(stop, str):
            attributes["gen_ai.request.stop_sequences"] = [stop]
        elif isinstance(stop, (list, tuple)):
            attributes["gen_ai.request.stop_sequences"] = [str(s) for s in stop]
        if self.server:
            attributes["server.address"] = self.server
        attributes.update(_context.as_attributes(self.context))
        for fn in self.later:
            with _client.guard("response"):
                fn()
        attributes.update(self.attrs)
        if settings.capture_content:
            for key, value in self.contents:
                with _client.guard("content"):
                    text = json.dumps(
                        value() if callable(value) else value, default=str, ensure_ascii=False
                    )
                    if settings.redact is not None:
                        text = settings.redact(text)
                    attributes[key] = text
        if self.error is not None:
            attributes["error.type"] = type(self.error).__qualname__
        name = f"{self.operation} {model}" if isinstance(model, str) else self.operation
        span = tracer.start_span(
            name,
            context=self.parent,
            kind=SpanKind.CLIENT,
            attributes=attributes,
            start_time=self.start_ns,
        )
        if self.error is not None:
            span.set_status(Status(StatusCode.ERROR, str(self.error)[:500]))
            span.record_exception(self.error)
        span.end(end_time=self.end_ns)


_PARAMS = frozenset(("model", "stop", "stop_sequences", *REQUEST_PARAMS))


def text_part(text: Any) -> dict[str, Any]:
    return {"type": "text", "content": text if isinstance(text, str) else str(text)}


def finish_reasons(reasons: list[str | None]) -> list[str] | None:
    out = [r for r in reasons if isinstance(r, str) and r]
    return out or None
