//! The evaluator worker: while this collector holds the lease, every `evaluation_interval` it
//! evaluates each enabled rule and writes the transitions (`anomalies` rules also within a
//! quarter second of this collector detecting an anomaly); every second it delivers the
//! notifications that are due. Both stop at the first write the store fences off (a newer
//! evaluator exists) and resume when the lease is this collector's again.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use llmscope_exporters::metadata::alerts::{
    Applied, Attempt, NewEvent, NewNotification, Notification, SeriesState, StoredRule, Transition,
};
use serde_json::{Value as J, json};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::eval::{self, Labels};
use super::lease::Lease;
use super::notify::{self, Outcome};
use super::rule::{Metric, Rule};
use super::{Alerts, new_id, now_ns};
use crate::telemetry::metrics;

/// Notifications attempted at once.
const DELIVERY_BATCH: usize = 32;
/// How often due notifications are looked for.
const DELIVERY_POLL: Duration = Duration::from_secs(1);
/// How often this collector's anomaly count is checked, and, after it grew, for how long
/// `anomalies` rules are evaluated at that pace (the events reach the store within it).
const ANOMALY_POLL: Duration = Duration::from_millis(250);
const ANOMALY_BURST: Duration = Duration::from_secs(3);

pub struct Evaluator {
    alerts: Arc<Alerts>,
    lease: Lease,
}

/// Why an evaluation stopped early.
enum Stop {
    Fenced,
    Failed(String),
}

impl Evaluator {
    /// Starts the worker; it stops when `stop` says so, giving up its lease.
    pub async fn start(
        alerts: Arc<Alerts>,
        stop: watch::Receiver<bool>,
    ) -> Result<JoinHandle<()>, String> {
        let config = &alerts.config;
        let lease = match crate::redis::LazyRedis::open(&config.redis_url, "redis_url")? {
            Some(redis) => Lease::shared(
                redis,
                &config.lease_key,
                config.lease_duration,
                Arc::clone(&alerts.meta),
                alerts.telemetry.clone(),
            ),
            None => Lease::Solo {
                token: alerts.meta.fence().await.map_err(|e| e.to_string())?,
            },
        };
        let evaluator = Arc::new(Self { alerts, lease });
        Ok(tokio::spawn(evaluator.run(stop)))
    }

    async fn run(self: Arc<Self>, stop: watch::Receiver<bool>) {
        let mut evaluate = tokio::time::interval(self.alerts.config.evaluation_interval);
        evaluate.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let deliveries = tokio::spawn(Arc::clone(&self).deliver_forever(stop.clone()));
        let mut anomaly_poll = tokio::time::interval(ANOMALY_POLL);
        anomaly_poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut anomalies_seen = self.alerts.telemetry.total(&metrics::ANOMALIES);
        let mut burst_until: Option<tokio::time::Instant> = None;
        let stopping = crate::service::stopped(&stop);
        tokio::pin!(stopping);
        loop {
            tokio::select! {
                _ = &mut stopping => break,
                _ = evaluate.tick() => {
                    if let Some(token) = self.lease.hold().await {
                        self.evaluate_all(token, |_| true).await;
                    }
                }
                _ = anomaly_poll.tick() => {
                    // Anomaly rules do not wait for the next tick when this collector has just
                    // detected anomalies.
                    let now = tokio::time::Instant::now();
                    let count = self.alerts.telemetry.total(&metrics::ANOMALIES);
                    if count != anomalies_seen {
                        anomalies_seen = count;
                        burst_until = Some(now + ANOMALY_BURST);
                    }
                    if burst_until.is_some_and(|until| now < until)
                        && let Some(token) = self.lease.hold().await
                    {
                        self.evaluate_all(token, |r| r.spec.metric == Metric::Anomalies).await;
                    }
                }
            }
        }
        let _ = deliveries.await;
        self.lease.release().await;
    }

    async fn deliver_forever(self: Arc<Self>, stop: watch::Receiver<bool>) {
        let mut poll =
            tokio::time::interval(DELIVERY_POLL.min(self.alerts.config.evaluation_interval));
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let stopping = crate::service::stopped(&stop);
        tokio::pin!(stopping);
        loop {
            tokio::select! {
                _ = &mut stopping => break,
                _ = poll.tick() => {
                    if let Some(token) = self.lease.hold().await {
                        self.deliver_due(token).await;
                    }
                }
            }
        }
    }

