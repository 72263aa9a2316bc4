-- LLMScope SQLite schema, version 1: spans, logs/events, metric points.
-- Forward-only: never edit a released migration; add the next NNNN_name.sql.

CREATE TABLE spans (
    project             TEXT    NOT NULL,
    trace_id            TEXT    NOT NULL,  -- lowercase hex, 32 chars
    span_id             TEXT    NOT NULL,  -- lowercase hex, 16 chars
    parent_span_id      TEXT,              -- NULL for a root span
    name                TEXT    NOT NULL,
    kind                INTEGER NOT NULL,  -- OTLP SpanKind
    service             TEXT,
    scope_name          TEXT,
    start_time_ns       INTEGER NOT NULL,  -- Unix nanoseconds
    end_time_ns         INTEGER NOT NULL,
    duration_ns         INTEGER NOT NULL,
    status_code         INTEGER NOT NULL,  -- OTLP StatusCode: 0 unset, 1 ok, 2 error
    status_message      TEXT,
    -- Canonical GenAI fields (NULL on spans that are not GenAI).
    operation           TEXT,
    provider            TEXT,
    request_model       TEXT,
    response_model      TEXT,
    response_id         TEXT,
    input_tokens        INTEGER,  -- inclusive of cache reads and writes
    output_tokens       INTEGER,  -- inclusive of reasoning
    cache_read_tokens   INTEGER,
    cache_write_tokens  INTEGER,
    reasoning_tokens    INTEGER,
    cost_usd            REAL,
    session_id          TEXT,
    user_id             TEXT,
    conversation_id     TEXT,
    is_model_call       INTEGER NOT NULL DEFAULT 0,  -- 1 when tokens and cost count
    input_messages      TEXT,     -- canonical JSON
    output_messages     TEXT,
    system_instructions TEXT,
    attributes          TEXT    NOT NULL,  -- JSON object, without the content columns above
    resource_attributes TEXT    NOT NULL,  -- JSON object
    events              TEXT    NOT NULL,  -- JSON array of {name, time, attributes}
    links               TEXT    NOT NULL,  -- JSON array of {trace_id, span_id, attributes}
    PRIMARY KEY (project, trace_id, span_id)
) WITHOUT ROWID;

CREATE INDEX spans_by_time ON spans (project, start_time_ns);
CREATE INDEX spans_by_model ON spans (project, request_model, start_time_ns);
CREATE INDEX spans_by_trace ON spans (trace_id);
CREATE INDEX spans_by_response ON spans (project, response_id) WHERE response_id IS NOT NULL;

CREATE TABLE logs (
    project             TEXT    NOT NULL,
    time_ns             INTEGER NOT NULL,  -- time, or observed time when time is unset
    observed_time_ns    INTEGER NOT NULL,
    trace_id            TEXT,
    span_id             TEXT,
    severity_number     INTEGER NOT NULL,
    severity_text       TEXT,
    event_name          TEXT,
    service             TEXT,
    scope_name          TEXT,
    body                TEXT,              -- JSON
    attributes          TEXT    NOT NULL,  -- JSON object, without the content columns below
    resource_attributes TEXT    NOT NULL,
    -- Canonical GenAI content carried by GenAI events, joined to the span by trace and span id.
    input_messages      TEXT,
    output_messages     TEXT,
    system_instructions TEXT
);

CREATE INDEX logs_by_time ON logs (project, time_ns);
CREATE INDEX logs_by_span ON logs (trace_id, span_id);

CREATE TABLE metric_points (
    project             TEXT    NOT NULL,
    time_ns             INTEGER NOT NULL,
    start_time_ns       INTEGER,
    service             TEXT,
    scope_name          TEXT,
    name                TEXT    NOT NULL,
    unit                TEXT,
    kind                TEXT    NOT NULL,  -- gauge | sum | histogram | exponential_histogram | summary
    value               REAL,              -- gauge/sum value; histogram/summary sum
    count               INTEGER,           -- histogram/summary count
    attributes          TEXT    NOT NULL,
    resource_attributes TEXT    NOT NULL
);

CREATE INDEX metric_points_by_name ON metric_points (project, name, time_ns);
