//! Alert rules: the JSON (or YAML) a user writes, checked field by field into a [`Rule`] the
//! evaluator runs. A rule's webhook secrets are stored with it and never shown again: the API's
//! view of a rule says only whether each channel has one.

use std::time::Duration;

use llmscope_core::config::Secret;
use llmscope_exporters::query::GroupBy;
use serde::{Deserialize, Serialize, Serializer};
use serde_json::{Value as J, json};

/// Longest window a rule may look back over.
const MAX_WINDOW: Duration = Duration::from_secs(31 * 24 * 3600);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    Requests,
    Errors,
    ErrorRate,
    CostUsd,
    InputTokens,
    OutputTokens,
    TotalTokens,
    LatencyP50Ms,
    LatencyP95Ms,
    LatencyP99Ms,
    Anomalies,
}

impl Metric {
    /// Counts, whose absence means zero (unlike a rate or a percentile, which has no value
    /// without requests).
    pub fn is_count(self) -> bool {
        !matches!(
            self,
            Metric::ErrorRate | Metric::LatencyP50Ms | Metric::LatencyP95Ms | Metric::LatencyP99Ms
        )
    }

    pub fn is_latency(self) -> bool {
        matches!(
            self,
            Metric::LatencyP50Ms | Metric::LatencyP95Ms | Metric::LatencyP99Ms
        )
    }

    pub fn name(self) -> String {
        serde_json::to_value(self)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    #[serde(rename = ">")]
    Gt,
    #[serde(rename = ">=")]
    Ge,
    #[serde(rename = "<")]
    Lt,
    #[serde(rename = "<=")]
    Le,
}

impl Op {
    pub fn holds(self, value: f64, threshold: f64) -> bool {
        match self {
            Op::Gt => value > threshold,
            Op::Ge => value >= threshold,
            Op::Lt => value < threshold,
            Op::Le => value <= threshold,
        }
    }

    pub fn symbol(self) -> &'static str {
        match self {
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Lt => "<",
            Op::Le => "<=",
        }
    }
}

/// What a series with no data becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoData {
    /// Recovers (a firing series resolves).
    #[default]
    Ok,
    /// Alerts, with an `alert.no_data` notification.
    Alerting,
    /// Stays as it was.
    Keep,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleFilter {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
    /// Anomaly kind (`latency`, `cost`, ...), for `anomalies` rules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

fn expose<S: Serializer>(secret: &Option<Secret>, s: S) -> Result<S::Ok, S::Error> {
    match secret {
        Some(v) => s.serialize_some(v.expose()),
        None => s.serialize_none(),
    }
}

/// Where notifications go.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Channel {
    /// JSON signed per the Standard Webhooks spec with `secret` (`whsec_<base64>`).
    Webhook {
        url: String,
        #[serde(
            default,
            serialize_with = "expose",
            skip_serializing_if = "Option::is_none"
        )]
        secret: Option<Secret>,
        /// Set when the receiver answered 410 Gone.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        disabled: bool,
    },
    /// A Slack incoming webhook.
    Slack {
        url: String,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        disabled: bool,
    },
    /// Prometheus Alertmanager's webhook shape (`version: "4"`).
    Alertmanager {
        url: String,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        disabled: bool,
    },
}

impl Channel {
    pub fn url(&self) -> &str {
        match self {
            Channel::Webhook { url, .. }
            | Channel::Slack { url, .. }
            | Channel::Alertmanager { url, .. } => url,
        }
    }

    pub fn disabled(&self) -> bool {
        match self {
            Channel::Webhook { disabled, .. }
            | Channel::Slack { disabled, .. }
            | Channel::Alertmanager { disabled, .. } => *disabled,
        }
    }

    pub fn disable(&mut self) {
        match self {
            Channel::Webhook { disabled, .. }
            | Channel::Slack { disabled, .. }
            | Channel::Alertmanager { disabled, .. } => *disabled = true,
        }
    }

