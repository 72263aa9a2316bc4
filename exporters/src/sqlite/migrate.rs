//! Forward-only migrations from `sql/sqlite/`, compiled into the binary.

use rusqlite::{Connection, params};

use crate::query::rollup::Dim;

/// `(version, name, sql)` in order. Append only.
pub const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "0001_init",
        include_str!("../../../sql/sqlite/0001_init.sql"),
    ),
    (
        2,
        "0002_anomalies",
        include_str!("../../../sql/sqlite/0002_anomalies.sql"),
    ),
    (
        3,
        "0003_metadata",
        include_str!("../../../sql/sqlite/0003_metadata.sql"),
    ),
    (
        4,
        "0004_record_ids",
        include_str!("../../../sql/sqlite/0004_record_ids.sql"),
    ),
    (
        5,
        "0005_summaries",
        include_str!("../../../sql/sqlite/0005_summaries.sql"),
    ),
    (
        6,
        "0006_one_span_key_index",
        include_str!("../../../sql/sqlite/0006_one_span_key_index.sql"),
    ),
    (
        7,
        "0007_alert_state",
        include_str!("../../../sql/sqlite/0007_alert_state.sql"),
    ),
    (
        8,
        "0008_events",
        include_str!("../../../sql/sqlite/0008_events.sql"),
    ),
    (
        9,
        "0009_trace_list_keys",
        include_str!("../../../sql/sqlite/0009_trace_list_keys.sql"),
    ),
    (
        10,
        "0010_rollup_parts",
        include_str!("../../../sql/sqlite/0010_rollup_parts.sql"),
    ),
    (
        11,
        "0011_resources",
        include_str!("../../../sql/sqlite/0011_resources.sql"),
    ),
];

/// Applies every migration not yet recorded in `schema_migrations`, each in its own
/// transaction. Returns the names applied.
pub fn migrate(conn: &mut Connection) -> rusqlite::Result<Vec<&'static str>> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
            version INTEGER PRIMARY KEY,
            name TEXT NOT NULL,
            applied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
        )",
    )?;
    let mut applied = Vec::new();
    for (version, name, sql) in MIGRATIONS {
        let tx = conn.transaction()?;
        let done: bool = tx.query_row(
            "SELECT EXISTS(SELECT 1 FROM schema_migrations WHERE version = ?1)",
            [version],
            |r| r.get(0),
        )?;
        if !done {
            tx.execute_batch(sql)?;
            // The trace list's rows and keys, and the rollups, are derived in Rust
            // (`query::trace_list`, `query::rollup`); the rollups in their form since 0010.
            if [5, 9, 10].contains(version) {
                let stored: bool =
                    tx.query_row("SELECT EXISTS (SELECT 1 FROM spans)", [], |r| r.get(0))?;
                if stored {
                    tracing::info!(
                        name,
                        "rewriting what is derived from the traces already stored \
                         (minutes on a large store)"
                    );
                }
                let traces = match version {
                    10 => super::summaries::refresh_all(&tx, false, &Dim::ALL)?,
                    _ => super::summaries::refresh_all(&tx, true, &[])?,
                };
                if traces > 0 {
                    tracing::info!(
                        traces,
                        name,
                        "rewrote what is derived from the traces already stored"
                    );
                }
            }
            tx.execute(
                "INSERT INTO schema_migrations (version, name) VALUES (?1, ?2)",
                params![version, name],
            )?;
            applied.push(*name);
        }
        tx.commit()?;
    }
    Ok(applied)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_apply_once() {
        let mut conn = Connection::open_in_memory().expect("open");
        assert_eq!(
            migrate(&mut conn).expect("first"),
            vec![
                "0001_init",
                "0002_anomalies",
                "0003_metadata",
                "0004_record_ids",
                "0005_summaries",
                "0006_one_span_key_index",
                "0007_alert_state",
                "0008_events",
                "0009_trace_list_keys",
                "0010_rollup_parts",
                "0011_resources"
            ]
        );
        assert!(migrate(&mut conn).expect("second").is_empty());
        let tables: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name IN ('spans', 'logs', 'metric_points', 'anomalies')",
                [],
                |r| r.get(0),
            )
            .expect("count");
        assert_eq!(tables, 4);
    }
}
