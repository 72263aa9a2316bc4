-- Filtered user and session summaries from the rollups: a user's or session's row keeps its
-- calls per series in `parts` (`query::rollup::Parts`: each series' id, then its sums), NULL in
-- the other rows, and `rollup_series` names the series behind each id, so a summary's filter
-- becomes a set of ids. User and session rows come in weeks too (`Dim::widths`): a month's
-- summary reads each user's weeks rather than thirty days.
--
-- The rollups are partitioned by dimension and width: a month of users reads the pages of the
-- users' daily and weekly rows, not pages shared with every hourly row (rows of one partition
-- were scattered over the whole heap by their updates; fillfactor leaves room for updates to
-- stay on their page).
--
-- Right after this, in the same transaction, the collector names the series of the rollups kept
-- so far and rebuilds the user and session rows from the stored spans' day on; older rows (past
-- the spans' retention) keep their totals without parts, and the week that straddles the
-- retention's edge counts only the spans still stored.
ALTER TABLE rollups RENAME TO rollups_before_0007;
ALTER INDEX rollups_pkey RENAME TO rollups_before_0007_pkey;

CREATE TABLE rollups (
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
    parts             bytea,                      -- user and session rows
    PRIMARY KEY (project, dim, width_ns, bucket_ns, service, provider, model, response_model,
                 operation, value)
) PARTITION BY LIST (dim);

CREATE TABLE rollups_calls PARTITION OF rollups FOR VALUES IN ('c') PARTITION BY LIST (width_ns);
CREATE TABLE rollups_users PARTITION OF rollups FOR VALUES IN ('u') PARTITION BY LIST (width_ns);
CREATE TABLE rollups_sessions PARTITION OF rollups FOR VALUES IN ('s')
    PARTITION BY LIST (width_ns);
CREATE TABLE rollups_calls_hourly PARTITION OF rollups_calls
    FOR VALUES IN (3600000000000) WITH (fillfactor = 80);
CREATE TABLE rollups_calls_daily PARTITION OF rollups_calls
    FOR VALUES IN (86400000000000) WITH (fillfactor = 80);
CREATE TABLE rollups_users_hourly PARTITION OF rollups_users
    FOR VALUES IN (3600000000000) WITH (fillfactor = 80);
CREATE TABLE rollups_users_daily PARTITION OF rollups_users
    FOR VALUES IN (86400000000000) WITH (fillfactor = 80);
CREATE TABLE rollups_users_weekly PARTITION OF rollups_users
    FOR VALUES IN (604800000000000) WITH (fillfactor = 80);
CREATE TABLE rollups_sessions_hourly PARTITION OF rollups_sessions
    FOR VALUES IN (3600000000000) WITH (fillfactor = 80);
CREATE TABLE rollups_sessions_daily PARTITION OF rollups_sessions
    FOR VALUES IN (86400000000000) WITH (fillfactor = 80);
CREATE TABLE rollups_sessions_weekly PARTITION OF rollups_sessions
    FOR VALUES IN (604800000000000) WITH (fillfactor = 80);

INSERT INTO rollups (project, dim, width_ns, bucket_ns, service, provider, model, response_model,
                     operation, value, requests, errors, input_tokens, output_tokens,
                     cache_read_tokens, cost_usd, priced, latency_hist)
SELECT project, dim, width_ns, bucket_ns, service, provider, model, response_model, operation,
       value, requests, errors, input_tokens, output_tokens, cache_read_tokens, cost_usd, priced,
       latency_hist
FROM rollups_before_0007;

DROP TABLE rollups_before_0007;

-- The Grafana role (grafana_reader.sql) reads the new table as it read the old one.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'grafana_reader') THEN
        GRANT SELECT ON rollups TO grafana_reader;
    END IF;
END
$$;

CREATE TABLE IF NOT EXISTS rollup_series (
    project        text   NOT NULL,
    id             bigint NOT NULL,  -- `Series::id`, a stable hash of the other columns
    service        text   NOT NULL,
    provider       text   NOT NULL,
    model          text   NOT NULL,  -- the request model
    response_model text   NOT NULL,
    operation      text   NOT NULL,
    PRIMARY KEY (project, id)
);