    /// The signing key: the base64 after `whsec_`.
    pub fn signing_key(&self) -> Option<Vec<u8>> {
        use base64::Engine as _;
        let Channel::Webhook {
            secret: Some(s), ..
        } = self
        else {
            return None;
        };
        let text = s.expose().strip_prefix("whsec_").unwrap_or(s.expose());
        base64::engine::general_purpose::STANDARD.decode(text).ok()
    }

    /// The URL as the API shows it: without its query (tokens often ride there), and for
    /// Slack without its path (the path is the credential).
    pub fn masked_url(&self) -> String {
        let url = self.url();
        let Ok(uri) = url.parse::<hyper::Uri>() else {
            return "(invalid)".into();
        };
        let origin = format!(
            "{}://{}",
            uri.scheme_str().unwrap_or("http"),
            uri.authority()
                .map_or("", |a| a.as_str())
                .rsplit('@')
                .next()
                .unwrap_or("")
        );
        match self {
            Channel::Slack { .. } => format!("{origin}/…"),
            _ if uri.query().is_some() => format!("{origin}{}?…", uri.path()),
            _ => format!("{origin}{}", uri.path()),
        }
    }

    fn set_url(&mut self, to: String) {
        match self {
            Channel::Webhook { url, .. }
            | Channel::Slack { url, .. }
            | Channel::Alertmanager { url, .. } => *url = to,
        }
    }

    /// The channel as the API shows it: the secret only as `secret_set`, the URL masked.
    fn view(&self) -> J {
        let mut v = serde_json::to_value(self).unwrap_or(J::Null);
        if let Some(o) = v.as_object_mut() {
            let had = o.remove("secret").is_some();
            if matches!(self, Channel::Webhook { .. }) {
                o.insert("secret_set".into(), J::Bool(had));
            }
            o.insert("url".into(), J::String(self.masked_url()));
        }
        v
    }
}

/// A rule as written. Stored as this JSON (secrets included).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    pub name: String,
    pub metric: Metric,
    #[serde(default)]
    pub filter: RuleFilter,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub group_by: Vec<String>,
    pub window: String,
    pub op: Op,
    pub threshold: f64,
    #[serde(rename = "for", default = "zero", skip_serializing_if = "is_zero")]
    pub for_: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renotify: Option<String>,
    #[serde(default)]
    pub no_data: NoData,
    #[serde(default)]
    pub notify: Vec<Channel>,
    #[serde(default = "yes")]
    pub enabled: bool,
}

fn zero() -> String {
    "0s".into()
}
fn is_zero(s: &str) -> bool {
    s == "0s"
}
fn yes() -> bool {
    true
}

impl RuleSpec {
    /// An update carries what the API showed: a masked URL stands for the stored one it masks
    /// (same type), and a webhook without a secret keeps the stored secret of its URL.
    pub fn restore_from(&mut self, old: &RuleSpec) {
        for channel in &mut self.notify {
            let same_kind =
                |c: &&Channel| std::mem::discriminant(*c) == std::mem::discriminant(channel);
            let unmasked = old
                .notify
                .iter()
                .filter(same_kind)
                .find(|c| c.masked_url() == channel.url() && c.url() != channel.url())
                .map(|c| c.url().to_owned());
            if let Some(url) = unmasked {
                channel.set_url(url);
            }
            if let Channel::Webhook {
                url, secret: None, ..
            } = channel
            {
                let kept = old.notify.iter().find_map(|c| match c {
                    Channel::Webhook {
                        url: u,
                        secret: Some(s),
                        ..
                    } if u == url => Some(s.clone()),
                    _ => None,
                });
                if let Channel::Webhook { secret, .. } = channel {
                    *secret = kept;
                }
            }
        }
    }
}

/// What a rule's `group_by` or filter asks the store to group by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dimension {
    Summary(GroupBy),
    /// Anomaly kind (only for `anomalies`).
    Kind,
}

impl Dimension {
    pub fn name(self) -> &'static str {
        match self {
            Dimension::Summary(g) => g.name(),
            Dimension::Kind => "kind",
        }
    }
}

/// A checked rule, ready to evaluate.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub spec: RuleSpec,
    pub window: Duration,
    pub for_: Duration,
    pub renotify: Option<Duration>,
    /// The rule's one `group_by` dimension, if any.
    pub group_by: Option<Dimension>,
}

