//! The trace list and the summary rollups of `0002_summaries.sql`, kept at write time: the
//! spans of every trace a batch touches are read before and after the batch is inserted, and
//! the trace's list rows and the rollups' difference are written in the same transaction
//! (`query::trace_list`, `query::rollup`).
//!
//! Concurrent writers (several exporters, several collectors) stay exact: each transaction takes
//! advisory locks on the traces it touches and the response ids it concerns before reading
//! ([`lock_and_read`]), so it sees the spans of every transaction that changed the same shares
//! before it; and it changes the rollups, a read-modify-write, under one advisory lock per
//! project taken last, just before commit.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use tokio_postgres::Transaction;
use tokio_postgres::types::ToSql;

use super::PostgresError;
use crate::query::rollup::{
    self, Bucket, DAY_NS, Delta, Dim, Hist, Owners, Parts, Series, Sums, WEEK_NS, add_change,
    settle,
};
use crate::query::trace_list::{BRIEF_COLUMNS, SpanBrief, forgotten_keys, summarize_trace};
use crate::record::SpanRecord;

/// The spans of each trace, by trace id.
pub type Briefs = HashMap<String, Vec<SpanBrief>>;

/// An advisory-lock key: a hash every collector version computes alike.
fn lock_key(kind: &str, project: &str, id: &str) -> i64 {
    use sha2::{Digest, Sha256};
    let digest = Sha256::new()
        .chain_update(kind)
        .chain_update([0])
        .chain_update(project)
        .chain_update([0])
        .chain_update(id)
        .finalize();
    i64::from_be_bytes(digest[..8].try_into().unwrap_or_default())
}

/// Takes advisory locks on `keys` for the rest of the transaction, in key order.
async fn lock(tx: &Transaction<'_>, mut keys: Vec<i64>) -> Result<(), PostgresError> {
    keys.sort_unstable();
    keys.dedup();
    tx.execute(
        "SELECT pg_advisory_xact_lock(k) FROM (SELECT unnest($1::bigint[]) AS k ORDER BY 1) l",
        &[&keys],
    )
    .await?;
    Ok(())
}

/// What the touched traces were before the batch: their spans, and the owners of the calls
/// they share a response id with.
pub struct Before {
    /// The batch's earliest span start (see [`read`]).
    floor: Option<i64>,
    briefs: Briefs,
    response_ids: Vec<String>,
    owners: Owners,
    sharing: Vec<(String, SpanBrief)>,
}

/// Locks the touched traces, then every response id they or the batch (`spans`) have, for the
/// rest of the transaction, and reads them as stored so far. A transaction changes a trace's
/// rollup share only through its spans (trace lock) or its calls' owners (response id lock),
/// and takes all trace locks before any response id lock, both in key order: no deadlocks.
pub async fn lock_and_read(
    tx: &Transaction<'_>,
    project: &str,
    trace_ids: &[&str],
    spans: &[SpanRecord],
) -> Result<Before, PostgresError> {
    lock(
        tx,
        trace_ids
            .iter()
            .map(|t| lock_key("trace", project, t))
            .collect(),
    )
    .await?;
    let floor = spans.iter().map(|s| s.start_time_ns).min();
    let briefs = read(tx, project, trace_ids, floor).await?;
    let response_ids: Vec<String> = rollup::response_ids(briefs.values().flatten(), spans)
        .into_iter()
        .collect();
    lock(
        tx,
        response_ids
            .iter()
            .map(|r| lock_key("response", project, r))
            .collect(),
    )
    .await?;
    let sharing = read_sharing(tx, project, &response_ids).await?;
    let owners = Owners::of(sharing.iter().map(|(t, s)| (t.as_str(), s)));
    Ok(Before {
        floor,
        briefs,
        response_ids,
        owners,
        sharing,
    })
}

