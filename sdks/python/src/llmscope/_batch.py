"""Ended spans to the exporter in batches, from a bounded queue, on one background thread.

The OpenTelemetry SDK's ``BatchSpanProcessor`` does this too, but it cannot tell its caller what
it dropped; this one counts every span exactly once.

Guarantees:
- ``on_end`` never blocks on the network and never raises: a span is queued, or, when
  ``max_queue_size`` spans already wait (or after shutdown), dropped and counted.
- Every ended, sampled span is counted once: ``spans_exported``, ``spans_failed`` (the exporter
  gave up after its retries), ``spans_dropped``, or it is still waiting.
- ``force_flush`` returns within its timeout: ``True`` when everything that waited was exported.
- A forked child starts with an empty queue, its own thread and a fresh exporter (the parent's
  connections and spans are the parent's).
"""

from __future__ import annotations

import os
import threading
import weakref
from collections import deque
from typing import Callable

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

Count = Callable[[str, int], None]


class Batcher(SpanProcessor):
    def __init__(
        self,
        make_exporter: Callable[[], SpanExporter],
        max_queue_size: int,
        delay: float,
        count: Count,
        max_batch: int = 512,
    ) -> None:
        self._make_exporter = make_exporter
        self._max_queue = max(1, max_queue_size)
        self._max_batch = max(1, min(max_batch, self._max_queue))
        self._delay = delay
        self._count = count
        self._exporter = make_exporter()
        self._start_fresh()
        if hasattr(os, "register_at_fork"):
            # Weak, so a replaced configuration's batcher can go.
            child = weakref.WeakMethod(self._in_child)
            os.register_at_fork(after_in_child=lambda: (m := child()) is not None and m())

    def _in_child(self) -> None:
        try:
            self._exporter = self._make_exporter()
        except Exception:  # noqa: BLE001 - keep the parent's exporter rather than none
            pass
        self._start_fresh()

    def _start_fresh(self) -> None:
        self._cond = threading.Condition()
        self._queue: deque[ReadableSpan] = deque()
        self._in_flight = 0
        self._failures = 0
        self._flushes = 0
        self._closed = False
        self._thread: threading.Thread | None = None

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        pass

    def on_end(self, span: ReadableSpan) -> None:
        if span.context is None or not span.context.trace_flags.sampled:
            return
        with self._cond:
            if self._closed or len(self._queue) >= self._max_queue:
                self._count("spans_dropped", 1)
                return
            self._queue.append(span)
            waiting = len(self._queue)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="llmscope-export", daemon=True
                )
                self._thread.start()
            # Wake the thread for its first span and for a full batch, not for every span.
            if waiting == 1 or waiting == self._max_batch:
                self._cond.notify_all()

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: bool(self._queue) or self._closed)
                if not self._queue:
                    return
                # A batch is full, a flush waits, or `delay` has passed since the first span.
                self._cond.wait_for(
                    lambda: (
                        len(self._queue) >= self._max_batch or self._flushes > 0 or self._closed
                    ),
                    self._delay,
                )
                n = min(self._max_batch, len(self._queue))
                batch = [self._queue.popleft() for _ in range(n)]
                self._in_flight = n
            try:
                ok = self._exporter.export(batch) == SpanExportResult.SUCCESS
            except Exception:  # noqa: BLE001 - an exporter bug must not stop the thread
                ok = False
            with self._cond:
                self._in_flight = 0
                self._failures += not ok
                self._count("spans_exported" if ok else "spans_failed", n)
                self._cond.notify_all()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Whether everything waiting went, and went well, within the timeout."""
        with self._cond:
            failures = self._failures
            self._flushes += 1
            self._cond.notify_all()
            try:
                done = self._cond.wait_for(
                    lambda: not self._queue and not self._in_flight, timeout_millis / 1000
                )
                return done and self._failures == failures
            finally:
                self._flushes -= 1

    def shutdown(self) -> None:
        """Exports what waits while the exporter keeps up (for up to 0.5 s), then stops it; what
        still waits is dropped (counted)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join(0.5)
        self._exporter.shutdown()
        with self._cond:
            if self._queue:
                self._count("spans_dropped", len(self._queue))
                self._queue.clear()
