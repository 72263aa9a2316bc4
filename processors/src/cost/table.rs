//! The price book: entries by model, and the matching that takes real model ids (dated,
//! versioned, provider-prefixed, Bedrock and Vertex ids) to an entry.

use std::collections::HashMap;
use std::path::Path;

use super::config::{CostConfig, ModelPrice, PriceTable};

/// The built-in table, compiled in.
pub const BUILTIN: &str = include_str!("prices.yaml");

pub fn parse(text: &str) -> Result<PriceTable, String> {
    serde_yaml::from_str(text).map_err(|e| e.to_string())
}

pub fn read_file(path: &Path) -> Result<PriceTable, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    parse(&text).map_err(|e| format!("{}: {e}", path.display()))
}

#[derive(Debug, Clone)]
pub struct PriceBook {
    /// Normalized model name to its entries (several when providers differ).
    by_model: HashMap<String, Vec<ModelPrice>>,
    /// The longest model name, to bound prefix search.
    longest: usize,
    pub taken: Option<String>,
}

impl PriceBook {
    /// Built-in table, then the file, then inline entries; later entries replace earlier ones
    /// of the same model and provider.
    pub fn from_config(config: &CostConfig) -> Result<Self, String> {
        let mut entries = Vec::new();
        let mut taken = None;
        if config.builtin_prices {
            let table = parse(BUILTIN).map_err(|e| format!("built-in price table: {e}"))?;
            taken = table.taken;
            entries.extend(table.models);
        }
        if let Some(path) = &config.prices_file {
            let table = read_file(path)?;
            taken = table.taken.or(taken);
            entries.extend(table.models);
        }
        entries.extend(config.models.iter().cloned());
        Ok(Self::new(entries, taken))
    }

    pub fn new(entries: Vec<ModelPrice>, taken: Option<String>) -> Self {
        let mut by_model: HashMap<String, Vec<ModelPrice>> = HashMap::new();
        for entry in entries {
            let list = by_model.entry(canonical_model(&entry.model)).or_default();
            // An entry without a provider replaces every entry of its model; one with a provider
            // replaces that provider's.
            match &entry.provider {
                None => list.clear(),
                Some(p) => list.retain(|e| e.provider.as_ref() != Some(p)),
            }
            list.push(entry);
        }
        let longest = by_model.keys().map(String::len).max().unwrap_or(0);
        Self {
            by_model,
            longest,
            taken,
        }
    }

    /// The entry for a model id as instrumentations report it, preferring `provider`'s entry.
    /// The longest table name that is the whole id or a prefix of it ending at a `-`, `.`, `:`
    /// or `@` wins: `gpt-4o-mini-2024-07-18` is `gpt-4o-mini`, not `gpt-4o`.
    pub fn lookup(&self, model: &str, provider: Option<&str>) -> Option<&ModelPrice> {
        let name = canonical_model(model);
        let mut end = name.len().min(self.longest);
        while !name.is_char_boundary(end) {
            end -= 1;
        }
        loop {
            let candidate = &name[..end];
            let at_boundary = end == name.len()
                || matches!(name.as_bytes()[end], b'-' | b'.' | b':' | b'@' | b'_');
            if at_boundary && let Some(entries) = self.by_model.get(candidate) {
                return entries
                    .iter()
                    .find(|e| e.provider.as_deref() == provider && provider.is_some())
                    .or_else(|| entries.first());
            }
            match name[..end]
                .char_indices()
                .rev()
                .find(|(_, c)| matches!(c, '-' | '.' | ':' | '@' | '_'))
            {
                Some((i, _)) if i > 0 => end = i,
                _ => return None,
            }
        }
    }
}

/// Region prefixes of Bedrock cross-region inference profiles (`us.anthropic.claude-...`).
const BEDROCK_REGIONS: &[&str] = &[
    "us.", "eu.", "apac.", "us-gov.", "global.", "jp.", "au.", "ca.",
];
/// Vendor prefixes of Bedrock model ids (`anthropic.claude-3-5-sonnet-20240620-v1:0`).
const BEDROCK_VENDORS: &[&str] = &[
    "anthropic.",
    "meta.",
    "amazon.",
    "mistral.",
    "cohere.",
    "ai21.",
    "deepseek.",
    "openai.",
    "writer.",
    "qwen.",
];

