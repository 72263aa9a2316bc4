"""Fixtures: a real LLMScope binary on loopback ports with its own SQLite file, and the fake
provider."""

from __future__ import annotations

import json
import os
import pathlib
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from fake_provider import FakeProvider

REPO = pathlib.Path(__file__).resolve().parents[3]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def binary() -> str:
    explicit = os.environ.get("LLMSCOPE_BIN")
    if explicit:
        return explicit
    path = REPO / "target" / "debug" / "llmscope"
    if not path.exists():
        subprocess.run(["cargo", "build", "--bin", "llmscope"], cwd=REPO, check=True)
    return str(path)


class Collector:
    """``llmscope`` with its built-in default config, started on free loopback ports."""

    def __init__(self, tmp: pathlib.Path) -> None:
        self.tmp = tmp
        self.http_port = free_port()
        self.api = f"http://127.0.0.1:{free_port()}"
        self.endpoint = f"http://127.0.0.1:{self.http_port}"
        self.env = dict(
            os.environ,
            LLMSCOPE_OTLP_GRPC_ENDPOINT=f"127.0.0.1:{free_port()}",
            LLMSCOPE_OTLP_HTTP_ENDPOINT=f"127.0.0.1:{self.http_port}",
            LLMSCOPE_API_ENDPOINT=self.api.removeprefix("http://"),
            LLMSCOPE_SQLITE_PATH=str(tmp / "llmscope.db"),
            LLMSCOPE_QUEUE_DIR=str(tmp / "queue"),
        )
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [binary()],
            env=self.env,
            cwd=self.tmp,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                urllib.request.urlopen(self.api + "/healthz", timeout=1).read()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("llmscope did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=30)
            self.process = None

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(self.api + path, timeout=10) as r:
            return json.loads(r.read())

    def trace(self, trace_id: str, spans: int = 1, timeout: float = 15.0) -> Any:
        """The trace once it holds at least ``spans`` spans."""
        deadline = time.time() + timeout
        while True:
            try:
                t = self.get(f"/api/v1/traces/{trace_id}")
                if len(t.get("spans", [])) >= spans:
                    return t
            except OSError:
                pass
            if time.time() > deadline:
                raise AssertionError(f"trace {trace_id} never had {spans} spans")
            time.sleep(0.1)


@pytest.fixture(scope="session")
def collector(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Collector]:
    c = Collector(tmp_path_factory.mktemp("llmscope"))
    c.start()
    yield c
    c.stop()


@pytest.fixture(scope="session")
def provider() -> Iterator[FakeProvider]:
    p = FakeProvider()
    yield p
    p.close()


@pytest.fixture
def sdk(collector: Collector) -> Iterator[Any]:
    import llmscope

    llmscope.init(endpoint=collector.endpoint, service_name="sdk-tests")
    yield llmscope
    llmscope.shutdown(timeout=5)
