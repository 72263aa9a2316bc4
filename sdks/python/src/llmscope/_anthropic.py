"""Anthropic: ``messages.create`` (streaming included) of ``anthropic.Anthropic`` and
``anthropic.AsyncAnthropic`` clients. Anthropic counts cache reads and writes apart from
``input_tokens``; the span's input tokens include them, as the conventions count."""

from __future__ import annotations

import functools
from typing import Any

from ._genai import Call, finish_reasons, get, plain, text_part
from ._streams import Accumulator
from ._wrapper import Maker
from ._wrapper import maker as traced


def _parts(content: Any) -> list[dict[str, Any]]:
    if content is None:
        return []
    if isinstance(content, str):
        return [text_part(content)]
    parts: list[dict[str, Any]] = []
    for block in content if isinstance(content, list) else [content]:
        kind = get(block, "type")
        if kind == "text":
            parts.append(text_part(get(block, "text", "")))
        elif kind == "tool_use":
            parts.append(
                {
                    "type": "tool_call",
                    "id": get(block, "id"),
                    "name": get(block, "name"),
                    "arguments": plain(get(block, "input")),
                }
            )
        elif kind == "tool_result":
            parts.append(
                {
                    "type": "tool_call_response",
                    "id": get(block, "tool_use_id"),
                    "response": plain(get(block, "content")),
                }
            )
        elif kind == "thinking":
            parts.append({"type": "reasoning", "content": get(block, "thinking", "")})
        elif kind is not None:
            parts.append({"type": str(kind)})
    return parts


def _usage(call: Call, usage: Any) -> None:
    if usage is None:
        return
    cache_read = get(usage, "cache_read_input_tokens")
    cache_write = get(usage, "cache_creation_input_tokens")
    uncached = get(usage, "input_tokens")
    input_tokens = None
    if isinstance(uncached, int):
        input_tokens = uncached + (cache_read or 0) + (cache_write or 0)
    call.usage(
        input_tokens, get(usage, "output_tokens"), cache_read=cache_read, cache_creation=cache_write
    )


def _record(call: Call, message: Any) -> None:
    call.set("gen_ai.response.id", get(message, "id"))
    call.set("gen_ai.response.model", get(message, "model"))
    reason = get(message, "stop_reason")
    call.set("gen_ai.response.finish_reasons", finish_reasons([reason]))
    call.content(
        "gen_ai.output.messages",
        [
            {
                "role": get(message, "role", "assistant"),
                "parts": _parts(get(message, "content")),
                "finish_reason": reason,
            }
        ],
    )
    _usage(call, get(message, "usage"))


class MessageEvents(Accumulator):
    def __init__(self) -> None:
        super().__init__()
        self.message: Any = None
        self.reason: str | None = None
        self.output_tokens: int | None = None
        self.tools: list[dict[str, Any]] = []

    def add(self, event: Any) -> None:
        kind = get(event, "type")
        if kind == "message_start":
            self.message = get(event, "message")
        elif kind == "content_block_start":
            block = get(event, "content_block")
            if get(block, "type") == "tool_use":
                self.tools.append(
                    {
                        "type": "tool_call",
                        "id": get(block, "id"),
                        "name": get(block, "name"),
                        "arguments": "",
                    }
                )
        elif kind == "content_block_delta":
            delta = get(event, "delta")
            if get(delta, "type") == "text_delta":
                self.text.append(get(delta, "text", ""))
            elif get(delta, "type") == "input_json_delta" and self.tools:
                self.tools[-1]["arguments"] += get(delta, "partial_json", "")
        elif kind == "message_delta":
            self.reason = get(get(event, "delta"), "stop_reason") or self.reason
            out = get(get(event, "usage"), "output_tokens")
            if isinstance(out, int):
                self.output_tokens = out
                self.usage_seen = True

    def finish(self, call: Call) -> None:
        call.set("gen_ai.response.id", get(self.message, "id"))
        call.set("gen_ai.response.model", get(self.message, "model"))
        call.set("gen_ai.response.finish_reasons", finish_reasons([self.reason]))
        parts = ([text_part("".join(self.text))] if self.text else []) + self.tools
        call.content(
            "gen_ai.output.messages",
            [{"role": "assistant", "parts": parts, "finish_reason": self.reason}],
        )
        usage = get(self.message, "usage")
        _usage(call, usage)
        if self.output_tokens is not None:
            call.set("gen_ai.usage.output_tokens", self.output_tokens)


def _input(messages: list[Any]) -> list[dict[str, Any]]:
    return [{"role": get(m, "role", "user"), "parts": _parts(get(m, "content"))} for m in messages]


def _start(client: Any, kwargs: dict[str, Any]) -> Call:
    try:
        server = getattr(getattr(client, "base_url", None), "host", None)
    except Exception:  # noqa: BLE001 - a client without a usable base URL
        server = None
    call = Call("anthropic", "chat", kwargs, server)
    system = kwargs.get("system")
    if system is not None:
        call.content("gen_ai.system_instructions", functools.partial(_parts, system))
    messages = list(kwargs.get("messages") or [])
    call.content("gen_ai.input.messages", functools.partial(_input, messages))
    return call


def _start_call(client: Any, kwargs: dict[str, Any]) -> tuple[Call, Any]:
    return _start(client, kwargs), None


def maker(is_async: bool) -> Maker:
    return traced(_start_call, _record, lambda _: MessageEvents(), is_async)


def wrap(client: Any, is_async: bool) -> None:
    """Replaces the client's ``messages.create`` with a traced one, in place (unless
    ``instrument()`` already traces it)."""
    from ._instrument import patched

    messages = client.messages
    if not patched(messages):
        messages.create = maker(is_async)(client, messages.create)
