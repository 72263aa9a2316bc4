//! The ClickHouse store against a real ClickHouse engine (`LLMSCOPE_TEST_CLICKHOUSE_URL`; in CI,
//! `../shared/clickhouse-dev/start`).

use clickhouse::Row;
use llmscope_core::Exporter;
use llmscope_exporters::clickhouse::{ClickHouseConfig, ClickHouseStore};
use serde::Deserialize;

use crate::data;

/// A store on a fresh database, or `None` (skipped, said) when no ClickHouse is configured.
pub async fn store(name: &str) -> Option<ClickHouseStore> {
    store_at(name, u32::MAX).await
}

/// A store keeping rows for `ttl_days` (data older than the default 30 days' TTL).
pub async fn store_keeping(name: &str, ttl_days: u32) -> Option<ClickHouseStore> {
    store_with(name, u32::MAX, ttl_days).await
}

/// A store on a fresh database with the migrations up to `version` applied.
pub async fn store_at(name: &str, version: u32) -> Option<ClickHouseStore> {
    store_with(name, version, ClickHouseConfig::default().ttl_days).await
}

async fn store_with(name: &str, version: u32, ttl_days: u32) -> Option<ClickHouseStore> {
    let url = llmscope_core::test_util::service_url("LLMSCOPE_TEST_CLICKHOUSE_URL")?;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let config = ClickHouseConfig {
        url,
        database: format!("llmscope_test_{name}_{}_{nanos}", std::process::id()),
        create_schema: false,
        ttl_days,
        ..Default::default()
    };
    let store = ClickHouseStore::open(config)
        .await
        .expect("ClickHouse store opens");
    store
        .migrate_up_to(version)
        .await
        .expect("ClickHouse store migrates");
    Some(store)
}

pub async fn drop_database(store: &ClickHouseStore) {
    let _ = store
        .client()
        .query(&format!("DROP DATABASE IF EXISTS {}", store.database()))
        .execute()
        .await;
}

async fn count(store: &ClickHouseStore, sql: &str) -> u64 {
    store
        .client()
        .query(&sql.replace("{db}", store.database()))
        .fetch_one::<u64>()
        .await
        .expect(sql)
}

#[tokio::test]
async fn migrations_apply_once_and_create_every_table() {
    let Some(store) = store("migrate").await else {
        return;
    };
    assert!(
        store.migrate().await.expect("second run").is_empty(),
        "idempotent"
    );
    let tables: Vec<String> = store
        .client()
        .query("SELECT name FROM system.tables WHERE database = ? ORDER BY name")
        .bind(store.database())
        .fetch_all()
        .await
        .expect("tables");
    let want = [
        "anomalies",
        "calls_daily",
        "calls_daily_mv",
        "calls_hourly",
        "calls_hourly_mv",
        "logs",
        "metric_points",
        "orphan_calls",
        "orphan_calls_mv",
        "people_calls",
        "people_calls_mv",
        "schema_migrations",
        "spans",
        "trace_index",
        "trace_index_mv",
        "trace_people",
        "trace_people_mv",
        "trace_starts",
        "trace_starts_mv",
    ];
    assert_eq!(tables, want);
    drop_database(&store).await;
}

#[derive(Row, Deserialize, Debug, PartialEq)]
struct Aggregate {
    project: String,
    bucket: u32,
    service: String,
    provider: String,
    model: String,
    operation: String,
    requests: u64,
    errors: u64,
    input_tokens: i64,
    output_tokens: i64,
    cache_read_tokens: i64,
    cost_micro_usd: i64,
}

async fn aggregates(store: &ClickHouseStore, from_rollup: bool) -> Vec<Aggregate> {
    let db = store.database();
    let sql = if from_rollup {
        format!(
            "SELECT project, toUInt32(bucket) AS bucket, service, provider,
                    if(request_model != '', request_model, response_model) AS model, operation, sum(requests) AS requests,
                    sum(errors) AS errors, sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens,
                    sum(cache_read_tokens) AS cache_read_tokens, toInt64(round(sum(cost_usd) * 1e6)) AS cost_micro_usd
             FROM {db}.calls_hourly GROUP BY project, bucket, service, provider, model, operation
             ORDER BY project, bucket, service, provider, model, operation"
        )
    } else {
        format!(
            "SELECT project, toUInt32(toStartOfHour(start_time)) AS bucket, service, provider,
                    if(request_model != '', request_model, response_model) AS model, operation,
                    count() AS requests, countIf(status_code = 2) AS errors,
                    sum(ifNull(input_tokens, 0)) AS input_tokens, sum(ifNull(output_tokens, 0)) AS output_tokens,
                    sum(ifNull(cache_read_tokens, 0)) AS cache_read_tokens,
                    toInt64(round(sum(ifNull(cost_usd, 0)) * 1e6)) AS cost_micro_usd
             FROM (SELECT * FROM {db}.spans WHERE is_model_call = 1
                   ORDER BY isNull(input_tokens), isNull(cost_usd), start_time, span_id
                   LIMIT 1 BY if(response_id != '', response_id, concat(trace_id, span_id)))
             GROUP BY project, bucket, service, provider, model, operation
             ORDER BY project, bucket, service, provider, model, operation"
        )
    };
    store
        .client()
        .query(&sql)
        .fetch_all()
        .await
        .expect("aggregates")
}

#[tokio::test]
async fn rollups_equal_raw_aggregates_and_a_retried_batch_leaves_no_duplicates() {
    let Some(store) = store("rollups").await else {
        return;
    };
    let batches = data::batches();
    for b in &batches {
        store.export(b).await.expect("export");
    }
    let spans = count(&store, "SELECT count() FROM {db}.spans").await;
    let logs = count(&store, "SELECT count() FROM {db}.logs").await;
    let anomalies = count(&store, "SELECT count() FROM {db}.anomalies").await;
    // Two content events and the custom events.
    let expected_logs = 2 + data::custom_events().len() as u64;
    assert!(
        spans > 150 && logs == expected_logs && anomalies >= 1,
        "{spans} {logs} {anomalies}"
    );

    let raw = aggregates(&store, false).await;
    let rolled = aggregates(&store, true).await;
    assert!(!raw.is_empty());
    assert_eq!(
        rolled, raw,
        "hourly rollups equal the same aggregates from raw rows"
    );

    // Every batch again, as a driver retrying after a lost acknowledgement would send it.
    for b in &batches {
        store.export(b).await.expect("retry");
    }
    assert_eq!(count(&store, "SELECT count() FROM {db}.spans").await, spans);
    assert_eq!(count(&store, "SELECT count() FROM {db}.logs").await, logs);
    assert_eq!(
        count(&store, "SELECT count() FROM {db}.anomalies").await,
        anomalies
    );
    assert_eq!(
        aggregates(&store, true).await,
        raw,
        "rollups did not count the retry"
    );
    drop_database(&store).await;
}

#[tokio::test]
async fn server_errors_keep_the_message_and_are_classified() {
    let Some(store) = store("errors").await else {
        return;
    };
    let err = store
        .client()
        .query("SELECT * FROM no_such_table_here")
        .fetch_all::<u8>()
        .await
        .expect_err("unknown table");
    assert!(err.to_string().contains("no_such_table_here"), "{err}");
    drop_database(&store).await;
}
