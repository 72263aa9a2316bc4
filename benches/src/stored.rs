//! Realistic stored data for the query benchmark: traces of 1 to 20 spans (an agent step, model
//! calls, embeddings and tools) from 12 services, 20 models of five providers, 10,000 users with
//! a long tail, spread evenly over a time range and generated in time order, as a fleet sends
//! them. Model calls carry 256 B of prompt content. Deterministic for a given seed.

use llmscope_core::otlp::common::v1::any_value::Value;
use llmscope_core::otlp::common::v1::{AnyValue, KeyValue};
use llmscope_core::otlp::resource::v1::Resource;
use llmscope_core::otlp::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use llmscope_core::semconv as sc;
use llmscope_core::telemetry::Telemetry;
use llmscope_core::{Batch, BatchContext, Payload, Processor};
use llmscope_processors::cost::{Cost, CostConfig};
use llmscope_processors::normalize::Normalize;

use crate::{kv, prompt_text_with_pii};

pub const SERVICES: usize = 12;
pub const USERS: u64 = 10_000;

/// `(provider, model)`: 20 models, all priced.
pub const MODELS: [(&str, &str); 20] = [
    ("openai", "gpt-4o-mini"),
    ("openai", "gpt-4o"),
    ("openai", "gpt-4.1"),
    ("openai", "gpt-4.1-mini"),
    ("openai", "gpt-5"),
    ("openai", "gpt-5-mini"),
    ("openai", "o3-mini"),
    ("openai", "o4-mini"),
    ("anthropic", "claude-sonnet-4-5"),
    ("anthropic", "claude-haiku-4-5"),
    ("anthropic", "claude-opus-4-1"),
    ("anthropic", "claude-3-5-haiku"),
    ("gcp.gemini", "gemini-2.5-pro"),
    ("gcp.gemini", "gemini-2.5-flash"),
    ("gcp.gemini", "gemini-2.0-flash"),
    ("mistral_ai", "mistral-large"),
    ("mistral_ai", "mistral-small"),
    ("deepseek", "deepseek-chat"),
    ("deepseek", "deepseek-reasoner"),
    ("openai", "text-embedding-3-small"),
];

pub fn service_name(i: usize) -> String {
    format!("svc-{i:02}")
}

/// xorshift64*: fast, deterministic, good enough for shaping data.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn draw(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.draw() % n
    }

    /// In `0..n`, skewed to small values (the square of a uniform draw): a long tail.
    pub fn skewed(&mut self, n: u64) -> u64 {
        let u = (self.draw() >> 11) as f64 / (1u64 << 53) as f64;
        ((u * u * n as f64) as u64).min(n - 1)
    }
}

/// Generates traces in start-time order over `[from_ns, to_ns)`.
pub struct Generator {
    rng: Rng,
    from_ns: i64,
    step_ns: f64,
    traces: u64,
    next: u64,
    content: String,
}

/// Mean spans per trace with [`Generator`]'s shape, for sizing runs.
pub const MEAN_SPANS_PER_TRACE: f64 = 7.3;

impl Generator {
    /// About `spans` spans over `[from_ns, to_ns)`.
    pub fn new(seed: u64, spans: u64, from_ns: i64, to_ns: i64) -> Self {
        let traces = ((spans as f64 / MEAN_SPANS_PER_TRACE) as u64).max(1);
        Self {
            rng: Rng::new(seed),
            from_ns,
            step_ns: (to_ns - from_ns) as f64 / traces as f64,
            traces,
            next: 0,
            content: prompt_text_with_pii(256, 0.0),
        }
    }

    pub fn traces(&self) -> u64 {
        self.traces
    }

