//! The trace list and the summary rollups of `0005_summaries.sql`, kept at write time: the
//! spans of every trace a batch touches, and every span sharing a response id with them, are
//! read before and after the batch is inserted, and the traces' list rows and the rollups'
//! difference are written in the same transaction (`query::trace_list`, `query::rollup`). The
//! store's one writer connection serializes this.

use std::collections::BTreeSet;

use rusqlite::{OptionalExtension, Transaction, params};

use crate::query::rollup::{self, Delta, Dim, Hist, Owners, Parts, Sums, add_change, settle};
use crate::query::trace_list::{BRIEF_COLUMNS, SpanBrief, forgotten_keys, summarize_trace};
use crate::record::SpanRecord;

/// The trace ids of a batch, each once.
pub type Touched<'a> = BTreeSet<&'a str>;

/// What the touched traces were before the batch: their spans, and the owners of the calls
/// they share a response id with.
pub struct Before {
    briefs: Vec<Vec<SpanBrief>>,
    response_ids: BTreeSet<String>,
    owners: Owners,
    sharing: Vec<(String, SpanBrief)>,
}

/// Reads the touched traces before `spans` (the batch) are inserted.
pub fn before(
    tx: &Transaction<'_>,
    project: &str,
    touched: &Touched<'_>,
    spans: &[SpanRecord],
) -> rusqlite::Result<Before> {
    let briefs = briefs(tx, project, touched)?;
    let response_ids = rollup::response_ids(briefs.iter().flatten(), spans);
    let sharing = sharing(tx, project, &response_ids)?;
    let owners = Owners::of(sharing.iter().map(|(t, s)| (t.as_str(), s)));
    Ok(Before {
        briefs,
        response_ids,
        owners,
        sharing,
    })
}

/// The stored spans of each touched trace, in `touched` order.
fn briefs(
    tx: &Transaction<'_>,
    project: &str,
    touched: &Touched<'_>,
) -> rusqlite::Result<Vec<Vec<SpanBrief>>> {
    let mut stmt = tx.prepare_cached(&format!(
        "SELECT {BRIEF_COLUMNS} FROM spans WHERE project = ?1 AND trace_id = ?2"
    ))?;
    touched
        .iter()
        .map(|trace_id| {
            stmt.query_map([project, trace_id], |r| brief_at(r, 0))?
                .collect::<rusqlite::Result<Vec<_>>>()
        })
        .collect()
}

/// Every model-call span, in any trace, with one of `response_ids`.
fn sharing(
    tx: &Transaction<'_>,
    project: &str,
    response_ids: &BTreeSet<String>,
) -> rusqlite::Result<Vec<(String, SpanBrief)>> {
    // Without statistics SQLite prefers scanning the project's spans by primary key; the
    // partial index must be named, and its condition repeated for the index to apply.
    let mut stmt = tx.prepare_cached(&format!(
        "SELECT trace_id, {BRIEF_COLUMNS} FROM spans INDEXED BY spans_by_response
         WHERE project = ?1 AND response_id = ?2 AND response_id IS NOT NULL"
    ))?;
    let mut out = Vec::new();
    for id in response_ids {
        let rows = stmt.query_map(params![project, id], |r| Ok((r.get(0)?, brief_at(r, 1)?)))?;
        for row in rows {
            let (trace_id, brief) = row?;
            if brief.is_model_call {
                out.push((trace_id, brief));
            }
        }
    }
    Ok(out)
}

