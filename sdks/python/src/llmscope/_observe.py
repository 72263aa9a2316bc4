"""``@llmscope.observe(name=...)``: a span around a function (sync, async, generator or async
generator) for agent steps and tools. Model calls made inside are its children. Exceptions are
recorded and re-raised unchanged; the function's behaviour never changes."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Callable, TypeVar

from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode

from . import _client, _context

F = TypeVar("F", bound=Callable[..., Any])


@contextmanager
def _span(name: str, kind: str) -> Iterator[None]:
    span: trace.Span | None = None
    with _client.guard("observe"):
        tracer = _client.tracer()
        if tracer is not None:
            attributes = dict(_context.attributes())
            attributes["llmscope.observation.type"] = kind
            span = tracer.start_span(name, attributes=attributes)
    if span is None:
        yield
        return
    with trace.use_span(
        span, end_on_exit=False, record_exception=False, set_status_on_exception=False
    ):
        try:
            yield
        except BaseException as e:
            with _client.guard("observe"):
                span.set_attribute("error.type", type(e).__qualname__)
                span.set_status(Status(StatusCode.ERROR, str(e)[:500]))
                span.record_exception(e)
            raise
        finally:
            with _client.guard("observe"):
                span.end()


def observe(name: str | None = None, kind: str = "span") -> Callable[[F], F]:
    """Decorates a function with a span named ``name`` (default: its qualified name)."""

    def decorate(fn: F) -> F:
        span_name: str = name or str(getattr(fn, "__qualname__", "observe"))
        if inspect.isasyncgenfunction(fn):

            @functools.wraps(fn)
            async def agen(*args: Any, **kwargs: Any) -> Any:
                with _span(span_name, kind):
                    async for item in fn(*args, **kwargs):
                        yield item

            return agen  # type: ignore[return-value]
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def coro(*args: Any, **kwargs: Any) -> Any:
                with _span(span_name, kind):
                    return await fn(*args, **kwargs)

            return coro  # type: ignore[return-value]
        if inspect.isgeneratorfunction(fn):

            @functools.wraps(fn)
            def gen(*args: Any, **kwargs: Any) -> Any:
                with _span(span_name, kind):
                    yield from fn(*args, **kwargs)

            return gen  # type: ignore[return-value]

        @functools.wraps(fn)
        def call(*args: Any, **kwargs: Any) -> Any:
            with _span(span_name, kind):
                return fn(*args, **kwargs)

        return call  # type: ignore[return-value]

    return decorate
