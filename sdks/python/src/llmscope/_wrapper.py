"""The one shape of every traced ``create``: start the call's record, call the provider, then
either hand back a stream proxy (the span ends with the stream) or note the response and end.
A provider's exception propagates unchanged, after being noted."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from ._genai import Call
from ._streams import Accumulator, AsyncStream, SyncStream

Maker = Callable[[Any, Callable[..., Any]], Callable[..., Any]]


def maker(
    start: Callable[[Any, dict[str, Any]], tuple[Call, Any]],
    record: Callable[[Call, Any], None],
    stream: Callable[[Any], Accumulator] | None,
    is_async: bool,
) -> Maker:
    """``start(client, kwargs)`` makes the call (and may adjust kwargs), returning it with a
    value for ``stream(value)``, which makes the accumulator of a streamed response (``None``:
    the method never streams); ``record(call, response)`` reads a plain response, later, on the
    SDK's worker."""

    def streamed(kwargs: dict[str, Any]) -> bool:
        return stream is not None and kwargs.get("stream") is True

    def make(client: Any, original: Callable[..., Any]) -> Callable[..., Any]:
        if is_async:

            @functools.wraps(original)
            async def acreate(*args: Any, **kwargs: Any) -> Any:
                call, extra = start(client, kwargs)
                try:
                    result = await original(*args, **kwargs)
                except BaseException as e:
                    call.fail(e)
                    raise
                if stream is not None and streamed(kwargs):
                    return AsyncStream(result, call, stream(extra))
                call.after(functools.partial(record, call, result))
                call.end()
                return result

            return acreate

        @functools.wraps(original)
        def create(*args: Any, **kwargs: Any) -> Any:
            call, extra = start(client, kwargs)
            try:
                result = original(*args, **kwargs)
            except BaseException as e:
                call.fail(e)
                raise
            if stream is not None and streamed(kwargs):
                return SyncStream(result, call, stream(extra))
            call.after(functools.partial(record, call, result))
            call.end()
            return result

        return create

    return make
