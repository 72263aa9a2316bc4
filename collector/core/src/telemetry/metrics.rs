//! Every metric the collector reports about itself, in one place: name, type, help and labels.
//! Components count through these definitions, never through a name written where they count;
//! `/metrics` renders them with their help, and `/readyz` reads the queue ones by definition.

use super::{Kind, Metric};

const fn counter(
    name: &'static str,
    help: &'static str,
    labels: &'static [&'static str],
) -> Metric {
    Metric {
        name,
        help,
        kind: Kind::Counter,
        labels,
    }
}

const fn gauge(name: &'static str, help: &'static str, labels: &'static [&'static str]) -> Metric {
    Metric {
        name,
        help,
        kind: Kind::Gauge,
        labels,
    }
}

// Receivers.
pub static RECEIVER_ACCEPTED_ITEMS: Metric = counter(
    "llmscope_receiver_accepted_items_total",
    "Spans, log records and metric points accepted (queued for every exporter).",
    &["receiver", "transport", "signal"],
);
pub static RECEIVER_REFUSED_REQUESTS: Metric = counter(
    "llmscope_receiver_refused_requests_total",
    "Requests refused before decoding: malformed, too large, wrong media type, unauthenticated.",
    &["receiver", "transport", "reason"],
);
pub static RECEIVER_REFUSED_ITEMS: Metric = counter(
    "llmscope_receiver_refused_items_total",
    "Items refused after decoding, by reason.",
    &["receiver", "transport", "signal", "reason"],
);

// Pipelines and processors.
pub static PIPELINE_REFUSED_ITEMS: Metric = counter(
    "llmscope_pipeline_refused_items_total",
    "Items a pipeline could not queue (full, shutting down, storage error).",
    &["pipeline", "reason"],
);
pub static PROCESSOR_REFUSED_ITEMS: Metric = counter(
    "llmscope_processor_refused_items_total",
    "Items a processor refused.",
    &["processor", "pipeline"],
);
pub static REDACT_DETECTIONS: Metric = counter(
    "llmscope_redact_detections_total",
    "PII and secrets redacted, by detector.",
    &["type"],
);
pub static REDACT_UNPROCESSABLE: Metric = counter(
    "llmscope_redact_unprocessable_total",
    "Values replaced whole because they could not be scanned (bytes, nesting too deep).",
    &[],
);
pub static COST_PRICED_SPANS: Metric = counter(
    "llmscope_cost_priced_spans_total",
    "Model calls priced.",
    &[],
);
pub static COST_UNKNOWN_MODEL_SPANS: Metric = counter(
    "llmscope_cost_unknown_model_spans_total",
    "Model calls whose model is not in the price table.",
    &[],
);
pub static ANOMALIES: Metric = counter(
    "llmscope_anomalies_total",
    "Anomalies detected, by kind.",
    &["kind"],
);
pub static ANOMALY_SERIES_EVICTED: Metric = counter(
    "llmscope_anomaly_series_evicted_total",
    "Anomaly series forgotten to stay under max_series.",
    &[],
);

// Queues.
pub static QUEUE_BYTES: Metric = gauge(
    "llmscope_queue_bytes",
    "Bytes a pipeline's disk queue holds.",
    &["pipeline"],
);
pub static QUEUE_PENDING_BYTES: Metric = gauge(
    "llmscope_queue_pending_bytes",
    "Bytes of a pipeline's disk queue an exporter has yet to export.",
    &["pipeline", "exporter"],
);
pub static QUEUE_OLDEST_UNEXPORTED_AGE: Metric = gauge(
    "llmscope_queue_oldest_unexported_age_seconds",
    "Age of the oldest batch an exporter has read and not yet exported.",
    &["pipeline", "exporter"],
);
pub static QUEUE_TRUNCATED_BYTES: Metric = counter(
    "llmscope_queue_truncated_bytes_total",
    "Bytes of a torn queue tail cut at start (a crash in the middle of an append).",
    &["pipeline"],
);
pub static QUEUE_DROPPED_RECORDS: Metric = counter(
    "llmscope_queue_dropped_records_total",
    "Records `when_full: drop_oldest` deleted before every exporter read them.",
    &["pipeline"],
);

// Exporters.
pub static EXPORTER_SENT_ITEMS: Metric = counter(
    "llmscope_exporter_sent_items_total",
    "Items exported.",
    &["exporter"],
);
pub static EXPORTER_RETRIES: Metric = counter(
    "llmscope_exporter_retries_total",
    "Export attempts that failed transiently and were retried.",
    &["exporter"],
);
pub static EXPORTER_DEAD_LETTER_ITEMS: Metric = counter(
    "llmscope_exporter_dead_letter_items_total",
    "Items given up on and written to the dead-letter file.",
    &["exporter"],
);
pub static EXPORTER_DROPPED_ITEMS: Metric = counter(
    "llmscope_exporter_dropped_items_total",
    "Items given up on and dropped, by reason.",
    &["exporter", "reason"],
);
pub static EXPORTER_UNDECODABLE_RECORDS: Metric = counter(
    "llmscope_exporter_undecodable_records_total",
    "Queue records that did not decode, written to the dead-letter file as bytes.",
    &["exporter"],
);
pub static EXPORTER_REJECTED_ITEMS: Metric = counter(
    "llmscope_exporter_rejected_items_total",
    "Items the receiving end rejected in a partial success.",
    &["exporter"],
);