    async fn evaluate_all(&self, token: i64, wanted: impl Fn(&Rule) -> bool) {
        let rules = match self.alerts.meta.rules(None).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read alert rules");
                return;
            }
        };
        for stored in rules.iter().filter(|r| r.enabled) {
            let rule = match Rule::from_json(stored.definition.as_bytes()) {
                Ok(r) if r.spec.enabled && wanted(&r) => r,
                Ok(_) => continue,
                Err(e) => {
                    tracing::warn!(rule = %stored.id, error = %e, "stored alert rule does not parse; skipped");
                    continue;
                }
            };
            let result = self.evaluate(token, stored, &rule).await;
            let label = if result.is_ok() { "ok" } else { "error" };
            self.count(&metrics::ALERT_EVALUATIONS, "result", label);
            match result {
                Ok(()) => {}
                Err(Stop::Fenced) => return,
                Err(Stop::Failed(e)) => {
                    tracing::warn!(rule = %stored.id, error = %e, "alert rule evaluation failed")
                }
            }
        }
    }

    async fn evaluate(&self, token: i64, stored: &StoredRule, rule: &Rule) -> Result<(), Stop> {
        let now = now_ns();
        let failed = |e: &dyn std::fmt::Display| Stop::Failed(e.to_string());
        let observed = eval::observe(rule, &stored.project, self.alerts.query.as_ref(), now)
            .await
            .map_err(|e| failed(&e))?;
        let known = self
            .alerts
            .meta
            .series(&stored.id)
            .await
            .map_err(|e| failed(&e))?;
        let mut known: HashMap<String, SeriesState> =
            known.into_iter().map(|s| (s.series.clone(), s)).collect();
        let mut seen = HashSet::new();
        let mut work: Vec<(Labels, Option<f64>)> = Vec::new();
        for (labels, value) in observed {
            seen.insert(eval::series_key(&labels));
            work.push((labels, value));
        }
        // Stored series with no value this time have no data.
        for key in known.keys().filter(|k| !seen.contains(*k)) {
            let labels: Labels = serde_json::from_str(key).unwrap_or_default();
            work.push((labels, None));
        }
        for (labels, value) in work {
            let key = eval::series_key(&labels);
            let prev = known.remove(&key);
            let Some(change) = eval::step(rule, &stored.id, &key, prev.as_ref(), value, now) else {
                continue;
            };
            let transition =
                self.transition(stored, rule, &labels, prev.as_ref(), value, change, now);
            match self.alerts.meta.apply(token, &transition).await {
                Ok(Applied::Done) => {
                    let state = transition.event.as_ref().map_or("ok", |e| e.state.as_str());
                    self.count(&metrics::ALERT_TRANSITIONS, "state", state);
                    self.stream_transition(stored, rule, &labels, &transition, now);
                }
                Ok(Applied::Conflict) => {
                    self.count(&metrics::ALERT_WRITES_REFUSED, "reason", "conflict");
                }
                Ok(Applied::Fenced) => {
                    self.count(&metrics::ALERT_WRITES_REFUSED, "reason", "fenced");
                    tracing::warn!(
                        token,
                        "a newer alert evaluator has written; stopping this one"
                    );
                    return Err(Stop::Fenced);
                }
                Err(e) => return Err(failed(&e)),
            }
        }
        Ok(())
    }

    /// Shows a written transition on the live stream (`kind=alerts`).
    fn stream_transition(
        &self,
        stored: &StoredRule,
        rule: &Rule,
        labels: &Labels,
        t: &Transition,
        now: i64,
    ) {
        let (Some(stream), Some(event)) = (&self.alerts.stream, &t.event) else {
            return;
        };
        let data = json!({
            "rule": {"id": stored.id, "name": rule.spec.name, "metric": rule.spec.metric},
            "series": labels,
            "state": event.state,
            "at": crate::api::rfc3339(now),
            "details": serde_json::from_str::<J>(&event.details).unwrap_or(J::Null),
        });
        let keys: Vec<(&str, Option<&str>)> = labels
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let message = crate::stream::message::Message::alert(data, &keys);
        stream.publish(&stored.project, vec![message]);
    }

    #[allow(clippy::too_many_arguments)]
    fn transition(
        &self,
        stored: &StoredRule,
        rule: &Rule,
        labels: &Labels,
        prev: Option<&SeriesState>,
        value: Option<f64>,
        change: eval::Change,
        now: i64,
    ) -> Transition {
        let key = eval::series_key(labels);
        let spec = &rule.spec;
        let details = json!({
            "value": value,
            "op": spec.op,
            "threshold": spec.threshold,
            "window": spec.window,
            "previous": prev.map_or("ok", |p| p.state.as_str()),
            "notified": change.notify.map(eval::Kind::event_type),
        });
        let mut notifications = Vec::new();
        if let Some(kind) = change.notify {
            let url = format!(
                "{}/api/v1/alerts?rule={}",
                self.alerts.config.public_url.trim_end_matches('/'),
                stored.id
            );
            let message = notify::Message {
                kind,
                rule_id: &stored.id,
                project: &stored.project,
                rule,
                labels,
                value,
                started_ns: change.started_ns,
                at_ns: now,
                url,
            };
            for (i, channel) in spec.notify.iter().enumerate() {
                if channel.disabled() {
                    continue;
                }
                notifications.push(NewNotification {
                    channel: i as i64,
                    webhook_id: new_id("msg_"),
                    body: notify::body(channel, &message),
                });
            }
        }
        let delete = change.next.is_none();
        let next = change.next.unwrap_or_else(|| SeriesState {
            rule_id: stored.id.clone(),
            series: key,
            state: "ok".into(),
            since_ns: now,
            notified_ns: None,
            value,
            version: now,
        });
        Transition {
            project: stored.project.clone(),
            expected_version: prev.map(|p| p.version),
            next,
            delete,
            event: Some(NewEvent {
                state: change.recorded.to_owned(),
                details: details.to_string(),
                at_ns: now,
            }),
            notifications,
        }
    }

    async fn deliver_due(&self, token: i64) {
        let due = match self
            .alerts
            .meta
            .due_notifications(now_ns(), DELIVERY_BATCH)
            .await
        {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read due notifications");
                return;
            }
        };
        if due.is_empty() {
            return;
        }
        // The rules once for the whole batch, not once per notification.
        let rules: HashMap<String, StoredRule> = match self.alerts.meta.rules(None).await {
            Ok(rules) => rules.into_iter().map(|r| (r.id.clone(), r)).collect(),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the notifications' rules");
                return;
            }
        };
        let attempts = due
            .iter()
            .map(|n| self.attempt(token, n, rules.get(&n.rule_id)));
        futures_util::future::join_all(attempts).await;
    }

    /// One attempt at one notification of `rule` (`None`: deleted), recorded.
    async fn attempt(&self, token: i64, n: &Notification, rule: Option<&StoredRule>) {
        let config = &self.alerts.config.delivery;
        let meta = &self.alerts.meta;
        let hold = now_ns() + nanos(config.timeout + Duration::from_secs(5));
        if !matches!(meta.claim(token, n, hold).await, Ok(Applied::Done)) {
            return;
        }
        let parsed = rule
            .as_ref()
            .and_then(|r| Rule::from_json(r.definition.as_bytes()).ok());
        let channel = parsed.as_ref().and_then(|r| {
            r.spec
                .notify
                .get(usize::try_from(n.channel).unwrap_or(usize::MAX))
        });
        let now = now_ns();
        let outcome = match channel {
            Some(c) if !c.disabled() => {
                self.alerts
                    .sender
                    .send(c, &n.webhook_id, &n.body, now / 1_000_000_000)
                    .await
            }
            _ => Outcome::Failed {
                status: None,
                error: "the rule or its channel was deleted or disabled".into(),
            },
        };
        let done = now_ns();
        let attempts = n.attempts + 1;
        let mut record = json!({
            "notification": n.id,
            "transition": n.event_id,
            "channel": n.channel,
            "webhook_id": n.webhook_id,
            "attempt": attempts,
        });
        let (state, next_at_ns) = match &outcome {
            Outcome::Delivered(status) => {
                record["status"] = json!(status);
                ("delivered", None)
            }
            Outcome::Gone => {
                record["status"] = json!(410);
                if let (Some(stored), Some(mut rule)) = (rule.cloned(), parsed.clone()) {
                    self.disable_channel(stored, &mut rule, n.channel).await;
                }
                ("channel_disabled", None)
            }
            Outcome::Failed { status, error } => {
                record["status"] = json!(status);
                record["error"] = J::String(error.clone());
                ("delivery_failed", None)
            }
            Outcome::Refused(reason) => {
                record["error"] = J::String(reason.clone());
                ("delivery_refused", None)
            }
            Outcome::Retry {
                status,
                error,
                retry_after,
            } => {
                record["status"] = json!(status);
                record["error"] = J::String(error.clone());
                let delay = backoff(config, attempts).max(retry_after.unwrap_or_default());
                if done + nanos(delay) - n.created_ns > nanos(config.max_elapsed) {
                    record["gave_up"] = J::Bool(true);
                    ("delivery_failed", None)
                } else {
                    record["next_attempt_at"] = J::String(crate::api::rfc3339(done + nanos(delay)));
                    ("delivery_retry", Some(done + nanos(delay)))
                }
            }
        };
        let outcome_label = match state {
            "delivered" => "delivered",
            "delivery_retry" => "retry",
            "channel_disabled" => "disabled",
            "delivery_refused" => "refused",
            _ => "failed",
        };
        self.count(&metrics::ALERT_DELIVERIES, "outcome", outcome_label);
        if state != "delivered" {
            tracing::warn!(rule = %n.rule_id, channel = n.channel, attempt = attempts, outcome = state, detail = %record["error"], "alert notification not delivered");
        }
        let attempt = Attempt {
            notification: n.id,
            attempts,
            next_at_ns,
            done_at_ns: done,
            event: NewEvent {
                state: state.to_owned(),
                details: record.to_string(),
                at_ns: done,
            },
        };
        if let Err(e) = meta.finish(token, n, &attempt).await {
            tracing::warn!(error = %e, "cannot record a notification attempt");
        }
    }

    /// 410 Gone: the channel is off until the rule is saved again.
    async fn disable_channel(&self, mut stored: StoredRule, rule: &mut Rule, channel: i64) {
        let Some(c) = rule
            .spec
            .notify
            .get_mut(usize::try_from(channel).unwrap_or(usize::MAX))
        else {
            return;
        };
        c.disable();
        stored.definition = rule.to_stored();
        stored.updated_at_ns = Some(now_ns());
        if let Err(e) = self.alerts.meta.save_rule(&stored).await {
            tracing::warn!(error = %e, "cannot disable a gone channel");
        }
    }

    fn count(&self, metric: &'static crate::telemetry::Metric, label: &str, value: &str) {
        self.alerts
            .telemetry
            .counter(metric, &[(label, value)])
            .add(1);
    }
}

