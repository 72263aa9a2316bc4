"""``llmscope.instrument()``: traces every OpenAI and Anthropic client, wherever it is created,
by patching the resource classes (``chat.completions``, ``responses``, ``embeddings``,
``messages``) once.
A client also passed to :func:`llmscope.wrap` is not traced twice."""

from __future__ import annotations

import functools
from typing import Any

from . import _anthropic, _client, _openai
from ._wrapper import Maker

MARK = "_llmscope_instrumented"


def patched(resource: Any) -> bool:
    """Whether ``resource``'s class already traces ``create``."""
    return bool(getattr(getattr(type(resource), "create", None), MARK, False))


def _patch(cls: type, make: Maker) -> None:
    original = cls.create  # type: ignore[attr-defined]
    if getattr(original, MARK, False):
        return

    @functools.wraps(original)
    def create(self: Any, *args: Any, **kwargs: Any) -> Any:
        traced = make(getattr(self, "_client", None), functools.partial(original, self))
        return traced(*args, **kwargs)

    setattr(create, MARK, True)
    cls.create = create  # type: ignore[attr-defined]


def instrument() -> None:
    with _client.guard("instrument"):
        try:
            import openai

            for is_async, cls in ((False, openai.OpenAI), (True, openai.AsyncOpenAI)):
                client = cls(api_key="unused", base_url="http://127.0.0.1:9/v1")
                _patch(type(client.chat.completions), _openai.chat_maker(is_async))
                _patch(type(client.embeddings), _openai.embeddings_maker(is_async))
                _patch(type(client.responses), _openai.responses_maker(is_async))
        except ImportError:
            pass
    with _client.guard("instrument"):
        try:
            import anthropic

            for is_async, acls in ((False, anthropic.Anthropic), (True, anthropic.AsyncAnthropic)):
                aclient = acls(api_key="unused", base_url="http://127.0.0.1:9")
                _patch(type(aclient.messages), _anthropic.maker(is_async))
        except ImportError:
            pass
