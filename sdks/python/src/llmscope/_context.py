"""``with llmscope.context(user=..., session=..., tags=..., metadata=...)``: attributes every span
started inside carries (nested contexts add to their parent's; inner values win). Built on
``contextvars``, so it follows threads started with ``contextvars.copy_context`` and asyncio
tasks."""

from __future__ import annotations

import contextvars
import json
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from types import MappingProxyType
from typing import Any

_current: contextvars.ContextVar[Mapping[str, Any]] = contextvars.ContextVar(
    "llmscope_context", default=MappingProxyType({})
)


@contextmanager
def context(
    user: str | None = None,
    session: str | None = None,
    tags: Sequence[str] | None = None,
    metadata: dict[str, Any] | None = None,
) -> Iterator[None]:
    merged = dict(_current.get())
    if user is not None:
        merged["user.id"] = str(user)
    if session is not None:
        merged["session.id"] = str(session)
    if tags:
        seen: list[str] = list(merged.get("llmscope.tags", []))
        merged["llmscope.tags"] = seen + [str(t) for t in tags if str(t) not in seen]
    for k, v in (metadata or {}).items():
        merged[f"llmscope.metadata.{k}"] = v
    token = _current.set(merged)
    try:
        yield
    finally:
        _current.reset(token)


def current() -> Mapping[str, Any]:
    """The current context (never mutated: a nested context makes a new one)."""
    return _current.get()


def attributes() -> dict[str, Any]:
    """The current context as span attributes."""
    return as_attributes(_current.get())


def as_attributes(values: Mapping[str, Any]) -> dict[str, Any]:
    """A context as span attributes (values OpenTelemetry accepts)."""
    out: dict[str, Any] = {}
    for k, v in values.items():
        if isinstance(v, (str, bool, int, float)):
            out[k] = v
        elif isinstance(v, (list, tuple)) and all(isinstance(x, str) for x in v):
            out[k] = list(v)
        else:
            out[k] = json.dumps(v, default=str)
    return out
