//! Forward-only migrations from `sql/clickhouse/`, templated for single-node or clustered
//! deployments, applied in order and recorded in `schema_migrations`.

use super::config::ClickHouseConfig;

/// `(version, name, sql)` in order. Append only.
pub const MIGRATIONS: &[(u32, &str, &str)] = &[
    (
        1,
        "0001_init",
        include_str!("../../../sql/clickhouse/0001_init.sql"),
    ),
    (
        2,
        "0002_trace_starts_and_call_rollups",
        include_str!("../../../sql/clickhouse/0002_trace_starts_and_call_rollups.sql"),
    ),
    (
        3,
        "0003_people_rollups",
        include_str!("../../../sql/clickhouse/0003_people_rollups.sql"),
    ),
];

/// Tables that hold data. On a cluster each is a replicated `<name>_local` table on every node,
/// with a `Distributed` table of the plain name in front (and the sharding key given here), so
/// inserts and queries address the plain names on any node. Materialized views read and write
/// the local tables, on each shard.
const DISTRIBUTED: &[(&str, &str)] = &[
    ("spans", "cityHash64(trace_id)"),
    ("trace_index", "cityHash64(trace_id)"),
    ("logs", "cityHash64(trace_id)"),
    ("anomalies", "rand()"),
    ("metric_points", "rand()"),
    ("calls_1h", "rand()"),
    ("calls_1d", "rand()"),
    ("trace_starts", "cityHash64(trace_id)"),
    ("calls_hourly", "rand()"),
    ("calls_daily", "rand()"),
    ("people_calls", "rand()"),
    ("orphan_calls", "cityHash64(trace_id)"),
    ("trace_people", "cityHash64(trace_id)"),
];

/// `text` with every reference to `{db}.<table>` (the whole name, not a longer one) renamed to
/// `{db}.<table>_local`.
fn localize(text: &str) -> String {
    let mut out = text.to_owned();
    for (table, _) in DISTRIBUTED {
        let needle = format!("{{db}}.{table}");
        let mut result = String::with_capacity(out.len());
        let mut rest = out.as_str();
        while let Some(i) = rest.find(&needle) {
            let end = i + needle.len();
            let next = rest[end..].chars().next();
            result.push_str(&rest[..end]);
            if !next.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
                result.push_str("_local");
            }
            rest = &rest[end..];
        }
        result.push_str(rest);
        out = result;
    }
    out
}

/// The statements of a migration for `config`: placeholders filled, split at lines holding only
/// `;`, comments and blank statements dropped; on a cluster, local tables behind `Distributed`
/// ones. `INSERT ... SELECT` (a backfill) is left on the distributed names, so it reads and
/// writes every shard; dropping a table drops its `Distributed` front too.
pub fn statements(sql: &str, config: &ClickHouseConfig) -> Vec<String> {
    let sql = match &config.cluster {
        Some(_) => sql
            .split("\n;")
            .map(|s| {
                let code = s.lines().find(|l| {
                    let l = l.trim_start();
                    !l.is_empty() && !l.starts_with("--")
                });
                if code.is_some_and(|l| l.starts_with("INSERT")) {
                    s.to_owned()
                } else {
                    localize(s)
                }
            })
            .collect::<Vec<_>>()
            .join("\n;"),
        None => sql.to_owned(),
    };
    let on_cluster = config
        .cluster
        .as_ref()
        .map_or_else(String::new, |c| format!("ON CLUSTER {c}"));
    let mut text = sql
        .replace("{db}", &config.database)
        .replace("{on_cluster}", &on_cluster)
        .replace("{ttl_days}", &config.ttl_days.to_string());
    while let Some(start) = text.find("{engine:") {
        let Some(len) = text[start..].find('}') else {
            break;
        };
        let engine = &text[start + "{engine:".len()..start + len];
        let rendered = match &config.cluster {
            None => engine.to_owned(),
            Some(_) => format!(
                "Replicated{engine}('/clickhouse/tables/{{shard}}/{{database}}/{{table}}', '{{replica}}')"
            ),
        };
        text.replace_range(start..start + len + 1, &rendered);
    }
    let statements: Vec<String> = text
        .split("\n;")
        .map(|s| {
            s.lines()
                .filter(|l| !l.trim_start().starts_with("--"))
                .collect::<Vec<_>>()
                .join("\n")
                .trim()
                .to_owned()
        })
        .filter(|s| !s.is_empty())
        .collect();
    let Some(cluster) = &config.cluster else {
        return statements;
    };
    // Each local table's `Distributed` front right after it is created or dropped, so later
    // statements (a backfill) can address it.
    let db = &config.database;
    let mut out = Vec::with_capacity(statements.len());
    for s in statements {
        let front = DISTRIBUTED.iter().find_map(|(table, key)| {
            if s.starts_with(&format!("CREATE TABLE IF NOT EXISTS {db}.{table}_local ")) {
                Some(format!(
                    "CREATE TABLE IF NOT EXISTS {db}.{table} {on_cluster} AS {db}.{table}_local \
                     ENGINE = Distributed({cluster}, {db}, {table}_local, {key})"
                ))
            } else if s.starts_with(&format!("DROP TABLE IF EXISTS {db}.{table}_local ")) {
                Some(format!("DROP TABLE IF EXISTS {db}.{table} {on_cluster}"))
            } else {
                None
            }
        });
        out.push(s);
        out.extend(front);
    }
    out
}

