-- LLMScope ClickHouse schema, version 1. Forward-only: add NNNN_name.sql, never edit this.
--
-- Placeholders, filled by `llmscope migrate` and the exporter's `create_schema`:
--   {db}            the database
--   {on_cluster}    empty, or `ON CLUSTER <cluster>` with `cluster:` set
--   {engine:X}      `X`, or `Replicated X` with its Keeper path and replica, with `cluster:` set
--   {ttl_days}      retention of raw rows in days
-- Statements are separated by a line holding only `;`.

CREATE TABLE IF NOT EXISTS {db}.spans {on_cluster}
(
    project             LowCardinality(String),
    start_time          DateTime64(9, 'UTC'),
    end_time            DateTime64(9, 'UTC'),
    duration_ns         Int64,
    trace_id            String,
    span_id             String,
    parent_span_id      String,
    name                String,
    kind                Int8,
    service             LowCardinality(String),
    scope_name          LowCardinality(String),
    status_code         Int8,
    status_message      String,
    operation           LowCardinality(String),
    provider            LowCardinality(String),
    request_model       LowCardinality(String),
    response_model      LowCardinality(String),
    response_id         String,
    input_tokens        Nullable(Int64),
    output_tokens       Nullable(Int64),
    cache_read_tokens   Nullable(Int64),
    cache_write_tokens  Nullable(Int64),
    reasoning_tokens    Nullable(Int64),
    cost_usd            Nullable(Float64),
    session_id          String,
    user_id             String,
    conversation_id     String,
    is_model_call       UInt8,
    -- 1 on the one span of each model call that rollups count (two spans of one call share a
    -- response id; the exporter picks one per batch).
    counted             UInt8,
    input_messages      String CODEC(ZSTD(3)),
    output_messages     String CODEC(ZSTD(3)),
    system_instructions String CODEC(ZSTD(3)),
    -- Attribute values are JSON text (`"text"`, `42`, `true`, `[...]`), so types survive.
    attributes          Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    resource_attributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    events              String CODEC(ZSTD(1)),
    links               String CODEC(ZSTD(1)),
    INDEX trace_bloom trace_id TYPE bloom_filter(0.01) GRANULARITY 4
)
ENGINE = {engine:MergeTree}
PARTITION BY toDate(start_time)
ORDER BY (project, toStartOfHour(start_time), service, request_model, start_time)
TTL toDateTime(start_time) + INTERVAL {ttl_days} DAY
SETTINGS non_replicated_deduplication_window = 10000
;
-- Trace id to its time range, so one trace loads without a full scan.
CREATE TABLE IF NOT EXISTS {db}.trace_index {on_cluster}
(
    project    LowCardinality(String),
    trace_id   String,
    start_min  SimpleAggregateFunction(min, DateTime64(9, 'UTC')),
    start_max  SimpleAggregateFunction(max, DateTime64(9, 'UTC'))
)
ENGINE = {engine:AggregatingMergeTree}
ORDER BY (project, trace_id)
TTL toDateTime(start_max) + INTERVAL {ttl_days} DAY
SETTINGS non_replicated_deduplication_window = 10000
;
CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.trace_index_mv {on_cluster} TO {db}.trace_index AS
SELECT project, trace_id, min(start_time) AS start_min, max(start_time) AS start_max
FROM {db}.spans
GROUP BY project, trace_id
;
CREATE TABLE IF NOT EXISTS {db}.logs {on_cluster}
(
    project             LowCardinality(String),
    time                DateTime64(9, 'UTC'),
    observed_time       DateTime64(9, 'UTC'),
    trace_id            String,
    span_id             String,
    severity_number     Int8,
    severity_text       LowCardinality(String),
    event_name          LowCardinality(String),
    service             LowCardinality(String),
    scope_name          LowCardinality(String),
    body                String CODEC(ZSTD(3)),
    attributes          Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    resource_attributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    input_messages      String CODEC(ZSTD(3)),
    output_messages     String CODEC(ZSTD(3)),
    system_instructions String CODEC(ZSTD(3)),
    INDEX trace_bloom trace_id TYPE bloom_filter(0.01) GRANULARITY 4
)
ENGINE = {engine:MergeTree}
PARTITION BY toDate(time)
ORDER BY (project, toStartOfHour(time), service, time)
TTL toDateTime(time) + INTERVAL {ttl_days} DAY
SETTINGS non_replicated_deduplication_window = 10000
;
CREATE TABLE IF NOT EXISTS {db}.anomalies {on_cluster}
(
    project    LowCardinality(String),
    time       DateTime64(9, 'UTC'),
    kind       LowCardinality(String),
    service    LowCardinality(String),
    provider   LowCardinality(String),
    model      LowCardinality(String),
    operation  LowCardinality(String),
    score      Float64,
    value      Float64,
    baseline   Float64,
    trace_id   String,
    span_id    String,
    message    String,
    attributes Map(LowCardinality(String), String)
)
ENGINE = {engine:MergeTree}
PARTITION BY toYYYYMM(time)
ORDER BY (project, time)
TTL toDateTime(time) + INTERVAL {ttl_days} DAY
SETTINGS non_replicated_deduplication_window = 10000
;
CREATE TABLE IF NOT EXISTS {db}.metric_points {on_cluster}
(
    project             LowCardinality(String),
    time                DateTime64(9, 'UTC'),
    start_time          DateTime64(9, 'UTC'),
    service             LowCardinality(String),
    scope_name          LowCardinality(String),
    name                LowCardinality(String),
    unit                LowCardinality(String),
    kind                LowCardinality(String),
    value               Nullable(Float64),
    count               Nullable(Int64),
    attributes          Map(LowCardinality(String), String),
    resource_attributes Map(LowCardinality(String), String)
)
ENGINE = {engine:MergeTree}
PARTITION BY toDate(time)
ORDER BY (project, name, time)
TTL toDateTime(time) + INTERVAL {ttl_days} DAY
SETTINGS non_replicated_deduplication_window = 10000
;
-- Rollups of model calls (counted spans), hourly and daily, for bucket-aligned summaries.
CREATE TABLE IF NOT EXISTS {db}.calls_1h {on_cluster}
(
    project           LowCardinality(String),
    bucket            DateTime('UTC'),
    service           LowCardinality(String),
    provider          LowCardinality(String),
    model             LowCardinality(String),
    operation         LowCardinality(String),
    requests          SimpleAggregateFunction(sum, UInt64),
    errors            SimpleAggregateFunction(sum, UInt64),
    input_tokens      SimpleAggregateFunction(sum, Int64),
    output_tokens     SimpleAggregateFunction(sum, Int64),
    cache_read_tokens SimpleAggregateFunction(sum, Int64),
    cost_usd          SimpleAggregateFunction(sum, Float64),
    priced            SimpleAggregateFunction(sum, UInt64),
    latency_ms        AggregateFunction(quantilesTDigest(0.5, 0.95, 0.99), Float64)
)
ENGINE = {engine:AggregatingMergeTree}
PARTITION BY toYYYYMM(bucket)
ORDER BY (project, bucket, service, provider, model, operation)
SETTINGS non_replicated_deduplication_window = 10000
;
CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.calls_1h_mv {on_cluster} TO {db}.calls_1h AS
SELECT
    project,
    toStartOfHour(start_time) AS bucket,
    service,
    provider,
    if(request_model != '', request_model, response_model) AS model,
    operation,
    count() AS requests,
    countIf(status_code = 2) AS errors,
    sum(ifNull(input_tokens, 0)) AS input_tokens,
    sum(ifNull(output_tokens, 0)) AS output_tokens,
    sum(ifNull(cache_read_tokens, 0)) AS cache_read_tokens,
    sum(ifNull(cost_usd, 0)) AS cost_usd,
    countIf(s.cost_usd IS NOT NULL) AS priced,
    quantilesTDigestState(0.5, 0.95, 0.99)(duration_ns / 1e6) AS latency_ms
