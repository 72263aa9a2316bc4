//! The Kubernetes manifests' configs, run as processes on loopback: an app's spans go to the
//! sidecar (`deploy/kubernetes/sidecar-example.yaml`) or the node agent
//! (`deploy/kubernetes/daemonset.yaml`, which requires its listed key), which forward them with
//! their API key to the gateway (`deploy/kubernetes/gateway.yaml`, on PostgreSQL), where the
//! query API shows them.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use hyper::Method;
use llmscope_core::test_util::fixtures;
use serde::Deserialize;

use crate::alerts_failover::fresh_database;
use crate::harness::{client, exchange};
use crate::process::{Process, llmscope};

const GATEWAY: &str = include_str!("../../../deploy/kubernetes/gateway.yaml");
const SIDECAR: &str = include_str!("../../../deploy/kubernetes/sidecar-example.yaml");
const AGENT: &str = include_str!("../../../deploy/kubernetes/daemonset.yaml");
const AGENT_KEY: &str = "an-agent-key-of-at-least-32-characters";
const ADMIN: &str = "manifest-test-admin-token";

/// `data["llmscope.yaml"]` of the manifest's ConfigMap.
fn config_map_config(manifest: &str) -> String {
    for doc in serde_yaml::Deserializer::from_str(manifest) {
        let value = serde_yaml::Value::deserialize(doc).expect("a YAML document");
        if value["kind"] == "ConfigMap" {
            return value["data"]["llmscope.yaml"]
                .as_str()
                .expect("llmscope.yaml in the ConfigMap")
                .to_owned();
        }
    }
    panic!("no ConfigMap in the manifest");
}

fn command(dir: &Path, config: &Path, env: &[(&str, &str)]) -> Command {
    let mut command = llmscope();
    command
        .current_dir(dir)
        .env_clear()
        .env("LLMSCOPE_CONFIG", config)
        .env("LLMSCOPE_OTLP_GRPC_ENDPOINT", "127.0.0.1:0")
        .env("LLMSCOPE_OTLP_HTTP_ENDPOINT", "127.0.0.1:0")
        .env("LLMSCOPE_API_ENDPOINT", "127.0.0.1:0")
        .envs(env.iter().copied());
    command
}

/// `method url` with the key as a bearer token: status and body.
async fn send(method: Method, url: &str, key: &str, body: Option<&str>) -> (u16, String) {
    let auth = format!("Bearer {key}");
    send_with(method, url, &[("authorization", auth.as_str())], body).await
}

