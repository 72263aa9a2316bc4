-- LLMScope ClickHouse schema, version 2: trace starts in time order for the trace list, and call
-- rollups that summaries can combine with raw rows at a range's edges.
--
-- Each new table is filled from the existing data before its materialized view is created:
-- spans inserted by another collector while this migration runs reach the rollups only if they
-- arrive after the view exists (raw rows are never affected). Migrate before starting the new
-- version, as `llmscope migrate` does.

-- One row per trace per insert: the trace's earliest span in that insert. A trace's start is
-- the least of its rows (and `trace_index` has it in one row), so a scan of a time window finds
-- every trace that starts in it.
CREATE TABLE IF NOT EXISTS {db}.trace_starts {on_cluster}
(
    project  LowCardinality(String),
    start    DateTime64(9, 'UTC'),
    trace_id String
)
ENGINE = {engine:MergeTree}
PARTITION BY toDate(start)
ORDER BY (project, start, trace_id)
TTL toDateTime(start) + INTERVAL {ttl_days} DAY
SETTINGS non_replicated_deduplication_window = 10000
;
INSERT INTO {db}.trace_starts
SELECT project, min(start_min) AS start, trace_id FROM {db}.trace_index GROUP BY project, trace_id
;
CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.trace_starts_mv {on_cluster} TO {db}.trace_starts AS
SELECT project, min(start_time) AS start, trace_id
FROM {db}.spans
GROUP BY project, trace_id
;
-- Model calls (counted spans) per hour and per day, by service, provider, request and response
-- model and operation. Latency is a histogram of the same buckets as the other stores'
-- (`query::rollup::Hist`: bucket i holds (1.1^(i-1), 1.1^i] ms, bucket 0 up to 1 ms), so a
-- summary merges rollup rows and raw calls exactly.
CREATE TABLE IF NOT EXISTS {db}.calls_hourly {on_cluster}
(
    project           LowCardinality(String),
    bucket            DateTime('UTC'),
    service           LowCardinality(String),
    provider          LowCardinality(String),
    request_model     LowCardinality(String),
    response_model    LowCardinality(String),
    operation         LowCardinality(String),
    requests          SimpleAggregateFunction(sum, UInt64),
    errors            SimpleAggregateFunction(sum, UInt64),
    input_tokens      SimpleAggregateFunction(sum, Int64),
    output_tokens     SimpleAggregateFunction(sum, Int64),
    cache_read_tokens SimpleAggregateFunction(sum, Int64),
    cost_usd          SimpleAggregateFunction(sum, Float64),
    priced            SimpleAggregateFunction(sum, UInt64),
    latency_hist      SimpleAggregateFunction(sumMap, Map(UInt8, UInt64))
)
ENGINE = {engine:AggregatingMergeTree}
PARTITION BY toYYYYMM(bucket)
ORDER BY (project, bucket, service, provider, request_model, response_model, operation)
SETTINGS non_replicated_deduplication_window = 10000
;
CREATE TABLE IF NOT EXISTS {db}.calls_daily {on_cluster} AS {db}.calls_hourly
ENGINE = {engine:AggregatingMergeTree}
PARTITION BY toYear(bucket)
ORDER BY (project, bucket, service, provider, request_model, response_model, operation)
SETTINGS non_replicated_deduplication_window = 10000
;
INSERT INTO {db}.calls_hourly
SELECT
    project, toStartOfHour(start_time) AS bucket, service, provider, request_model,
    response_model, operation,
    count() AS requests,
    countIf(status_code = 2) AS errors,
    sum(ifNull(input_tokens, 0)) AS input_tokens,
    sum(ifNull(output_tokens, 0)) AS output_tokens,
    sum(ifNull(cache_read_tokens, 0)) AS cache_read_tokens,
    sum(ifNull(cost_usd, 0)) AS cost_usd,
    countIf(s.cost_usd IS NOT NULL) AS priced,
    sumMap(map(if(duration_ns <= 1000000, 0, toUInt8(least(ceil(log(duration_ns / 1e6) / log(1.1)), 199))), toUInt64(1))) AS latency_hist
FROM {db}.spans AS s
WHERE counted = 1
GROUP BY project, bucket, service, provider, request_model, response_model, operation
;
INSERT INTO {db}.calls_daily
SELECT
    project, toStartOfDay(bucket) AS day, service, provider, request_model, response_model,
    operation, sum(requests), sum(errors), sum(input_tokens), sum(output_tokens),
    sum(cache_read_tokens), sum(cost_usd), sum(priced), sumMap(latency_hist)
FROM {db}.calls_hourly
GROUP BY project, day, service, provider, request_model, response_model, operation
;
CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.calls_hourly_mv {on_cluster} TO {db}.calls_hourly AS
SELECT
    project, toStartOfHour(start_time) AS bucket, service, provider, request_model,
    response_model, operation,
    count() AS requests,
    countIf(status_code = 2) AS errors,
    sum(ifNull(input_tokens, 0)) AS input_tokens,
    sum(ifNull(output_tokens, 0)) AS output_tokens,
    sum(ifNull(cache_read_tokens, 0)) AS cache_read_tokens,
    sum(ifNull(cost_usd, 0)) AS cost_usd,
    countIf(s.cost_usd IS NOT NULL) AS priced,
    sumMap(map(if(duration_ns <= 1000000, 0, toUInt8(least(ceil(log(duration_ns / 1e6) / log(1.1)), 199))), toUInt64(1))) AS latency_hist
FROM {db}.spans AS s
WHERE counted = 1
GROUP BY project, bucket, service, provider, request_model, response_model, operation
;
CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.calls_daily_mv {on_cluster} TO {db}.calls_daily AS
SELECT
    project, toStartOfDay(start_time) AS bucket, service, provider, request_model,
    response_model, operation,
    count() AS requests,
    countIf(status_code = 2) AS errors,
    sum(ifNull(input_tokens, 0)) AS input_tokens,
    sum(ifNull(output_tokens, 0)) AS output_tokens,
    sum(ifNull(cache_read_tokens, 0)) AS cache_read_tokens,
    sum(ifNull(cost_usd, 0)) AS cost_usd,
    countIf(s.cost_usd IS NOT NULL) AS priced,
    sumMap(map(if(duration_ns <= 1000000, 0, toUInt8(least(ceil(log(duration_ns / 1e6) / log(1.1)), 199))), toUInt64(1))) AS latency_hist
FROM {db}.spans AS s
WHERE counted = 1
GROUP BY project, bucket, service, provider, request_model, response_model, operation
;
-- The version 1 rollups (one model column, t-digest latency) are replaced by the above.
DROP VIEW IF EXISTS {db}.calls_1h_mv {on_cluster}
;
DROP VIEW IF EXISTS {db}.calls_1d_mv {on_cluster}
;
DROP TABLE IF EXISTS {db}.calls_1h {on_cluster}
;
DROP TABLE IF EXISTS {db}.calls_1d {on_cluster}
