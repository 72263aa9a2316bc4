//! [`AlertStore`] on SQLite: each change in one `IMMEDIATE` transaction (the database's one
//! writer), so compare-and-set and the fence check cannot interleave.

use rusqlite::{Connection, OptionalExtension, Row, Transaction, TransactionBehavior, params};

use super::alerts::{
    AlertEvent, AlertStore, Applied, Attempt, EventQuery, NewEvent, Notification, SeriesState,
    StoredRule, Transition,
};
use super::{MetadataError, Result};
use crate::query::BoxFuture;
use crate::sqlite::SqliteStore;

const RULE_COLUMNS: &str =
    "id, project, name, definition, enabled, source, created_at_ns, updated_at_ns";

fn rule_from_row(r: &Row<'_>) -> rusqlite::Result<StoredRule> {
    Ok(StoredRule {
        id: r.get(0)?,
        project: r.get(1)?,
        name: r.get(2)?,
        definition: r.get(3)?,
        enabled: r.get(4)?,
        source: r.get(5)?,
        created_at_ns: r.get(6)?,
        updated_at_ns: r.get(7)?,
    })
}

const NOTIFICATION_COLUMNS: &str =
    "id, event_id, rule_id, project, channel, webhook_id, body, attempts, created_ns, next_at_ns";

/// A notification waits while an earlier one of its rule and channel is undelivered.
pub(super) const IN_ORDER: &str = "NOT EXISTS (SELECT 1 FROM alert_notifications o
    WHERE o.rule_id = n.rule_id AND o.channel = n.channel AND o.done_at_ns IS NULL AND o.id < n.id)";

fn notification_from_row(r: &Row<'_>) -> rusqlite::Result<Notification> {
    Ok(Notification {
        id: r.get(0)?,
        event_id: r.get(1)?,
        rule_id: r.get(2)?,
        project: r.get(3)?,
        channel: r.get(4)?,
        webhook_id: r.get(5)?,
        body: r.get(6)?,
        attempts: r.get(7)?,
        created_ns: r.get(8)?,
        next_at_ns: r.get(9)?,
    })
}

fn failed(e: crate::query::QueryError) -> MetadataError {
    MetadataError(e.0)
}

/// Runs `f` in an `IMMEDIATE` transaction, committed unless it answers other than `Done`.
fn in_transaction(
    c: &Connection,
    f: impl FnOnce(&Transaction<'_>) -> rusqlite::Result<Applied>,
) -> rusqlite::Result<Applied> {
    let tx = Transaction::new_unchecked(c, TransactionBehavior::Immediate)?;
    let applied = f(&tx)?;
    if applied == Applied::Done {
        tx.commit()?;
    }
    Ok(applied)
}

/// Raises the fence to `token`; false when a higher token has written.
fn fence_allows(tx: &Transaction<'_>, token: i64) -> rusqlite::Result<bool> {
    tx.execute(
        "UPDATE alert_fence SET token = ?1 WHERE id = 1 AND token <= ?1",
        [token],
    )
    .map(|n| n == 1)
}

fn insert_event(
    tx: &Transaction<'_>,
    rule_id: &str,
    project: &str,
    series: &str,
    token: i64,
    e: &NewEvent,
) -> rusqlite::Result<i64> {
    tx.execute(
        "INSERT INTO alert_events (rule_id, project, state, details, fired_at_ns, series, token)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![rule_id, project, e.state, e.details, e.at_ns, series, token],
    )?;
    Ok(tx.last_insert_rowid())
}

fn apply(tx: &Transaction<'_>, token: i64, t: &Transition) -> rusqlite::Result<Applied> {
    if !fence_allows(tx, token)? {
        return Ok(Applied::Fenced);
    }
    let s = &t.next;
    let changed = match (t.expected_version, t.delete) {
        (None, true) => 1,
        (None, false) => tx.execute(
            "INSERT INTO alert_series (rule_id, series, state, since_ns, notified_ns, value, version)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (rule_id, series) DO NOTHING",
            params![s.rule_id, s.series, s.state, s.since_ns, s.notified_ns, s.value, s.version],
        )?,
        (Some(v), true) => tx.execute(
            "DELETE FROM alert_series WHERE rule_id = ?1 AND series = ?2 AND version = ?3",
            params![s.rule_id, s.series, v],
        )?,
        (Some(v), false) => tx.execute(
            "UPDATE alert_series SET state = ?3, since_ns = ?4, notified_ns = ?5, value = ?6,
                 version = version + 1
             WHERE rule_id = ?1 AND series = ?2 AND version = ?7",
            params![s.rule_id, s.series, s.state, s.since_ns, s.notified_ns, s.value, v],
        )?,
    };
    if changed != 1 {
        return Ok(Applied::Conflict);
    }
    if let Some(event) = &t.event {
        let event_id = insert_event(tx, &s.rule_id, &t.project, &s.series, token, event)?;
        for n in &t.notifications {
            tx.execute(
                "INSERT INTO alert_notifications
                     (event_id, rule_id, project, channel, webhook_id, body, created_ns, next_at_ns)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)",
                params![
                    event_id,
                    s.rule_id,
                    t.project,
                    n.channel,
                    n.webhook_id,
                    n.body,
                    event.at_ns
                ],
            )?;
        }
    }
    Ok(Applied::Done)
}