/// Rewrites the list rows of the touched traces and adds their rollup difference (and that of
/// the traces whose calls changed owner) after the batch was inserted.
pub fn refresh(
    tx: &Transaction<'_>,
    project: &str,
    touched: &Touched<'_>,
    before: Before,
) -> rusqlite::Result<()> {
    let after = briefs(tx, project, touched)?;
    let sharing_after = sharing(tx, project, &before.response_ids)?;
    let owners_after = Owners::of(sharing_after.iter().map(|(t, s)| (t.as_str(), s)));
    let mut delta = Delta::new();
    for (i, trace_id) in touched.iter().enumerate() {
        add_change(
            &mut delta,
            trace_id,
            (&before.briefs[i], &before.owners),
            (&after[i], &owners_after),
        );
    }
    // Traces the batch did not touch but whose share of a call may have moved.
    let others: Touched<'_> = before
        .sharing
        .iter()
        .chain(&sharing_after)
        .map(|(t, _)| t.as_str())
        .filter(|t| !touched.contains(t))
        .collect();
    for (trace_id, spans) in others.iter().zip(briefs(tx, project, &others)?) {
        add_change(
            &mut delta,
            trace_id,
            (&spans, &before.owners),
            (&spans, &owners_after),
        );
    }
    settle(&mut delta);
    write_list(tx, project, touched, &after)?;
    apply(tx, project, delta)
}

/// The list rows and filter keys of the touched traces, from their spans (`after`).
fn write_list(
    tx: &Transaction<'_>,
    project: &str,
    touched: &Touched<'_>,
    after: &[Vec<SpanBrief>],
) -> rusqlite::Result<()> {
    let mut old_row = tx.prepare_cached(
        "SELECT start_ns, root_name FROM traces WHERE project = ?1 AND trace_id = ?2",
    )?;
    let mut upsert = tx.prepare_cached(
        "INSERT OR REPLACE INTO traces (project, trace_id, start_ns, duration_ns, root_name,
            service, span_count, llm_calls, input_tokens, output_tokens, cost_usd, error,
            user_id, session_id)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
    )?;
    let mut forget_key = tx.prepare_cached(
        "DELETE FROM trace_keys WHERE project = ?1 AND key = ?2 AND start_ns = ?3 AND trace_id = ?4",
    )?;
    let mut add_key = tx.prepare_cached(
        "INSERT OR IGNORE INTO trace_keys (project, key, start_ns, trace_id) VALUES (?1, ?2, ?3, ?4)",
    )?;
    for (trace_id, spans) in touched.iter().zip(after) {
        if spans.is_empty() {
            continue;
        }
        let (t, keys) = summarize_trace(trace_id, spans);
        let (user, session) = rollup::trace_user_and_session(spans);
        let before: Option<(i64, Option<String>)> = old_row
            .query_row([project, trace_id], |r| Ok((r.get(0)?, r.get(1)?)))
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
            user,
            session,
        ])?;
        if let Some((b, old_root)) = &before {
            for key in forgotten_keys((*b, old_root.as_deref()), t.start_ns, &keys) {
                forget_key.execute(params![project, key, b, trace_id])?;
            }
        }
        for key in &keys {
            add_key.execute(params![project, key, t.start_ns, trace_id])?;
        }
    }
    Ok(())
}

/// Adds `delta` to the rollup rows, deleting those left with nothing; a series' first row names
/// it in `rollup_series`.
fn apply(tx: &Transaction<'_>, project: &str, delta: Delta) -> rusqlite::Result<()> {
    const KEY: &str = "project = ?1 AND dim = ?2 AND width_ns = ?3 AND bucket_ns = ?4
        AND service = ?5 AND provider = ?6 AND model = ?7 AND response_model = ?8
        AND operation = ?9 AND value = ?10";
    let mut read = tx.prepare_cached(&format!(
        "SELECT requests, errors, input_tokens, output_tokens, cache_read_tokens, cost_usd,
                priced, latency_hist, parts FROM rollups WHERE {KEY}"
    ))?;
    let mut delete = tx.prepare_cached(&format!("DELETE FROM rollups WHERE {KEY}"))?;
    let mut write = tx.prepare_cached(
        "INSERT OR REPLACE INTO rollups (project, dim, width_ns, bucket_ns, service, provider,
            model, response_model, operation, value, requests, errors, input_tokens,
            output_tokens, cache_read_tokens, cost_usd, priced, latency_hist, parts)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18,
            ?19)",
    )?;
    let mut name = tx.prepare_cached(
        "INSERT OR IGNORE INTO rollup_series (project, id, service, provider, model,
            response_model, operation) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
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
        let stored = read.query_row(key, sums_from_row).optional()?;
        if stored.is_none() && bucket.dim == Dim::Calls {
            name.execute(params![
                project,
                series.id(),
                series.service,
                series.provider,
                series.model,
                series.response_model,
                series.operation,
            ])?;
        }
        let mut sums = stored.unwrap_or_default();
        sums.merge(&change, 1);
        if sums.is_zero() {
            delete.execute(key)?;
            continue;
        }
        let parts = (bucket.dim != Dim::Calls).then(|| sums.parts.encode());
        let values = params![
            sums.requests,
            sums.errors,
            sums.input_tokens,
            sums.output_tokens,
            sums.cache_read_tokens,
            sums.cost_usd,
            sums.priced,
            sums.hist.encode(),
            parts,
        ];
        write.execute(&[key, values].concat()[..])?;
    }
    Ok(())
}

