"""OpenAI: ``chat.completions.create`` (streaming included) and ``embeddings.create`` of
``openai.OpenAI`` and ``openai.AsyncOpenAI`` clients. A streamed chat gets
``stream_options.include_usage`` unless the caller set ``stream_options``; the usage-only last
chunk this adds is counted and not shown to the caller, whose code never expected it."""

from __future__ import annotations

import functools
import json
from typing import Any

from ._genai import Call, finish_reasons, get, text_part
from ._streams import Accumulator
from ._wrapper import Maker, maker


def _parts(content: Any) -> list[dict[str, Any]]:
    if content is None:
        return []
    if isinstance(content, str):
        return [text_part(content)]
    parts = []
    for p in content if isinstance(content, list) else [content]:
        kind = get(p, "type")
        if kind == "text":
            parts.append(text_part(get(p, "text", "")))
        elif kind is not None:
            parts.append({"type": str(kind)})
    return parts


def _tool_calls(calls: Any) -> list[dict[str, Any]]:
    out = []
    for c in calls or []:
        fn = get(c, "function")
        arguments: Any = get(fn, "arguments")
        if isinstance(arguments, str):
            try:
                arguments = json.loads(arguments)
            except ValueError:
                pass
        out.append(
            {
                "type": "tool_call",
                "id": get(c, "id"),
                "name": get(fn, "name"),
                "arguments": arguments,
            }
        )
    return out


def input_messages(messages: Any) -> list[dict[str, Any]]:
    out = []
    for m in messages or []:
        role = get(m, "role", "user")
        if role == "tool":
            out.append(
                {
                    "role": "tool",
                    "parts": [
                        {
                            "type": "tool_call_response",
                            "id": get(m, "tool_call_id"),
                            "response": get(m, "content"),
                        }
                    ],
                }
            )
            continue
        parts = _parts(get(m, "content")) + _tool_calls(get(m, "tool_calls"))
        out.append({"role": role, "parts": parts})
    return out


def _record_chat(call: Call, response: Any) -> None:
    call.set("gen_ai.response.id", get(response, "id"))
    call.set("gen_ai.response.model", get(response, "model"))
    outputs, reasons = [], []
    for choice in get(response, "choices") or []:
        message = get(choice, "message")
        reason = get(choice, "finish_reason")
        reasons.append(reason)
        outputs.append(
            {
                "role": get(message, "role", "assistant"),
                "parts": _parts(get(message, "content")) + _tool_calls(get(message, "tool_calls")),
                "finish_reason": reason,
            }
        )
    call.set("gen_ai.response.finish_reasons", finish_reasons(reasons))
    call.content("gen_ai.output.messages", outputs)
    _record_usage(call, get(response, "usage"))


def _record_usage(call: Call, usage: Any) -> None:
    if usage is None:
        return
    call.usage(
        get(usage, "prompt_tokens"),
        get(usage, "completion_tokens"),
        cache_read=get(get(usage, "prompt_tokens_details"), "cached_tokens"),
        reasoning=get(get(usage, "completion_tokens_details"), "reasoning_tokens"),
    )


class ChatChunks(Accumulator):
    def __init__(self, hide_usage_chunk: bool) -> None:
        super().__init__()
        self.hide_usage_chunk = hide_usage_chunk
        self.id: str | None = None
        self.model: str | None = None
        self.reasons: dict[int, str | None] = {}
        self.tools: dict[int, dict[int, dict[str, Any]]] = {}
        self.usage: Any = None

    def add(self, chunk: Any) -> None:
        self.id = self.id or get(chunk, "id")
        self.model = self.model or get(chunk, "model")
        usage = get(chunk, "usage")
        if usage is not None:
            self.usage = usage
            self.usage_seen = True
        for choice in get(chunk, "choices") or []:
            index = get(choice, "index", 0)
            delta = get(choice, "delta")
            content = get(delta, "content")
            if isinstance(content, str) and index == 0:
                self.text.append(content)
            for tc in get(delta, "tool_calls") or []:
                slot = self.tools.setdefault(index, {}).setdefault(
                    get(tc, "index", 0), {"id": None, "name": None, "arguments": ""}
                )
                fn = get(tc, "function")
                slot["id"] = slot["id"] or get(tc, "id")
                slot["name"] = slot["name"] or get(fn, "name")
                slot["arguments"] += get(fn, "arguments") or ""
            if get(choice, "finish_reason"):
                self.reasons[index] = get(choice, "finish_reason")

    def hide(self, chunk: Any) -> bool:
        usage_only = not get(chunk, "choices") and get(chunk, "usage") is not None
        return self.hide_usage_chunk and usage_only

    def finish(self, call: Call) -> None:
        call.set("gen_ai.response.id", self.id)
        call.set("gen_ai.response.model", self.model)
        call.set("gen_ai.response.finish_reasons", finish_reasons(list(self.reasons.values())))
        tools = [
            {
                "id": t["id"],
                "type": "function",
                "function": {"name": t["name"], "arguments": t["arguments"]},
            }
            for t in self.tools.get(0, {}).values()
        ]
        parts = ([text_part("".join(self.text))] if self.text else []) + _tool_calls(tools)
        call.content(
            "gen_ai.output.messages",
            [{"role": "assistant", "parts": parts, "finish_reason": self.reasons.get(0)}],
        )
        _record_usage(call, self.usage)


def _start(client: Any, operation: str, kwargs: dict[str, Any]) -> Call:
    try:
        server = getattr(getattr(client, "base_url", None), "host", None)
    except Exception:  # noqa: BLE001 - a client without a usable base URL
        server = None
    call = Call("openai", operation, kwargs, server)
    if operation == "chat" and "messages" in kwargs:
        messages = list(kwargs.get("messages") or [])
        call.content("gen_ai.input.messages", functools.partial(input_messages, messages))
    return call