fn brief_at(r: &tokio_postgres::Row, at: usize) -> SpanBrief {
    SpanBrief {
        span_id: r.get(at),
        is_root: r.get(at + 1),
        name: r.get(at + 2),
        service: r.get(at + 3),
        start_ns: r.get(at + 4),
        end_ns: r.get(at + 5),
        error: r.get(at + 6),
        is_model_call: r.get(at + 7),
        response_id: r.get(at + 8),
        input_tokens: r.get(at + 9),
        output_tokens: r.get(at + 10),
        cost_usd: r.get(at + 11),
        provider: r.get(at + 12),
        request_model: r.get(at + 13),
        response_model: r.get(at + 14),
        operation: r.get(at + 15),
        user_id: r.get(at + 16),
        session_id: r.get(at + 17),
        cache_read_tokens: r.get(at + 18),
    }
}

/// The stored spans of `trace_ids`. A trace's stored spans start no earlier than its list row
/// (the earliest of them; [`after_retention`] keeps that true when old days are dropped), and
/// this batch's no earlier than `floor`: the bound lets PostgreSQL skip the day partitions
/// before it instead of probing every partition's index for every trace.
async fn read(
    tx: &Transaction<'_>,
    project: &str,
    trace_ids: &[&str],
    floor: Option<i64>,
) -> Result<Briefs, PostgresError> {
    let mut briefs = Briefs::new();
    for r in tx
        .query(
            &format!(
                "SELECT trace_id, {BRIEF_COLUMNS} FROM spans
                 WHERE project = $1 AND trace_id = ANY($2)
                   AND start_time_ns >= COALESCE(LEAST($3::bigint,
                       (SELECT min(start_ns) FROM traces
                        WHERE project = $1 AND trace_id = ANY($2))),
                       -9223372036854775808)"
            ),
            &[&project, &trace_ids, &floor],
        )
        .await?
    {
        briefs.entry(r.get(0)).or_default().push(brief_at(&r, 1));
    }
    Ok(briefs)
}

/// The `(project, trace id)` rows `sql` selects, grouped by project (for work done a chunk of
/// traces at a time).
async fn traces_by_project(
    tx: &Transaction<'_>,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<BTreeMap<String, Vec<String>>, PostgresError> {
    let mut by_project: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in tx.query(sql, params).await? {
        by_project.entry(r.get(0)).or_default().push(r.get(1));
    }
    Ok(by_project)
}

/// After retention dropped the span partitions before `cutoff_ns`: the list rows of traces that
/// started before it are rewritten from the spans they have left (a trace that crossed the
/// cutoff keeps its later spans) or deleted when none are left, so every trace with stored
/// spans keeps a list row starting at its earliest stored span. Rollups are kept (they outlive
/// retention).
pub async fn after_retention(tx: &Transaction<'_>, cutoff_ns: i64) -> Result<(), PostgresError> {
    let by_project = traces_by_project(
        tx,
        "SELECT project, trace_id FROM traces WHERE start_ns < $1 ORDER BY 1, 2",
        &[&cutoff_ns],
    )
    .await?;
    for (project, ids) in &by_project {
        for chunk in ids.chunks(2_000) {
            let ids: Vec<&str> = chunk.iter().map(String::as_str).collect();
            lock(
                tx,
                ids.iter().map(|t| lock_key("trace", project, t)).collect(),
            )
            .await?;
            let left = read(tx, project, &ids, None).await?;
            let gone: Vec<&str> = ids
                .iter()
                .copied()
                .filter(|t| !left.contains_key(*t))
                .collect();
            tx.execute(
                "DELETE FROM traces WHERE project = $1 AND trace_id = ANY($2)",
                &[project, &gone],
            )
            .await?;
            let kept: Vec<&str> = left.keys().map(String::as_str).collect();
            write_list(tx, project, &kept, &left).await?;
        }
    }
    tx.execute("DELETE FROM trace_keys WHERE start_ns < $1", &[&cutoff_ns])
        .await?;
    Ok(())
}