    /// The next batch of whole traces with at least `min_spans` spans, normalized and priced
    /// as the default pipeline would; `None` when all traces were generated.
    pub fn batch(&mut self, min_spans: usize) -> Option<Batch> {
        if self.next >= self.traces {
            return None;
        }
        let mut by_service: Vec<Vec<Span>> = vec![Vec::new(); SERVICES];
        let mut n = 0;
        while n < min_spans && self.next < self.traces {
            let start = self.from_ns + (self.next as f64 * self.step_ns) as i64;
            let (service, spans) = self.trace(self.next, start);
            n += spans.len();
            by_service[service].extend(spans);
            self.next += 1;
        }
        let resource_spans = by_service
            .into_iter()
            .enumerate()
            .filter(|(_, spans)| !spans.is_empty())
            .map(|(i, spans)| ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![
                        kv("service.name", Value::StringValue(service_name(i))),
                        kv("deployment.environment", Value::StringValue("prod".into())),
                        kv(
                            "telemetry.sdk.language",
                            Value::StringValue("python".into()),
                        ),
                    ],
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    spans,
                    ..Default::default()
                }],
                schema_url: String::new(),
            })
            .collect();
        let mut batch = Batch::new(Payload::Traces(resource_spans), BatchContext::default());
        Normalize::default().process(&mut batch).ok()?;
        Cost::new(&CostConfig::default(), &Telemetry::default())
            .ok()?
            .process(&mut batch)
            .ok()?;
        Some(batch)
    }

    /// One trace: a root agent step, then 0 to 19 children run one after another (60% chat
    /// calls, 10% embeddings, 30% tools). The user and session are set on the root only, as
    /// most instrumentations do. Returns the trace's service and its spans.
    fn trace(&mut self, index: u64, start_ns: i64) -> (usize, Vec<Span>) {
        let r = &mut self.rng;
        let service = r.skewed(SERVICES as u64) as usize;
        let user = r.skewed(USERS);
        let session = user * 16 + r.below(16);
        let children = r.skewed(20);
        let trace_id = (u128::from(index) << 64 | u128::from(r.draw())).to_be_bytes();
        let span_id = |i: u64| ((index << 5) | i).to_be_bytes().to_vec();
        let mut spans = Vec::with_capacity(children as usize + 1);
        let mut t = start_ns as u64 + 1_000_000;
        for child in 1..=children {
            let roll = r.below(10);
            let duration = 50_000_000 + r.skewed(4_000_000_000);
            let mut attributes = Vec::new();
            let name = if roll < 7 {
                let (provider, model) = if roll == 6 {
                    MODELS[19]
                } else {
                    MODELS[r.skewed(19) as usize]
                };
                let operation = if roll == 6 { "embeddings" } else { "chat" };
                attributes.extend([
                    kv(sc::OPERATION_NAME, Value::StringValue(operation.into())),
                    kv(sc::PROVIDER_NAME, Value::StringValue(provider.into())),
                    kv(sc::REQUEST_MODEL, Value::StringValue(model.into())),
                    kv(sc::RESPONSE_MODEL, Value::StringValue(model.into())),
                    kv(
                        sc::RESPONSE_ID,
                        Value::StringValue(format!("resp-{index:x}-{child}")),
                    ),
                    kv(
                        sc::USAGE_INPUT_TOKENS,
                        Value::IntValue(200 + r.skewed(8_000) as i64),
                    ),
                    kv(
                        sc::USAGE_OUTPUT_TOKENS,
                        Value::IntValue(if operation == "chat" {
                            20 + r.skewed(1_500) as i64
                        } else {
                            0
                        }),
                    ),
                    kv(sc::INPUT_MESSAGES, Value::StringValue(self.content.clone())),
                ]);
                format!("{operation} {model}")
            } else {
                attributes.push(kv(
                    sc::OPERATION_NAME,
                    Value::StringValue("execute_tool".into()),
                ));
                "execute_tool search".to_owned()
            };
            spans.push(Span {
                trace_id: trace_id.to_vec(),
                span_id: span_id(child),
                parent_span_id: span_id(0),
                name,
                kind: 3,
                start_time_unix_nano: t,
                end_time_unix_nano: t + duration,
                attributes,
                status: (r.below(50) == 0).then(|| Status {
                    code: 2,
                    message: "upstream error".into(),
                }),
                ..Default::default()
            });
            t += duration + 1_000_000;
        }
        spans.push(Span {
            trace_id: trace_id.to_vec(),
            span_id: span_id(0),
            name: "invoke_agent support".into(),
            kind: 2,
            start_time_unix_nano: start_ns as u64,
            end_time_unix_nano: t,
            attributes: vec![
                kv(
                    sc::OPERATION_NAME,
                    Value::StringValue("invoke_agent".into()),
                ),
                kv(sc::USER_ID, Value::StringValue(format!("user-{user:05}"))),
                kv(
                    sc::SESSION_ID,
                    Value::StringValue(format!("session-{session:06}")),
                ),
                KeyValue {
                    key: "http.route".into(),
                    value: Some(AnyValue {
                        value: Some(Value::StringValue("/v1/assist".into())),
                    }),
                    ..Default::default()
                },
            ],
            ..Default::default()
        });
        (service, spans)
    }
}