/// A model id reduced to what price tables name: lowercase, without provider paths
/// (`openai/gpt-4o`, `publishers/google/models/gemini-1.5-pro`), Bedrock region and vendor
/// prefixes, Bedrock version suffixes (`-v1:0`, `-v2`), Vertex versions (`@20240620`), or
/// Anthropic's `-latest`.
pub fn canonical_model(model: &str) -> String {
    let mut m = model.trim().to_ascii_lowercase();
    if let Some((_, last)) = m.rsplit_once('/') {
        m = last.to_owned();
    }
    for prefix in BEDROCK_REGIONS {
        if let Some(rest) = m.strip_prefix(prefix) {
            if BEDROCK_VENDORS.iter().any(|v| rest.starts_with(v)) {
                m = rest.to_owned();
            }
            break;
        }
    }
    for vendor in BEDROCK_VENDORS {
        if let Some(rest) = m.strip_prefix(vendor) {
            m = rest.to_owned();
            break;
        }
    }
    if let Some((head, _)) = m.split_once('@') {
        m = head.to_owned();
    }
    if let Some((head, _)) = m.split_once(':') {
        m = head.to_owned();
    }
    // Bedrock `-v1`, `-v2`: a trailing `-v` and digits.
    if let Some(i) = m.rfind("-v")
        && m.len() > i + 2
        && m[i + 2..].bytes().all(|b| b.is_ascii_digit())
    {
        m.truncate(i);
    }
    if let Some(head) = m.strip_suffix("-latest") {
        m = head.to_owned();
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    fn book() -> PriceBook {
        PriceBook::from_config(&CostConfig::default()).expect("built-in table")
    }

    #[test]
    fn the_builtin_table_parses_and_names_when_it_was_taken() {
        let b = book();
        assert!(b.taken.is_some());
        assert!(b.by_model.len() > 50);
    }

    #[test]
    fn real_model_ids_resolve_to_their_entry() {
        let b = book();
        for (id, want) in [
            ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
            ("gpt-4o-2024-08-06", "gpt-4o"),
            ("openai/gpt-4o", "gpt-4o"),
            ("GPT-4.1-nano-2025-04-14", "gpt-4.1-nano"),
            ("o3-mini-2025-01-31", "o3-mini"),
            ("claude-3-5-haiku-20241022", "claude-3-5-haiku"),
            ("claude-3-5-sonnet-latest", "claude-3-5-sonnet"),
            ("claude-sonnet-4-5-20250929", "claude-sonnet-4-5"),
            (
                "anthropic.claude-3-5-sonnet-20240620-v1:0",
                "claude-3-5-sonnet",
            ),
            (
                "us.anthropic.claude-3-7-sonnet-20250219-v1:0",
                "claude-3-7-sonnet",
            ),
            ("claude-3-5-sonnet-v2@20241022", "claude-3-5-sonnet"),
            ("publishers/google/models/gemini-1.5-pro", "gemini-1.5-pro"),
            ("models/gemini-2.5-flash-lite", "gemini-2.5-flash-lite"),
            ("gemini-2.5-flash-preview-05-20", "gemini-2.5-flash"),
            ("mistral-large-latest", "mistral-large"),
            ("mistral.mistral-large-2407-v1:0", "mistral-large"),
            ("meta.llama3-1-70b-instruct-v1:0", "llama3-1-70b-instruct"),
            (
                "us.meta.llama3-3-70b-instruct-v1:0",
                "llama3-3-70b-instruct",
            ),
            ("amazon.nova-pro-v1:0", "nova-pro"),
            ("deepseek-chat", "deepseek-chat"),
        ] {
            let found = b.lookup(id, None).map(|e| e.model.as_str());
            assert_eq!(found, Some(want), "{id}");
        }
        for unknown in ["my-finetune", "gpt", "", "llama-7b"] {
            assert!(b.lookup(unknown, None).is_none(), "{unknown}");
        }
    }

    #[test]
    fn later_entries_override_and_providers_disambiguate() {
        let price = |provider: &str, input: f64| ModelPrice {
            provider: Some(provider.into()),
            model: "llama-3.3-70b".into(),
            input,
            output: 1.0,
            cache_read: None,
            cache_write: None,
            reasoning: None,
        };
        let b = PriceBook::new(
            vec![
                price("groq", 0.59),
                price("together", 0.88),
                price("groq", 0.60),
            ],
            None,
        );
        assert_eq!(
            b.lookup("llama-3.3-70b", Some("groq")).map(|e| e.input),
            Some(0.60)
        );
        assert_eq!(
            b.lookup("llama-3.3-70b-versatile", Some("together"))
                .map(|e| e.input),
            Some(0.88)
        );
    }
}