/// Every model-call span, in any trace, with one of `response_ids`.
async fn read_sharing(
    tx: &Transaction<'_>,
    project: &str,
    response_ids: &[String],
) -> Result<Vec<(String, SpanBrief)>, PostgresError> {
    if response_ids.is_empty() {
        return Ok(Vec::new());
    }
    Ok(tx
        .query(
            &format!(
                "SELECT trace_id, {BRIEF_COLUMNS} FROM spans
                 WHERE project = $1 AND response_id = ANY($2) AND is_model_call"
            ),
            &[&project, &response_ids],
        )
        .await?
        .iter()
        .map(|r| (r.get(0), brief_at(r, 1)))
        .collect())
}

/// Rewrites the list rows of `trace_ids` (locked by [`lock_and_read`]) and adds their rollup
/// difference, and that of the traces whose calls changed owner, after the batch was inserted.
pub async fn refresh(
    tx: &Transaction<'_>,
    project: &str,
    trace_ids: &[&str],
    before: Before,
) -> Result<(), PostgresError> {
    let after = read(tx, project, trace_ids, before.floor).await?;
    let sharing_after = read_sharing(tx, project, &before.response_ids).await?;
    let owners_after = Owners::of(sharing_after.iter().map(|(t, s)| (t.as_str(), s)));
    let mut delta = Delta::new();
    for (trace_id, spans) in &after {
        let old = before.briefs.get(trace_id).map_or(&[][..], Vec::as_slice);
        add_change(
            &mut delta,
            trace_id,
            (old, &before.owners),
            (spans, &owners_after),
        );
    }
    let others: BTreeSet<&str> = before
        .sharing
        .iter()
        .chain(&sharing_after)
        .map(|(t, _)| t.as_str())
        .filter(|t| !after.contains_key(*t))
        .collect();
    if !others.is_empty() {
        let others: Vec<&str> = others.into_iter().collect();
        for (trace_id, spans) in read(tx, project, &others, None).await? {
            add_change(
                &mut delta,
                &trace_id,
                (&spans, &before.owners),
                (&spans, &owners_after),
            );
        }
    }
    settle(&mut delta);
    write_list(tx, project, trace_ids, &after).await?;
    apply(tx, project, delta).await
}

