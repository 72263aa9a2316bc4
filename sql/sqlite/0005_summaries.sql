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

-- The primary key (project, trace_id, span_id) finds a trace's spans; this one was redundant.
DROP INDEX spans_by_trace;