/// A stored row's sums with their parts (`apply`'s read): columns `requests, errors,
/// input_tokens, output_tokens, cache_read_tokens, cost_usd, priced, latency_hist, parts`.
fn sums_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Sums> {
    Ok(Sums {
        requests: r.get(0)?,
        errors: r.get(1)?,
        input_tokens: r.get(2)?,
        output_tokens: r.get(3)?,
        cache_read_tokens: r.get(4)?,
        cost_usd: r.get(5)?,
        priced: r.get(6)?,
        hist: Hist::decode(r.get_ref(7)?.as_blob()?),
        parts: r
            .get_ref(8)?
            .as_blob_or_null()?
            .map(Parts::decode)
            .unwrap_or_default(),
    })
}

/// From every stored trace: with `list`, writes its list row and filter keys; adds its calls to
/// the rollup rows of the dimensions `rollups` names (each rebuilt from nothing by its migration:
/// the list is idempotent, the rollups are not). Every span is stored already, so each call's
/// owner is final: each trace adds the calls it owns, and nothing else changes.
pub fn refresh_all(tx: &Transaction<'_>, list: bool, rollups: &[Dim]) -> rusqlite::Result<usize> {
    let ids: Vec<(String, String)> = tx
        .prepare("SELECT DISTINCT project, trace_id FROM spans ORDER BY 1, 2")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    for chunk in ids.chunk_by(|a, b| a.0 == b.0) {
        let project = chunk[0].0.as_str();
        for part in chunk.chunks(2_000) {
            let touched: Touched<'_> = part.iter().map(|(_, t)| t.as_str()).collect();
            let after = briefs(tx, project, &touched)?;
            if list {
                write_list(tx, project, &touched, &after)?;
            }
            if rollups.is_empty() {
                continue;
            }
            let response_ids = rollup::response_ids(after.iter().flatten(), &[]);
            let sharing = sharing(tx, project, &response_ids)?;
            let owners = Owners::of(sharing.iter().map(|(t, s)| (t.as_str(), s)));
            let mut delta = Delta::new();
            for (trace_id, spans) in touched.iter().zip(&after) {
                add_change(
                    &mut delta,
                    trace_id,
                    (&[], &Owners::default()),
                    (spans, &owners),
                );
            }
            delta.retain(|(bucket, _), _| rollups.contains(&bucket.dim));
            settle(&mut delta);
            apply(tx, project, delta)?;
        }
    }
    Ok(ids.len())
}

fn brief_at(r: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<SpanBrief> {
    Ok(SpanBrief {
        span_id: r.get(at)?,
        is_root: r.get(at + 1)?,
        name: r.get(at + 2)?,
        service: r.get(at + 3)?,
        start_ns: r.get(at + 4)?,
        end_ns: r.get(at + 5)?,
        error: r.get(at + 6)?,
        is_model_call: r.get(at + 7)?,
        response_id: r.get(at + 8)?,
        input_tokens: r.get(at + 9)?,
        output_tokens: r.get(at + 10)?,
        cost_usd: r.get(at + 11)?,
        provider: r.get(at + 12)?,
        request_model: r.get(at + 13)?,
        response_model: r.get(at + 14)?,
        operation: r.get(at + 15)?,
        user_id: r.get(at + 16)?,
        session_id: r.get(at + 17)?,
        cache_read_tokens: r.get(at + 18)?,
    })
}
