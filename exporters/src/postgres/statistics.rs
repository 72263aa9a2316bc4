//! Planner statistics for the tables the writer fills: each is analyzed when the rows this
//! process wrote to it pass 1,000, 8,000, 64,000, ... (each step eight times the last).
//!
//! Why: the day's partition is filled as data arrives and is empty at its last analyze, so the
//! planner believes it holds nothing and may answer "the spans of these traces" by walking the
//! whole partition through another index; every batch then costs more than the last. Autovacuum
//! analyzes eventually when it is on (a minute or more behind a fast writer); these analyzes
//! keep plans right from the first thousand rows, at a cost that shrinks per row as tables grow.

use std::collections::HashMap;
use std::sync::Mutex;

use deadpool_postgres::Pool;

const FIRST: u64 = 1_000;
const STEP: u64 = 8;

/// Rows written per table by this process, and the next count that triggers an analyze.
#[derive(Debug, Default)]
pub struct Statistics(Mutex<HashMap<String, (u64, u64)>>);

impl Statistics {
    /// Counts `rows` written to `table`; true when it is due an analyze.
    fn note(&self, table: &str, rows: u64) -> bool {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let (written, next) = map.entry(table.to_owned()).or_insert((0, FIRST));
        *written += rows;
        if *written < *next {
            return false;
        }
        while *next <= *written {
            *next = next.saturating_mul(STEP);
        }
        true
    }

    /// Counts what a committed batch wrote and analyzes the tables due (failures are logged:
    /// stale statistics slow queries down, they lose nothing).
    pub async fn after_write(&self, pool: &Pool, written: &[(String, u64)]) {
        let due: Vec<&str> = written
            .iter()
            .filter(|(table, rows)| *rows > 0 && self.note(table, *rows))
            .map(|(table, _)| table.as_str())
            .collect();
        if due.is_empty() {
            return;
        }
        let result = async {
            let client = pool.get().await.map_err(|e| e.to_string())?;
            for table in &due {
                client
                    .batch_execute(&format!("ANALYZE {table}"))
                    .await
                    .map_err(|e| e.to_string())?;
            }
            Ok::<_, String>(())
        }
        .await;
        if let Err(error) = result {
            tracing::warn!(%error, tables = ?due, "could not analyze tables");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn analyzes_at_geometric_steps() {
        let s = Statistics::default();
        let due: Vec<bool> = [500, 499, 1, 6_000, 1_000, 60_000]
            .into_iter()
            .map(|n| s.note("t", n))
            .collect();
        assert_eq!(due, [false, false, true, false, true, true]);
        assert!(!s.note("t", 1), "next at 512,000");
    }
}