/// A problem with a rule: the field (a JSON path) and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct RuleError {
    pub field: String,
    pub message: String,
}

fn bad(field: &str, message: impl Into<String>) -> RuleError {
    RuleError {
        field: field.to_owned(),
        message: message.into(),
    }
}

fn duration(field: &str, text: &str) -> Result<Duration, RuleError> {
    if text.trim_start().starts_with('-') {
        return Err(bad(field, "must not be negative"));
    }
    llmscope_core::config::parse(text).map_err(|e| bad(field, e))
}

impl Rule {
    /// Parses and checks a rule from JSON, naming the field of the first problem.
    pub fn from_json(body: &[u8]) -> Result<Self, RuleError> {
        Self::check(Self::parse(body)?)
    }

    /// Parses a rule's JSON without checking its values.
    pub fn parse(body: &[u8]) -> Result<RuleSpec, RuleError> {
        let de = &mut serde_json::Deserializer::from_slice(body);
        serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            let field = if path == "." { "rule".into() } else { path };
            // serde's messages name the expected shape, never a secret's value.
            let message = e.into_inner().to_string();
            RuleError { field, message }
        })
    }

    pub fn check(spec: RuleSpec) -> Result<Self, RuleError> {
        if spec.name.trim().is_empty() || spec.name.len() > 128 {
            return Err(bad("name", "must be 1 to 128 characters"));
        }
        let window = duration("window", &spec.window)?;
        if window.is_zero() || window > MAX_WINDOW {
            return Err(bad("window", "must be more than 0s and at most 31 days"));
        }
        let for_ = duration("for", &spec.for_)?;
        let renotify = match &spec.renotify {
            Some(t) => {
                let d = duration("renotify", t)?;
                if d < Duration::from_secs(1) {
                    return Err(bad("renotify", "must be at least 1s"));
                }
                Some(d)
            }
            None => None,
        };
        if !spec.threshold.is_finite() {
            return Err(bad("threshold", "must be a finite number"));
        }
        let group_by = match spec.group_by.as_slice() {
            [] => None,
            [one] => Some(dimension(spec.metric, one)?),
            _ => {
                return Err(bad(
                    "group_by",
                    "group by one dimension (several at once are not supported yet)",
                ));
            }
        };
        check_filter(&spec, group_by)?;
        for (i, channel) in spec.notify.iter().enumerate() {
            check_channel(i, channel)?;
        }
        let rule = Self {
            spec,
            window,
            for_,
            renotify,
            group_by,
        };
        if rule.spec.metric.is_latency() && rule.dimension().is_none() {
            return Err(bad(
                "group_by",
                "latency percentiles are kept per group: group by a dimension or filter on one \
                 (service, model, provider, operation, user or session)",
            ));
        }
        Ok(rule)
    }

    /// The dimension the store groups by: `group_by`, else the one dimension the filter pins (so
    /// the answer is one group and percentiles stay exact), else none.
    pub fn dimension(&self) -> Option<Dimension> {
        if self.group_by.is_some() {
            return self.group_by;
        }
        let f = &self.spec.filter;
        if self.spec.metric == Metric::Anomalies {
            return f.kind.as_ref().map(|_| Dimension::Kind);
        }
        [
            (&f.user, GroupBy::User),
            (&f.session, GroupBy::Session),
            (&f.operation, GroupBy::Operation),
            (&f.service, GroupBy::Service),
            (&f.provider, GroupBy::Provider),
            (&f.model, GroupBy::Model),
        ]
        .into_iter()
        .find(|(v, _)| v.is_some())
        .map(|(_, g)| Dimension::Summary(g))
    }

    /// The rule as the API shows it: secrets replaced by `secret_set`.
    pub fn view(&self) -> J {
        let mut v = serde_json::to_value(&self.spec).unwrap_or(J::Null);
        v["notify"] = J::Array(self.spec.notify.iter().map(Channel::view).collect());
        v
    }

    /// The stored JSON (secrets included).
    pub fn to_stored(&self) -> String {
        serde_json::to_string(&self.spec).unwrap_or_else(|_| json!({}).to_string())
    }

    /// Webhooks without a secret: their index.
    pub fn unsigned_webhooks(&self) -> Vec<usize> {
        self.spec
            .notify
            .iter()
            .enumerate()
            .filter(|(_, c)| matches!(c, Channel::Webhook { secret: None, .. }))
            .map(|(i, _)| i)
            .collect()
    }
}

