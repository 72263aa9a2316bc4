use std::collections::BTreeMap;

use llmscope_core::config::Secret;
use serde::Deserialize;

use super::detectors::BUILTINS;

/// What happens to a detected value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Replace it with `[REDACTED:TYPE]`.
    Mask,
    /// Replace it with `[TYPE:hash]`, a keyed HMAC-SHA256: stable, so one value links across
    /// spans, without being revealed. Needs `hash_key`.
    Hash,
    /// Remove the whole attribute (or log body) that contains it.
    Drop,
    /// Do not look for it.
    Off,
}

/// Which attributes are scanned.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scan {
    /// Every attribute of spans, span events, log records, their resources and scopes, except
    /// the keys that are never content and `skip_attributes`.
    #[default]
    All,
    /// Only the GenAI content attributes (with `default_attributes`) and `attributes`.
    Listed,
}

/// A user-defined detector.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Pattern {
    /// Type name, as recorded in `llmscope.pii.types` and the mask (`[REDACTED:NAME]`).
    pub name: String,
    /// A regular expression (Rust `regex` syntax, ASCII classes and word boundaries).
    pub regex: String,
    /// Default: the processor's `default_action`.
    #[serde(default)]
    pub action: Option<Action>,
}

/// Configuration of the `redact` processor.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RedactConfig {
    /// Action of every built-in detector not named in `detectors`. Default: `mask`.
    pub default_action: Action,
    /// Per built-in detector: `mask`, `hash`, `drop` or `off`. Built-ins: email, phone,
    /// credit_card, ssn, iban, ipv4, ipv6, llmscope_api_key, openai_api_key, anthropic_api_key, aws_access_key,
    /// github_token, jwt, private_key, secret (`password=`/`api_key=`-style assignments).
    pub detectors: BTreeMap<String, Action>,
    /// User-defined detectors, checked after the built-ins.
    pub patterns: Vec<Pattern>,
    /// Regular expressions for detected values to keep as they are (e.g.
    /// `'[^@]+@mycompany\.com'`); a value is kept when one matches it whole.
    pub allow: Vec<String>,
    /// `all` or `listed`: which attributes are scanned. Default: `all`.
    pub scan: Scan,
    /// Attribute keys or globs (`*` matches anything) always scanned, whatever `scan` says
    /// (e.g. `user.id`, which `all` keeps as sent).
    pub attributes: Vec<String>,
    /// Keys or globs never scanned under `scan: all`, besides the built-in never-content list.
    pub skip_attributes: Vec<String>,
    /// With `scan: listed`, redact the GenAI content attributes and their aliases. Default: true.
    pub default_attributes: bool,
    /// Redact log record bodies. Default: true.
    pub log_bodies: bool,
    /// Key of the `hash` action (`${env:VAR}`); required when any detector hashes.
    pub hash_key: Secret,
}

impl Default for RedactConfig {
    fn default() -> Self {
        Self {
            default_action: Action::Mask,
            detectors: BTreeMap::new(),
            patterns: Vec::new(),
            allow: Vec::new(),
            scan: Scan::All,
            attributes: Vec::new(),
            skip_attributes: Vec::new(),
            default_attributes: true,
            log_bodies: true,
            hash_key: Secret::default(),
        }
    }
}

impl RedactConfig {
    /// `(built-in name, action)` for every enabled built-in, in priority order.
    pub fn enabled_builtins(&self) -> Vec<(&'static str, Action)> {
        BUILTINS
            .iter()
            .map(|b| {
                (
                    b.name,
                    self.detectors
                        .get(b.name)
                        .copied()
                        .unwrap_or(self.default_action),
                )
            })
            .filter(|(_, a)| *a != Action::Off)
            .collect()
    }

    /// `(name, regex, action)` for every enabled user pattern.
    pub fn enabled_patterns(&self) -> Vec<(String, String, Action)> {
        self.patterns
            .iter()
            .map(|p| {
                (
                    p.name.clone(),
                    p.regex.clone(),
                    p.action.unwrap_or(self.default_action),
                )
            })
            .filter(|(_, _, a)| *a != Action::Off)
            .collect()
    }

    pub fn validate(&self) -> Result<(), String> {
        for name in self.detectors.keys() {
            if !BUILTINS.iter().any(|b| b.name == name) {
                let known: Vec<&str> = BUILTINS.iter().map(|b| b.name).collect();
                return Err(format!(
                    "detectors: unknown detector {name:?}; known: {}",
                    known.join(", ")
                ));
            }
        }
        for (i, p) in self.patterns.iter().enumerate() {
            if p.name.is_empty()
                || !p
                    .name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_')
            {
                return Err(format!("patterns[{i}].name: use letters, digits and _"));
            }
        }
        let hashes = self
            .enabled_builtins()
            .iter()
            .any(|(_, a)| *a == Action::Hash)
            || self
                .enabled_patterns()
                .iter()
                .any(|(_, _, a)| *a == Action::Hash);
        if hashes && self.hash_key.expose().len() < 16 {
            return Err("hash_key: the hash action needs a key of at least 16 characters (e.g. ${env:LLMSCOPE_REDACT_KEY})".into());
        }
        super::scanner::Scanner::new(
            &self.enabled_builtins(),
            &self.enabled_patterns(),
            &self.allow,
            b"check",
        )
        .map(|_| ())
        .map_err(|e| format!("patterns: {e}"))
    }
}
