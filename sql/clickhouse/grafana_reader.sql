-- Read-only access for Grafana's ClickHouse datasource (deploy/grafana): the data tables only.
-- Not a migration: the collector never runs it. Replace `llmscope` with the exporter's
-- `database` and choose a password, then run it as an administrator:
--
--   clickhouse-client --multiquery < sql/clickhouse/grafana_reader.sql
--
-- readonly = 2 lets the plugin set per-query settings while forbidding writes.
-- collector/tests/it/grafana.rs checks that every statement parses on the real engine (the test
-- double has no user management).

CREATE USER IF NOT EXISTS grafana_reader IDENTIFIED WITH sha256_password BY 'choose-one'
    SETTINGS readonly = 2, max_execution_time = 30;
GRANT SELECT ON llmscope.spans TO grafana_reader;
GRANT SELECT ON llmscope.anomalies TO grafana_reader;
GRANT SELECT ON llmscope.logs TO grafana_reader;
GRANT SELECT ON llmscope.metric_points TO grafana_reader;
GRANT SELECT ON llmscope.calls_hourly TO grafana_reader;
GRANT SELECT ON llmscope.calls_daily TO grafana_reader;
