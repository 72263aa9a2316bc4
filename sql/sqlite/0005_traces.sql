-- The trace list, kept at write time (exporters/src/query/trace_list.rs): one summary row per
-- trace, recomputed from the trace's spans whenever a batch adds to it, and one row per filter
-- key (`s:service`, `m:model`, `p:provider`) any of its spans has. Listing newest first is a
-- keyset scan of `traces_by_start`, or of `trace_keys` with a filter. Rows for the traces
-- already stored are written by the collector right after this migration.

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

-- The primary key (project, trace_id, span_id) finds a trace's spans; this one was redundant.
DROP INDEX spans_by_trace;