def _ask_for_usage(call: Call, kwargs: dict[str, Any]) -> bool:
    """Adds ``stream_options.include_usage`` to a streamed chat the caller left without one."""
    if not call.active or kwargs.get("stream") is not True or "stream_options" in kwargs:
        return False
    kwargs["stream_options"] = {"include_usage": True}
    return True


def _record_embeddings(call: Call, result: Any) -> None:
    call.set("gen_ai.response.model", get(result, "model"))
    usage = get(result, "usage")
    call.usage(get(usage, "prompt_tokens"), None)


def responses_input(value: Any) -> list[dict[str, Any]]:
    """The Responses API's ``input``: a string, or a list of messages and items."""
    if isinstance(value, str):
        return [{"role": "user", "parts": [text_part(value)]}]
    out = []
    for item in value or []:
        kind = get(item, "type")
        if kind == "function_call_output":
            out.append(
                {
                    "role": "tool",
                    "parts": [
                        {
                            "type": "tool_call_response",
                            "id": get(item, "call_id"),
                            "response": get(item, "output"),
                        }
                    ],
                }
            )
        elif kind == "function_call":
            out.append({"role": "assistant", "parts": _function_calls([item])})
        else:
            content = get(item, "content")
            if isinstance(content, list):
                parts = [
                    text_part(get(p, "text", ""))
                    for p in content
                    if get(p, "type") in ("input_text", "output_text", "text")
                ]
            else:
                parts = _parts(content)
            out.append({"role": get(item, "role", "user"), "parts": parts})
    return out


def _function_calls(items: Any) -> list[dict[str, Any]]:
    calls = [
        {
            "id": get(i, "call_id"),
            "function": {"name": get(i, "name"), "arguments": get(i, "arguments")},
        }
        for i in items
    ]
    return _tool_calls(calls)


def _record_response(call: Call, response: Any) -> None:
    call.set("gen_ai.response.id", get(response, "id"))
    call.set("gen_ai.response.model", get(response, "model"))
    status = get(response, "status")
    reason = get(get(response, "incomplete_details"), "reason") or status
    call.set("gen_ai.response.finish_reasons", finish_reasons([reason]))
    parts: list[dict[str, Any]] = []
    for item in get(response, "output") or []:
        kind = get(item, "type")
        if kind == "message":
            parts += [
                text_part(get(p, "text", ""))
                for p in get(item, "content") or []
                if get(p, "type") == "output_text"
            ]
        elif kind == "function_call":
            parts += _function_calls([item])
    call.content(
        "gen_ai.output.messages", [{"role": "assistant", "parts": parts, "finish_reason": reason}]
    )
    usage = get(response, "usage")
    if usage is not None:
        call.usage(
            get(usage, "input_tokens"),
            get(usage, "output_tokens"),
            cache_read=get(get(usage, "input_tokens_details"), "cached_tokens"),
            reasoning=get(get(usage, "output_tokens_details"), "reasoning_tokens"),
        )


class ResponseEvents(Accumulator):
    def __init__(self) -> None:
        super().__init__()
        self.started: Any = None
        self.final: Any = None

    def add(self, event: Any) -> None:
        kind = get(event, "type")
        if kind == "response.created":
            self.started = get(event, "response")
        elif kind == "response.output_text.delta":
            self.text.append(get(event, "delta", ""))
        elif kind in ("response.completed", "response.incomplete", "response.failed"):
            self.final = get(event, "response")
            self.usage_seen = get(self.final, "usage") is not None

    def finish(self, call: Call) -> None:
        if self.final is not None:
            _record_response(call, self.final)
            return
        call.set("gen_ai.response.id", get(self.started, "id"))
        call.set("gen_ai.response.model", get(self.started, "model"))
        parts = [text_part("".join(self.text))] if self.text else []
        call.content("gen_ai.output.messages", [{"role": "assistant", "parts": parts}])


def _responses_start(client: Any, kwargs: dict[str, Any]) -> tuple[Call, Any]:
    call = _start(client, "chat", kwargs)
    instructions = kwargs.get("instructions")
    if isinstance(instructions, str):
        call.content("gen_ai.system_instructions", [text_part(instructions)])
    value = kwargs.get("input")
    value = list(value) if isinstance(value, list) else value
    call.content("gen_ai.input.messages", functools.partial(responses_input, value))
    return call, None


def _chat_start(client: Any, kwargs: dict[str, Any]) -> tuple[Call, Any]:
    call = _start(client, "chat", kwargs)
    return call, _ask_for_usage(call, kwargs)


def _embeddings_start(client: Any, kwargs: dict[str, Any]) -> tuple[Call, Any]:
    return _start(client, "embeddings", kwargs), None


def chat_maker(is_async: bool) -> Maker:
    return maker(_chat_start, _record_chat, ChatChunks, is_async)


def responses_maker(is_async: bool) -> Maker:
    return maker(_responses_start, _record_response, lambda _: ResponseEvents(), is_async)


def embeddings_maker(is_async: bool) -> Maker:
    return maker(_embeddings_start, _record_embeddings, None, is_async)


def wrap(client: Any, is_async: bool) -> None:
    """Replaces the client's methods with traced ones, in place (unless ``instrument()`` already
    traces them)."""
    from ._instrument import patched

    completions = client.chat.completions
    if not patched(completions):
        completions.create = chat_maker(is_async)(client, completions.create)
    if not patched(client.embeddings):
        client.embeddings.create = embeddings_maker(is_async)(client, client.embeddings.create)
    responses = getattr(client, "responses", None)
    if responses is not None and not patched(responses):
        responses.create = responses_maker(is_async)(client, responses.create)
