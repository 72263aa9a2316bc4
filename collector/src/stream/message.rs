//! What the stream carries: one message per stored span, anomaly or alert transition, built
//! once (its JSON text included) and shared by every subscriber; and the filters subscribers
//! choose from the query string.

use std::collections::HashMap;

use axum::extract::ws::Utf8Bytes;
use llmscope_core::{Batch, Payload};
use llmscope_exporters::record;
use serde::{Deserialize, Serialize};
use serde_json::{Value as J, json};

use crate::api::ApiError;
use crate::api::views;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Span,
    Anomaly,
    Alert,
}

/// One message, with what filters look at kept beside its JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub kind: Kind,
    /// A span that is a model call.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub llm_call: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub error: bool,
    /// `service`, `model` (request), `response_model`, `provider`, `operation`, `user`,
    /// `session`, `trace_id`, as known.
    #[serde(default, skip_serializing_if = "HashMap::is_empty")]
    pub keys: HashMap<String, String>,
    /// `{"type": ..., "data": ...}`, shared by every subscriber's socket without a copy.
    #[serde(with = "text")]
    pub json: Utf8Bytes,
}

/// `Utf8Bytes` as a JSON string.
mod text {
    use axum::extract::ws::Utf8Bytes;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &Utf8Bytes, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(v.as_str())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Utf8Bytes, D::Error> {
        String::deserialize(d).map(Utf8Bytes::from)
    }
}

impl Message {
    /// A message without its JSON yet: enough for filters to decide.
    fn probe(kind: Kind, keys: &[(&str, Option<&str>)]) -> Self {
        let keys = keys
            .iter()
            .filter_map(|(k, v)| v.map(|v| ((*k).to_owned(), v.to_owned())))
            .collect();
        Self {
            kind,
            llm_call: false,
            error: false,
            keys,
            json: Utf8Bytes::from_static(""),
        }
    }

    fn with_data(mut self, data: J) -> Self {
        let name = match self.kind {
            Kind::Span => "span",
            Kind::Anomaly => "anomaly",
            Kind::Alert => "alert",
        };
        self.json = json!({"type": name, "data": data}).to_string().into();
        self
    }

    #[cfg(test)]
    fn new(kind: Kind, data: J, keys: &[(&str, Option<&str>)]) -> Self {
        Self::probe(kind, keys).with_data(data)
    }

    fn key(&self, name: &str) -> Option<&str> {
        self.keys.get(name).map(String::as_str)
    }

    /// An alert transition, as the history shows it.
    pub fn alert(data: J, labels: &[(&str, Option<&str>)]) -> Self {
        Self::probe(Kind::Alert, labels).with_data(data)
    }
}

/// The stored spans and anomaly events of a processed batch that `wanted` takes, as messages
/// (the JSON, the costly part, is built only for those).
pub fn from_batch(batch: &Batch, wanted: impl Fn(&Message) -> bool) -> Vec<Message> {
    let project = &batch.ctx.project;
    let mut out = Vec::new();
    if let Payload::Traces(rs) = &batch.payload {
        for s in record::span_records(project, rs) {
            let g = &s.gen_ai;
            let mut m = Message::probe(
                Kind::Span,
                &[
                    ("service", s.service.as_deref()),
                    ("model", g.request_model.as_deref()),
                    ("response_model", g.response_model.as_deref()),
                    ("provider", g.provider.as_deref()),
                    ("operation", g.operation.as_deref()),
                    ("user", g.user_id.as_deref()),
                    ("session", g.session_id.as_deref()),
                    ("trace_id", Some(&s.trace_id)),
                ],
            );
            m.llm_call = g.is_model_call;
            m.error = s.status_code == 2;
            if !wanted(&m) {
                continue;
            }
            let mut data = views::span(&s);
            data["trace_id"] = J::String(s.trace_id.clone());
            out.push(m.with_data(data));
        }
    }
    let logs = match &batch.payload {
        Payload::Logs(rl) => Some(rl.as_slice()),
        _ => None,
    };
    for resource_logs in logs.into_iter().chain([batch.events.as_slice()]) {
        let (_, anomalies) = record::log_rows(project, resource_logs);
        for a in anomalies {
            let m = Message::probe(
                Kind::Anomaly,
                &[
                    ("service", a.service.as_deref()),
                    ("model", a.model.as_deref()),
                    ("provider", a.provider.as_deref()),
                    ("operation", a.operation.as_deref()),
                    ("trace_id", a.trace_id.as_deref()),
                    ("kind", Some(&a.kind)),
                ],
            );
            if wanted(&m) {
                out.push(m.with_data(views::anomaly(&a)));
            }
        }
    }
    out
}

