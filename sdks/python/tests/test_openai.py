"""The real ``openai`` package against the fake provider; spans read back from LLMScope."""

from __future__ import annotations

import asyncio

import openai
import pytest
from helpers import in_trace, model_calls


def client(provider, cls=openai.OpenAI):
    return cls(api_key="sk-test", base_url=provider.url + "/v1", max_retries=0)


def test_a_chat_call_is_one_span_with_tokens_cost_content_and_user(sdk, collector, provider):
    c = sdk.wrap(client(provider))
    assert type(c) is openai.OpenAI
    with sdk.context(user="u-42", session="s-7", tags=["beta"]):
        tid, r = in_trace(
            sdk,
            lambda: c.chat.completions.create(
                model="gpt-4o-mini",
                temperature=0.2,
                messages=[
                    {"role": "system", "content": "Be brief."},
                    {"role": "user", "content": "Capital of France?"},
                ],
            ),
        )
    assert r.choices[0].message.content == "The capital of France is Paris."
    assert sdk.flush(timeout=5)
    t = collector.trace(tid, spans=2)
    [call] = model_calls(t)
    g = call["gen_ai"]
    assert (g["operation"], g["provider"], g["request_model"]) == ("chat", "openai", "gpt-4o-mini")
    assert g["response_model"] == "gpt-4o-mini-2024-07-18"
    assert g["response_id"] == "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT"
    assert (g["input_tokens"], g["output_tokens"], g["cache_read_tokens"]) == (1200, 40, 1024)
    assert g["cost_usd"] and g["cost_usd"] > 0
    assert g["user_id"] == "u-42" and g["session_id"] == "s-7"
    assert g["input_messages"][1]["parts"][0]["content"] == "Capital of France?"
    assert g["output_messages"][0]["parts"][0]["content"] == "The capital of France is Paris."
    assert call["attributes"]["gen_ai.request.temperature"] == 0.2
    assert call["kind"] in ("client", "CLIENT", 3)
    root = [s for s in t["spans"] if s["name"] == "test-root"][0]
    assert call["parent_span_id"] == root["span_id"]


def test_tool_calls_are_recorded(sdk, collector, provider):
    c = sdk.wrap(client(provider))
    tid, _ = in_trace(
        sdk,
        lambda: c.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "Weather in Paris?"}],
            tools=[{"type": "function", "function": {"name": "get_weather", "parameters": {}}}],
        ),
    )
    sdk.flush(timeout=5)
    [call] = model_calls(collector.trace(tid, spans=2))
    part = call["gen_ai"]["output_messages"][0]["parts"][0]
    assert part == {
        "type": "tool_call",
        "id": "call_abc123",
        "name": "get_weather",
        "arguments": {"city": "Paris"},
    }


def test_a_stream_asks_for_usage_hides_the_usage_chunk_and_ends_its_span(sdk, collector, provider):
    c = sdk.wrap(client(provider))

    def consume():
        chunks = list(
            c.chat.completions.create(
                model="gpt-4o-mini",
                stream=True,
                messages=[{"role": "user", "content": "Capital of France?"}],
            )
        )
        # The caller's code indexes choices[0]: the usage-only chunk it never asked for is hidden.
        return "".join(ch.choices[0].delta.content or "" for ch in chunks)

    tid, text = in_trace(sdk, consume)
    assert text == "The capital of France is Paris."
    assert provider.requests[-1][1]["stream_options"] == {"include_usage": True}
    sdk.flush(timeout=5)
    [call] = model_calls(collector.trace(tid, spans=2))
    g = call["gen_ai"]
    assert (g["input_tokens"], g["output_tokens"]) == (20, 7)
    assert g["output_messages"][0]["parts"][0]["content"] == text
    assert "llmscope.usage.estimated" not in call["attributes"]


