//! The trace list and the summary rollups of `0005_summaries.sql`, kept at write time: the
//! spans of every trace a batch touches are read before and after the batch is inserted, and
//! the trace's list rows and the rollups' difference are written in the same transaction
//! (`query::trace_list`, `query::rollup`). The store's one writer connection serializes this.

use std::collections::BTreeSet;

use rusqlite::{OptionalExtension, Transaction, params};

use crate::query::rollup::{self, Delta, Hist, Sums};
use crate::query::trace_list::{BRIEF_COLUMNS, SpanBrief, summarize_trace};

/// The `(project, trace_id)` pairs of a batch, each once.
pub type Touched<'a> = BTreeSet<(&'a str, &'a str)>;

/// The stored spans of each touched trace, in `touched` order.
pub fn briefs(tx: &Transaction<'_>, touched: &Touched<'_>) -> rusqlite::Result<Vec<Vec<SpanBrief>>> {
    let mut stmt = tx.prepare_cached(&format!(
        "SELECT {BRIEF_COLUMNS} FROM spans WHERE project = ?1 AND trace_id = ?2"
    ))?;
    touched
        .iter()
        .map(|(project, trace_id)| {
            stmt.query_map([project, trace_id], brief_from_row)?
                .collect::<rusqlite::Result<Vec<_>>>()
        })
        .collect()
}

/// Rewrites the list rows of the touched traces and adds their rollup difference, given their
/// spans before the batch (`before`, in `touched` order).
pub fn refresh(
    tx: &Transaction<'_>,
    touched: &Touched<'_>,
    before: &[Vec<SpanBrief>],
) -> rusqlite::Result<()> {
    let after = briefs(tx, touched)?;
    let mut old_start =
        tx.prepare_cached("SELECT start_ns FROM traces WHERE project = ?1 AND trace_id = ?2")?;
    let mut upsert = tx.prepare_cached(
        "INSERT OR REPLACE INTO traces (project, trace_id, start_ns, duration_ns, root_name,
            service, span_count, llm_calls, input_tokens, output_tokens, cost_usd, error)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
    )?;
    let mut forget_key = tx.prepare_cached(
        "DELETE FROM trace_keys WHERE project = ?1 AND key = ?2 AND start_ns = ?3 AND trace_id = ?4",
    )?;
    let mut add_key = tx.prepare_cached(
        "INSERT OR IGNORE INTO trace_keys (project, key, start_ns, trace_id) VALUES (?1, ?2, ?3, ?4)",
    )?;
    let mut deltas: std::collections::BTreeMap<&str, Delta> = Default::default();
    for (i, &(project, trace_id)) in touched.iter().enumerate() {
        let spans = &after[i];
        let old = before.get(i).map_or(&[][..], Vec::as_slice);
        let d = deltas.entry(project).or_default();
        for (row, sums) in rollup::delta(old, spans) {
            d.entry(row).or_default().merge(&sums, 1);
        }
        if spans.is_empty() {
            continue;
        }
        let (t, keys) = summarize_trace(trace_id, spans);
        let before_start: Option<i64> = old_start
            .query_row([project, trace_id], |r| r.get(0))
            .optional()?;
        upsert.execute(params![
            project,
            trace_id,
            t.start_ns,
            t.duration_ns,
            t.root_name,
            t.service,
            t.span_count,
            t.llm_calls,
            t.input_tokens,
            t.output_tokens,
            t.cost_usd,
            t.error,
        ])?;
        // Keys only grow as spans arrive; a new earlier start moves them all.
        if let Some(b) = before_start.filter(|b| *b != t.start_ns) {
            for key in &keys {
                forget_key.execute(params![project, key, b, trace_id])?;
            }
        }
        for key in &keys {
            add_key.execute(params![project, key, t.start_ns, trace_id])?;
        }
    }
    for (project, delta) in deltas {
        apply(tx, project, delta)?;
    }
    Ok(())
}

