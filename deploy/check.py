"""Checks the deployment files without Docker, Helm or a cluster (run by .ci/run):

- the Dockerfile with hadolint;
- every manifest in kubernetes/ against the Kubernetes schemas (kubernetes-validate, strict);
- the Helm chart rendered by a real Helm engine (helm-python-sdk ships Helm v4 as a library) for
  each mode and store, every rendered manifest validated the same way, and the LLMScope config
  each one renders checked by `llmscope validate` (the binary named by LLMSCOPE_BIN).

Usage: python deploy/check.py   (from a venv made from deploy/requirements.lock)
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml
from helm_python import Chart

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
BIN = Path(sys.executable).parent

# Kinds the Kubernetes schemas do not hold (CRDs): rendered, parsed, not schema-checked.
CUSTOM_KINDS = {"ServiceMonitor"}

RENDERINGS = {
    "gateway-sqlite": {"mode": "gateway", "store": {"kind": "sqlite"}},
    "gateway-postgres": {
        "mode": "gateway",
        "store": {"kind": "postgres"},
        "redis": {"enabled": True},
        "serviceMonitor": {"enabled": True},
        "config": {"extensions": {"api": {"private_status": True}}},
    },
    "gateway-clickhouse": {"mode": "gateway", "store": {"kind": "clickhouse"}},
    "gateway-clickhouse-postgres": {
        "mode": "gateway",
        "store": {"kind": "clickhouse", "clickhouse": {"metadata": "postgres"}},
    },
    "daemonset": {"mode": "daemonset"},
    "daemonset-no-host-port": {"mode": "daemonset", "agent": {"hostPort": False}},
    "sidecar": {"mode": "sidecar"},
}

# Values the chart must refuse, and what its message says.
REFUSED = {
    "mode": ({"mode": "agent"}, "is not gateway, daemonset or sidecar"),
    "store": ({"store": {"kind": "duckdb"}}, "is not sqlite, postgres or clickhouse"),
    "clickhouse keys": (
        {"store": {"kind": "clickhouse", "clickhouse": {"metadata": "clickhouse"}}},
        "API keys are kept there",
    ),
}

# What the rendered configs read from the environment, for `llmscope validate`.
CONFIG_ENV = {
    "POSTGRES_URL": "postgres://llmscope@postgres:5432/llmscope",
    "LLMSCOPE_API_KEY": "lls_example",
    "LLMSCOPE_AGENT_KEY": "an-agent-key-of-at-least-32-characters",
    "CLICKHOUSE_URL": "http://clickhouse:8123",
    "LLMSCOPE_ADMIN_TOKEN": "an-admin-token-of-some-length",
}


def run(*args: str | Path, **kw: object) -> None:
    print("$", " ".join(str(a) for a in args), flush=True)
    subprocess.run([str(a) for a in args], check=True, **kw)  # type: ignore[call-overload]


def validate_manifests(files: list[Path]) -> None:
    run(BIN / "kubernetes-validate", "--strict", "--quiet", *files)


def main() -> int:
    run(BIN / "hadolint", ROOT / "Dockerfile")
    validate_manifests(sorted((HERE / "kubernetes").glob("*.yaml")))
    llmscope = os.environ.get("LLMSCOPE_BIN", str(ROOT / "target/debug/llmscope"))
    with Chart.load(HERE / "helm/llmscope") as chart, tempfile.TemporaryDirectory() as tmp:
        for name, values in RENDERINGS.items():
            rendered = chart.render(values=values, name="llmscope", namespace="observability")
            docs = [
                d
                for text in rendered.values()
                for d in yaml.safe_load_all(text)
                if d  # templates a mode leaves empty
            ]
            kinds = sorted(d["kind"] for d in docs)
            print(f"{name}: {', '.join(kinds)}", flush=True)
            checked = [d for d in docs if d["kind"] not in CUSTOM_KINDS]
            out = Path(tmp) / f"{name}.yaml"
            out.write_text(yaml.safe_dump_all(checked))
            validate_manifests([out])
            [config_map] = [d for d in docs if d["kind"] == "ConfigMap"]
            config = Path(tmp) / f"{name}-llmscope.yaml"
            config.write_text(config_map["data"]["llmscope.yaml"])
            run(llmscope, "validate", "--config", config, env={**os.environ, **CONFIG_ENV})
        for name, (values, message) in REFUSED.items():
            try:
                chart.render(values=values, name="llmscope", namespace="observability")
            except Exception as e:  # the engine raises its own error type
                if message not in str(e):
                    raise AssertionError(f"{name}: refused, but not with {message!r}: {e}")
                print(f"refused {name}: {message}", flush=True)
            else:
                raise AssertionError(f"{name}: rendered {values}, should be refused")
    print("deploy files: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