impl AlertStore for SqliteStore {
    fn save_rule<'a>(&'a self, rule: &'a StoredRule) -> BoxFuture<'a, Result<()>> {
        let r = rule.clone();
        Box::pin(async move {
            self.read(move |c| {
                c.execute(
                    &format!(
                        "INSERT INTO alert_rules ({RULE_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                         ON CONFLICT (id) DO UPDATE SET name = excluded.name,
                             definition = excluded.definition, enabled = excluded.enabled,
                             source = excluded.source, updated_at_ns = excluded.updated_at_ns,
                             deleted_at_ns = NULL"
                    ),
                    params![
                        r.id,
                        r.project,
                        r.name,
                        r.definition,
                        r.enabled,
                        r.source,
                        r.created_at_ns,
                        r.updated_at_ns
                    ],
                )
                .map(|_| ())
            })
            .await
            .map_err(failed)
        })
    }

    fn rules<'a>(&'a self, project: Option<&'a str>) -> BoxFuture<'a, Result<Vec<StoredRule>>> {
        let project = project.map(str::to_owned);
        Box::pin(async move {
            self.read(move |c| {
                let mut stmt = c.prepare(&format!(
                    "SELECT {RULE_COLUMNS} FROM alert_rules
                     WHERE deleted_at_ns IS NULL AND (?1 IS NULL OR project = ?1)
                     ORDER BY created_at_ns, id"
                ))?;
                stmt.query_map([project], rule_from_row)?.collect()
            })
            .await
            .map_err(failed)
        })
    }

    fn delete_rule<'a>(&'a self, id: &'a str, now_ns: i64) -> BoxFuture<'a, Result<bool>> {
        let id = id.to_owned();
        Box::pin(async move {
            self.read(move |c| {
                c.execute(
                    "UPDATE alert_rules SET deleted_at_ns = ?2, enabled = 0
                     WHERE id = ?1 AND deleted_at_ns IS NULL",
                    params![id, now_ns],
                )
                .map(|n| n > 0)
            })
            .await
            .map_err(failed)
        })
    }

    fn series<'a>(&'a self, rule_id: &'a str) -> BoxFuture<'a, Result<Vec<SeriesState>>> {
        let rule_id = rule_id.to_owned();
        Box::pin(async move {
            self.read(move |c| {
                let mut stmt = c.prepare(
                    "SELECT rule_id, series, state, since_ns, notified_ns, value, version
                     FROM alert_series WHERE rule_id = ?1",
                )?;
                stmt.query_map([rule_id], |r| {
                    Ok(SeriesState {
                        rule_id: r.get(0)?,
                        series: r.get(1)?,
                        state: r.get(2)?,
                        since_ns: r.get(3)?,
                        notified_ns: r.get(4)?,
                        value: r.get(5)?,
                        version: r.get(6)?,
                    })
                })?
                .collect()
            })
            .await
            .map_err(failed)
        })
    }