/// What a subscriber asked for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    pub spans: bool,
    pub llm_calls: bool,
    pub anomalies: bool,
    pub alerts: bool,
    /// Name and value every message must carry (`model` matches the request or response model).
    pub keys: Vec<(String, String)>,
    pub errors_only: bool,
}

pub const PARAMS: [&str; 10] = [
    "kind",
    "service",
    "model",
    "provider",
    "operation",
    "user",
    "session",
    "trace_id",
    "errors_only",
    "last_event_id",
];

impl Filter {
    /// `kind=llm_calls` and nothing else: the default.
    pub fn default_llm_calls() -> Self {
        Self {
            llm_calls: true,
            ..Self::default()
        }
    }

    pub fn parse(q: &HashMap<String, String>) -> Result<Self, ApiError> {
        let mut f = Filter::default();
        let kinds = q.get("kind").map_or("llm_calls", String::as_str);
        for kind in kinds.split(',').map(str::trim).filter(|k| !k.is_empty()) {
            match kind {
                "spans" => f.spans = true,
                "llm_calls" => f.llm_calls = true,
                "anomalies" => f.anomalies = true,
                "alerts" => f.alerts = true,
                other => {
                    return Err(ApiError::BadRequest(format!(
                        "kind: {other:?} is not one of spans, llm_calls, anomalies, alerts"
                    )));
                }
            }
        }
        if !(f.spans || f.llm_calls || f.anomalies || f.alerts) {
            f.llm_calls = true;
        }
        for name in [
            "service",
            "model",
            "provider",
            "operation",
            "user",
            "session",
            "trace_id",
        ] {
            if let Some(v) = q.get(name).map(|v| v.trim()).filter(|v| !v.is_empty()) {
                f.keys.push((name.to_owned(), v.to_owned()));
            }
        }
        f.errors_only = crate::api::params::flag(q, "errors_only")?;
        Ok(f)
    }

    pub fn matches(&self, m: &Message) -> bool {
        let kind = match m.kind {
            Kind::Span => self.spans || (self.llm_calls && m.llm_call),
            Kind::Anomaly => self.anomalies,
            Kind::Alert => self.alerts,
        };
        if !kind || (self.errors_only && m.kind == Kind::Span && !m.error) {
            return false;
        }
        self.keys.iter().all(|(name, want)| {
            let want = Some(want.as_str());
            match name.as_str() {
                "model" => m.key("model") == want || m.key("response_model") == want,
                other => m.key(other) == want,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn call(model: &str, error: bool) -> Message {
        let mut m = Message::new(
            Kind::Span,
            json!({}),
            &[("model", Some(model)), ("service", Some("chat"))],
        );
        m.llm_call = true;
        m.error = error;
        m
    }

    #[test]
    fn filters_hold() {
        let default = Filter::parse(&q(&[])).expect("default");
        assert!(default.matches(&call("a", false)));
        let tool = Message::new(Kind::Span, json!({}), &[]);
        assert!(!default.matches(&tool), "llm_calls only by default");
        assert!(
            Filter::parse(&q(&[("kind", "spans")]))
                .expect("spans")
                .matches(&tool)
        );
        let model = Filter::parse(&q(&[("model", "a")])).expect("model");
        assert!(model.matches(&call("a", false)) && !model.matches(&call("b", false)));
        let errors = Filter::parse(&q(&[("errors_only", "true")])).expect("errors");
        assert!(errors.matches(&call("a", true)) && !errors.matches(&call("a", false)));
        let anomaly = Message::new(Kind::Anomaly, json!({}), &[("service", Some("chat"))]);
        assert!(!default.matches(&anomaly));
        let both = Filter::parse(&q(&[("kind", "llm_calls,anomalies"), ("service", "chat")]))
            .expect("both");
        assert!(both.matches(&anomaly) && both.matches(&call("a", false)));
        assert!(Filter::parse(&q(&[("kind", "logs")])).is_err());
        assert!(Filter::parse(&q(&[("errors_only", "maybe")])).is_err());
    }

    #[test]
    fn messages_survive_the_wire() {
        let m = call("a", true);
        let back: Message =
            serde_json::from_str(&serde_json::to_string(&m).expect("json")).expect("back");
        assert_eq!(back, m);
    }
}
