//! The one-folder-one-line rule: a processor and an exporter defined here, in test code, join
//! the collector through the registry alone, and run like the built-in ones: configured by
//! type name, fed by the shared driver, shut down once at the end.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use llmscope::config::Config;
use llmscope::registry::{Exporter, Processor, Registry};
use llmscope::service::Service;
use llmscope_core::telemetry::Telemetry;
use llmscope_core::test_util::{kv, span, traces_request};
use llmscope_core::{Batch, ExportError, Payload, ProcessError, ProcessorFactory, attr};
use llmscope_exporters::factory::{BuildError, Built, ExporterFactory};
use prost::Message as _;
use serde::Deserialize;

use crate::harness::Collector;

/// `stamp`: sets one attribute on every span.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct StampConfig {
    key: String,
    value: String,
}

struct Stamp(StampConfig);

impl llmscope_core::Processor for Stamp {
    fn process(&mut self, batch: &mut Batch) -> Result<(), ProcessError> {
        if let Payload::Traces(resources) = &mut batch.payload {
            for span in resources
                .iter_mut()
                .flat_map(|r| &mut r.scope_spans)
                .flat_map(|s| &mut s.spans)
            {
                attr::set(
                    &mut span.attributes,
                    &self.0.key,
                    attr::string(&self.0.value),
                );
            }
        }
        Ok(())
    }
}

struct StampFactory;

impl ProcessorFactory for StampFactory {
    const TYPE: &'static str = "stamp";
    type Config = StampConfig;

    fn validate(config: &StampConfig) -> Result<(), String> {
        if config.key.is_empty() {
            return Err("key: required".into());
        }
        Ok(())
    }

    fn build(
        config: &StampConfig,
        _: &Telemetry,
    ) -> Result<Box<dyn llmscope_core::Processor>, String> {
        Ok(Box::new(Stamp(config.clone())))
    }
}

/// What one `collect` exporter saw.
#[derive(Default)]
struct Seen {
    stamps: Mutex<Vec<String>>,
    exports: AtomicUsize,
    in_flight: AtomicUsize,
    most_in_flight: AtomicUsize,
    shutdowns: AtomicUsize,
}

/// Every `collect` exporter's record, by its `name` setting.
fn seen(name: &str) -> Arc<Seen> {
    static ALL: OnceLock<Mutex<HashMap<String, Arc<Seen>>>> = OnceLock::new();
    let mut all = ALL.get_or_init(Default::default).lock().expect("lock");
    Arc::clone(all.entry(name.to_owned()).or_default())
}

/// `collect`: keeps the `stamp` attribute of every span, slowly (20 ms an export).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct CollectConfig {
    name: String,
}

struct Collect(Arc<Seen>);

impl llmscope_core::Exporter for Collect {
    async fn export(&self, batch: &Batch) -> Result<(), ExportError> {
        let now = self.0.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.0.most_in_flight.fetch_max(now, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(20)).await;
        if let Payload::Traces(resources) = &batch.payload {
            let mut stamps = self.0.stamps.lock().expect("lock");
            for span in resources
                .iter()
                .flat_map(|r| &r.scope_spans)
                .flat_map(|s| &s.spans)
            {
                stamps.push(
                    attr::get_str(&span.attributes, "stamp")
                        .unwrap_or("-")
                        .to_owned(),
                );
            }
        }
        self.0.exports.fetch_add(1, Ordering::SeqCst);
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
        Ok(())
    }

    async fn shutdown(&self) {
        self.0.shutdowns.fetch_add(1, Ordering::SeqCst);
    }
}

struct CollectFactory;

impl ExporterFactory for CollectFactory {
    const TYPE: &'static str = "collect";
    type Config = CollectConfig;

    async fn build(_: &str, config: &CollectConfig, _: &Telemetry) -> Result<Built, BuildError> {
        Ok(Built::write_only(Collect(seen(&config.name))))
    }
}

fn registry() -> Registry {
    Registry::default()
        .with_processor(&Processor::<StampFactory>::NEW)
        .with_exporter(&Exporter::<CollectFactory>::NEW)
}