/// The list rows and filter keys of the touched traces, from their spans (`after`).
async fn write_list(
    tx: &Transaction<'_>,
    project: &str,
    trace_ids: &[&str],
    after: &Briefs,
) -> Result<(), PostgresError> {
    let old_rows: HashMap<String, (i64, Option<String>)> = tx
        .query(
            "SELECT trace_id, start_ns, root_name FROM traces
             WHERE project = $1 AND trace_id = ANY($2)",
            &[&project, &trace_ids],
        )
        .await?
        .into_iter()
        .map(|r| (r.get(0), (r.get(1), r.get(2))))
        .collect();

    #[derive(Default)]
    struct Columns {
        trace_id: Vec<String>,
        start_ns: Vec<i64>,
        duration_ns: Vec<i64>,
        root_name: Vec<Option<String>>,
        service: Vec<Option<String>>,
        span_count: Vec<i64>,
        llm_calls: Vec<i64>,
        input_tokens: Vec<i64>,
        output_tokens: Vec<i64>,
        cost_usd: Vec<Option<f64>>,
        error: Vec<bool>,
        user: Vec<Option<String>>,
        session: Vec<Option<String>>,
    }
    let mut c = Columns::default();
    // (key, start, trace id) rows to forget (the trace's start moved, or its root changed and
    // with it the root's words) and to add.
    let mut forget: (Vec<String>, Vec<i64>, Vec<String>) = Default::default();
    let mut add: (Vec<String>, Vec<i64>, Vec<String>) = Default::default();
    for (trace_id, spans) in after {
        let (t, keys) = summarize_trace(trace_id, spans);
        let (user, session) = rollup::trace_user_and_session(spans);
        c.user.push(user);
        c.session.push(session);
        if let Some((old, old_root)) = old_rows.get(trace_id) {
            for key in forgotten_keys((*old, old_root.as_deref()), t.start_ns, &keys) {
                forget.0.push(key);
                forget.1.push(*old);
                forget.2.push(trace_id.clone());
            }
        }
        for key in keys {
            add.0.push(key);
            add.1.push(t.start_ns);
            add.2.push(trace_id.clone());
        }
        c.trace_id.push(t.trace_id);
        c.start_ns.push(t.start_ns);
        c.duration_ns.push(t.duration_ns);
        c.root_name.push(t.root_name);
        c.service.push(t.service);
        c.span_count.push(t.span_count);
        c.llm_calls.push(t.llm_calls);
        c.input_tokens.push(t.input_tokens);
        c.output_tokens.push(t.output_tokens);
        c.cost_usd.push(t.cost_usd);
        c.error.push(t.error);
    }
    tx.execute(
        "INSERT INTO traces (project, trace_id, start_ns, duration_ns, root_name, service,
            span_count, llm_calls, input_tokens, output_tokens, cost_usd, error, user_id,
            session_id)
         SELECT $1, * FROM unnest($2::text[], $3::bigint[], $4::bigint[], $5::text[], $6::text[],
            $7::bigint[], $8::bigint[], $9::bigint[], $10::bigint[], $11::float8[], $12::bool[],
            $13::text[], $14::text[])
         ON CONFLICT (project, trace_id) DO UPDATE SET start_ns = EXCLUDED.start_ns,
            duration_ns = EXCLUDED.duration_ns, root_name = EXCLUDED.root_name,
            service = EXCLUDED.service, span_count = EXCLUDED.span_count,
            llm_calls = EXCLUDED.llm_calls, input_tokens = EXCLUDED.input_tokens,
            output_tokens = EXCLUDED.output_tokens, cost_usd = EXCLUDED.cost_usd,
            error = EXCLUDED.error, user_id = EXCLUDED.user_id,
            session_id = EXCLUDED.session_id",
        &[
            &project,
            &c.trace_id,
            &c.start_ns,
            &c.duration_ns,
            &c.root_name,
            &c.service,
            &c.span_count,
            &c.llm_calls,
            &c.input_tokens,
            &c.output_tokens,
            &c.cost_usd,
            &c.error,
            &c.user,
            &c.session,
        ],
    )
    .await?;
    if !forget.0.is_empty() {
        tx.execute(
            "DELETE FROM trace_keys k USING unnest($2::text[], $3::bigint[], $4::text[])
                AS f(key, start_ns, trace_id)
             WHERE k.project = $1 AND k.key = f.key AND k.start_ns = f.start_ns
               AND k.trace_id = f.trace_id",
            &[&project, &forget.0, &forget.1, &forget.2],
        )
        .await?;
    }
    tx.execute(
        "INSERT INTO trace_keys (project, key, start_ns, trace_id)
         SELECT $1, * FROM unnest($2::text[], $3::bigint[], $4::text[])
         ON CONFLICT DO NOTHING",
        &[&project, &add.0, &add.1, &add.2],
    )
    .await?;
    Ok(())
}

/// The rollup rows' identifying columns, as parallel arrays.
#[derive(Default)]
struct Keys {
    dim: Vec<&'static str>,
    width_ns: Vec<i64>,
    bucket_ns: Vec<i64>,
    service: Vec<String>,
    provider: Vec<String>,
    model: Vec<String>,
    response_model: Vec<String>,
    operation: Vec<String>,
    value: Vec<String>,
}