FROM {db}.spans AS s
WHERE counted = 1
GROUP BY project, bucket, service, provider, model, operation
;
CREATE TABLE IF NOT EXISTS {db}.calls_1d {on_cluster} AS {db}.calls_1h
ENGINE = {engine:AggregatingMergeTree}
PARTITION BY toYear(bucket)
ORDER BY (project, bucket, service, provider, model, operation)
SETTINGS non_replicated_deduplication_window = 10000
;
CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.calls_1d_mv {on_cluster} TO {db}.calls_1d AS
SELECT
    project,
    toStartOfDay(start_time) AS bucket,
    service,
    provider,
    if(request_model != '', request_model, response_model) AS model,
    operation,
    count() AS requests,
    countIf(status_code = 2) AS errors,
    sum(ifNull(input_tokens, 0)) AS input_tokens,
    sum(ifNull(output_tokens, 0)) AS output_tokens,
    sum(ifNull(cache_read_tokens, 0)) AS cache_read_tokens,
    sum(ifNull(cost_usd, 0)) AS cost_usd,
    countIf(s.cost_usd IS NOT NULL) AS priced,
    quantilesTDigestState(0.5, 0.95, 0.99)(duration_ns / 1e6) AS latency_ms
FROM {db}.spans AS s
WHERE counted = 1
GROUP BY project, bucket, service, provider, model, operation
;
CREATE TABLE IF NOT EXISTS {db}.schema_migrations {on_cluster}
(
    version    UInt32,
    name       String,
    applied_at DateTime('UTC') DEFAULT now()
)
ENGINE = {engine:ReplacingMergeTree}
ORDER BY version
