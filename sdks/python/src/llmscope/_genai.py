"""One model call as a span in the current OpenTelemetry GenAI conventions: started before the
request, ended exactly once with the response, the error, or the end of its stream."""

from __future__ import annotations

import json
from typing import Any

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
    """The span of one call. Every method is safe: an SDK error is reported, never raised."""

    def __init__(
        self,
        provider: str,
        operation: str,
        kwargs: dict[str, Any],
        server: str | None = None,
    ) -> None:
        self.span: trace.Span | None = None
        self.ended = False
        self.settings: _client.Settings | None = None
        with _client.guard("span start"):
            state = _client.state()
            if state is None:
                return
            self.settings = state.settings
            model = kwargs.get("model")
            attributes: dict[str, Any] = {
                "gen_ai.operation.name": operation,
                "gen_ai.provider.name": provider,
            }
            if isinstance(model, str):
                attributes["gen_ai.request.model"] = model
            for param, key in REQUEST_PARAMS.items():
                value = kwargs.get(param)
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    attributes[key] = value
            stop = kwargs.get("stop") or kwargs.get("stop_sequences")
            if isinstance(stop, str):
                attributes["gen_ai.request.stop_sequences"] = [stop]
            elif isinstance(stop, (list, tuple)):
                attributes["gen_ai.request.stop_sequences"] = [str(s) for s in stop]
            if server:
                attributes["server.address"] = server
            attributes.update(_context.attributes())
            name = f"{operation} {model}" if isinstance(model, str) else operation
            self.span = state.tracer.start_span(name, kind=SpanKind.CLIENT, attributes=attributes)

    def content(self, key: str, value: Any) -> None:
        """Message content, when content is captured (and redacted first when asked)."""
        if self.span is None or self.settings is None or not self.settings.capture_content:
            return
        with _client.guard("content"):
            text = json.dumps(value, default=str, ensure_ascii=False)
            if self.settings.redact is not None:
                text = self.settings.redact(text)
            self.span.set_attribute(key, text)

    def set(self, key: str, value: Any) -> None:
        if self.span is None or value is None:
            return
        with _client.guard("attributes"):
            self.span.set_attribute(key, value)

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
        if self.span is None or self.ended:
            return
        with _client.guard("span end"):
            self.span.set_attribute("error.type", type(error).__qualname__)
            self.span.set_status(Status(StatusCode.ERROR, str(error)[:500]))
            self.span.record_exception(error)
        self.end()

    def end(self) -> None:
        if self.span is None or self.ended:
            return
        self.ended = True
        with _client.guard("span end"):
            self.span.end()


def text_part(text: Any) -> dict[str, Any]:
    return {"type": "text", "content": text if isinstance(text, str) else str(text)}


def finish_reasons(reasons: list[str | None]) -> list[str] | None:
    out = [r for r in reasons if isinstance(r, str) and r]
    return out or None