/// The statement that creates the migrations table, run before anything else.
pub fn bootstrap(config: &ClickHouseConfig) -> Vec<String> {
    let on_cluster = config
        .cluster
        .as_ref()
        .map_or_else(String::new, |c| format!("ON CLUSTER {c}"));
    let engine = match &config.cluster {
        None => "ReplacingMergeTree".to_owned(),
        Some(_) => "ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}')".to_owned(),
    };
    vec![
        format!(
            "CREATE DATABASE IF NOT EXISTS {} {on_cluster}",
            config.database
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {}.schema_migrations {on_cluster} (version UInt32, name String, \
             applied_at DateTime('UTC') DEFAULT now()) ENGINE = {engine} ORDER BY version",
            config.database
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_render_single_node_and_clustered() {
        let single = ClickHouseConfig::default();
        let stmts = statements(MIGRATIONS[0].2, &single);
        assert!(stmts.len() >= 10);
        assert!(stmts[0].starts_with("CREATE TABLE IF NOT EXISTS llmscope.spans"));
        assert!(
            stmts
                .iter()
                .all(|s| !s.contains('{') || s.contains("{shard}")),
            "no placeholder left"
        );
        assert!(stmts[0].contains("ENGINE = MergeTree"));
        let clustered = ClickHouseConfig {
            cluster: Some("prod".into()),
            ..Default::default()
        };
        let stmts = statements(MIGRATIONS[0].2, &clustered);
        assert!(
            stmts[0].starts_with("CREATE TABLE IF NOT EXISTS llmscope.spans_local ON CLUSTER prod")
        );
        assert!(stmts[0].contains("ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}')"));
        let mv = stmts
            .iter()
            .find(|s| s.contains("calls_1h_mv"))
            .expect("rollup view");
        assert!(
            mv.contains("TO llmscope.calls_1h_local")
                && mv.contains("FROM llmscope.spans_local AS s"),
            "{mv}"
        );
        assert!(stmts.iter().any(|s| {
            s.contains("llmscope.calls_1d_local ON CLUSTER prod AS llmscope.calls_1h_local")
        }));
        let distributed: Vec<&String> = stmts
            .iter()
            .filter(|s| s.contains("ENGINE = Distributed("))
            .collect();
        assert_eq!(distributed.len(), 7);
        assert!(distributed[0].contains(
            "llmscope.spans ON CLUSTER prod AS llmscope.spans_local ENGINE = Distributed(prod, llmscope, spans_local, cityHash64(trace_id))"
        ));
        assert!(
            stmts
                .iter()
                .any(|s| s.contains("llmscope.schema_migrations ON CLUSTER prod")),
            "not distributed"
        );
    }

    #[test]
    fn clustered_backfills_use_the_distributed_tables_once_they_exist() {
        let clustered = ClickHouseConfig {
            cluster: Some("prod".into()),
            ..Default::default()
        };
        let stmts = statements(MIGRATIONS[1].2, &clustered);
        let at = |needle: &str| {
            stmts
                .iter()
                .position(|s| s.starts_with(needle))
                .unwrap_or_else(|| panic!("{needle} in {stmts:#?}"))
        };
        let front = at("CREATE TABLE IF NOT EXISTS llmscope.trace_starts ON CLUSTER prod AS");
        let backfill = at("INSERT INTO llmscope.trace_starts\n");
        assert!(at("CREATE TABLE IF NOT EXISTS llmscope.trace_starts_local") < front);
        assert!(front < backfill);
        assert!(stmts[backfill].contains("FROM llmscope.trace_index GROUP BY"));
        assert!(
            stmts[at("CREATE MATERIALIZED VIEW IF NOT EXISTS llmscope.calls_hourly_mv")]
                .contains("TO llmscope.calls_hourly_local")
        );
        assert!(
            at("DROP TABLE IF EXISTS llmscope.calls_1h_local")
                < at("DROP TABLE IF EXISTS llmscope.calls_1h ON CLUSTER prod")
        );
        let single = statements(MIGRATIONS[1].2, &ClickHouseConfig::default());
        assert!(single.iter().all(|s| !s.contains("_local")));
        assert_eq!(single.iter().filter(|s| s.starts_with("INSERT")).count(), 3);
    }
}
