"""The SDK's state: settings, the tracer provider that batches and exports spans, and the guard
that keeps every SDK-side error out of the app.

Guarantees:
- Nothing here raises into user code: an SDK-side error is logged once per kind (at WARNING on
  the ``llmscope`` logger) and counted in :func:`stats`.
- Spans wait in a bounded queue (``max_queue_size``) and are exported on a background thread as
  OTLP/HTTP protobuf with gzip; a full queue drops spans (counted), it never blocks a call
  (``_batch``: every span counted once, as exported, failed or dropped).
- :func:`flush` and :func:`shutdown` return within their timeout whatever the collector does.
- Export retries (the OpenTelemetry exporter's): exponential backoff with jitter on 429, 502,
  503, 504 and connection errors, honouring ``Retry-After``, within the export timeout.
"""

from __future__ import annotations

import atexit
import logging
import os
import signal
import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import FrameType
from typing import Any, Callable

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

from ._batch import Batcher

log = logging.getLogger("llmscope")

DEFAULT_ENDPOINT = "http://127.0.0.1:4318"
VERSION = "0.1.0"

Redactor = Callable[[str], str]


@dataclass
class Settings:
    endpoint: str = DEFAULT_ENDPOINT
    api_key: str | None = field(default=None, repr=False)
    service_name: str | None = None
    capture_content: bool = True
    redact: Redactor | None = None
    sample_rate: float = 1.0
    max_queue_size: int = 2048
    export_timeout: float = 10.0
    schedule_delay: float = 1.0


class _State:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        headers = {"authorization": f"Bearer {settings.api_key}"} if settings.api_key else {}

        def exporter() -> OTLPSpanExporter:
            return OTLPSpanExporter(
                endpoint=settings.endpoint.rstrip("/") + "/v1/traces",
                headers=headers,
                timeout=settings.export_timeout,
                compression=Compression.Gzip,
            )

        batch = Batcher(exporter, settings.max_queue_size, settings.schedule_delay, _count)
        attributes: dict[str, Any] = {
            "telemetry.sdk.name": "llmscope",
            "telemetry.sdk.language": "python",
        }
        if settings.service_name:
            attributes["service.name"] = settings.service_name
        self.provider = TracerProvider(
            resource=Resource.create(attributes),
            sampler=ParentBased(TraceIdRatioBased(settings.sample_rate)),
        )
        self.provider.add_span_processor(batch)
        self.tracer = self.provider.get_tracer("llmscope", VERSION)


Job = Callable[[trace.Tracer, Settings], None]


class _Worker:
    """Builds the spans of ended calls off the caller's thread, in order; at most `limit` wait
    (more are dropped, counted). Started on first use, and again in a forked child."""

    def __init__(self, limit: int = 10000) -> None:
        self.limit = limit
        self.jobs: deque[Job] = deque()
        self.cond = threading.Condition()
        self.busy = False
        self.thread: threading.Thread | None = None

    def submit(self, job: Job) -> None:
        with self.cond:
            if len(self.jobs) >= self.limit:
                _count("spans_dropped")
                return
            self.jobs.append(job)
            if self.thread is None or not self.thread.is_alive():
                self.thread = threading.Thread(target=self.run, name="llmscope-spans", daemon=True)
                self.thread.start()
            self.cond.notify()

    def run(self) -> None:
        while True:
            with self.cond:
                while not self.jobs:
                    self.busy = False
                    self.cond.notify_all()
                    self.cond.wait()
                job = self.jobs.popleft()
                self.busy = True
            current = _state
            if current is not None:
                with guard("span"):
                    job(current.tracer, current.settings)

    def drain(self, timeout: float) -> bool:
        """Whether every submitted call's span was built within `timeout` seconds."""
        with self.cond:
            return self.cond.wait_for(lambda: not self.jobs and not self.busy, timeout)


_worker = _Worker()


def submit(job: Job) -> None:
    """Builds a span on the worker thread (see `_genai.Call.build`)."""
    try:
        _worker.submit(job)
    except Exception as e:  # noqa: BLE001
        report("submit", e)


def _after_fork_in_child() -> None:
    global _worker
    _worker = _Worker()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)

_lock = threading.Lock()
_state: _State | None = None
_reported: set[str] = set()
_counts: dict[str, int] = {}
_counts_lock = threading.Lock()
_hooks_installed = False


def _count(kind: str, n: int = 1) -> None:
    with _counts_lock:
        _counts[kind] = _counts.get(kind, 0) + n


def report(kind: str, error: BaseException) -> None:
    """Counts an SDK-side error and logs its kind the first time."""
    try:
        _count("errors")
        _count(f"errors.{kind}")
        if kind not in _reported:
            _reported.add(kind)
            log.warning(
                "llmscope: %s failed (%s: %s); the call itself is unaffected",
                kind,
                type(error).__name__,
                error,
            )
    except Exception:  # noqa: BLE001 - the guard of the guard
        pass


