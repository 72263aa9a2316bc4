"""Stream proxies: the caller iterates the provider's stream as before; the call's span ends when
the stream is exhausted, closed, fails or is garbage collected, with what was seen. A stream cut
short without usage gets an estimate (about four characters a token), marked
``llmscope.usage.estimated``."""

from __future__ import annotations

from typing import Any, Callable

from . import _client
from ._genai import Call


class Accumulator:
    """What a provider's stream events add up to; each provider module fills one."""

    def __init__(self) -> None:
        self.text: list[str] = []
        self.usage_seen = False

    def add(self, event: Any) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def finish(self, call: Call) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def hide(self, event: Any) -> bool:
        """Whether the caller must not see `event` (one the SDK asked for, such as OpenAI's
        usage-only last chunk)."""
        return False


def _end(call: Call, acc: Accumulator, cut_short: bool) -> None:
    if call.ended:
        return

    def finish() -> None:
        acc.finish(call)
        if cut_short and not acc.usage_seen:
            call.set("gen_ai.usage.output_tokens", max(1, len("".join(acc.text)) // 4))
            call.set("llmscope.usage.estimated", True)

    call.after(finish)
    call.end()


class SyncStream:
    """Wraps a provider's iterator of events (``Stream``); everything else passes through."""

    def __init__(self, inner: Any, call: Call, acc: Accumulator) -> None:
        self._inner = inner
        self._iter = iter(inner)
        self._call = call
        self._acc = acc

    def __iter__(self) -> SyncStream:
        return self

    def __next__(self) -> Any:
        while True:
            try:
                event = next(self._iter)
            except StopIteration:
                _end(self._call, self._acc, cut_short=False)
                raise
            except BaseException as e:
                self._call.fail(e)
                raise
            with _client.guard("stream event"):
                self._acc.add(event)
            if not self._acc.hide(event):
                return event

    def close(self) -> None:
        try:
            close: Callable[[], Any] | None = getattr(self._inner, "close", None)
            if close is not None:
                close()
        finally:
            _end(self._call, self._acc, cut_short=True)

    def __enter__(self) -> SyncStream:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def __del__(self) -> None:
        try:
            _end(self._call, self._acc, cut_short=True)
        except Exception:  # noqa: BLE001
            pass


class AsyncStream:
    """Wraps a provider's async iterator of events (``AsyncStream``)."""

    def __init__(self, inner: Any, call: Call, acc: Accumulator) -> None:
        self._inner = inner
        self._iter = inner.__aiter__()
        self._call = call
        self._acc = acc

    def __aiter__(self) -> AsyncStream:
        return self

    async def __anext__(self) -> Any:
        while True:
            try:
                event = await self._iter.__anext__()
            except StopAsyncIteration:
                _end(self._call, self._acc, cut_short=False)
                raise
            except BaseException as e:
                self._call.fail(e)
                raise
            with _client.guard("stream event"):
                self._acc.add(event)
            if not self._acc.hide(event):
                return event

    async def close(self) -> None:
        try:
            close = getattr(self._inner, "close", None)
            if close is not None:
                await close()
        finally:
            _end(self._call, self._acc, cut_short=True)

    async def __aenter__(self) -> AsyncStream:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def __del__(self) -> None:
        try:
            _end(self._call, self._acc, cut_short=True)
        except Exception:  # noqa: BLE001
            pass
