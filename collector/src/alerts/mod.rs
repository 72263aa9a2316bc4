//! The `alerts` extension: rules in the metadata store (and, read-only, in config), evaluated
//! every `evaluation_interval` over the query store by one collector at a time, with each state
//! change notified through signed webhooks, Slack or Alertmanager.
//!
//! Guarantees:
//! - A transition is written once (compare-and-set on the series, see
//!   [`llmscope_exporters::metadata::alerts`]) with its notifications in the same transaction,
//!   so a transition is never lost between evaluation and delivery, even when the evaluator
//!   dies: the next one delivers what is left.
//! - A notification keeps its `webhook-id` on every attempt; it is delivered at least once while
//!   its receiver answers within `delivery.max_elapsed`, and twice only if an evaluator dies
//!   after the receiver accepted and before the delivery was recorded (receivers deduplicate
//!   by `webhook-id`, as the Standard Webhooks spec asks).
//! - Secrets are write-only: stored with the rule, used to sign, never returned or logged.

pub mod cli;
pub mod eval;
mod evaluator;
mod lease;
pub mod notify;
pub mod rule;

use std::sync::Arc;
use std::time::Duration;

use llmscope_core::config::Secret;
use llmscope_exporters::metadata::MetadataStore;
use llmscope_exporters::metadata::alerts::StoredRule;
use llmscope_exporters::query::QueryStore;
use serde::Deserialize;
use sha2::{Digest, Sha256};

pub use evaluator::{Evaluator, test_rule};
use rule::Rule;

use crate::telemetry::Telemetry;

/// Configuration of the `alerts` extension. Its `Debug` shows how many rules there are, not
/// their content (webhook secrets).
#[derive(Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AlertsConfig {
    /// Id of the exporter whose store keeps rules and their state (`sqlite` or `postgres`).
    /// Default: `sqlite`.
    pub store: String,
    /// Id of the exporter whose store rules are evaluated over. Default: `sqlite`.
    pub query_store: String,
    /// How often every rule is evaluated. Default: `30s`.
    #[serde(with = "llmscope_core::config::duration")]
    pub evaluation_interval: Duration,
    /// Redis shared by the collectors, to elect one evaluator. Default: none (this collector
    /// evaluates alone).
    pub redis_url: Secret,
    /// Prefix of the Redis keys of the lease (`<prefix>:leader`, `<prefix>:token`): collectors
    /// with the same prefix elect one evaluator. Default: `llmscope:alerts`.
    pub lease_key: String,
    /// How long the evaluator's lease lasts without renewal: the longest a dead evaluator's
    /// rules go unevaluated. Default: `15s`.
    #[serde(with = "llmscope_core::config::duration")]
    pub lease_duration: Duration,
    /// Allow webhooks to loopback, private and link-local addresses (SSRF risk). Default: false.
    pub allow_private_targets: bool,
    /// Base URL of this API as users reach it, for the links in notifications.
    /// Default: `http://127.0.0.1:4320`.
    pub public_url: String,
    pub delivery: DeliveryConfig,
    /// Rules declared here, read-only and replaced at each start: a rule as the API takes it,
    /// plus `project` (default `default`).
    pub rules: Vec<serde_json::Value>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DeliveryConfig {
    /// Per attempt. Default: `10s`.
    #[serde(with = "llmscope_core::config::duration")]
    pub timeout: Duration,
    /// First retry delay, doubled per attempt with jitter. Default: `1s`.
    #[serde(with = "llmscope_core::config::duration")]
    pub initial_interval: Duration,
    /// Longest delay between attempts. Default: `5m`.
    #[serde(with = "llmscope_core::config::duration")]
    pub max_interval: Duration,
    /// Give up on a notification this long after its transition. Default: `1h`.
    #[serde(with = "llmscope_core::config::duration")]
    pub max_elapsed: Duration,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(10),
            initial_interval: Duration::from_secs(1),
            max_interval: Duration::from_secs(300),
            max_elapsed: Duration::from_secs(3600),
        }
    }
}

impl Default for AlertsConfig {
    fn default() -> Self {
        Self {
            store: "sqlite".into(),
            query_store: "sqlite".into(),
            evaluation_interval: Duration::from_secs(30),
            redis_url: Secret::default(),
            lease_key: "llmscope:alerts".into(),
            lease_duration: Duration::from_secs(15),
            allow_private_targets: false,
            public_url: "http://127.0.0.1:4320".into(),
            delivery: DeliveryConfig::default(),
            rules: Vec::new(),
        }
    }
}

impl std::fmt::Debug for AlertsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlertsConfig")
            .field("store", &self.store)
            .field("query_store", &self.query_store)
            .field("evaluation_interval", &self.evaluation_interval)
            .field("redis_url", &self.redis_url)
            .field("lease_key", &self.lease_key)
            .field("lease_duration", &self.lease_duration)
            .field("allow_private_targets", &self.allow_private_targets)
            .field("public_url", &self.public_url)
            .field("delivery", &self.delivery)
            .field("rules", &self.rules.len())
            .finish()
    }
}

