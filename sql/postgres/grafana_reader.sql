-- Read-only access for Grafana's PostgreSQL datasource (deploy/grafana): the data tables only,
-- never the API keys, alert rules (webhook secrets) or other metadata. Not a migration: the
-- collector never runs it. Run it once per database, as its owner, after the collector created
-- the schema, then give the role a password:
--
--   psql "$LLMSCOPE_POSTGRES_URL" -f sql/postgres/grafana_reader.sql
--   psql "$LLMSCOPE_POSTGRES_URL" -c "ALTER ROLE grafana_reader PASSWORD 'choose-one'"
--
-- Running it again is harmless. collector/tests/it/grafana.rs runs every dashboard query as
-- this role.

DO $$
BEGIN
    CREATE ROLE grafana_reader LOGIN;
EXCEPTION WHEN duplicate_object THEN
    NULL;
END
$$;

DO $$
BEGIN
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO grafana_reader', current_database());
END
$$;

GRANT USAGE ON SCHEMA public TO grafana_reader;
-- Partitions are read through their parent table: new ones need no grant.
GRANT SELECT ON spans, traces, anomalies, logs, metric_points, rollups TO grafana_reader;

-- A dashboard can neither write nor hold a connection busy for long.
ALTER ROLE grafana_reader SET default_transaction_read_only = on;
ALTER ROLE grafana_reader SET statement_timeout = '30s';
