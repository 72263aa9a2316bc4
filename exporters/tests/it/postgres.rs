//! The PostgreSQL store against a real PostgreSQL (`LLMSCOPE_TEST_POSTGRES_URL`).

use llmscope_core::Exporter;
use llmscope_exporters::postgres::{PostgresConfig, PostgresStore, TlsMode, partitions};

use crate::data;

/// A store on a fresh database, or `None` (skipped, said) when no PostgreSQL is configured.
pub async fn store(name: &str) -> Option<PostgresStore> {
    let url = llmscope_core::test_util::service_url("LLMSCOPE_TEST_POSTGRES_URL")?;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let database = format!("llmscope_test_{name}_{}_{nanos}", std::process::id());
    let (admin, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .expect("connect to PostgreSQL");
    tokio::spawn(connection);
    admin
        .batch_execute(&format!("CREATE DATABASE {database}"))
        .await
        .expect("create database");
    let base = url.rsplit_once('/').map_or(url.as_str(), |(b, _)| b);
    let config = PostgresConfig {
        url: format!("{base}/{database}"),
        ..Default::default()
    };
    Some(
        PostgresStore::open(config)
            .await
            .expect("PostgreSQL store opens and migrates"),
    )
}

pub async fn drop_database(store: PostgresStore) {
    let client = store.pool().get().await.expect("client");
    let name: String = client
        .query_one("SELECT current_database()", &[])
        .await
        .expect("name")
        .get(0);
    drop(client);
    store.pool().close();
    if let Ok(url) = std::env::var("LLMSCOPE_TEST_POSTGRES_URL")
        && let Ok((admin, connection)) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await
    {
        tokio::spawn(connection);
        let _ = admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .await;
    }
}

async fn scalar(store: &PostgresStore, sql: &str) -> i64 {
    let client = store.pool().get().await.expect("client");
    client.query_one(sql, &[]).await.expect(sql).get(0)
}

#[tokio::test]
async fn migrations_apply_on_an_empty_database_once() {
    let Some(store) = store("migrate").await else {
        return;
    };
    assert!(
        store.migrate().await.expect("again").is_empty(),
        "idempotent"
    );
    let tables = scalar(
        &store,
        "SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tablename IN
         ('spans', 'logs', 'anomalies', 'metric_points', 'rollups', 'projects', 'api_keys',
          'alert_rules', 'alert_events', 'schema_migrations', 'traces', 'trace_keys',
          'resources')",
    )
    .await;
    assert_eq!(tables, 13);
    drop_database(store).await;
}

/// Summary groups with costs rounded to nano-dollars: a rebuild adds costs up in another order.
fn rounded(
    groups: &[llmscope_exporters::query::SummaryGroup],
) -> Vec<llmscope_exporters::query::SummaryGroup> {
    groups
        .iter()
        .map(|g| llmscope_exporters::query::SummaryGroup {
            cost_usd: g.cost_usd.map(|c| (c * 1e9).round()),
            ..g.clone()
        })
        .collect()
}

#[tokio::test]
async fn upgrading_writes_the_trace_list_of_traces_already_stored() {
    use llmscope_exporters::query::{Filter, QueryStore, TraceQuery};
    let Some(store) = store("upgrade").await else {
        return;
    };
    for batch in data::batches() {
        store.export(&batch).await.expect("export");
    }
    let list = TraceQuery {
        filter: Filter {
            project: "default".into(),
            ..Default::default()
        },
        limit: 500,
        cursor: None,
        ..Default::default()
    };
    let before = store.traces(&list).await.expect("traces").traces;
    assert!(before.len() > 10);
    let summary = llmscope_exporters::query::SummaryQuery {
        filter: list.filter.clone(),
        group_by: llmscope_exporters::query::GroupBy::User,
        bucket_ns: None,
    };
    let summed = store.summary(&summary).await.expect("summary");
    assert!(!summed.is_empty());
    // The database as version 1 left it.
    store
        .pool()
        .get()
        .await
        .expect("client")
        .batch_execute(
            "DROP TABLE traces; DROP TABLE trace_keys; DROP TABLE rollups;
             DROP TABLE rollup_series;
             DELETE FROM schema_migrations WHERE version IN (2, 7);",
        )
        .await
        .expect("downgrade");
    assert_eq!(
        store.migrate().await.expect("migrate"),
        vec!["0002_summaries", "0007_rollup_parts"]
    );
    assert_eq!(store.traces(&list).await.expect("traces").traces, before);
    // Equal, costs to summation rounding (the rollups add them up in another order).
    let again = store.summary(&summary).await.expect("summary");
    assert_eq!(rounded(&again), rounded(&summed));
    drop_database(store).await;
}

/// Each distinct resource is stored once, spans name it; rows written before keep their own
/// resource attributes and read back the same.
#[tokio::test]
async fn upgrading_adds_the_user_session_and_error_keys_of_traces_already_stored() {
    use llmscope_exporters::query::{Filter, QueryStore, TraceQuery};
    let Some(store) = store("upgrade_keys").await else {
        return;
    };
    for batch in data::batches() {
        store.export(&batch).await.expect("export");
    }
    let list = |user: Option<&str>, session: Option<&str>, errors_only: bool| TraceQuery {
        filter: Filter {
            project: "default".into(),
            ..Default::default()
        },
        user: user.map(Into::into),
        session: session.map(Into::into),
        errors_only,
        words: Vec::new(),
        limit: 500,
        cursor: None,
    };
    let queries = [
        list(Some("user-1"), None, false),
        list(None, Some("session-3"), false),
        list(None, None, true),
        list(Some("user-2"), None, true),
        TraceQuery {
            words: vec!["chat".into()],
            ..list(None, None, false)
        },
    ];
    let mut before = Vec::new();
    for q in &queries {
        let listed = store.traces(q).await.expect("traces").traces;
        assert!(!listed.is_empty(), "{q:?}");
        before.push(listed);
    }
    // The database as version 5 left it: list rows without these keys.
    store
        .pool()
        .get()
        .await
        .expect("client")
        .batch_execute(
            "DELETE FROM trace_keys
             WHERE key LIKE 'u:%' OR key LIKE 'x:%' OR key LIKE 'w:%' OR key = 'e:';
             DELETE FROM schema_migrations WHERE version = 6;",
        )
        .await
        .expect("downgrade");
    assert!(
        store
            .traces(&queries[0])
            .await
            .expect("traces")
            .traces
            .is_empty()
    );
    assert_eq!(
        store.migrate().await.expect("migrate"),
        vec!["0006_trace_list_keys"]
    );
    for (q, listed) in queries.iter().zip(&before) {
        assert_eq!(
            &store.traces(q).await.expect("traces").traces,
            listed,
            "{q:?}"
        );
    }
    drop_database(store).await;
}

/// A store whose rollups predate their parts: the user and session rows of the stored spans are
/// rebuilt with them; the rows of calls are kept as they were (they outlive the spans).
#[tokio::test]
async fn upgrading_gives_the_user_and_session_rollups_their_parts() {
    use llmscope_exporters::query::{Filter, GroupBy, QueryStore, SummaryQuery};
    let Some(store) = store("upgrade_parts").await else {
        return;
    };
    for batch in data::batches() {
        store.export(&batch).await.expect("export");
    }
    let q = |group_by, model: Option<&str>| SummaryQuery {
        filter: Filter {
            project: "default".into(),
            model: model.map(Into::into),
            ..Default::default()
        },
        group_by,
        bucket_ns: None,
    };
    let queries = [
        q(GroupBy::User, Some("gpt-4o")),
        q(GroupBy::Session, Some("gpt-4o")),
        q(GroupBy::User, None),
        q(GroupBy::Model, None),
    ];
    let mut before = Vec::new();
    for q in &queries {
        let groups = store.summary(q).await.expect("summary");
        assert!(!groups.is_empty(), "{q:?}");
        before.push(groups);
    }
    let requests = |groups: &[llmscope_exporters::query::SummaryGroup]| -> i64 {
        groups.iter().map(|g| g.requests).sum()
    };
    assert!(
        requests(&before[0]) < requests(&before[2]),
        "the filter counts"
    );
    // The database as version 6 left it: one table, user and session rows without parts or
    // weeks.
    let client = store.pool().get().await.expect("client");
    client
        .batch_execute(
            "CREATE TABLE rollups_v6 AS
                SELECT project, dim, width_ns, bucket_ns, service, provider, model,
                    response_model, operation, value, requests, errors, input_tokens,
                    output_tokens, cache_read_tokens, cost_usd, priced, latency_hist
                FROM rollups WHERE width_ns <> 604800000000000;
             DROP TABLE rollups;
             ALTER TABLE rollups_v6 RENAME TO rollups;
             ALTER TABLE rollups ADD PRIMARY KEY (project, dim, width_ns, bucket_ns, service,
                provider, model, response_model, operation, value);
             DROP TABLE rollup_series;
             DELETE FROM schema_migrations WHERE version = 7;",
        )
        .await
        .expect("downgrade");
    let calls_rows = "SELECT count(*) FROM rollups WHERE dim = 'c'";
    let kept: i64 = client
        .query_one(calls_rows, &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(
        store.migrate().await.expect("migrate"),
        vec!["0007_rollup_parts"]
    );
    let count: i64 = client
        .query_one(calls_rows, &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(count, kept);
    for (q, want) in queries.iter().zip(&before) {
        let got = store.summary(q).await.expect("summary");
        assert_eq!(rounded(&got), rounded(want), "{q:?}");
    }
    drop(client);
    drop_database(store).await;
}

#[tokio::test]
async fn resources_are_stored_once_and_older_rows_read_as_before() {
    use llmscope_exporters::query::QueryStore;

    let Some(store) = store("resources").await else {
        return;
    };
    for b in data::batches() {
        store.export(&b).await.expect("export");
    }
    let spans = scalar(&store, "SELECT count(*) FROM spans").await;
    let distinct = scalar(
        &store,
        "SELECT count(DISTINCT resource_id) FROM spans WHERE resource_attributes IS NULL",
    )
    .await;
    assert_eq!(
        scalar(
            &store,
            "SELECT count(*) FROM spans WHERE resource_attributes IS NULL"
        )
        .await,
        spans
    );
    assert_eq!(
        scalar(&store, "SELECT count(*) FROM resources").await,
        distinct
    );
    assert!(
        distinct >= 3 && distinct < spans / 10,
        "{distinct} of {spans}"
    );

    let trace_id: String = {
        let client = store.pool().get().await.expect("client");
        client
            .query_one(
                "SELECT trace_id FROM spans ORDER BY start_time_ns LIMIT 1",
                &[],
            )
            .await
            .expect("a trace")
            .get(0)
    };
    let before = store.trace("default", &trace_id).await.expect("trace");
    let service = before
        .as_ref()
        .and_then(|s| s[0].resource_attributes.get("service.name").cloned());
    assert!(service.is_some(), "{before:?}");
    // As a row from before this schema: its own attributes, no resource id.
    let client = store.pool().get().await.expect("client");
    client
        .execute(
            "UPDATE spans s SET resource_attributes = r.attributes, resource_id = NULL
             FROM resources r WHERE s.trace_id = $1 AND r.project = s.project AND r.id = s.resource_id",
            &[&trace_id],
        )
        .await
        .expect("downgrade");
    drop(client);
    assert_eq!(
        store.trace("default", &trace_id).await.expect("trace"),
        before
    );
    drop_database(store).await;
}

#[tokio::test]
async fn partitions_roll_ahead_and_retention_drops_only_old_days() {
    let Some(store) = store("partitions").await else {
        return;
    };
    let day = partitions::DAY_NS;
    let now = 20_784 * day + 5; // 2026-11-27
    // The same 30 traces (90 spans) moved to `days_ago`.
    let shifted = |days_ago: i64| {
        let mut batch = data::batches().remove(2);
        if let llmscope_core::Payload::Traces(rs) = &mut batch.payload {
            for s in rs
                .iter_mut()
                .flat_map(|r| r.scope_spans.iter_mut())
                .flat_map(|s| s.spans.iter_mut())
            {
                let t = (now - days_ago * day) as u64;
                s.end_time_unix_nano = t + (s.end_time_unix_nano - s.start_time_unix_nano);
                s.start_time_unix_nano = t;
            }
        }
        batch
    };
    // Late data from 40 and 31 days ago, and yesterday, lands in partitions made on demand.
    for days_ago in [40i64, 31, 1] {
        store.export(&shifted(days_ago)).await.expect("export");
    }
    let old_traces = format!(
        "SELECT count(*) FROM traces WHERE start_ns < {}",
        now - 30 * day
    );
    let old_keys = old_traces.replace("traces", "trace_keys");
    assert!(scalar(&store, &old_traces).await > 0);
    let dropped = store.maintain_partitions(now).await.expect("maintain");
    assert_eq!(
        dropped,
        vec!["spans_p20261018", "spans_p20261027"],
        "older than 30 days"
    );
    assert_eq!(
        scalar(&store, &old_traces).await,
        0,
        "the trace list follows"
    );
    assert_eq!(scalar(&store, &old_keys).await, 0);
    let names: Vec<String> = {
        let client = store.pool().get().await.expect("client");
        client
            .query(
                "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
                 JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'spans' ORDER BY 1",
                &[],
            )
            .await
            .expect("partitions")
            .iter()
            .map(|r| r.get(0))
            .collect()
    };
    for kept in [
        "spans_p20261126",
        "spans_p20261127",
        "spans_p20261128",
        "spans_p20261129",
        "spans_p20261130",
    ] {
        assert!(names.contains(&kept.to_owned()), "{kept} in {names:?}");
    }
    assert_eq!(
        scalar(&store, "SELECT count(*) FROM spans").await,
        90,
        "yesterday's rows are kept"
    );
    // The traces crossed the cutoff: their list rows now start at the spans they have left.
    let list = "SELECT (count(*) * 1000 + sum(span_count))::bigint FROM traces";
    assert_eq!(scalar(&store, list).await, 30 * 1000 + 90);
    assert_eq!(
        scalar(
            &store,
            &format!(
                "SELECT count(*) FROM traces WHERE start_ns <> {}",
                now - day
            )
        )
        .await,
        0
    );
    // A write to them now reads their stored spans from that start on (not from this batch's).
    store.export(&shifted(0)).await.expect("export");
    assert_eq!(scalar(&store, list).await, 30 * 1000 + 180);
    drop_database(store).await;
}

#[tokio::test]
async fn rollups_match_raw_aggregates_after_out_of_order_late_and_retried_data() {
    let Some(store) = store("rollups").await else {
        return;
    };
    let mut batches = data::batches();
    batches.reverse(); // out of order: later hours first
    for b in &batches {
        store.export(b).await.expect("export");
    }
    for b in &batches {
        store.export(b).await.expect("retry");
    }
    let spans = scalar(&store, "SELECT count(*) FROM spans").await;
    assert_eq!(
        spans,
        3 + 3 + 150 + 3,
        "a retried batch leaves no duplicates"
    );
    assert_eq!(
        scalar(&store, "SELECT count(*) FROM logs").await,
        2 + data::custom_events().len() as i64,
        "content events and custom events, once each"
    );
    let compare = "
        WITH raw AS (
            SELECT project, (start_time_ns / 3600000000000) * 3600000000000 AS bucket_ns,
                   coalesce(service, '') AS service, coalesce(provider, '') AS provider,
                   coalesce(request_model, response_model, '') AS model, coalesce(operation, '') AS operation,
                   count(*) AS requests, count(*) FILTER (WHERE status_code = 2) AS errors,
                   sum(coalesce(input_tokens, 0)) AS input_tokens, sum(coalesce(output_tokens, 0)) AS output_tokens,
                   round(sum(coalesce(cost_usd, 0))::numeric, 9) AS cost
            FROM spans WHERE counted GROUP BY 1, 2, 3, 4, 5, 6),
        rolled AS (
            SELECT project, bucket_ns, service, provider,
                   CASE WHEN model <> '' THEN model ELSE response_model END AS model, operation,
                   sum(requests)::bigint, sum(errors)::bigint, sum(input_tokens)::numeric,
                   sum(output_tokens)::numeric, round(sum(cost_usd)::numeric, 9) AS cost
            FROM rollups WHERE dim = 'c' AND width_ns = 3600000000000 GROUP BY 1, 2, 3, 4, 5, 6)
        SELECT (SELECT count(*) FROM raw), (SELECT count(*) FROM (SELECT * FROM raw EXCEPT SELECT * FROM rolled) d)
             + (SELECT count(*) FROM (SELECT * FROM rolled EXCEPT SELECT * FROM raw) d)";
    let client = store.pool().get().await.expect("client");
    let row = client.query_one(compare, &[]).await.expect("compare");
    let (groups, differences): (i64, i64) = (row.get(0), row.get(1));
    assert!(groups > 10, "{groups}");
    assert_eq!(differences, 0, "hourly rollups equal the raw aggregates");
    let counted: i64 = client
        .query_one("SELECT count(*) FROM spans WHERE counted", &[])
        .await
        .expect("counted")
        .get(0);
    for dim in ["c", "u", "s"] {
        let daily: i64 = client
            .query_one(
                "SELECT sum(requests)::bigint FROM rollups WHERE dim = $1 AND width_ns = 86400000000000",
                &[&dim],
            )
            .await
            .expect("daily")
            .get(0);
        assert_eq!(daily, counted, "every call once in the {dim} rollups");
    }
    drop(client);
    drop_database(store).await;
}

/// TLS: `require` encrypts (the server says so), `verify-full` refuses a certificate that does
/// not name the host.
#[tokio::test]
async fn tls_connections_are_encrypted_and_verified() {
    let Ok(url) = std::env::var("LLMSCOPE_TEST_POSTGRES_URL") else {
        eprintln!("skipping tls: LLMSCOPE_TEST_POSTGRES_URL is not set");
        return;
    };
    let (admin, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(connection);
    let ssl: String = admin
        .query_one("SHOW ssl", &[])
        .await
        .expect("show ssl")
        .get(0);
    if ssl != "on" {
        eprintln!("skipping tls: the test server has ssl = {ssl}");
        return;
    }
    let require = PostgresConfig {
        url: url.clone(),
        tls: TlsMode::Require,
        create_schema: false,
        ..Default::default()
    };
    let store = PostgresStore::open(require).await.expect("store");
    let client = store.pool().get().await.expect("TLS connection");
    let encrypted: bool = client
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .expect("pg_stat_ssl")
        .get(0);
    assert!(encrypted);
    let verify = PostgresConfig {
        url,
        tls: TlsMode::VerifyFull,
        create_schema: false,
        ..Default::default()
    };
    let store = PostgresStore::open(verify).await.expect("store");
    let err = store
        .pool()
        .get()
        .await
        .expect_err("an unknown certificate is refused");
    let mut chain = err.to_string();
    let mut source = std::error::Error::source(&err);
    while let Some(e) = source {
        chain.push_str(&format!(": {e}"));
        source = e.source();
    }
    assert!(chain.to_lowercase().contains("certificate"), "{chain}");
}

/// The writer analyzes the partition it fills once past 1,000 rows, so plans do not take it
/// for empty (this machine's PostgreSQL, like some others, runs without autovacuum).
#[tokio::test]
async fn a_filling_partition_gets_statistics_from_the_writer() {
    let Some(store) = store("statistics").await else {
        return;
    };
    let reltuples = "SELECT coalesce(max(c.reltuples), -1)::bigint FROM pg_inherits i
        JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent
        WHERE p.relname = 'spans' AND c.reltuples > 0";
    let spans = |traces: std::ops::Range<u8>| {
        traces
            .flat_map(|t| {
                (1..=30u8).map(move |s| llmscope_core::test_util::span(t, s, "s", vec![]))
            })
            .collect::<Vec<_>>()
    };
    let batch = |traces| llmscope_core::test_util::traces("svc", spans(traces));
    store.export(&batch(1..30)).await.expect("export");
    assert_eq!(scalar(&store, reltuples).await, -1, "870 rows: not yet");
    store.export(&batch(30..40)).await.expect("export");
    assert_eq!(
        scalar(&store, reltuples).await,
        1_170,
        "analyzed past 1,000"
    );
    drop_database(store).await;
}
