//! [`AlertStore`] on PostgreSQL: each change in one transaction whose first statement raises
//! the fence row, which also serializes concurrent writers on that row.

use deadpool_postgres::Transaction;
use tokio_postgres::Row;

use super::alerts::{
    AlertEvent, AlertStore, Applied, Attempt, EventQuery, NewEvent, Notification, SeriesState,
    StoredRule, Transition,
};
use super::alerts_sqlite::IN_ORDER;
use super::{MetadataError, Result};
use crate::postgres::{PostgresError, PostgresStore};
use crate::query::BoxFuture;

const RULE_COLUMNS: &str =
    "id, project, name, definition::text, enabled, source, created_at_ns, updated_at_ns";

fn rule_from_row(r: &Row) -> StoredRule {
    StoredRule {
        id: r.get(0),
        project: r.get(1),
        name: r.get(2),
        definition: r.get(3),
        enabled: r.get(4),
        source: r.get(5),
        created_at_ns: r.get(6),
        updated_at_ns: r.get(7),
    }
}

const NOTIFICATION_COLUMNS: &str =
    "id, event_id, rule_id, project, channel, webhook_id, body, attempts, created_ns, next_at_ns";

fn notification_from_row(r: &Row) -> Notification {
    Notification {
        id: r.get(0),
        event_id: r.get(1),
        rule_id: r.get(2),
        project: r.get(3),
        channel: r.get(4),
        webhook_id: r.get(5),
        body: r.get(6),
        attempts: r.get(7),
        created_ns: r.get(8),
        next_at_ns: r.get(9),
    }
}

fn failed(e: impl Into<PostgresError>) -> MetadataError {
    MetadataError(e.into().message)
}

async fn fence_allows(tx: &Transaction<'_>, token: i64) -> Result<bool> {
    tx.execute(
        "UPDATE alert_fence SET token = $1 WHERE id = 1 AND token <= $1",
        &[&token],
    )
    .await
    .map(|n| n == 1)
    .map_err(failed)
}

async fn insert_event(
    tx: &Transaction<'_>,
    (rule_id, project, series): (&str, &str, &str),
    token: i64,
    e: &NewEvent,
) -> Result<i64> {
    tx.query_one(
        "INSERT INTO alert_events (rule_id, project, state, details, fired_at_ns, series, token)
         VALUES ($1, $2, $3, CAST($4::text AS jsonb), $5, $6, $7) RETURNING id",
        &[
            &rule_id, &project, &e.state, &e.details, &e.at_ns, &series, &token,
        ],
    )
    .await
    .map(|r| r.get(0))
    .map_err(failed)
}

async fn apply(tx: &Transaction<'_>, token: i64, t: &Transition) -> Result<Applied> {
    if !fence_allows(tx, token).await? {
        return Ok(Applied::Fenced);
    }
    let s = &t.next;
    let changed = match (t.expected_version, t.delete) {
        (None, true) => Ok(1),
        (None, false) => {
            tx.execute(
                "INSERT INTO alert_series (rule_id, series, state, since_ns, notified_ns, value, version)
                 VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (rule_id, series) DO NOTHING",
                &[&s.rule_id, &s.series, &s.state, &s.since_ns, &s.notified_ns, &s.value, &s.version],
            )
            .await
        }
        (Some(v), true) => {
            tx.execute(
                "DELETE FROM alert_series WHERE rule_id = $1 AND series = $2 AND version = $3",
                &[&s.rule_id, &s.series, &v],
            )
            .await
        }
        (Some(v), false) => {
            tx.execute(
                "UPDATE alert_series SET state = $3, since_ns = $4, notified_ns = $5, value = $6,
                     version = version + 1
                 WHERE rule_id = $1 AND series = $2 AND version = $7",
                &[&s.rule_id, &s.series, &s.state, &s.since_ns, &s.notified_ns, &s.value, &v],
            )
            .await
        }
    }
    .map_err(failed)?;
    if changed != 1 {
        return Ok(Applied::Conflict);
    }
    if let Some(event) = &t.event {
        let key = (s.rule_id.as_str(), t.project.as_str(), s.series.as_str());
        let event_id = insert_event(tx, key, token, event).await?;
        for n in &t.notifications {
            tx.execute(
                "INSERT INTO alert_notifications
                     (event_id, rule_id, project, channel, webhook_id, body, created_ns, next_at_ns)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $7)",
                &[
                    &event_id,
                    &s.rule_id,
                    &t.project,
                    &n.channel,
                    &n.webhook_id,
                    &n.body,
                    &event.at_ns,
                ],
            )
            .await
            .map_err(failed)?;
        }
    }
    Ok(Applied::Done)
}

