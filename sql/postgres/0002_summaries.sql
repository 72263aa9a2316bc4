-- The trace list, kept at write time (exporters/src/query/trace_list.rs): one summary row per
-- trace, recomputed from the trace's spans whenever a batch adds to it (under a per-trace
-- advisory lock, so concurrent writers cannot lose each other's spans), and one row per filter
-- key (`s:service`, `m:model`, `p:provider`) any of its spans has. Listing newest first is a
-- keyset scan of `traces_by_start`, or of `trace_keys` with a filter. Not partitioned: rows
-- past retention are deleted with the span partitions. Rows for traces already stored are
-- written by the collector right after this migration.

CREATE TABLE IF NOT EXISTS traces (
    project       text             NOT NULL,
    trace_id      text             NOT NULL,
    start_ns      bigint           NOT NULL,
    duration_ns   bigint           NOT NULL,
    root_name     text,
    service       text,
    span_count    bigint           NOT NULL,
    llm_calls     bigint           NOT NULL,
    input_tokens  bigint           NOT NULL,
    output_tokens bigint           NOT NULL,
    cost_usd      double precision,
    error         boolean          NOT NULL,
    PRIMARY KEY (project, trace_id)
);

CREATE INDEX IF NOT EXISTS traces_by_start ON traces (project, start_ns, trace_id);

CREATE TABLE IF NOT EXISTS trace_keys (
    project  text   NOT NULL,
    key      text   NOT NULL,
    start_ns bigint NOT NULL,
    trace_id text   NOT NULL,
    PRIMARY KEY (project, key, start_ns, trace_id)
);

-- The primary key (project, trace_id, ...) finds a trace's spans; this one was redundant.
DROP INDEX IF EXISTS spans_by_trace;