impl AlertsConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.evaluation_interval < Duration::from_millis(100) {
            return Err("evaluation_interval: must be at least 100ms".into());
        }
        if self.lease_duration < Duration::from_secs(1) {
            return Err("lease_duration: must be at least 1s".into());
        }
        let d = &self.delivery;
        if d.timeout.is_zero()
            || d.initial_interval.is_zero()
            || d.max_interval < d.initial_interval
        {
            return Err("delivery: timeout and initial_interval must be positive, max_interval at least initial_interval".into());
        }
        crate::redis::LazyRedis::open(&self.redis_url, "redis_url")?;
        self.config_rules()?;
        Ok(())
    }

    /// The rules declared in config, checked, with their project.
    pub fn config_rules(&self) -> Result<Vec<(String, Rule)>, String> {
        let mut out = Vec::new();
        for (i, value) in self.rules.iter().enumerate() {
            let mut value = value.clone();
            let project = match value.as_object_mut().and_then(|o| o.remove("project")) {
                None => llmscope_core::DEFAULT_PROJECT.to_owned(),
                Some(serde_json::Value::String(p)) if !p.is_empty() => p,
                Some(_) => return Err(format!("rules[{i}].project: must be a project id")),
            };
            let rule = Rule::from_json(value.to_string().as_bytes())
                .map_err(|e| format!("rules[{i}].{e}"))?;
            if !rule.unsigned_webhooks().is_empty() {
                return Err(format!("rules[{i}].notify: a webhook needs a secret"));
            }
            if out
                .iter()
                .any(|(p, r): &(String, Rule)| *p == project && r.spec.name == rule.spec.name)
            {
                return Err(format!(
                    "rules[{i}].name: {:?} is declared twice in project {project:?}",
                    rule.spec.name
                ));
            }
            out.push((project, rule));
        }
        Ok(out)
    }
}

/// A new id: `alr_` and 16 random hex digits.
pub fn new_id(prefix: &str) -> String {
    let mut bytes = [0u8; 8];
    let _ = getrandom::fill(&mut bytes);
    format!("{prefix}{}", hex::encode(bytes))
}

/// A stable id for what a series is: the rule and its labels.
pub fn webhook_id_for(rule_id: &str, labels: &eval::Labels) -> String {
    let digest = Sha256::digest(format!("{rule_id}|{}", eval::series_key(labels)));
    hex::encode(&digest[..8])
}

pub fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

/// What the API and the CLI use: the stores and the checks of the running extension.
pub struct Alerts {
    pub meta: Arc<dyn MetadataStore>,
    pub query: Arc<dyn QueryStore>,
    pub config: AlertsConfig,
    pub sender: notify::Sender,
    pub telemetry: Telemetry,
    /// Where transitions are streamed live (`kind=alerts`), when the API serves a stream.
    pub stream: Option<Arc<crate::stream::Stream>>,
}

impl Alerts {
    pub fn new(
        meta: Arc<dyn MetadataStore>,
        query: Arc<dyn QueryStore>,
        config: AlertsConfig,
        telemetry: Telemetry,
    ) -> Result<Self, String> {
        let sender = notify::Sender::new(config.allow_private_targets, config.delivery.timeout)?;
        Ok(Self {
            meta,
            query,
            config,
            sender,
            telemetry,
            stream: None,
        })
    }

    /// What a new or changed rule must be beyond its own checks: every webhook signed, and no
    /// target a private address (names are checked again when resolved, at each attempt).
    pub fn check_for_saving(&self, rule: &Rule) -> Result<(), rule::RuleError> {
        if let Some(i) = rule.unsigned_webhooks().first() {
            return Err(rule::RuleError {
                field: format!("notify[{i}].secret"),
                message: "a webhook needs a secret: whsec_ followed by base64 of at least 16 random bytes".into(),
            });
        }
        for (i, c) in rule.spec.notify.iter().enumerate() {
            self.sender
                .check_target(c.url())
                .map_err(|message| rule::RuleError {
                    field: format!("notify[{i}].url"),
                    message,
                })?;
        }
        Ok(())
    }

    /// Stores a new rule of `project` (created if need be), managed through the API and CLI.
    pub async fn create_rule(&self, project: &str, rule: &Rule) -> Result<StoredRule, String> {
        let now = now_ns();
        self.meta
            .ensure_project(project, project, now)
            .await
            .map_err(|e| e.to_string())?;
        let stored = StoredRule {
            id: new_id("alr_"),
            project: project.to_owned(),
            name: rule.spec.name.clone(),
            definition: rule.to_stored(),
            enabled: rule.spec.enabled,
            source: "api".into(),
            created_at_ns: now,
            updated_at_ns: None,
        };
        self.meta
            .save_rule(&stored)
            .await
            .map_err(|e| e.to_string())?;
        Ok(stored)
    }

    /// Stores the config's rules (ids `cfg_` + a hash of project and name) and deletes config
    /// rules no longer declared.
    pub async fn sync_config_rules(&self) -> Result<(), String> {
        let declared = self.config.config_rules()?;
        let now = now_ns();
        let mut ids = Vec::new();
        for (i, (project, rule)) in declared.iter().enumerate() {
            self.check_for_saving(rule)
                .map_err(|e| format!("rules[{i}].{e}"))?;
            self.meta
                .ensure_project(project, project, now)
                .await
                .map_err(|e| e.to_string())?;
            let digest = Sha256::digest(format!("{project}\n{}", rule.spec.name));
            let id = format!("cfg_{}", hex::encode(&digest[..8]));
            let stored = StoredRule {
                id: id.clone(),
                project: project.clone(),
                name: rule.spec.name.clone(),
                definition: rule.to_stored(),
                enabled: rule.spec.enabled,
                source: "config".into(),
                created_at_ns: now,
                updated_at_ns: Some(now),
            };
            self.meta
                .save_rule(&stored)
                .await
                .map_err(|e| e.to_string())?;
            ids.push(id);
        }
        for old in self.meta.rules(None).await.map_err(|e| e.to_string())? {
            if old.source == "config" && !ids.contains(&old.id) {
                self.meta
                    .delete_rule(&old.id, now)
                    .await
                    .map_err(|e| e.to_string())?;
            }
        }
        Ok(())
    }
}