fn dimension(metric: Metric, name: &str) -> Result<Dimension, RuleError> {
    if metric == Metric::Anomalies {
        return match name {
            "kind" => Ok(Dimension::Kind),
            "service" => Ok(Dimension::Summary(GroupBy::Service)),
            "model" => Ok(Dimension::Summary(GroupBy::Model)),
            _ => Err(bad(
                "group_by[0]",
                format!("anomalies group by kind, service or model, not {name:?}"),
            )),
        };
    }
    GroupBy::parse(name).map(Dimension::Summary).ok_or_else(|| {
        bad(
            "group_by[0]",
            format!(
                "unknown dimension {name:?}; one of model, provider, service, operation, user, session"
            ),
        )
    })
}

/// The filters the store cannot apply itself (operation, user, session) are applied by picking
/// the one group of that dimension, so they need the rule's dimension to be theirs.
fn check_filter(spec: &RuleSpec, group_by: Option<Dimension>) -> Result<(), RuleError> {
    let f = &spec.filter;
    if spec.metric == Metric::Anomalies {
        for (name, v) in [
            ("provider", &f.provider),
            ("operation", &f.operation),
            ("user", &f.user),
            ("session", &f.session),
        ] {
            if v.is_some() {
                return Err(bad(
                    &format!("filter.{name}"),
                    "anomalies filter by kind, service and model",
                ));
            }
        }
        return Ok(());
    }
    if f.kind.is_some() {
        return Err(bad("filter.kind", "only anomalies rules filter by kind"));
    }
    let picked: Vec<(&str, GroupBy)> = [
        ("operation", &f.operation, GroupBy::Operation),
        ("user", &f.user, GroupBy::User),
        ("session", &f.session, GroupBy::Session),
    ]
    .into_iter()
    .filter(|(_, v, _)| v.is_some())
    .map(|(n, _, g)| (n, g))
    .collect();
    if let [(name, g), ..] = picked.as_slice() {
        let clash = picked.len() > 1 || group_by.is_some_and(|d| d != Dimension::Summary(*g));
        if clash {
            return Err(bad(
                &format!("filter.{name}"),
                "a filter on operation, user or session works alone or with group_by on the \
                 same dimension",
            ));
        }
    }
    Ok(())
}

