-- LLMScope ClickHouse schema, version 3: user and session summaries from rollups.
--
-- A model call's user is its own `user.id`, else its trace's (the root's first, then the
-- earliest span's that has one); its session likewise. `people_calls` sums the calls that carry
-- their own, per user or session and hour, day and week (weeks counted from the Unix epoch, as
-- `query::rollup::WEEK_NS`); the calls that lack one are kept in `orphan_calls`, and
-- `trace_people` holds each trace's pick, so a summary joins only those calls to their traces.
-- Most instrumentations put the user on the root and the collector copies it to the calls of a
-- batch that holds the root, so most calls carry their own.
--
-- Each new table is filled from the existing data before its materialized view is created:
-- spans inserted by another collector while this migration runs reach them only if they arrive
-- after the view exists (raw rows are never affected). Migrate before starting the new version,
-- as `llmscope migrate` does.

-- Model calls (counted spans) with their own user or session, per `kind` ('user' or 'session'),
-- `width` (seconds: 3600, 86400 or 604800) and bucket. Sums and latency histogram as
-- `calls_hourly`.
CREATE TABLE IF NOT EXISTS {db}.people_calls {on_cluster}
(
    project           LowCardinality(String),
    kind              LowCardinality(String),
    width             UInt32,
    bucket            DateTime('UTC'),
    key               String,
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
ORDER BY (project, kind, width, bucket, key)
SETTINGS non_replicated_deduplication_window = 10000
;
INSERT INTO {db}.people_calls
SELECT
    project, p.1 AS kind, width,
    toDateTime(intDiv(toUnixTimestamp(start_time), width) * width, 'UTC') AS bucket, p.2 AS key,
    count() AS requests,
    countIf(status_code = 2) AS errors,
    sum(ifNull(input_tokens, 0)) AS input_tokens,
    sum(ifNull(output_tokens, 0)) AS output_tokens,
    sum(ifNull(cache_read_tokens, 0)) AS cache_read_tokens,
    sum(ifNull(cost_usd, 0)) AS cost_usd,
    countIf(s.cost_usd IS NOT NULL) AS priced,
    sumMap(map(if(duration_ns <= 1000000, 0, toUInt8(least(ceil(log(duration_ns / 1e6) / log(1.1)), 199))), toUInt64(1))) AS latency_hist
FROM {db}.spans AS s
ARRAY JOIN [('user', user_id), ('session', session_id)] AS p
ARRAY JOIN [toUInt32(3600), toUInt32(86400), toUInt32(604800)] AS width
WHERE counted = 1 AND p.2 != ''
GROUP BY project, kind, width, bucket, key
;
CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.people_calls_mv {on_cluster} TO {db}.people_calls AS
SELECT
    project, p.1 AS kind, width,
    toDateTime(intDiv(toUnixTimestamp(start_time), width) * width, 'UTC') AS bucket, p.2 AS key,
    count() AS requests,
    countIf(status_code = 2) AS errors,
    sum(ifNull(input_tokens, 0)) AS input_tokens,
    sum(ifNull(output_tokens, 0)) AS output_tokens,
    sum(ifNull(cache_read_tokens, 0)) AS cache_read_tokens,
    sum(ifNull(cost_usd, 0)) AS cost_usd,
    countIf(s.cost_usd IS NOT NULL) AS priced,
    sumMap(map(if(duration_ns <= 1000000, 0, toUInt8(least(ceil(log(duration_ns / 1e6) / log(1.1)), 199))), toUInt64(1))) AS latency_hist
FROM {db}.spans AS s
ARRAY JOIN [('user', user_id), ('session', session_id)] AS p
ARRAY JOIN [toUInt32(3600), toUInt32(86400), toUInt32(604800)] AS width
WHERE counted = 1 AND p.2 != ''
GROUP BY project, kind, width, bucket, key
;
-- Model calls (counted spans) without their own user or session: one row each.
CREATE TABLE IF NOT EXISTS {db}.orphan_calls {on_cluster}
(
    project           LowCardinality(String),
    start_time        DateTime64(9, 'UTC'),
    trace_id          String,
    user_id           String,
    session_id        String,
    service           LowCardinality(String),
    provider          LowCardinality(String),
    request_model     LowCardinality(String),
    response_model    LowCardinality(String),
    status_code       Int8,
    duration_ns       Int64,
    input_tokens      Nullable(Int64),
    output_tokens     Nullable(Int64),
    cache_read_tokens Nullable(Int64),
    cost_usd          Nullable(Float64)
)
ENGINE = {engine:MergeTree}
PARTITION BY toYYYYMM(start_time)
ORDER BY (project, start_time)
TTL toDateTime(start_time) + INTERVAL {ttl_days} DAY
SETTINGS non_replicated_deduplication_window = 10000
;
INSERT INTO {db}.orphan_calls
SELECT project, start_time, trace_id, user_id, session_id, service, provider, request_model,
       response_model, status_code, duration_ns, input_tokens, output_tokens, cache_read_tokens,
       cost_usd
FROM {db}.spans
WHERE counted = 1 AND (user_id = '' OR session_id = '')
;
CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.orphan_calls_mv {on_cluster} TO {db}.orphan_calls AS
SELECT project, start_time, trace_id, user_id, session_id, service, provider, request_model,
       response_model, status_code, duration_ns, input_tokens, output_tokens, cache_read_tokens,
       cost_usd
FROM {db}.spans
WHERE counted = 1 AND (user_id = '' OR session_id = '')
;
-- Each trace's user and session: the least of (not root, start, span id, value) over its spans
-- that have one, so the root's comes first, then the earliest span's. A tuple starting with 2
-- stands for none.
CREATE TABLE IF NOT EXISTS {db}.trace_people {on_cluster}
(
    project      LowCardinality(String),
    trace_id     String,
    user_pick    SimpleAggregateFunction(min, Tuple(UInt8, DateTime64(9, 'UTC'), String, String)),
    session_pick SimpleAggregateFunction(min, Tuple(UInt8, DateTime64(9, 'UTC'), String, String)),
    start_max    SimpleAggregateFunction(max, DateTime64(9, 'UTC'))
)
ENGINE = {engine:AggregatingMergeTree}
ORDER BY (project, trace_id)
TTL toDateTime(start_max) + INTERVAL {ttl_days} DAY
SETTINGS non_replicated_deduplication_window = 10000
;
INSERT INTO {db}.trace_people
SELECT
    project, trace_id,
    min(if(user_id != '', (toUInt8(parent_span_id != ''), start_time, span_id, user_id),
           (toUInt8(2), toDateTime64(0, 9, 'UTC'), '', ''))) AS user_pick,
    min(if(session_id != '', (toUInt8(parent_span_id != ''), start_time, span_id, session_id),
           (toUInt8(2), toDateTime64(0, 9, 'UTC'), '', ''))) AS session_pick,
    max(start_time) AS start_max
FROM {db}.spans
WHERE user_id != '' OR session_id != ''
GROUP BY project, trace_id
;
CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.trace_people_mv {on_cluster} TO {db}.trace_people AS
SELECT
    project, trace_id,
    min(if(user_id != '', (toUInt8(parent_span_id != ''), start_time, span_id, user_id),
           (toUInt8(2), toDateTime64(0, 9, 'UTC'), '', ''))) AS user_pick,
    min(if(session_id != '', (toUInt8(parent_span_id != ''), start_time, span_id, session_id),
           (toUInt8(2), toDateTime64(0, 9, 'UTC'), '', ''))) AS session_pick,
    max(start_time) AS start_max
FROM {db}.spans
WHERE user_id != '' OR session_id != ''
GROUP BY project, trace_id
