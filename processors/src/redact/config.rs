use std::collections::BTreeMap;

use llmscope_core::config::Secret;
use serde::Deserialize;

use super::detectors::{BUILTINS, DEFAULT_PHONE_REGIONS, Validator};

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
    /// A check each match must pass, as a built-in's: `luhn`, `iban`, `ssn`, `phone` (valid in
    /// `phone_regions` or its `+CC` country) or `ipv6`. Default: none.
    #[serde(default)]
    pub validator: Option<String>,
    /// Default: the processor's `default_action`.
    #[serde(default)]
    pub action: Option<Action>,
}

/// A deny-list: each of `terms` found as a whole word (customer names, project code names) is a
/// detected value of type `name`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Terms {
    /// Type name, as recorded in `llmscope.pii.types` and the mask (`[REDACTED:NAME]`).
    pub name: String,
    /// The terms, matched literally (ASCII letters in any case unless `case_sensitive`); a term
    /// that starts or ends with a letter or digit matches only there as a whole word.
    pub terms: Vec<String>,
    #[serde(default)]
    pub case_sensitive: bool,
    /// Default: the processor's `default_action`.
    #[serde(default)]
    pub action: Option<Action>,
}

/// One enabled user-defined detector, as the scanner takes it.
#[derive(Debug, Clone, PartialEq)]
pub struct Custom {
    pub name: String,
    pub regex: String,
    pub validator: Option<Validator>,
    pub action: Action,
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
    /// Deny-lists, checked after the patterns.
    pub terms: Vec<Terms>,
    /// Regions (ISO 3166 codes) whose national phone numbers, written without `+CC`, are
    /// recognised. Default: 27 regions of North America, Europe, Asia, Oceania, Latin America
    /// and Africa (`DEFAULT_PHONE_REGIONS`).
    pub phone_regions: Vec<String>,
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
            terms: Vec::new(),
            phone_regions: DEFAULT_PHONE_REGIONS
                .iter()
                .map(|r| (*r).to_owned())
                .collect(),
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

    /// Every enabled user pattern and deny-list, in that order. A validator name is looked up
    /// here; [`RedactConfig::validate`] refuses unknown ones.
    pub fn enabled_custom(&self) -> Vec<Custom> {
        let patterns = self.patterns.iter().map(|p| Custom {
            name: p.name.clone(),
            regex: p.regex.clone(),
            validator: p.validator.as_deref().and_then(Validator::from_name),
            action: p.action.unwrap_or(self.default_action),
        });
        let terms = self.terms.iter().map(|t| Custom {
            name: t.name.clone(),
            regex: terms_regex(&t.terms, t.case_sensitive),
            validator: None,
            action: t.action.unwrap_or(self.default_action),
        });
        patterns
            .chain(terms)
            .filter(|c| c.action != Action::Off)
            .collect()
    }

    /// The phone regions, parsed; [`RedactConfig::validate`] refuses unknown ones.
    pub fn phone_region_ids(&self) -> Vec<rlibphonenumber::Region> {
        self.phone_regions
            .iter()
            .filter_map(|r| r.to_ascii_uppercase().parse().ok())
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
        let names = (self.patterns.iter().enumerate())
            .map(|(i, p)| ("patterns", i, &p.name))
            .chain((self.terms.iter().enumerate()).map(|(i, t)| ("terms", i, &t.name)));
        let mut seen: Vec<&str> = Vec::new();
        for (list, i, name) in names {
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                return Err(format!("{list}[{i}].name: use letters, digits and _"));
            }
            if BUILTINS.iter().any(|b| b.name == name) || seen.contains(&name.as_str()) {
                return Err(format!(
                    "{list}[{i}].name: {name:?} is taken (by a built-in or another detector)"
                ));
            }
            seen.push(name);
        }
        for (i, p) in self.patterns.iter().enumerate() {
            if let Some(v) = &p.validator
                && Validator::from_name(v).is_none()
            {
                let known: Vec<&str> = Validator::ALL.iter().map(|v| v.name()).collect();
                return Err(format!(
                    "patterns[{i}].validator: unknown validator {v:?}; known: {}",
                    known.join(", ")
                ));
            }
        }
        for (i, t) in self.terms.iter().enumerate() {
            if t.terms.is_empty() {
                return Err(format!("terms[{i}].terms: list at least one term"));
            }
            if let Some(j) = t.terms.iter().position(|term| term.trim().is_empty()) {
                return Err(format!("terms[{i}].terms[{j}]: a term cannot be empty"));
            }
        }
        for region in &self.phone_regions {
            let known = region
                .to_ascii_uppercase()
                .parse::<rlibphonenumber::Region>()
                .is_ok_and(|r| {
                    rlibphonenumber::PHONE_NUMBER_UTIL
                        .get_country_code_for_region(r)
                        .is_some()
                });
            if !known {
                return Err(format!(
                    "phone_regions: unknown region {region:?} (use ISO 3166 codes such as US, GB, DE)"
                ));
            }
        }
        let hashes = self
            .enabled_builtins()
            .iter()
            .any(|(_, a)| *a == Action::Hash)
            || self
                .enabled_custom()
                .iter()
                .any(|c| c.action == Action::Hash);
        if hashes && self.hash_key.expose().len() < 16 {
            return Err("hash_key: the hash action needs a key of at least 16 characters (e.g. ${env:LLMSCOPE_REDACT_KEY})".into());
        }
        super::scanner::Scanner::new(self)
            .map(|_| ())
            .map_err(|e| format!("patterns: {e}"))
    }
}

/// One pattern for a deny-list: the terms as literals (bytes outside ASCII escaped, as the
/// scanner matches bytes), `\b` on each side that is a letter, digit or `_`, ASCII case
/// ignored unless `case_sensitive`.
fn terms_regex(terms: &[String], case_sensitive: bool) -> String {
    let word = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
    let alternatives: Vec<String> = terms
        .iter()
        .map(|t| t.trim())
        .filter(|t| !t.is_empty())
        .map(|t| {
            let mut out = String::new();
            if word(t.chars().next()) {
                out.push_str(r"\b");
            }
            for c in t.chars() {
                if c.is_ascii() {
                    out.push_str(&regex::escape(c.encode_utf8(&mut [0; 4])));
                } else {
                    for b in c.encode_utf8(&mut [0; 4]).bytes() {
                        out.push_str(&format!(r"\x{b:02X}"));
                    }
                }
            }
            if word(t.chars().last()) {
                out.push_str(r"\b");
            }
            out
        })
        .collect();
    let flags = if case_sensitive { "" } else { "(?i)" };
    format!("{flags}(?:{})", alternatives.join("|"))
}
