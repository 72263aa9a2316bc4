//! What the alert evaluator keeps in the metadata store: rules, each series' state, the
//! transitions and delivery attempts (`alert_events`), and an outbox of notifications.
//!
//! Guarantees, whichever store holds them:
//! - A transition is applied with compare-and-set on the series' version, in one transaction
//!   with its event and its notifications: two evaluators that read the same state cannot both
//!   apply a change from it, and a notification exists exactly when its transition does.
//! - Every write that changes state carries the writer's fence token, and is refused once a
//!   higher token has written: a deposed leader (paused, partitioned) cannot write late.
//! - A notification is claimed (compare-and-set on its due time) before each attempt, so two
//!   deliverers never send the same attempt.

use crate::query::BoxFuture;

use super::Result;

/// A rule as stored; `definition` is the rule's JSON, secrets included (never logged).
#[derive(Clone, PartialEq)]
pub struct StoredRule {
    pub id: String,
    pub project: String,
    pub name: String,
    pub definition: String,
    pub enabled: bool,
    /// `api` (managed through the API and CLI) or `config` (declared in config, read-only).
    pub source: String,
    pub created_at_ns: i64,
    pub updated_at_ns: Option<i64>,
}

impl std::fmt::Debug for StoredRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredRule")
            .field("id", &self.id)
            .field("project", &self.project)
            .field("name", &self.name)
            .field("enabled", &self.enabled)
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

/// One series of a rule (one group's labels) and where it stands.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesState {
    pub rule_id: String,
    /// The group's labels as canonical JSON (`{}` for a rule without `group_by`).
    pub series: String,
    /// `ok`, `pending`, `firing` or `no_data`.
    pub state: String,
    /// When the current state began.
    pub since_ns: i64,
    /// When this state was last notified.
    pub notified_ns: Option<i64>,
    pub value: Option<f64>,
    /// Bumped by every applied change.
    pub version: i64,
}

/// A row to add to `alert_events`.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub state: String,
    /// JSON.
    pub details: String,
    pub at_ns: i64,
}

/// A notification to deliver, written with its transition.
#[derive(Debug, Clone, PartialEq)]
pub struct NewNotification {
    pub channel: i64,
    pub webhook_id: String,
    pub body: String,
}

/// A change to one series, applied only if the series is still at `expected_version`.
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    pub project: String,
    /// The version read; `None` when the series was not stored.
    pub expected_version: Option<i64>,
    /// The series afterwards. A new series is stored with this `version` (the evaluator uses
    /// the time, so a series deleted and created again never reuses a version read before);
    /// an update increments the stored one.
    pub next: SeriesState,
    /// Remove the series instead (an `ok` series whose group has no data any more).
    pub delete: bool,
    pub event: Option<NewEvent>,
    pub notifications: Vec<NewNotification>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    Done,
    /// The series changed since it was read: nothing was written.
    Conflict,
    /// A writer with a higher fence token has written: nothing was written.
    Fenced,
}

/// A notification in the outbox.
#[derive(Debug, Clone, PartialEq)]
pub struct Notification {
    pub id: i64,
    pub event_id: i64,
    pub rule_id: String,
    pub project: String,
    pub channel: i64,
    pub webhook_id: String,
    pub body: String,
    pub attempts: i64,
    pub created_ns: i64,
    pub next_at_ns: i64,
}

/// The outcome of one delivery attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct Attempt {
    pub notification: i64,
    pub attempts: i64,
    /// When to try again; `None` when the notification is done (delivered or given up).
    pub next_at_ns: Option<i64>,
    pub done_at_ns: i64,
    /// The attempt's record in `alert_events`.
    pub event: NewEvent,
}

/// A row of `alert_events`: a transition or a delivery attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertEvent {
    pub id: i64,
    pub rule_id: String,
    pub project: String,
    pub series: String,
    pub state: String,
    pub details: String,
    pub at_ns: i64,
    pub token: i64,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventQuery {
    pub project: String,
    pub rule: Option<String>,
    pub state: Option<String>,
    pub from_ns: Option<i64>,
    pub to_ns: Option<i64>,
    pub limit: usize,
}

pub trait AlertStore: Send + Sync + 'static {
    /// Inserts the rule or replaces the one with its id.
    fn save_rule<'a>(&'a self, rule: &'a StoredRule) -> BoxFuture<'a, Result<()>>;

    /// Rules not deleted, of a project or of all, oldest first.
    fn rules<'a>(&'a self, project: Option<&'a str>) -> BoxFuture<'a, Result<Vec<StoredRule>>>;

    /// Marks a rule deleted (its history stays); `false` when there is no such live rule.
    fn delete_rule<'a>(&'a self, id: &'a str, now_ns: i64) -> BoxFuture<'a, Result<bool>>;

    /// Every stored series of a rule.
    fn series<'a>(&'a self, rule_id: &'a str) -> BoxFuture<'a, Result<Vec<SeriesState>>>;

    /// The highest fence token that has written.
    fn fence(&self) -> BoxFuture<'_, Result<i64>>;

    /// Applies a transition with its event and notifications, in one transaction.
    fn apply<'a>(&'a self, token: i64, t: &'a Transition) -> BoxFuture<'a, Result<Applied>>;

    /// Undelivered notifications due at `now_ns`, oldest first.
    fn due_notifications(
        &self,
        now_ns: i64,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<Notification>>>;

    /// Takes a due notification for one attempt: moves its due time to `hold_until_ns` if it is
    /// still `expected_next_at_ns`. `Conflict` when another deliverer took it.
    fn claim<'a>(
        &'a self,
        token: i64,
        n: &'a Notification,
        hold_until_ns: i64,
    ) -> BoxFuture<'a, Result<Applied>>;

    /// Records an attempt (and its event) and when to try again, if ever.
    fn finish<'a>(
        &'a self,
        token: i64,
        n: &'a Notification,
        a: &'a Attempt,
    ) -> BoxFuture<'a, Result<Applied>>;

    /// Events newest first.
    fn events<'a>(&'a self, q: &'a EventQuery) -> BoxFuture<'a, Result<Vec<AlertEvent>>>;
}