impl Keys {
    /// `$1` the project, then the key columns as `$2` to `$10`, as [`KEYS_UNNEST`] reads them.
    fn params<'a>(&'a self, project: &'a &'a str) -> Vec<&'a (dyn ToSql + Sync)> {
        vec![
            project,
            &self.dim,
            &self.width_ns,
            &self.bucket_ns,
            &self.service,
            &self.provider,
            &self.model,
            &self.response_model,
            &self.operation,
            &self.value,
        ]
    }

    fn push(&mut self, bucket: &Bucket, series: &Series) {
        self.dim.push(bucket.dim.code());
        self.width_ns.push(bucket.width_ns);
        self.bucket_ns.push(bucket.start_ns);
        self.service.push(series.service.clone());
        self.provider.push(series.provider.clone());
        self.model.push(series.model.clone());
        self.response_model.push(series.response_model.clone());
        self.operation.push(series.operation.clone());
        self.value.push(series.value.clone());
    }
}

const KEYS_UNNEST: &str = "unnest($2::text[], $3::bigint[], $4::bigint[], $5::text[], $6::text[],
    $7::text[], $8::text[], $9::text[], $10::text[])";
/// The columns of `KEY_COLUMNS`.
const KEY_COUNT: usize = 9;
const KEY_COLUMNS: &str =
    "dim, width_ns, bucket_ns, service, provider, model, response_model, operation, value";

/// Adds `delta` to the rollup rows (read, merged here, written back), deleting those left with
/// nothing.
async fn apply(tx: &Transaction<'_>, project: &str, delta: Delta) -> Result<(), PostgresError> {
    if delta.is_empty() {
        return Ok(());
    }
    tx.execute(
        "SELECT pg_advisory_xact_lock($1)",
        &[&lock_key("rollups", project, "")],
    )
    .await?;
    let mut keys = Keys::default();
    for (bucket, series) in delta.keys() {
        keys.push(bucket, series);
    }
    let stored = tx
        .query(
            &format!(
                "SELECT {KEY_COLUMNS}, requests, errors, input_tokens, output_tokens,
                        cache_read_tokens, cost_usd, priced, latency_hist, parts
                 FROM rollups JOIN {KEYS_UNNEST} AS k({KEY_COLUMNS}) USING ({KEY_COLUMNS})
                 WHERE project = $1"
            ),
            &keys.params(&project),
        )
        .await?;
    let mut merged: BTreeMap<(Bucket, Series), Sums> = BTreeMap::new();
    for r in &stored {
        let (bucket, series, mut sums) = row(r, 0);
        sums.parts = r
            .get::<_, Option<&[u8]>>(KEY_COUNT + 8)
            .map(Parts::decode)
            .unwrap_or_default();
        merged.insert((bucket, series), sums);
    }
    let mut new_series = Vec::new();
    for (key, change) in delta {
        let row = merged.entry(key).or_insert_with_key(|(bucket, series)| {
            if bucket.dim == Dim::Calls {
                new_series.push(series.clone());
            }
            Sums::default()
        });
        row.merge(&change, 1);
    }
    name_series(tx, project, &new_series).await?;
    let (mut gone, mut kept) = (Keys::default(), Keys::default());
    #[derive(Default)]
    struct Values {
        requests: Vec<i64>,
        errors: Vec<i64>,
        input_tokens: Vec<i64>,
        output_tokens: Vec<i64>,
        cache_read_tokens: Vec<i64>,
        cost_usd: Vec<f64>,
        priced: Vec<i64>,
        hist: Vec<Vec<u8>>,
        parts: Vec<Option<Vec<u8>>>,
    }
    let mut v = Values::default();
    for ((bucket, series), sums) in &merged {
        if sums.is_zero() {
            gone.push(bucket, series);
            continue;
        }
        kept.push(bucket, series);
        v.requests.push(sums.requests);
        v.errors.push(sums.errors);
        v.input_tokens.push(sums.input_tokens);
        v.output_tokens.push(sums.output_tokens);
        v.cache_read_tokens.push(sums.cache_read_tokens);
        v.cost_usd.push(sums.cost_usd);
        v.priced.push(sums.priced);
        v.hist.push(sums.hist.encode());
        v.parts
            .push((bucket.dim != Dim::Calls).then(|| sums.parts.encode()));
    }
    if !gone.dim.is_empty() {
        tx.execute(
            &format!(
                "DELETE FROM rollups r USING {KEYS_UNNEST} AS k({KEY_COLUMNS})
                 WHERE r.project = $1 AND (r.dim, r.width_ns, r.bucket_ns, r.service, r.provider,
                    r.model, r.response_model, r.operation, r.value) =
                    (k.dim, k.width_ns, k.bucket_ns, k.service, k.provider, k.model,
                     k.response_model, k.operation, k.value)"
            ),
            &gone.params(&project),
        )
        .await?;
    }
    if !kept.dim.is_empty() {
        tx.execute(
            &format!(
                "INSERT INTO rollups (project, {KEY_COLUMNS}, requests, errors, input_tokens,
                    output_tokens, cache_read_tokens, cost_usd, priced, latency_hist, parts)
                 SELECT $1, * FROM unnest($2::text[], $3::bigint[], $4::bigint[], $5::text[],
                    $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::bigint[],
                    $12::bigint[], $13::bigint[], $14::bigint[], $15::bigint[], $16::float8[],
                    $17::bigint[], $18::bytea[], $19::bytea[])
                 ON CONFLICT (project, {KEY_COLUMNS}) DO UPDATE SET
                    requests = EXCLUDED.requests, errors = EXCLUDED.errors,
                    input_tokens = EXCLUDED.input_tokens, output_tokens = EXCLUDED.output_tokens,
                    cache_read_tokens = EXCLUDED.cache_read_tokens, cost_usd = EXCLUDED.cost_usd,
                    priced = EXCLUDED.priced, latency_hist = EXCLUDED.latency_hist,
                    parts = EXCLUDED.parts"
            ),
            &[
                kept.params(&project).as_slice(),
                &[
                    &v.requests,
                    &v.errors,
                    &v.input_tokens,
                    &v.output_tokens,
                    &v.cache_read_tokens,
                    &v.cost_usd,
                    &v.priced,
                    &v.hist,
                    &v.parts,
                ],
            ]
            .concat(),
        )
        .await?;
    }
    Ok(())
}