/// Commits when the change was applied; otherwise the transaction rolls back on drop.
async fn commit_if_done(tx: Transaction<'_>, applied: Applied) -> Result<Applied> {
    if applied == Applied::Done {
        tx.commit().await.map_err(failed)?;
    }
    Ok(applied)
}

async fn claim(tx: &Transaction<'_>, token: i64, n: &Notification, hold: i64) -> Result<Applied> {
    if !fence_allows(tx, token).await? {
        return Ok(Applied::Fenced);
    }
    let changed = tx
        .execute(
            "UPDATE alert_notifications SET next_at_ns = $3
             WHERE id = $1 AND next_at_ns = $2 AND done_at_ns IS NULL",
            &[&n.id, &n.next_at_ns, &hold],
        )
        .await
        .map_err(failed)?;
    Ok(if changed == 1 {
        Applied::Done
    } else {
        Applied::Conflict
    })
}

async fn finish(
    tx: &Transaction<'_>,
    token: i64,
    n: &Notification,
    a: &Attempt,
) -> Result<Applied> {
    if !fence_allows(tx, token).await? {
        return Ok(Applied::Fenced);
    }
    let done = a.next_at_ns.is_none().then_some(a.done_at_ns);
    tx.execute(
        "UPDATE alert_notifications SET attempts = $2,
             next_at_ns = coalesce($3, next_at_ns), done_at_ns = $4
         WHERE id = $1",
        &[&a.notification, &a.attempts, &a.next_at_ns, &done],
    )
    .await
    .map_err(failed)?;
    let series: String = tx
        .query_opt(
            "SELECT series FROM alert_events WHERE id = $1",
            &[&n.event_id],
        )
        .await
        .map_err(failed)?
        .map_or_else(|| "{}".into(), |r| r.get(0));
    let key = (n.rule_id.as_str(), n.project.as_str(), series.as_str());
    insert_event(tx, key, token, &a.event).await?;
    Ok(Applied::Done)
}