fn check_channel(i: usize, channel: &Channel) -> Result<(), RuleError> {
    let field = format!("notify[{i}].url");
    if channel.url().contains('…') {
        return Err(bad(
            &field,
            "is masked as the API shows it and matches no stored channel: send the full URL",
        ));
    }
    let uri: hyper::Uri = channel
        .url()
        .parse()
        .map_err(|e| bad(&field, format!("not a URL: {e}")))?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
        return Err(bad(&field, "must be an http:// or https:// URL"));
    }
    if let Channel::Webhook {
        secret: Some(s), ..
    } = channel
        && channel.signing_key().is_none_or(|k| k.len() < 16)
    {
        let _ = s;
        return Err(bad(
            &format!("notify[{i}].secret"),
            "must be whsec_ followed by base64 of at least 16 bytes (Standard Webhooks)",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(json: serde_json::Value) -> Result<Rule, RuleError> {
        Rule::from_json(json.to_string().as_bytes())
    }

    fn base() -> serde_json::Value {
        json!({"name": "errors", "metric": "error_rate", "group_by": ["model"], "window": "5m",
               "op": ">", "threshold": 0.1})
    }

    #[test]
    fn a_full_rule_parses_with_defaults() {
        let r = rule(base()).expect("valid");
        assert_eq!(r.window, Duration::from_secs(300));
        assert_eq!(r.for_, Duration::ZERO);
        assert_eq!(r.spec.no_data, NoData::Ok);
        assert_eq!(r.dimension(), Some(Dimension::Summary(GroupBy::Model)));
        assert!(r.spec.enabled);
    }

    #[test]
    fn problems_name_their_field() {
        let cases = [
            (json!({"metric": "tokens"}), "metric"),
            (json!({"window": "-5m"}), "window"),
            (json!({"window": "0s"}), "window"),
            (json!({"window": "soon"}), "window"),
            (json!({"op": "=="}), "op"),
            (json!({"threshold": "high"}), "threshold"),
            (json!({"group_by": ["colour"]}), "group_by[0]"),
            (json!({"group_by": ["model", "user"]}), "group_by"),
            (json!({"filter": {"user": "a"}}), "filter.user"),
            (json!({"filter": {"team": "a"}}), "filter.team"),
            (
                json!({"notify": [{"type": "webhook", "url": "ftp://x"}]}),
                "notify[0].url",
            ),
            (
                json!({"notify": [{"type": "webhook", "url": "http://x", "secret": "hunter2"}]}),
                "notify[0].secret",
            ),
            (
                json!({"notify": [{"type": "pager", "url": "http://x"}]}),
                "notify[0].type",
            ),
            (json!({"name": ""}), "name"),
            (json!({"extra": 1}), "extra"),
        ];
        for (change, field) in cases {
            let mut r = base();
            for (k, v) in change.as_object().expect("object") {
                r[k] = v.clone();
            }
            let e = rule(r).expect_err(field);
            assert_eq!(e.field, field, "{e}");
            assert!(!e.to_string().contains("hunter2"), "{e}");
        }
    }

    #[test]
    fn latency_needs_one_group_and_filters_pick_the_dimension() {
        let mut r = base();
        r["metric"] = json!("latency_p95_ms");
        r.as_object_mut().expect("object").remove("group_by");
        assert_eq!(rule(r.clone()).expect_err("no group").field, "group_by");
        r["filter"] = json!({"service": "chat"});
        let ok = rule(r).expect("pinned by the filter");
        assert_eq!(ok.dimension(), Some(Dimension::Summary(GroupBy::Service)));
    }

    #[test]
    fn views_hide_secrets_and_updates_keep_them() {
        let mut r = base();
        r["notify"] = json!([{"type": "webhook", "url": "http://hook",
                              "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}]);
        let stored = rule(r.clone()).expect("valid");
        let view = stored.view().to_string();
        assert!(!view.contains("MfKQ9r8"), "{view}");
        assert!(view.contains("\"secret_set\":true"), "{view}");
        assert!(format!("{stored:?}").contains("[redacted]"));
        let back = Rule::from_json(stored.to_stored().as_bytes()).expect("stored form parses");
        assert_eq!(back, stored);
        r["notify"][0]
            .as_object_mut()
            .expect("object")
            .remove("secret");
        let mut update = Rule::parse(r.to_string().as_bytes()).expect("valid");
        update.restore_from(&stored.spec);
        assert_eq!(update.notify, stored.spec.notify);
    }

    #[test]
    fn urls_are_shown_masked_and_a_masked_url_keeps_the_stored_one() {
        let r = json!({"name": "r", "metric": "errors", "window": "5m", "op": ">", "threshold": 1,
            "notify": [{"type": "slack", "url": "https://hooks.slack.com/services/T0/B0/XyZ"},
                       {"type": "alertmanager", "url": "https://am.example.com/api/v2/alerts?token=abc"}]});
        let stored = rule(r).expect("valid");
        let view = stored.view();
        assert_eq!(view["notify"][0]["url"], "https://hooks.slack.com/…");
        assert_eq!(
            view["notify"][1]["url"],
            "https://am.example.com/api/v2/alerts?…"
        );
        let mut update: RuleSpec = serde_json::from_value(view).expect("the view is a rule");
        assert!(
            Rule::check(update.clone()).is_err(),
            "a masked URL alone is no URL"
        );
        update.restore_from(&stored.spec);
        assert_eq!(update.notify, stored.spec.notify);
    }
}
