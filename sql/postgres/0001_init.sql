-- LLMScope PostgreSQL schema, version 1. Forward-only: add NNNN_name.sql, never edit this.
-- Times are Unix nanoseconds (bigint) so every store answers to the nanosecond. Spans and logs
-- are range-partitioned by day on their time; partitions are created ahead (and on demand for
-- late data) and dropped by retention, both by the collector.

CREATE TABLE IF NOT EXISTS spans (
    project             text             NOT NULL,
    trace_id            text             NOT NULL,
    span_id             text             NOT NULL,
    parent_span_id      text,
    name                text             NOT NULL,
    kind                smallint         NOT NULL,
    service             text,
    scope_name          text,
    start_time_ns       bigint           NOT NULL,
    end_time_ns         bigint           NOT NULL,
    duration_ns         bigint           NOT NULL,
    status_code         smallint         NOT NULL,
    status_message      text,
    operation           text,
    provider            text,
    request_model       text,
    response_model      text,
    response_id         text,
    input_tokens        bigint,
    output_tokens       bigint,
    cache_read_tokens   bigint,
    cache_write_tokens  bigint,
    reasoning_tokens    bigint,
    cost_usd            double precision,
    session_id          text,
    user_id             text,
    conversation_id     text,
    is_model_call       boolean          NOT NULL,
    counted             boolean          NOT NULL,  -- the one span of a model call rollups count
    input_messages      text,
    output_messages     text,
    system_instructions text,
    attributes          jsonb            NOT NULL,
    resource_attributes jsonb            NOT NULL,
    events              jsonb            NOT NULL,
    links               jsonb            NOT NULL,
    PRIMARY KEY (project, trace_id, span_id, start_time_ns)
) PARTITION BY RANGE (start_time_ns);

CREATE INDEX IF NOT EXISTS spans_by_time ON spans (project, start_time_ns);
CREATE INDEX IF NOT EXISTS spans_by_model ON spans (project, request_model, start_time_ns);
CREATE INDEX IF NOT EXISTS spans_by_trace ON spans (trace_id);

CREATE TABLE IF NOT EXISTS logs (
    project             text     NOT NULL,
    record_id           bigint   NOT NULL,  -- hash of the record: a retried batch is stored once
    time_ns             bigint   NOT NULL,
    observed_time_ns    bigint   NOT NULL,
    trace_id            text,
    span_id             text,
    severity_number     integer  NOT NULL,
    severity_text       text,
    event_name          text,
    service             text,
    scope_name          text,
    body                text,
    attributes          jsonb    NOT NULL,
    resource_attributes jsonb    NOT NULL,
    input_messages      text,
    output_messages     text,
    system_instructions text,
    PRIMARY KEY (project, record_id, time_ns)
) PARTITION BY RANGE (time_ns);

CREATE INDEX IF NOT EXISTS logs_by_time ON logs (project, time_ns);
CREATE INDEX IF NOT EXISTS logs_by_span ON logs (trace_id, span_id);

CREATE TABLE IF NOT EXISTS anomalies (
    project    text             NOT NULL,
    record_id  bigint           NOT NULL,
    time_ns    bigint           NOT NULL,
    kind       text             NOT NULL,
    service    text,
    provider   text,
    model      text,
    operation  text,
    score      double precision,
    value      double precision,
    baseline   double precision,
    trace_id   text,
    span_id    text,
    message    text,
    attributes jsonb            NOT NULL,
    PRIMARY KEY (project, record_id)
);

CREATE INDEX IF NOT EXISTS anomalies_by_time ON anomalies (project, time_ns);

CREATE TABLE IF NOT EXISTS metric_points (
    project             text             NOT NULL,
    time_ns             bigint           NOT NULL,
    start_time_ns       bigint,
    service             text,
    scope_name          text,
    name                text             NOT NULL,
    unit                text,
    kind                text             NOT NULL,
    value               double precision,
    count               bigint,
    attributes          jsonb            NOT NULL,
    resource_attributes jsonb            NOT NULL
);

CREATE INDEX IF NOT EXISTS metric_points_by_name ON metric_points (project, name, time_ns);

-- Rollups of counted model calls, kept incrementally: each export adds the rows it actually
-- inserted (after deduplication) in the same transaction, so late and out-of-order data land in
-- their bucket and retries add nothing.
CREATE TABLE IF NOT EXISTS calls_rollup (
    project           text             NOT NULL,
    width_s           integer          NOT NULL,  -- 3600 (hourly) or 86400 (daily)
    bucket_ns         bigint           NOT NULL,
    service           text             NOT NULL,
    provider          text             NOT NULL,
    model             text             NOT NULL,
    operation         text             NOT NULL,
    requests          bigint           NOT NULL,
    errors            bigint           NOT NULL,
    input_tokens      bigint           NOT NULL,
    output_tokens     bigint           NOT NULL,
    cache_read_tokens bigint           NOT NULL,
    cost_usd          double precision NOT NULL,
    priced            bigint           NOT NULL,
    -- Latency histogram: counts per log-scale bucket (bucket i covers 1.1^(i-1) to 1.1^i ms).
    latency_hist      bigint[]         NOT NULL,
    PRIMARY KEY (project, width_s, bucket_ns, service, provider, model, operation)
);

-- Metadata: projects, API keys (only a SHA-256 hash of each key), alert rules and events.
-- Times are Unix nanoseconds, as everywhere else.
CREATE TABLE IF NOT EXISTS projects (
    id            text    PRIMARY KEY,
    name          text    NOT NULL,
    created_at_ns bigint  NOT NULL
);

CREATE TABLE IF NOT EXISTS api_keys (
    id              text    PRIMARY KEY,
    project         text    NOT NULL REFERENCES projects (id),
    name            text    NOT NULL,
    display_prefix  text    NOT NULL,
    key_sha256      bytea   NOT NULL UNIQUE,
    created_at_ns   bigint  NOT NULL,
    last_used_at_ns bigint,
    revoked_at_ns   bigint
);

CREATE INDEX IF NOT EXISTS api_keys_by_project ON api_keys (project);

CREATE TABLE IF NOT EXISTS alert_rules (
    id            text    PRIMARY KEY,
    project       text    NOT NULL REFERENCES projects (id),
    name          text    NOT NULL,
    definition    jsonb   NOT NULL,
    enabled       boolean NOT NULL DEFAULT true,
    created_at_ns bigint  NOT NULL
);

CREATE TABLE IF NOT EXISTS alert_events (
    id          bigserial PRIMARY KEY,
    rule_id     text      NOT NULL REFERENCES alert_rules (id),
    project     text      NOT NULL,
    state       text      NOT NULL,
    details     jsonb     NOT NULL,
    fired_at_ns bigint    NOT NULL
);

CREATE INDEX IF NOT EXISTS alert_events_by_rule ON alert_events (rule_id, fired_at_ns);