/// Three pipelines into one `collect` exporter with one export at a time.
fn config_text(name: &str, queue: &str, dir: &std::path::Path) -> String {
    format!(
        r#"
receivers:
  otlp:
    protocols:
      http:
        endpoint: 127.0.0.1:0
      grpc:
        endpoint: 127.0.0.1:0
processors:
  stamp/x:
    key: stamp
    value: from-the-registry
exporters:
  collect:
    name: {name}
    sending_queue:
      num_consumers: 1
service:
  queue:
    kind: {queue}
    dir: {dir}
  pipelines:
    traces:
      receivers: [otlp]
      processors: [stamp/x]
      exporters: [collect]
    traces/plain:
      receivers: [otlp]
      exporters: [collect]
    logs:
      receivers: [otlp]
      exporters: [collect]
"#,
        dir = dir.display()
    )
}

#[test]
fn the_default_registry_does_not_know_test_components() {
    let dir = tempfile::tempdir().expect("tempdir");
    let error = Config::parse(
        "t.yaml",
        &config_text("none", "memory", dir.path()),
        &|_| None,
    )
    .expect_err("unknown types");
    let text = error.to_string();
    assert!(
        text.contains(r#"processors.stamp/x: unknown processor type "stamp"; known types: normalize, cost, redact, anomaly"#),
        "{text}"
    );
    assert!(
        text.contains(r#"exporters.collect: unknown exporter type "collect""#),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn components_added_through_the_registry_run_and_are_shut_down_once_at_the_end() {
    for queue in ["memory", "disk"] {
        let name = format!("collect-{queue}");
        let dir = tempfile::tempdir().expect("tempdir");
        let text = config_text(&name, queue, &dir.path().join("queue"));
        let config = Config::parse_in(&registry(), "t.yaml", &text, &|_| None).expect("config");
        let problem = Config::parse_in(
            &registry(),
            "t.yaml",
            &text.replace("key: stamp", "key: \"\""),
            &|_| None,
        )
        .expect_err("validated by its factory");
        assert!(
            problem
                .to_string()
                .contains("processors.stamp/x.key: required"),
            "{problem}"
        );

        let collector = Collector::start_with(config, dir).await;
        let seen = seen(&name);
        assert_eq!(
            seen.shutdowns.load(Ordering::SeqCst),
            0,
            "{queue}: not at start"
        );
        let mut requests = Vec::new();
        for i in 0..6u8 {
            let body = traces_request(
                "svc",
                vec![span(i + 1, 1, "s", vec![kv("i", i64::from(i))])],
            )
            .encode_to_vec();
            requests.push(collector.post_otlp(
                "/v1/traces",
                &[("content-type", "application/x-protobuf")],
                body,
            ));
        }
        for reply in futures_util::future::join_all(requests).await {
            assert_eq!(reply.status, 200);
        }
        assert!(collector.stop().await);
        // Each request went to both traces pipelines: stamped once, plain once.
        let mut stamps = seen.stamps.lock().expect("lock").clone();
        stamps.sort();
        assert_eq!(stamps.len(), 12, "{queue}: {stamps:?}");
        assert_eq!(
            stamps.iter().filter(|s| *s == "from-the-registry").count(),
            6
        );
        assert_eq!(
            seen.shutdowns.load(Ordering::SeqCst),
            1,
            "{queue}: once, at the end"
        );
        assert_eq!(
            seen.most_in_flight.load(Ordering::SeqCst),
            1,
            "{queue}: num_consumers is per exporter, whatever the pipelines"
        );
    }
}

#[tokio::test]
async fn an_idle_service_shuts_a_registry_added_exporter_down_once() {
    // The registry is the only place the type is known: a started service needs nothing else,
    // and stopping it with nothing sent still shuts the exporter down, once.
    let dir = tempfile::tempdir().expect("tempdir");
    let text = config_text("bare", "memory", &dir.path().join("queue"));
    let config = Config::parse_in(&registry(), "t.yaml", &text, &|_| None).expect("config");
    let service = Service::start(&config).await.expect("starts");
    assert!(service.shutdown(Duration::from_secs(5)).await);
    assert_eq!(seen("bare").shutdowns.load(Ordering::SeqCst), 1);
}
