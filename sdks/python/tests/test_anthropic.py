"""The real ``anthropic`` package against the fake provider."""

from __future__ import annotations

import asyncio

import anthropic
from helpers import in_trace, model_calls


def client(provider, cls=anthropic.Anthropic):
    return cls(api_key="sk-ant-test", base_url=provider.url, max_retries=0)


def test_a_message_counts_cache_tokens_as_input(sdk, collector, provider):
    c = sdk.wrap(client(provider))
    assert type(c) is anthropic.Anthropic
    tid, r = in_trace(
        sdk,
        lambda: c.messages.create(
            model="claude-sonnet-4-20250514",
            max_tokens=100,
            system="Be brief.",
            messages=[{"role": "user", "content": "Capital of France?"}],
        ),
    )
    assert r.content[0].text == "The capital of France is Paris."
    sdk.flush(timeout=5)
    [call] = model_calls(collector.trace(tid, spans=2))
    g = call["gen_ai"]
    assert (g["operation"], g["provider"]) == ("chat", "anthropic")
    assert (g["input_tokens"], g["output_tokens"]) == (1000, 30)
    assert (g["cache_read_tokens"], g["cache_write_tokens"]) == (700, 200)
    assert g["response_id"] == "msg_01XFDUDYJgAACzvnptvVoYEL"
    assert g["system_instructions"][0]["content"] == "Be brief."
    assert g["cost_usd"] and g["cost_usd"] > 0


def test_streams_sync_and_async(sdk, collector, provider):
    sync = sdk.wrap(client(provider))
    asynchronous = sdk.wrap(client(provider, anthropic.AsyncAnthropic))

    def run():
        events = list(
            sync.messages.create(
                model="claude-sonnet-4-20250514",
                max_tokens=100,
                stream=True,
                messages=[{"role": "user", "content": "hi"}],
            )
        )

        async def more():
            stream = await asynchronous.messages.create(
                model="claude-sonnet-4-20250514",
                max_tokens=100,
                stream=True,
                messages=[{"role": "user", "content": "hi"}],
            )
            return [e async for e in stream]

        return events, asyncio.run(more())

    tid, (events, more) = in_trace(sdk, run)
    assert events[-1].type == "message_stop" and more[-1].type == "message_stop"
    sdk.flush(timeout=5)
    calls = model_calls(collector.trace(tid, spans=3))
    assert len(calls) == 2
    for call in calls:
        g = call["gen_ai"]
        assert (g["input_tokens"], g["output_tokens"]) == (25, 12)
        assert g["output_messages"][0]["parts"][0]["content"] == "The capital of France is Paris."