/// Adds `delta` to the rollup rows, deleting those left with nothing.
fn apply(tx: &Transaction<'_>, project: &str, delta: Delta) -> rusqlite::Result<()> {
    const KEY: &str = "project = ?1 AND dim = ?2 AND width_ns = ?3 AND bucket_ns = ?4
        AND service = ?5 AND provider = ?6 AND model = ?7 AND response_model = ?8
        AND operation = ?9 AND value = ?10";
    let mut read = tx.prepare_cached(&format!(
        "SELECT requests, errors, input_tokens, output_tokens, cache_read_tokens, cost_usd,
                priced, latency_hist FROM rollups WHERE {KEY}"
    ))?;
    let mut delete = tx.prepare_cached(&format!("DELETE FROM rollups WHERE {KEY}"))?;
    let mut write = tx.prepare_cached(
        "INSERT OR REPLACE INTO rollups (project, dim, width_ns, bucket_ns, service, provider,
            model, response_model, operation, value, requests, errors, input_tokens,
            output_tokens, cache_read_tokens, cost_usd, priced, latency_hist)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)",
    )?;
    for ((bucket, series), change) in delta {
        let key = params![
            project,
            bucket.dim.code(),
            bucket.width_ns,
            bucket.start_ns,
            series.service,
            series.provider,
            series.model,
            series.response_model,
            series.operation,
            series.value,
        ];
        let mut sums = read.query_row(key, sums_from_row).optional()?.unwrap_or_default();
        sums.merge(&change, 1);
        if sums.is_zero() {
            delete.execute(key)?;
            continue;
        }
        write.execute(params![
            project,
            bucket.dim.code(),
            bucket.width_ns,
            bucket.start_ns,
            series.service,
            series.provider,
            series.model,
            series.response_model,
            series.operation,
            series.value,
            sums.requests,
            sums.errors,
            sums.input_tokens,
            sums.output_tokens,
            sums.cache_read_tokens,
            sums.cost_usd,
            sums.priced,
            sums.hist.encode(),
        ])?;
    }
    Ok(())
}

/// Rollup sums from columns `requests, errors, input_tokens, output_tokens, cache_read_tokens,
/// cost_usd, priced, latency_hist` starting at `at`.
pub fn sums_at(r: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<Sums> {
    Ok(Sums {
        requests: r.get(at)?,
        errors: r.get(at + 1)?,
        input_tokens: r.get(at + 2)?,
        output_tokens: r.get(at + 3)?,
        cache_read_tokens: r.get(at + 4)?,
        cost_usd: r.get(at + 5)?,
        priced: r.get(at + 6)?,
        hist: Hist::decode(&r.get::<_, Vec<u8>>(at + 7)?),
    })
}

fn sums_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Sums> {
    sums_at(r, 0)
}

/// Writes the list rows and rollups of every stored trace (after the migration that adds them).
pub fn refresh_all(tx: &Transaction<'_>) -> rusqlite::Result<usize> {
    let ids: Vec<(String, String)> = tx
        .prepare("SELECT DISTINCT project, trace_id FROM spans")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    for chunk in ids.chunks(2_000) {
        let touched: Touched<'_> = chunk.iter().map(|(p, t)| (p.as_str(), t.as_str())).collect();
        refresh(tx, &touched, &[])?;
    }
    Ok(ids.len())
}

fn brief_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<SpanBrief> {
    Ok(SpanBrief {
        span_id: r.get(0)?,
        is_root: r.get(1)?,
        name: r.get(2)?,
        service: r.get(3)?,
        start_ns: r.get(4)?,
        end_ns: r.get(5)?,
        error: r.get(6)?,
        is_model_call: r.get(7)?,
        response_id: r.get(8)?,
        input_tokens: r.get(9)?,
        output_tokens: r.get(10)?,
        cost_usd: r.get(11)?,
        provider: r.get(12)?,
        request_model: r.get(13)?,
        response_model: r.get(14)?,
        operation: r.get(15)?,
        user_id: r.get(16)?,
        session_id: r.get(17)?,
        cache_read_tokens: r.get(18)?,
    })
}