@contextmanager
def guard(kind: str) -> Iterator[None]:
    """Runs SDK-side code; an error in it is reported, never raised."""
    try:
        yield
    except Exception as e:  # noqa: BLE001
        report(kind, e)


def stats() -> dict[str, int]:
    """Counters: ``errors`` (and ``errors.<kind>``); for spans, ``spans_exported``,
    ``spans_failed`` (the collector refused them, or was unreachable past the export timeout's
    retries) and ``spans_dropped`` (the queue was full, or the SDK shut down before they went)."""
    with _counts_lock:
        return dict(_counts)


def init(
    endpoint: str | None = None,
    api_key: str | None = None,
    service_name: str | None = None,
    capture_content: bool = True,
    redact: Redactor | None = None,
    sample_rate: float = 1.0,
    max_queue_size: int = 2048,
    export_timeout: float = 10.0,
) -> None:
    """Configures the SDK; calling it again replaces the configuration (spans still queued under
    the old one are flushed, bounded by 1 s). Without arguments: ``LLMSCOPE_ENDPOINT`` (default
    ``http://127.0.0.1:4318``), ``LLMSCOPE_API_KEY``, ``OTEL_SERVICE_NAME``."""
    global _state
    with guard("init"):
        settings = Settings(
            endpoint=endpoint or os.environ.get("LLMSCOPE_ENDPOINT") or DEFAULT_ENDPOINT,
            api_key=api_key or os.environ.get("LLMSCOPE_API_KEY") or None,
            service_name=service_name or os.environ.get("OTEL_SERVICE_NAME") or None,
            capture_content=capture_content,
            redact=redact,
            sample_rate=min(max(float(sample_rate), 0.0), 1.0),
            max_queue_size=max(int(max_queue_size), 1),
            export_timeout=max(float(export_timeout), 0.1),
        )
        with _lock:
            old, _state = _state, _State(settings)
        if old is not None:
            _bounded(old.provider.shutdown, 1.0)
        _install_hooks()


def state() -> _State | None:
    """The current state, made from the environment on first use without :func:`init`."""
    if _state is None:
        init()
    return _state


def _bounded(fn: Callable[[], Any], timeout: float) -> bool:
    """Runs ``fn`` on a daemon thread; whether it finished within ``timeout`` seconds."""
    done = threading.Event()
    result: dict[str, Any] = {}

    def run() -> None:
        try:
            result["value"] = fn()
        except Exception as e:  # noqa: BLE001
            report("flush", e)
        finally:
            done.set()

    threading.Thread(target=run, name="llmscope-flush", daemon=True).start()
    finished = done.wait(max(timeout, 0.0))
    return finished and result.get("value") is not False


def flush(timeout: float = 5.0) -> bool:
    """Exports every span ended so far; returns within ``timeout`` seconds, True if all went."""
    current = _state
    if current is None:
        return True
    return _bounded(lambda: _drain_and_flush(current, timeout), timeout)


def _drain_and_flush(current: _State, timeout: float) -> bool:
    from . import _events

    spans = _worker.drain(timeout) and current.provider.force_flush(int(timeout * 1000))
    return spans and _events.flush(timeout)


def shutdown(timeout: float = 5.0) -> bool:
    """Flushes, then stops exporting; returns within ``timeout`` seconds."""
    global _state
    current = _state
    if current is None:
        return True
    # The worker builds what is waiting with this state; then it is gone.
    flushed = _bounded(lambda: _drain_and_flush(current, timeout), timeout)
    with _lock:
        if _state is current:
            _state = None
    _bounded(current.provider.shutdown, 0.5)
    return flushed


def _install_hooks() -> None:
    """Flush at exit and on SIGTERM (chaining to the app's own handler), bounded."""
    global _hooks_installed
    if _hooks_installed:
        return
    _hooks_installed = True
    atexit.register(lambda: shutdown(timeout=5.0))
    if threading.current_thread() is not threading.main_thread():
        return
    try:
        previous = signal.getsignal(signal.SIGTERM)
    except (ValueError, OSError):
        return

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        flush(timeout=2.0)
        if callable(previous):
            previous(signum, frame)
        elif previous == signal.SIG_IGN:
            return
        else:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)

    handler: Callable[[int, FrameType | None], Any] | int | None = on_sigterm
    try:
        signal.signal(signal.SIGTERM, handler)
    except (ValueError, OSError) as e:
        report("sigterm", e)


def tracer() -> trace.Tracer | None:
    s = state()
    return s.tracer if s is not None else None