def test_a_stream_the_caller_asked_usage_for_is_left_as_is(sdk, collector, provider):
    c = sdk.wrap(client(provider))
    chunks = list(
        c.chat.completions.create(
            model="gpt-4o-mini",
            stream=True,
            stream_options={"include_usage": True},
            messages=[{"role": "user", "content": "hi"}],
        )
    )
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 7


def test_a_stream_broken_after_two_chunks_still_ends_its_span_estimated(sdk, collector, provider):
    c = sdk.wrap(client(provider))

    def two():
        stream = c.chat.completions.create(
            model="gpt-4o-mini", stream=True, messages=[{"role": "user", "content": "hi"}]
        )
        seen = []
        for chunk in stream:
            seen.append(chunk)
            if len(seen) == 3:
                break
        stream.close()

    tid, _ = in_trace(sdk, two)
    sdk.flush(timeout=5)
    [call] = model_calls(collector.trace(tid, spans=2))
    assert call["attributes"]["llmscope.usage.estimated"] is True
    assert call["gen_ai"]["output_tokens"] >= 1


def test_async_chat_and_embeddings(sdk, collector, provider):
    c = sdk.wrap(client(provider, openai.AsyncOpenAI))
    assert type(c) is openai.AsyncOpenAI

    async def run():
        await c.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
        )
        stream = await c.chat.completions.create(
            model="gpt-4o-mini", stream=True, messages=[{"role": "user", "content": "hi"}]
        )
        text = "".join([ch.choices[0].delta.content or "" async for ch in stream])
        await c.embeddings.create(model="text-embedding-3-small", input="hello")
        return text

    tid, text = in_trace(sdk, lambda: asyncio.run(run()))
    assert text == "The capital of France is Paris."
    sdk.flush(timeout=5)
    calls = model_calls(collector.trace(tid, spans=4))
    ops = sorted(s["gen_ai"]["operation"] for s in calls)
    assert ops == ["chat", "chat", "embeddings"]
    [emb] = [s for s in calls if s["gen_ai"]["operation"] == "embeddings"]
    assert emb["gen_ai"]["input_tokens"] == 8


def test_a_failed_call_raises_as_before_and_its_span_says_why(sdk, collector, provider):
    c = sdk.wrap(client(provider))

    def fail():
        with pytest.raises(openai.BadRequestError):
            c.chat.completions.create(model="fail", messages=[{"role": "user", "content": "x"}])

    tid, _ = in_trace(sdk, fail)
    sdk.flush(timeout=5)
    [call] = model_calls(collector.trace(tid, spans=2))
    assert call["status"] in ("error", "ERROR")
    assert call["attributes"]["error.type"] == "BadRequestError"


def test_wrapping_twice_or_wrapping_something_else_is_harmless(sdk, provider):
    c = client(provider)
    assert sdk.wrap(sdk.wrap(c)) is c
    thing = object()
    assert sdk.wrap(thing) is thing


def test_the_responses_api_plain_and_streamed(sdk, collector, provider):
    c = sdk.wrap(client(provider))

    def both():
        r = c.responses.create(
            model="gpt-4o-mini", instructions="Be brief.", input="Capital of France?"
        )
        events = list(c.responses.create(model="gpt-4o-mini", input="Again?", stream=True))
        return r, events

    tid, (r, events) = in_trace(sdk, both)
    assert r.output_text == "The capital of France is Paris."
    assert events[-1].type == "response.completed"
    sdk.flush(timeout=5)
    calls = model_calls(collector.trace(tid, spans=3))
    assert len(calls) == 2
    for call in calls:
        g = call["gen_ai"]
        assert (g["operation"], g["provider"]) == ("chat", "openai")
        assert (g["input_tokens"], g["output_tokens"]) == (36, 87)
        assert g["response_id"] == "resp_67ccd2bed1ec8190b14f964abc054267"
        assert g["output_messages"][0]["parts"][0]["content"] == "The capital of France is Paris."
    assert {c["gen_ai"]["input_messages"][0]["parts"][0]["content"] for c in calls} == {
        "Capital of France?",
        "Again?",
    }
