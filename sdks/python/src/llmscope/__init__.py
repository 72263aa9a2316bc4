"""LLMScope's Python SDK: OpenAI and Anthropic calls traced in the OpenTelemetry GenAI
conventions and sent to LLMScope over OTLP, asynchronously, in batches, never hurting the app.

    import llmscope, openai
    llmscope.init()                      # LLMSCOPE_ENDPOINT, LLMSCOPE_API_KEY, OTEL_SERVICE_NAME
    client = llmscope.wrap(openai.OpenAI())
    with llmscope.context(user="u-42", session="s-7"):
        client.chat.completions.create(model="gpt-4o-mini", messages=[...])
    llmscope.flush()
"""

from __future__ import annotations

from typing import Any, TypeVar

from . import _anthropic, _client, _openai
from ._client import flush, init, shutdown, stats
from ._context import context
from ._events import event, score
from ._instrument import instrument
from ._observe import observe

__all__ = [
    "init",
    "wrap",
    "instrument",
    "event",
    "score",
    "context",
    "observe",
    "flush",
    "shutdown",
    "stats",
]
__version__ = _client.VERSION

C = TypeVar("C")


def _kind(client: Any) -> Any:
    """('openai' | 'anthropic', is_async) for a supported client, else None."""
    try:
        import openai

        if isinstance(client, openai.AsyncOpenAI):
            return ("openai", True)
        if isinstance(client, openai.OpenAI):
            return ("openai", False)
    except ImportError:
        pass
    try:
        import anthropic

        if isinstance(client, anthropic.AsyncAnthropic):
            return ("anthropic", True)
        if isinstance(client, anthropic.Anthropic):
            return ("anthropic", False)
    except ImportError:
        pass
    return None


def wrap(client: C) -> C:
    """Traces the calls of an ``openai.OpenAI``, ``openai.AsyncOpenAI``, ``anthropic.Anthropic``
    or ``anthropic.AsyncAnthropic`` client; returns the same client (the same object and type).
    Wrapping twice is harmless; anything else is returned untouched, with a warning."""
    with _client.guard("wrap"):
        if getattr(client, "_llmscope_wrapped", False):
            return client
        kind = _kind(client)
        if kind is None:
            _client.log.warning(
                "llmscope.wrap: %s is not a supported client; not traced", type(client).__name__
            )
            return client
        provider, is_async = kind
        (_openai if provider == "openai" else _anthropic).wrap(client, is_async)
        client._llmscope_wrapped = True  # type: ignore[attr-defined]
    return client
