//! One input of each fuzz target (`fuzz/`, built with `cargo afl`): the OTLP/HTTP receivers'
//! decoding (protobuf and JSON) through the request checks and the whole processor chain into the
//! disk queue's stored form; the config parser with environment expansion; the redaction scanner,
//! with the invariant that no detector finds anything in its output; the query API's parameters.
//! Each returns normally for every input: a panic is the bug. `tests/it/fuzz_regressions.rs`
//! replays every saved input (`fuzz/regressions/<target>/`) through these in the test suite.

use std::collections::HashMap;

use llmscope_core::otlp::collector::logs::v1::ExportLogsServiceRequest;
use llmscope_core::otlp::collector::trace::v1::ExportTraceServiceRequest;
use llmscope_core::telemetry::Telemetry;
use llmscope_core::{Batch, BatchContext, Payload, Processor};
use llmscope_processors::anomaly::{Anomaly, AnomalyConfig};
use llmscope_processors::cost::{Cost, CostConfig};
use llmscope_processors::normalize::Normalize;
use llmscope_processors::redact::{Redact, RedactConfig, Scanner};

/// The default chain of a traces pipeline: normalize, cost, redact, anomaly.
pub struct Chain {
    processors: Vec<Box<dyn Processor>>,
}

impl Default for Chain {
    fn default() -> Self {
        let telemetry = Telemetry::default();
        let processors: Vec<Box<dyn Processor>> = vec![
            Box::new(Normalize::default()),
            Box::new(Cost::new(&CostConfig::default(), &telemetry).expect("cost")),
            Box::new(Redact::new(&RedactConfig::default(), &telemetry).expect("redact")),
            Box::new(Anomaly::new(AnomalyConfig::default(), &telemetry)),
        ];
        Self { processors }
    }
}

impl Chain {
    /// `bytes` as an OTLP/HTTP body of traces (then logs) in protobuf or JSON: decoded as the
    /// receiver decodes it; when it decodes, checked, processed and put in the queue's stored form
    /// and back.
    pub fn otlp(&mut self, bytes: &[u8], json: bool) {
        let traces = if json {
            llmscope_core::otlp_json::from_slice::<ExportTraceServiceRequest>(bytes).ok()
        } else {
            prost::Message::decode(bytes).ok()
        };
        let logs = if json {
            llmscope_core::otlp_json::from_slice::<ExportLogsServiceRequest>(bytes).ok()
        } else {
            prost::Message::decode(bytes).ok()
        };
        let payloads = traces
            .map(|r| Payload::Traces(r.resource_spans))
            .into_iter()
            .chain(logs.map(|r: ExportLogsServiceRequest| Payload::Logs(r.resource_logs)));
        for mut payload in payloads {
            crate::receiver::drop_invalid(&mut payload);
            let mut batch = Batch::new(payload, BatchContext::default());
            for p in &mut self.processors {
                if p.process(&mut batch).is_err() {
                    break;
                }
            }
            let stored = crate::queue::durable::encode(&batch);
            crate::queue::durable::decode(&stored).expect("the queue reads back what it wrote");
        }
    }
}

/// `bytes` as a config file, with `${env:...}` references answered from a fixed environment.
pub fn config(bytes: &[u8]) {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return;
    };
    let _ = crate::config::Config::parse("fuzz.yaml", text, &|name| match name {
        "EMPTY" => Some(String::new()),
        "PORT" => Some("4318".into()),
        "TEXT" => Some("a: b\n- c".into()),
        _ => None,
    });
}

/// `bytes` as text to redact: the matches are those of a search over every byte, and
/// afterwards no detector finds anything in the result.
pub fn redact(scanner: &Scanner, bytes: &[u8]) {
    let text = String::from_utf8_lossy(bytes);
    assert_eq!(
        scanner.matches(&text),
        scanner.matches_by_full_search(&text),
        "the start rules changed the matches of {text:?}"
    );
    let out = scanner.redact(&text);
    let redacted = out.text.as_deref().unwrap_or(&text);
    if out.drop {
        return;
    }
    let again = scanner.redact(redacted);
    assert!(
        again.text.is_none() && again.found == 0,
        "still detectable after redaction: {redacted:?}"
    );
}

/// `bytes` as a query string of the trace list, summary, anomalies and events endpoints, taken
/// apart as the API's `Query` extractor does.
pub fn query(bytes: &[u8]) {
    let Ok(uri) = format!("/?{}", String::from_utf8_lossy(bytes)).parse::<axum::http::Uri>() else {
        return;
    };
    let Ok(axum::extract::Query(params)) =
        axum::extract::Query::<HashMap<String, String>>::try_from_uri(&uri)
    else {
        return;
    };
    let api = crate::api::ApiConfig::default();
    let _ = crate::api::params::trace_query(&params, "default", &api);
    let _ = crate::api::params::summary_query(&params, "default");
    let _ = crate::api::params::anomaly_query(&params, "default", &api);
    let _ = crate::api::params::event_query(&params, "default", &api);
    if let Some(id) = params.get("trace_id") {
        let _ = crate::api::params::trace_id(id);
    }
}