/// A rollup row from `KEY_COLUMNS` then the sums, starting at column `at`.
fn row(r: &tokio_postgres::Row, at: usize) -> (Bucket, Series, Sums) {
    let dim = match r.get::<_, &str>(at) {
        "u" => Dim::User,
        "s" => Dim::Session,
        _ => Dim::Calls,
    };
    let bucket = Bucket {
        dim,
        width_ns: r.get(at + 1),
        start_ns: r.get(at + 2),
    };
    let series = Series {
        service: r.get(at + 3),
        provider: r.get(at + 4),
        model: r.get(at + 5),
        response_model: r.get(at + 6),
        operation: r.get(at + 7),
        value: r.get(at + 8),
    };
    let sums = Sums {
        requests: r.get(at + 9),
        errors: r.get(at + 10),
        input_tokens: r.get(at + 11),
        output_tokens: r.get(at + 12),
        cache_read_tokens: r.get(at + 13),
        cost_usd: r.get(at + 14),
        priced: r.get(at + 15),
        hist: Hist::decode(r.get(at + 16)),
        parts: Parts::default(),
    };
    (bucket, series, sums)
}

/// From every stored trace: with `list`, writes its list row and filter keys; adds its calls to
/// the rollup rows of the dimensions `rollups` names (each rebuilt from nothing by its migration:
/// the list is idempotent, the rollups are not). Every span is stored already, so each call's
/// owner is final: each trace adds the calls it owns, and nothing else changes.
pub async fn refresh_all(
    tx: &Transaction<'_>,
    list: bool,
    rollups: &[Dim],
) -> Result<u64, PostgresError> {
    let by_project = traces_by_project(
        tx,
        "SELECT DISTINCT project, trace_id FROM spans ORDER BY 1, 2",
        &[],
    )
    .await?;
    for (project, ids) in &by_project {
        for chunk in ids.chunks(2_000) {
            let ids: Vec<&str> = chunk.iter().map(String::as_str).collect();
            let after = read(tx, project, &ids, None).await?;
            if list {
                write_list(tx, project, &ids, &after).await?;
            }
            if rollups.is_empty() {
                continue;
            }
            let response_ids: Vec<String> = rollup::response_ids(after.values().flatten(), &[])
                .into_iter()
                .collect();
            let sharing = read_sharing(tx, project, &response_ids).await?;
            let owners = Owners::of(sharing.iter().map(|(t, s)| (t.as_str(), s)));
            let mut delta = Delta::new();
            for (trace_id, spans) in &after {
                add_change(
                    &mut delta,
                    trace_id,
                    (&[], &Owners::default()),
                    (spans, &owners),
                );
            }
            delta.retain(|(bucket, _), _| rollups.contains(&bucket.dim));
            settle(&mut delta);
            apply(tx, project, delta).await?;
        }
    }
    Ok(by_project.values().map(|ids| ids.len() as u64).sum())
}