fn nanos(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

/// `initial * 2^(attempt-1)`, at most `max_interval`, with full jitter over its upper half.
fn backoff(config: &super::DeliveryConfig, attempt: i64) -> Duration {
    let exp = u32::try_from(attempt.saturating_sub(1).clamp(0, 20)).unwrap_or(20);
    let base = config
        .initial_interval
        .saturating_mul(2u32.saturating_pow(exp))
        .min(config.max_interval);
    let mut r = [0u8; 8];
    let _ = getrandom::fill(&mut r);
    let fraction = u64::from_le_bytes(r) as f64 / u64::MAX as f64;
    base.mul_f64(0.5 + 0.5 * fraction)
}

/// A dry run of a rule: each series' value now and whether its condition holds; nothing is
/// written or sent.
pub async fn test_rule(alerts: &Alerts, stored: &StoredRule) -> Result<J, String> {
    let rule = Rule::from_json(stored.definition.as_bytes()).map_err(|e| e.to_string())?;
    let now = now_ns();
    let observed = eval::observe(&rule, &stored.project, alerts.query.as_ref(), now)
        .await
        .map_err(|e| e.to_string())?;
    let known = alerts
        .meta
        .series(&stored.id)
        .await
        .map_err(|e| e.to_string())?;
    let series: Vec<J> = observed
        .into_iter()
        .map(|(labels, value)| {
            let key = eval::series_key(&labels);
            let state = known
                .iter()
                .find(|s| s.series == key)
                .map_or("ok", |s| s.state.as_str());
            json!({
                "series": labels,
                "value": value,
                "condition": value.map(|v| rule.spec.op.holds(v, rule.spec.threshold)),
                "state": state,
            })
        })
        .collect();
    Ok(json!({"rule": stored.id, "evaluated_at": crate::api::rfc3339(now), "series": series}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_up_to_the_cap() {
        let config = super::super::DeliveryConfig {
            initial_interval: Duration::from_secs(1),
            max_interval: Duration::from_secs(10),
            ..Default::default()
        };
        for (attempt, full) in [(1, 1.0), (2, 2.0), (3, 4.0), (5, 10.0), (30, 10.0)] {
            let d = backoff(&config, attempt).as_secs_f64();
            assert!(d >= full / 2.0 && d <= full, "attempt {attempt}: {d}");
        }
    }
}
