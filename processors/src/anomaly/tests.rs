//! The processor on synthetic labelled streams with realistic noise: quiet on a stationary
//! stream, precise and sensitive on injected spikes; spans marked and events added.

use llmscope_core::otlp::trace::v1::{Span, Status};
use llmscope_core::semconv as sc;
use llmscope_core::telemetry::Telemetry;
use llmscope_core::test_util::{kv, records_of, span, spans_of, traces};
use llmscope_core::{Batch, Payload, Processor, attr};

use super::*;

/// xorshift64* with Box-Muller normals: deterministic noise.
struct Rng(u64);

impl Rng {
    fn unit(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        ((self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    fn normal(&mut self) -> f64 {
        (-2.0 * self.unit().ln()).sqrt() * (2.0 * std::f64::consts::PI * self.unit()).cos()
    }
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Injected {
    None,
    Latency5x,
    Cost10x,
}

const MODELS: [&str; 3] = ["gpt-4o-mini", "claude-3-5-haiku", "gemini-2.5-flash"];
const STEP_NS: u64 = 100_000_000;

/// Call `i` of a stream: ~10 calls a second over three models; latency lognormal (median
/// 800 ms, sigma 0.25), output tokens lognormal (median 200, sigma 0.3), cost from the tokens,
/// 1% errors.
fn call(rng: &mut Rng, i: u64, injected: Injected) -> Span {
    let jitter = (rng.unit() * 50_000_000.0) as u64;
    let start = 1_700_000_000_000_000_000 + i * STEP_NS + jitter;
    let latency_ms = 800.0
        * (0.25 * rng.normal()).exp()
        * if injected == Injected::Latency5x {
            5.0
        } else {
            1.0
        };
    let output = (200.0 * (0.3 * rng.normal()).exp()).round() as i64;
    let input = (500.0 * (0.1 * rng.normal()).exp()).round() as i64;
    let cost = (input as f64 * 0.15 + output as f64 * 0.60) / 1e6
        * if injected == Injected::Cost10x {
            10.0
        } else {
            1.0
        };
    let mut s = span(
        (i % 200) as u8,
        1,
        "chat",
        vec![
            kv(sc::OPERATION_NAME, "chat"),
            kv(sc::PROVIDER_NAME, "openai"),
            kv(sc::REQUEST_MODEL, MODELS[(i % 3) as usize]),
            kv(sc::USAGE_INPUT_TOKENS, input),
            kv(sc::USAGE_OUTPUT_TOKENS, output),
            kv(sc::COST_TOTAL_USD, cost),
        ],
    );
    s.span_id = i.to_be_bytes().to_vec();
    s.start_time_unix_nano = start;
    s.end_time_unix_nano = start + (latency_ms * 1e6) as u64;
    if rng.unit() < 0.01 {
        s.status = Some(Status {
            code: 2,
            message: "upstream error".into(),
        });
    }
    s
}

struct Run {
    detections: Vec<(u64, String)>,
    injected: Vec<(u64, Injected)>,
}

/// Seeds of the noise: every quality number below holds for each of them.
const SEEDS: std::ops::Range<u64> = 1..21;

/// Streams `n` calls in batches of 100; `inject(i)` says what to inject into call `i`.
fn run(n: u64, seed: u64, inject: &impl Fn(u64) -> Injected) -> Run {
    let mut anomaly = Anomaly::new(AnomalyConfig::default(), &Telemetry::default());
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let mut detections = Vec::new();
    let mut injected = Vec::new();
    for chunk in 0..n / 100 {
        let spans: Vec<Span> = (chunk * 100..(chunk + 1) * 100)
            .map(|i| {
                let what = inject(i);
                if what != Injected::None {
                    injected.push((i, what));
                }
                call(&mut rng, i, what)
            })
            .collect();
        let mut batch = traces("agent", spans);
        anomaly.process(&mut batch).expect("process");
        let events = Batch::new(Payload::Logs(batch.events.clone()), Default::default());
        for record in records_of(&events) {
            let i = u64::from_be_bytes(record.span_id.clone().try_into().unwrap_or([0xff; 8]));
            let kind = attr::get_str(&record.attributes, sc::ANOMALY_KIND)
                .unwrap_or_default()
                .to_owned();
            detections.push((i, kind));
        }
    }
    Run {
        detections,
        injected,
    }
}

#[test]
fn a_stationary_stream_of_100000_calls_raises_no_anomaly() {
    for seed in SEEDS {
        let r = run(100_000, seed, &|_| Injected::None);
        assert!(
            r.detections.is_empty(),
            "seed {seed}: false alarms {:?}",
            r.detections
        );
    }
}

#[test]
fn injected_latency_and_cost_spikes_are_found_with_precision_and_recall() {
    // A spike every 1,000 calls after warm-up, rotating over the three models and alternating
    // latency and cost: the same kind on the same model recurs every 600 s, beyond the cooldown.
    let inject = |i: u64| match (i >= 5_000 && i.is_multiple_of(1_000), (i / 1_000) % 2) {
        (true, 0) => Injected::Latency5x,
        (true, _) => Injected::Cost10x,
        _ => Injected::None,
    };
    let (mut injected, mut detections, mut true_positives, mut found) = (0, 0, 0, 0);
    for seed in SEEDS {
        let r = run(100_000, seed, &inject);
        let (tp, f) = score(&r);
        injected += r.injected.len();
        detections += r.detections.len();
        true_positives += tp;
        found += f;
    }
    let precision = true_positives as f64 / detections.max(1) as f64;
    let recall = found as f64 / injected as f64;
    println!(
        "{} seeds: injected {injected}, detections {detections}, precision {precision:.3}, recall {recall:.3}",
        SEEDS.end - SEEDS.start
    );
    assert!(precision >= 0.9, "precision {precision}");
    assert!(recall >= 0.8, "recall {recall}");
}

/// True positives (detections of the injected kind on an injected call) and injected calls found.
fn score(r: &Run) -> (usize, usize) {
    let expected = |what: Injected| match what {
        Injected::Latency5x => "latency",
        Injected::Cost10x => "cost",
        Injected::None => "",
    };
    let true_positives = r
        .detections
        .iter()
        .filter(|(i, kind)| {
            r.injected
                .iter()
                .any(|(j, what)| j == i && expected(*what) == kind)
        })
        .count();
    let found = r
        .injected
        .iter()
        .filter(|(j, what)| {
            r.detections
                .iter()
                .any(|(i, kind)| i == j && kind == expected(*what))
        })
        .count();
    (true_positives, found)
}

#[test]
fn a_detection_marks_its_span_and_adds_one_event() {
    let mut anomaly = Anomaly::new(AnomalyConfig::default(), &Telemetry::default());
    let mut rng = Rng(7);
    for chunk in 0..3 {
        let mut warm = traces(
            "agent",
            (chunk * 100..(chunk + 1) * 100)
                .map(|i| call(&mut rng, i * 3, Injected::None))
                .collect(),
        );
        anomaly.process(&mut warm).expect("warm-up");
    }
    let mut batch = traces("agent", vec![call(&mut rng, 900, Injected::Latency5x)]);
    anomaly.process(&mut batch).expect("process");
    let span = spans_of(&batch)[0];
    assert_eq!(
        attr::get_str(&span.attributes, sc::ANOMALY_KIND),
        Some("latency")
    );
    assert!(attr::get_f64(&span.attributes, sc::ANOMALY_SCORE).is_some_and(|s| s >= 5.0));
    let baseline = attr::get_f64(&span.attributes, sc::ANOMALY_BASELINE).expect("baseline");
    assert!((600.0..1_000.0).contains(&baseline), "{baseline}");
    assert_eq!(batch.events.len(), 1);
    let events = Batch::new(Payload::Logs(batch.events.clone()), Default::default());
    let records = records_of(&events);
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].event_name, sc::ANOMALY_EVENT);
    assert_eq!(records[0].span_id, span.span_id);
    assert_eq!(
        attr::get_str(&records[0].attributes, sc::REQUEST_MODEL),
        Some(MODELS[0])
    );
}
