//! Forward-only migrations from `sql/clickhouse/`, templated for single-node or clustered
//! deployments, applied in order and recorded in `schema_migrations`.

use super::config::ClickHouseConfig;

/// `(version, name, sql)` in order. Append only.
pub const MIGRATIONS: &[(u32, &str, &str)] = &[(
    1,
    "0001_init",
    include_str!("../../../sql/clickhouse/0001_init.sql"),
)];

/// The statements of a migration for `config`: placeholders filled, split at lines holding only
/// `;`, comments and blank statements dropped.
pub fn statements(sql: &str, config: &ClickHouseConfig) -> Vec<String> {
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
    text.split("\n;")
        .map(|s| {
            s.lines()
                .filter(|l| !l.trim_start().starts_with("--"))
                .collect::<Vec<_>>()
                .join("\n")
                .trim()
                .to_owned()
        })
        .filter(|s| !s.is_empty())
        .collect()
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
        assert!(stmts[0].contains("llmscope.spans ON CLUSTER prod"));
        assert!(stmts[0].contains("ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}')"));
    }
}