/// Before the user and session rollups are rebuilt with their parts (`0007_rollup_parts.sql`):
/// names the series of the rollups kept so far and drops the user and session rows from the
/// earliest stored span's day on (and any weekly ones), which the rebuild writes again; older
/// rows (their spans past retention) keep their totals without parts. Returns the dimensions
/// to rebuild: all of them when there are no rollups yet.
pub async fn prepare_parts(tx: &Transaction<'_>) -> Result<Vec<Dim>, PostgresError> {
    let kept = tx
        .query(
            "SELECT DISTINCT project, service, provider, model, response_model, operation
             FROM rollups WHERE dim = 'c'",
            &[],
        )
        .await?;
    if kept.is_empty() {
        return Ok(Dim::ALL.to_vec());
    }
    let mut by_project: BTreeMap<String, Vec<Series>> = BTreeMap::new();
    for r in &kept {
        by_project.entry(r.get(0)).or_default().push(Series {
            service: r.get(1),
            provider: r.get(2),
            model: r.get(3),
            response_model: r.get(4),
            operation: r.get(5),
            value: String::new(),
        });
    }
    for (project, series) in &by_project {
        name_series(tx, project, series).await?;
    }
    tx.execute(
        &format!(
            "DELETE FROM rollups WHERE dim IN ('u', 's')
               AND (width_ns = {WEEK_NS}
                    OR bucket_ns >= (SELECT min(start_time_ns) FROM spans) / {DAY_NS} * {DAY_NS})"
        ),
        &[],
    )
    .await?;
    Ok(vec![Dim::User, Dim::Session])
}

/// Names each series in `rollup_series` (once; ids are stable).
async fn name_series(
    tx: &Transaction<'_>,
    project: &str,
    series: &[Series],
) -> Result<(), PostgresError> {
    if series.is_empty() {
        return Ok(());
    }
    let ids: Vec<i64> = series.iter().map(Series::id).collect();
    let column = |get: fn(&Series) -> &String| -> Vec<&str> {
        series.iter().map(|s| get(s).as_str()).collect()
    };
    tx.execute(
        "INSERT INTO rollup_series (project, id, service, provider, model, response_model,
            operation)
         SELECT $1, * FROM unnest($2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[],
            $7::text[])
         ON CONFLICT DO NOTHING",
        &[
            &project,
            &ids,
            &column(|s| &s.service),
            &column(|s| &s.provider),
            &column(|s| &s.model),
            &column(|s| &s.response_model),
            &column(|s| &s.operation),
        ],
    )
    .await?;
    Ok(())
}
