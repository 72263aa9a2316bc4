-- The trace list and the summary rollups, kept at write time.
--
-- The trace list (exporters/src/query/trace_list.rs): one summary row per
-- trace, recomputed from the trace's spans whenever a batch adds to it, and one row per filter
-- key (`s:service`, `m:model`, `p:provider`) any of its spans has. Listing newest first is a
-- keyset scan of `traces_by_start`, or of `trace_keys` with a filter. Rows for the traces
-- already stored (and their rollups) are written by the collector right after this migration.

CREATE TABLE traces (
    project       TEXT    NOT NULL,
    trace_id      TEXT    NOT NULL,
    start_ns      INTEGER NOT NULL,  -- the earliest span's start
    duration_ns   INTEGER NOT NULL,  -- to the latest span's end
    root_name     TEXT,
    service       TEXT,              -- the root span's
    span_count    INTEGER NOT NULL,
    llm_calls     INTEGER NOT NULL,  -- model calls, twins (one response id) counted once
    input_tokens  INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    cost_usd      REAL,              -- NULL when no call was priced
    error         INTEGER NOT NULL,
    user_id       TEXT,              -- the root's, else the earliest span's with one: the user
    session_id    TEXT,              -- and session of the trace's calls that have none
    PRIMARY KEY (project, trace_id)
) WITHOUT ROWID;

CREATE INDEX traces_by_start ON traces (project, start_ns, trace_id);

CREATE TABLE trace_keys (
    project  TEXT    NOT NULL,
    key      TEXT    NOT NULL,
    start_ns INTEGER NOT NULL,  -- the trace's, as in `traces`
    trace_id TEXT    NOT NULL,
    PRIMARY KEY (project, key, start_ns, trace_id)
) WITHOUT ROWID;

-- Summary rollups (exporters/src/query/rollup.rs): hourly and daily sums of model calls per
-- series, `dim` c (service, provider, models, operation), u (user, in `value`) or s (session),
-- changed by each batch by the difference it makes to the calls of the traces it touched.
-- Text is '' where a call has none; `latency_hist` is the sparse log-scale histogram.
CREATE TABLE rollups (
    project           TEXT    NOT NULL,
    dim               TEXT    NOT NULL,
    width_ns          INTEGER NOT NULL,
    bucket_ns         INTEGER NOT NULL,
    service           TEXT    NOT NULL,
    provider          TEXT    NOT NULL,
    model             TEXT    NOT NULL,  -- the request model
    response_model    TEXT    NOT NULL,
    operation         TEXT    NOT NULL,
    value             TEXT    NOT NULL,
    requests          INTEGER NOT NULL,
    errors            INTEGER NOT NULL,
    input_tokens      INTEGER NOT NULL,
    output_tokens     INTEGER NOT NULL,
    cache_read_tokens INTEGER NOT NULL,
    cost_usd          REAL    NOT NULL,
    priced            INTEGER NOT NULL,  -- calls with a cost
    latency_hist      BLOB    NOT NULL,
    PRIMARY KEY (project, dim, width_ns, bucket_ns, service, provider, model, response_model,
                 operation, value)
) WITHOUT ROWID;

-- Spans move to a rowid table. WITHOUT ROWID suits rows under about 1/20 of a page; a span
-- with its content is about 1 KB, so each spilled onto a mostly empty overflow page (2.7 KB
-- stored per span). The old `spans_by_trace` index goes: `spans_by_id` finds a trace's spans.
CREATE TABLE spans_rowid (
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
);

INSERT INTO spans_rowid SELECT * FROM spans;
DROP TABLE spans;
ALTER TABLE spans_rowid RENAME TO spans;

CREATE UNIQUE INDEX spans_by_id ON spans (project, trace_id, span_id);
CREATE INDEX spans_by_time ON spans (project, start_time_ns);
CREATE INDEX spans_by_model ON spans (project, request_model, start_time_ns);
CREATE INDEX spans_by_response ON spans (project, response_id) WHERE response_id IS NOT NULL;