impl AlertStore for PostgresStore {
    fn save_rule<'a>(&'a self, r: &'a StoredRule) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            self.client()
                .await?
                .execute(
                    "INSERT INTO alert_rules
                         (id, project, name, definition, enabled, source, created_at_ns, updated_at_ns)
                     VALUES ($1, $2, $3, CAST($4::text AS jsonb), $5, $6, $7, $8)
                     ON CONFLICT (id) DO UPDATE SET name = excluded.name,
                         definition = excluded.definition, enabled = excluded.enabled,
                         source = excluded.source, updated_at_ns = excluded.updated_at_ns,
                         deleted_at_ns = NULL",
                    &[
                        &r.id,
                        &r.project,
                        &r.name,
                        &r.definition,
                        &r.enabled,
                        &r.source,
                        &r.created_at_ns,
                        &r.updated_at_ns,
                    ],
                )
                .await
                .map(|_| ())
                .map_err(failed)
        })
    }

    fn rules<'a>(&'a self, project: Option<&'a str>) -> BoxFuture<'a, Result<Vec<StoredRule>>> {
        Box::pin(async move {
            let rows = self
                .client()
                .await?
                .query(
                    &format!(
                        "SELECT {RULE_COLUMNS} FROM alert_rules
                         WHERE deleted_at_ns IS NULL AND ($1::text IS NULL OR project = $1)
                         ORDER BY created_at_ns, id"
                    ),
                    &[&project],
                )
                .await
                .map_err(failed)?;
            Ok(rows.iter().map(rule_from_row).collect())
        })
    }

    fn delete_rule<'a>(&'a self, id: &'a str, now_ns: i64) -> BoxFuture<'a, Result<bool>> {
        Box::pin(async move {
            self.client()
                .await?
                .execute(
                    "UPDATE alert_rules SET deleted_at_ns = $2, enabled = false
                     WHERE id = $1 AND deleted_at_ns IS NULL",
                    &[&id, &now_ns],
                )
                .await
                .map(|n| n > 0)
                .map_err(failed)
        })
    }

    fn series<'a>(&'a self, rule_id: &'a str) -> BoxFuture<'a, Result<Vec<SeriesState>>> {
        Box::pin(async move {
            let rows = self
                .client()
                .await?
                .query(
                    "SELECT rule_id, series, state, since_ns, notified_ns, value, version
                     FROM alert_series WHERE rule_id = $1",
                    &[&rule_id],
                )
                .await
                .map_err(failed)?;
            Ok(rows
                .iter()
                .map(|r| SeriesState {
                    rule_id: r.get(0),
                    series: r.get(1),
                    state: r.get(2),
                    since_ns: r.get(3),
                    notified_ns: r.get(4),
                    value: r.get(5),
                    version: r.get(6),
                })
                .collect())
        })
    }

    fn fence(&self) -> BoxFuture<'_, Result<i64>> {
        Box::pin(async move {
            self.client()
                .await?
                .query_one("SELECT token FROM alert_fence WHERE id = 1", &[])
                .await
                .map(|r| r.get(0))
                .map_err(failed)
        })
    }

    fn apply<'a>(&'a self, token: i64, t: &'a Transition) -> BoxFuture<'a, Result<Applied>> {
        Box::pin(async move {
            let mut client = self.client().await?;
            let tx = client.transaction().await.map_err(failed)?;
            let applied = apply(&tx, token, t).await?;
            commit_if_done(tx, applied).await
        })
    }

    fn due_notifications(
        &self,
        now_ns: i64,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<Notification>>> {
        Box::pin(async move {
            let limit = limit as i64;
            let rows = self
                .client()
                .await?
                .query(
                    &format!(
                        "SELECT {NOTIFICATION_COLUMNS} FROM alert_notifications n
                         WHERE done_at_ns IS NULL AND next_at_ns <= $1 AND {IN_ORDER}
                         ORDER BY next_at_ns, id LIMIT $2"
                    ),
                    &[&now_ns, &limit],
                )
                .await
                .map_err(failed)?;
            Ok(rows.iter().map(notification_from_row).collect())
        })
    }

    fn claim<'a>(
        &'a self,
        token: i64,
        n: &'a Notification,
        hold_until_ns: i64,
    ) -> BoxFuture<'a, Result<Applied>> {
        Box::pin(async move {
            let mut client = self.client().await?;
            let tx = client.transaction().await.map_err(failed)?;
            let applied = claim(&tx, token, n, hold_until_ns).await?;
            commit_if_done(tx, applied).await
        })
    }

    fn finish<'a>(
        &'a self,
        token: i64,
        n: &'a Notification,
        a: &'a Attempt,
    ) -> BoxFuture<'a, Result<Applied>> {
        Box::pin(async move {
            let mut client = self.client().await?;
            let tx = client.transaction().await.map_err(failed)?;
            let applied = finish(&tx, token, n, a).await?;
            commit_if_done(tx, applied).await
        })
    }

    fn events<'a>(&'a self, q: &'a EventQuery) -> BoxFuture<'a, Result<Vec<AlertEvent>>> {
        Box::pin(async move {
            let limit = q.limit as i64;
            let rows = self
                .client()
                .await?
                .query(
                    "SELECT id, rule_id, project, series, state, details::text, fired_at_ns, token
                     FROM alert_events
                     WHERE project = $1 AND ($2::text IS NULL OR rule_id = $2)
                       AND ($3::text IS NULL OR state = $3)
                       AND ($4::bigint IS NULL OR fired_at_ns >= $4)
                       AND ($5::bigint IS NULL OR fired_at_ns < $5)
                     ORDER BY fired_at_ns DESC, id DESC LIMIT $6",
                    &[&q.project, &q.rule, &q.state, &q.from_ns, &q.to_ns, &limit],
                )
                .await
                .map_err(failed)?;
            Ok(rows
                .iter()
                .map(|r| AlertEvent {
                    id: r.get(0),
                    rule_id: r.get(1),
                    project: r.get(2),
                    series: r.get(3),
                    state: r.get(4),
                    details: r.get(5),
                    at_ns: r.get(6),
                    token: r.get(7),
                })
                .collect())
        })
    }
}