// Listeners.
pub static LISTENER_REFUSED_CONNECTIONS: Metric = counter(
    "llmscope_listener_refused_connections_total",
    "Connections closed on accept because the listener held max_connections already.",
    &["listener"],
);

// Access and the API.
pub static RATELIMIT_REFUSED: Metric = counter(
    "llmscope_ratelimit_refused_total",
    "Requests refused by a rate limit, by limit.",
    &["limit"],
);
pub static RATELIMIT_REDIS_FALLBACK: Metric = counter(
    "llmscope_ratelimit_redis_fallback_total",
    "Rate-limit checks made locally because Redis was unreachable.",
    &[],
);
pub static QUERY_CACHE: Metric = counter(
    "llmscope_query_cache_total",
    "Analytics queries answered from the cache (hit) or not (miss).",
    &["result"],
);
pub static QUERY_CACHE_REDIS_ERRORS: Metric = counter(
    "llmscope_query_cache_redis_errors_total",
    "Query-cache reads and writes that failed because Redis was unreachable.",
    &[],
);

// Alerts.
pub static ALERT_EVALUATIONS: Metric = counter(
    "llmscope_alert_evaluations_total",
    "Rule evaluations by this collector, by result (ok, error).",
    &["result"],
);
pub static ALERT_TRANSITIONS: Metric = counter(
    "llmscope_alert_transitions_total",
    "Series state changes written, by new state (pending, firing, resolved, no_data, ok).",
    &["state"],
);
pub static ALERT_WRITES_REFUSED: Metric = counter(
    "llmscope_alert_writes_refused_total",
    "Alert writes refused: the series changed under us (conflict) or a newer leader wrote (fenced).",
    &["reason"],
);
pub static ALERT_DELIVERIES: Metric = counter(
    "llmscope_alert_deliveries_total",
    "Notification attempts, by outcome (delivered, retry, failed, disabled, refused).",
    &["outcome"],
);
pub static ALERT_LEADER_CHANGES: Metric = counter(
    "llmscope_alert_leader_changes_total",
    "Times this collector became (acquired) or stopped being (lost) the alert evaluator.",
    &["change"],
);

// The live stream.
pub static STREAM_SUBSCRIBERS: Metric = gauge(
    "llmscope_stream_subscribers",
    "Live-stream subscribers connected to this collector.",
    &[],
);
pub static STREAM_MESSAGES: Metric = counter(
    "llmscope_stream_messages_total",
    "Live-stream messages: queued to a subscriber, sent, dropped for a slow subscriber or a full tap, received from Redis.",
    &["result"],
);
pub static STREAM_REFUSED: Metric = counter(
    "llmscope_stream_refused_total",
    "Live-stream subscriptions refused, by reason (limit, unauthorized).",
    &["reason"],
);
pub static STREAM_REDIS_ERRORS: Metric = counter(
    "llmscope_stream_redis_errors_total",
    "Live-stream publications, subscriptions and interest updates that failed because Redis was unreachable.",
    &[],
);

// The GenAI usage metrics (their own families are defined in the collector's `genai_metrics`).
pub static GEN_AI_METRICS_OVERFLOW: Metric = counter(
    "llmscope_gen_ai_metrics_overflow_total",
    "GenAI metric observations sent to the overflow series because the metric had series_limit label sets.",
    &["metric"],
);

/// Every definition, for docs and checks.
pub static ALL: &[&Metric] = &[
    &RECEIVER_ACCEPTED_ITEMS,
    &RECEIVER_REFUSED_REQUESTS,
    &RECEIVER_REFUSED_ITEMS,
    &PIPELINE_REFUSED_ITEMS,
    &PROCESSOR_REFUSED_ITEMS,
    &REDACT_DETECTIONS,
    &REDACT_UNPROCESSABLE,
    &COST_PRICED_SPANS,
    &COST_UNKNOWN_MODEL_SPANS,
    &ANOMALIES,
    &ANOMALY_SERIES_EVICTED,
    &QUEUE_BYTES,
    &QUEUE_PENDING_BYTES,
    &QUEUE_OLDEST_UNEXPORTED_AGE,
    &QUEUE_TRUNCATED_BYTES,
    &QUEUE_DROPPED_RECORDS,
    &EXPORTER_SENT_ITEMS,
    &EXPORTER_RETRIES,
    &EXPORTER_DEAD_LETTER_ITEMS,
    &EXPORTER_DROPPED_ITEMS,
    &EXPORTER_UNDECODABLE_RECORDS,
    &EXPORTER_REJECTED_ITEMS,
    &LISTENER_REFUSED_CONNECTIONS,
    &RATELIMIT_REFUSED,
    &RATELIMIT_REDIS_FALLBACK,
    &QUERY_CACHE,
    &QUERY_CACHE_REDIS_ERRORS,
    &ALERT_EVALUATIONS,
    &ALERT_TRANSITIONS,
    &ALERT_WRITES_REFUSED,
    &ALERT_DELIVERIES,
    &ALERT_LEADER_CHANGES,
    &STREAM_SUBSCRIBERS,
    &STREAM_MESSAGES,
    &STREAM_REFUSED,
    &STREAM_REDIS_ERRORS,
    &GEN_AI_METRICS_OVERFLOW,
];