async fn send_with(
    method: Method,
    url: &str,
    extra: &[(&str, &str)],
    body: Option<&str>,
) -> (u16, String) {
    let mut headers = vec![("content-type", "application/json")];
    headers.extend_from_slice(extra);
    let body = body.unwrap_or("").as_bytes().to_vec();
    let reply = exchange(&client(), method, url.to_owned(), &headers, body).await;
    (
        reply.status.as_u16(),
        String::from_utf8_lossy(&reply.body).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sidecar_forwards_to_the_gateway_with_the_manifests_configs() {
    let Some(url) = llmscope_core::test_util::service_url("LLMSCOPE_TEST_POSTGRES_URL") else {
        return;
    };
    let database = fresh_database(&url, "manifests").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let gateway_config = dir.path().join("gateway.yaml");
    let sidecar_config = dir.path().join("sidecar.yaml");
    std::fs::write(&gateway_config, config_map_config(GATEWAY)).expect("write");
    std::fs::write(&sidecar_config, config_map_config(SIDECAR)).expect("write");
    let gateway_queue = dir.path().join("gateway-queue").display().to_string();
    let gateway_env = [
        ("POSTGRES_URL", database.as_str()),
        ("LLMSCOPE_ADMIN_TOKEN", ADMIN),
        ("LLMSCOPE_QUEUE_DIR", gateway_queue.as_str()),
    ];
    let gateway = Process::spawn(command(dir.path(), &gateway_config, &gateway_env));
    let created = command(dir.path(), &gateway_config, &gateway_env)
        .args(["keys", "create", "--project", "my-app", "--name", "sidecar"])
        .output()
        .expect("keys create");
    assert!(created.status.success(), "{created:?}");
    let key = String::from_utf8(created.stdout)
        .expect("utf-8")
        .trim()
        .to_owned();

    let grpc = gateway.grpc.clone().expect("the gateway listens for gRPC");
    let sidecar_queue = dir.path().join("sidecar-queue").display().to_string();
    let gateway_endpoint = format!("http://{grpc}");
    let sidecar = Process::spawn(command(
        dir.path(),
        &sidecar_config,
        &[
            ("LLMSCOPE_GATEWAY_ENDPOINT", gateway_endpoint.as_str()),
            ("LLMSCOPE_API_KEY", key.as_str()),
            ("LLMSCOPE_QUEUE_DIR", sidecar_queue.as_str()),
        ],
    ));
    assert_eq!(sidecar.api, None, "the sidecar serves no API");

    // The app's OTel SDK sends to the sidecar on loopback, without a key.
    let (status, body) = send(
        Method::POST,
        &format!("http://{}/v1/traces", sidecar.http),
        "",
        Some(fixtures::OPENLLMETRY_OPENAI_CHAT),
    )
    .await;
    assert_eq!(status, 200, "{body}");

    // It reaches the gateway's store, in the key's project: the fixture's trace, whole.
    let api = gateway.api.clone().expect("the gateway serves the API");
    let mut last = (0, String::new());
    for _ in 0..300 {
        last = send(
            Method::GET,
            &format!("http://{api}/api/v1/traces"),
            &key,
            None,
        )
        .await;
        if last.0 == 200 && last.1.contains("\"span_count\":3") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if !last.1.contains("svc-openllmetry") {
        let (_, sidecar_log) = sidecar.stop("TERM").await;
        let (_, gateway_log) = gateway.stop("TERM").await;
        panic!("never arrived: {last:?}\nsidecar: {sidecar_log}\ngateway: {gateway_log}");
    }

    let (exit, log) = sidecar.stop("TERM").await;
    assert!(exit.success(), "{log}");

    // The node agent's config listens beyond loopback: valid only because it requires its key.
    let agent_config = dir.path().join("agent.yaml");
    std::fs::write(&agent_config, config_map_config(AGENT)).expect("write");
    let validate = |key: &str| {
        let mut command = llmscope();
        command
            .current_dir(dir.path())
            .env_clear()
            .env("LLMSCOPE_API_KEY", "lls_example")
            .args(["validate", "--config"])
            .arg(&agent_config);
        if !key.is_empty() {
            command.env("LLMSCOPE_AGENT_KEY", key);
        }
        command.output().expect("validate")
    };
    assert!(validate(AGENT_KEY).status.success());
    let unset = validate("");
    assert!(!unset.status.success());
    assert!(String::from_utf8_lossy(&unset.stderr).contains("is its environment variable set"));

    let agent_queue = dir.path().join("agent-queue").display().to_string();
    let agent = Process::spawn(command(
        dir.path(),
        &agent_config,
        &[
            ("LLMSCOPE_GATEWAY_ENDPOINT", gateway_endpoint.as_str()),
            ("LLMSCOPE_API_KEY", key.as_str()),
            ("LLMSCOPE_AGENT_KEY", AGENT_KEY),
            ("LLMSCOPE_QUEUE_DIR", agent_queue.as_str()),
        ],
    ));
    let traces = format!("http://{}/v1/traces", agent.http);
    let second_trace = fixtures::OPENLLMETRY_OPENAI_CHAT.replace(trace_id(), &"ab".repeat(16));
    let (status, _) = send_with(Method::POST, &traces, &[], Some(&second_trace)).await;
    assert_eq!(status, 401, "the agent refuses a sender without its key");
    // What an app's OTEL_EXPORTER_OTLP_HEADERS=x-api-key=... sends.
    let (status, body) = send_with(
        Method::POST,
        &traces,
        &[("x-api-key", AGENT_KEY)],
        Some(&second_trace),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let url = format!("http://{api}/api/v1/traces/{}", "ab".repeat(16));
    let arrived =
        |(status, body): &(u16, String)| *status == 200 && body.matches("\"span_id\"").count() == 3;
    let mut last = (0, String::new());
    for _ in 0..300 {
        last = send(Method::GET, &url, &key, None).await;
        if arrived(&last) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if !arrived(&last) {
        let (_, agent_log) = agent.stop("TERM").await;
        let (_, gateway_log) = gateway.stop("TERM").await;
        panic!("never arrived: {last:?}\nagent: {agent_log}\ngateway: {gateway_log}");
    }
    let (exit, log) = agent.stop("TERM").await;
    assert!(exit.success(), "{log}");

    let (exit, log) = gateway.stop("TERM").await;
    assert!(exit.success(), "{log}");
}

/// The trace id (hex) of the fixture's spans.
fn trace_id() -> &'static str {
    let at = fixtures::OPENLLMETRY_OPENAI_CHAT
        .find("\"traceId\"")
        .expect("a traceId");
    let rest = &fixtures::OPENLLMETRY_OPENAI_CHAT[at + "\"traceId\"".len()..];
    let start = rest.find('"').expect("its value") + 1;
    &rest[start..start + 32]
}
