-- Anomaly events (`event.name = llmscope.anomaly`), typed for the anomalies API.

CREATE TABLE anomalies (
    project     TEXT    NOT NULL,
    time_ns     INTEGER NOT NULL,  -- span start of the call, or the end of the volume bucket
    kind        TEXT    NOT NULL,  -- latency | cost | output_tokens | error_rate | volume_spike | volume_drop
    service     TEXT,
    provider    TEXT,
    model       TEXT,
    operation   TEXT,
    score       REAL,
    value       REAL,
    baseline    REAL,
    trace_id    TEXT,
    span_id     TEXT,
    message     TEXT,
    attributes  TEXT    NOT NULL   -- JSON object
);

CREATE INDEX anomalies_by_time ON anomalies (project, time_ns);
