//! Daily range partitions of `spans` and `logs`: created ahead and on demand (late data), and
//! dropped past retention.

use std::collections::HashSet;
use std::sync::Mutex;

use deadpool_postgres::Pool;

use super::PostgresError;

pub const DAY_NS: i64 = 86_400_000_000_000;
/// The partitioned tables.
pub const TABLES: [&str; 2] = ["spans", "logs"];

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
pub fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// `spans_p20261127` for the day holding `day` (days since the epoch).
pub fn name(table: &str, day: i64) -> String {
    let (y, m, d) = civil(day);
    format!("{table}_p{y:04}{m:02}{d:02}")
}

/// Partitions known to exist, so the hot path skips the DDL.
#[derive(Default)]
pub struct Known(Mutex<HashSet<String>>);

/// Creates the partition of `table` for `day` unless it is known to exist.
pub async fn ensure(
    pool: &Pool,
    known: &Known,
    table: &str,
    day: i64,
) -> Result<(), PostgresError> {
    let partition = name(table, day);
    if known
        .0
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .contains(&partition)
    {
        return Ok(());
    }
    let client = pool.get().await.map_err(super::pool_error)?;
    // Two writers creating one partition race even with IF NOT EXISTS: serialize on its name.
    let sql = format!(
        "DO $$ BEGIN
           PERFORM pg_advisory_xact_lock(hashtext('{partition}'));
           IF to_regclass('{partition}') IS NULL THEN
             EXECUTE 'CREATE TABLE {partition} PARTITION OF {table} FOR VALUES FROM ({from}) TO ({to})';
           END IF;
         END $$",
        from = day * DAY_NS,
        to = (day + 1) * DAY_NS
    );
    client.batch_execute(&sql).await?;
    known
        .0
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(partition);
    Ok(())
}

/// Creates today's and the next `ahead` days' partitions, and drops those entirely older than
/// `retention_days` before `now_ns`. Returns the partitions dropped.
pub async fn maintain(
    pool: &Pool,
    known: &Known,
    now_ns: i64,
    ahead: u32,
    retention_days: u32,
) -> Result<Vec<String>, PostgresError> {
    let today = now_ns.div_euclid(DAY_NS);
    for table in TABLES {
        for day in today..=today + i64::from(ahead) {
            ensure(pool, known, table, day).await?;
        }
    }
    let cutoff_day = today - i64::from(retention_days);
    let client = pool.get().await.map_err(super::pool_error)?;
    let mut dropped = Vec::new();
    for table in TABLES {
        let rows = client
            .query(
                "SELECT c.relname FROM pg_inherits i
                 JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent
                 WHERE p.relname = $1 ORDER BY c.relname",
                &[&table],
            )
            .await?;
        for row in rows {
            let partition: String = row.get(0);
            let Some(day) = day_of(&partition, table) else {
                continue;
            };
            // The partition holds [day, day + 1); it goes once all of it is past retention.
            if day < cutoff_day {
                client
                    .batch_execute(&format!("DROP TABLE IF EXISTS {partition}"))
                    .await?;
                known
                    .0
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&partition);
                dropped.push(partition);
            }
        }
    }
    if !dropped.is_empty() {
        // The trace list follows its spans: traces that started before the oldest day kept
        // are rewritten from what they have left, or go.
        let mut client = client;
        let tx = client.transaction().await?;
        super::summaries::after_retention(&tx, cutoff_day * DAY_NS).await?;
        tx.commit().await?;
    }
    Ok(dropped)
}

/// The day (since the epoch) a partition name stands for.
fn day_of(partition: &str, table: &str) -> Option<i64> {
    let digits = partition.strip_prefix(table)?.strip_prefix("_p")?;
    if digits.len() != 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (y, m, d): (i64, u32, u32) = (
        digits[..4].parse().ok()?,
        digits[4..6].parse().ok()?,
        digits[6..].parse().ok()?,
    );
    // Days from civil, the inverse of `civil`.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = i64::from(if m > 2 { m - 3 } else { m + 9 });
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some(era * 146_097 + doe - 719_468)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_names_are_civil_dates_and_parse_back() {
        assert_eq!(civil(0), (1970, 1, 1));
        assert_eq!(name("spans", 20_784), "spans_p20261127");
        for day in [-1, 0, 59, 365, 11_016, 20_784, 40_000] {
            assert_eq!(day_of(&name("logs", day), "logs"), Some(day), "{day}");
        }
        assert_eq!(day_of("spans_default", "spans"), None);
    }
}
