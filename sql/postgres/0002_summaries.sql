-- The trace list and the summary rollups, kept at write time.
--
-- The trace list (exporters/src/query/trace_list.rs): one summary row per
-- trace, recomputed from the trace's spans whenever a batch adds to it (under a per-trace
-- advisory lock, so concurrent writers cannot lose each other's spans), and one row per filter
-- key (`s:service`, `m:model`, `p:provider`) any of its spans has. Listing newest first is a
-- keyset scan of `traces_by_start`, or of `trace_keys` with a filter. Not partitioned: rows
-- past retention are deleted with the span partitions. Rows for traces already stored (and
-- their rollups) are written by the collector right after this migration.

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
    user_id       text,  -- the root's, else the earliest span's with one: the user and
    session_id    text,  -- session of the trace's calls that have none
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

-- Summary rollups (exporters/src/query/rollup.rs), replacing calls_rollup: hourly and daily
-- sums of model calls per series, `dim` c (service, provider, models, operation), u (user, in
-- `value`) or s (session), changed by each batch by the difference it makes to the calls of
-- the traces it touched. Text is '' where a call has none; `latency_hist` is the sparse
-- log-scale histogram. Kept past the spans' retention (a few rows per hour).
CREATE TABLE IF NOT EXISTS rollups (
    project           text             NOT NULL,
    dim               text             NOT NULL,
    width_ns          bigint           NOT NULL,
    bucket_ns         bigint           NOT NULL,
    service           text             NOT NULL,
    provider          text             NOT NULL,
    model             text             NOT NULL,  -- the request model
    response_model    text             NOT NULL,
    operation         text             NOT NULL,
    value             text             NOT NULL,
    requests          bigint           NOT NULL,
    errors            bigint           NOT NULL,
    input_tokens      bigint           NOT NULL,
    output_tokens     bigint           NOT NULL,
    cache_read_tokens bigint           NOT NULL,
    cost_usd          double precision NOT NULL,
    priced            bigint           NOT NULL,  -- calls with a cost
    latency_hist      bytea            NOT NULL,
    PRIMARY KEY (project, dim, width_ns, bucket_ns, service, provider, model, response_model,
                 operation, value)
);

DROP TABLE IF EXISTS calls_rollup;

-- Every span of a response id, whichever trace holds it: a call is counted once.
CREATE INDEX IF NOT EXISTS spans_by_response ON spans (project, response_id)
    WHERE response_id IS NOT NULL;

-- The primary key (project, trace_id, ...) finds a trace's spans; this one was redundant.
DROP INDEX IF EXISTS spans_by_trace;