    fn fence(&self) -> BoxFuture<'_, Result<i64>> {
        Box::pin(async move {
            self.read(|c| {
                c.query_row("SELECT token FROM alert_fence WHERE id = 1", [], |r| {
                    r.get(0)
                })
            })
            .await
            .map_err(failed)
        })
    }

    fn apply<'a>(&'a self, token: i64, t: &'a Transition) -> BoxFuture<'a, Result<Applied>> {
        let t = t.clone();
        Box::pin(async move {
            self.read(move |c| in_transaction(c, |tx| apply(tx, token, &t)))
                .await
                .map_err(failed)
        })
    }

    fn due_notifications(
        &self,
        now_ns: i64,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<Notification>>> {
        Box::pin(async move {
            self.read(move |c| {
                let mut stmt = c.prepare(&format!(
                    "SELECT {NOTIFICATION_COLUMNS} FROM alert_notifications n
                     WHERE done_at_ns IS NULL AND next_at_ns <= ?1 AND {IN_ORDER}
                     ORDER BY next_at_ns, id LIMIT ?2"
                ))?;
                stmt.query_map(params![now_ns, limit as i64], notification_from_row)?
                    .collect()
            })
            .await
            .map_err(failed)
        })
    }

    fn claim<'a>(
        &'a self,
        token: i64,
        n: &'a Notification,
        hold_until_ns: i64,
    ) -> BoxFuture<'a, Result<Applied>> {
        let (id, expected) = (n.id, n.next_at_ns);
        Box::pin(async move {
            self.read(move |c| {
                in_transaction(c, |tx| {
                    if !fence_allows(tx, token)? {
                        return Ok(Applied::Fenced);
                    }
                    let n = tx.execute(
                        "UPDATE alert_notifications SET next_at_ns = ?3
                         WHERE id = ?1 AND next_at_ns = ?2 AND done_at_ns IS NULL",
                        params![id, expected, hold_until_ns],
                    )?;
                    Ok(if n == 1 {
                        Applied::Done
                    } else {
                        Applied::Conflict
                    })
                })
            })
            .await
            .map_err(failed)
        })
    }

    fn finish<'a>(
        &'a self,
        token: i64,
        n: &'a Notification,
        a: &'a Attempt,
    ) -> BoxFuture<'a, Result<Applied>> {
        let (n, a) = (n.clone(), a.clone());
        Box::pin(async move {
            self.read(move |c| {
                in_transaction(c, |tx| {
                    if !fence_allows(tx, token)? {
                        return Ok(Applied::Fenced);
                    }
                    let done = a.next_at_ns.is_none().then_some(a.done_at_ns);
                    tx.execute(
                        "UPDATE alert_notifications SET attempts = ?2,
                             next_at_ns = coalesce(?3, next_at_ns), done_at_ns = ?4
                         WHERE id = ?1",
                        params![a.notification, a.attempts, a.next_at_ns, done],
                    )?;
                    let series: Option<String> = tx
                        .query_row(
                            "SELECT series FROM alert_events WHERE id = ?1",
                            [n.event_id],
                            |r| r.get(0),
                        )
                        .optional()?;
                    let series = series.unwrap_or_else(|| "{}".into());
                    insert_event(tx, &n.rule_id, &n.project, &series, token, &a.event)?;
                    Ok(Applied::Done)
                })
            })
            .await
            .map_err(failed)
        })
    }

    fn events<'a>(&'a self, q: &'a EventQuery) -> BoxFuture<'a, Result<Vec<AlertEvent>>> {
        let q = q.clone();
        Box::pin(async move {
            self.read(move |c| {
                let mut stmt = c.prepare(
                    "SELECT id, rule_id, project, series, state, details, fired_at_ns, token
                     FROM alert_events
                     WHERE project = ?1 AND (?2 IS NULL OR rule_id = ?2) AND (?3 IS NULL OR state = ?3)
                       AND fired_at_ns >= coalesce(?4, fired_at_ns)
                       AND fired_at_ns < coalesce(?5, fired_at_ns + 1)
                     ORDER BY fired_at_ns DESC, id DESC LIMIT ?6",
                )?;
                stmt.query_map(
                    params![q.project, q.rule, q.state, q.from_ns, q.to_ns, q.limit as i64],
                    |r| {
                        Ok(AlertEvent {
                            id: r.get(0)?,
                            rule_id: r.get(1)?,
                            project: r.get(2)?,
                            series: r.get(3)?,
                            state: r.get(4)?,
                            details: r.get(5)?,
                            at_ns: r.get(6)?,
                            token: r.get(7)?,
                        })
                    },
                )?
                .collect()
            })
            .await
            .map_err(failed)
        })
    }
}
