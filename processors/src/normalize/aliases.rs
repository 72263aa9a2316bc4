//! The alias table: for each canonical key, the keys other instrumentation families use for the
//! same value, in order of preference. A canonical value already on the span always wins.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::LazyLock;

use llmscope_core::otlp::common::v1::KeyValue;
use llmscope_core::otlp::common::v1::any_value::Value;
use llmscope_core::semconv as sc;

/// Keys whose value is copied as is (after type coercion for token counts).
pub const SCALAR_ALIASES: &[(&str, &[&str])] = &[
    (
        sc::REQUEST_MODEL,
        &[
            "llm.request.model",
            "llm.request.model_name",
            "ai.model.id",
            "langfuse.observation.model.name",
        ],
    ),
    (
        sc::RESPONSE_MODEL,
        &["llm.response.model", "ai.response.model", "llm.model_name"],
    ),
    (sc::RESPONSE_ID, &["ai.response.id", "llm.response.id"]),
    (
        sc::SESSION_ID,
        &[
            "langfuse.session.id",
            "traceloop.association.properties.session_id",
            "ai.telemetry.metadata.sessionId",
            "ai.telemetry.metadata.session_id",
        ],
    ),
    (
        sc::USER_ID,
        &[
            "langfuse.user.id",
            "enduser.id",
            "traceloop.association.properties.user_id",
            "ai.telemetry.metadata.userId",
            "ai.telemetry.metadata.user_id",
        ],
    ),
    (sc::TOOL_NAME, &["tool.name", "ai.toolCall.name"]),
];

/// Token-count keys. Every family reports inclusive counts except where `normalize` says
/// otherwise (Langfuse usage details).
pub const TOKEN_ALIASES: &[(&str, &[&str])] = &[
    (
        sc::USAGE_INPUT_TOKENS,
        &[
            "gen_ai.usage.prompt_tokens",
            "llm.usage.prompt_tokens",
            "llm.token_count.prompt",
            "ai.usage.inputTokens",
            "ai.usage.promptTokens",
        ],
    ),
    (
        sc::USAGE_OUTPUT_TOKENS,
        &[
            "gen_ai.usage.completion_tokens",
            "llm.usage.completion_tokens",
            "llm.token_count.completion",
            "ai.usage.outputTokens",
            "ai.usage.completionTokens",
        ],
    ),
    (
        sc::USAGE_CACHE_READ_INPUT_TOKENS,
        &[
            "gen_ai.usage.cache_read_input_tokens",
            "gen_ai.usage.input_tokens.cached",
            "llm.usage.cache_read_input_tokens",
            "llm.token_count.prompt_details.cache_read",
            "ai.usage.cachedInputTokens",
        ],
    ),
    (
        sc::USAGE_CACHE_CREATION_INPUT_TOKENS,
        &[
            "gen_ai.usage.cache_write.input_tokens",
            "gen_ai.usage.cache_creation_input_tokens",
            "gen_ai.usage.input_tokens.cache_write",
            "llm.usage.cache_creation_input_tokens",
            "llm.token_count.prompt_details.cache_write",
        ],
    ),
    (
        sc::USAGE_REASONING_OUTPUT_TOKENS,
        &[
            "gen_ai.usage.reasoning_tokens",
            "gen_ai.usage.output_tokens.reasoning",
            "llm.usage.reasoning_tokens",
            "llm.token_count.completion_details.reasoning",
            "ai.usage.reasoningTokens",
        ],
    ),
];

/// Keys naming the provider, in order of preference; values are mapped by [`provider_name`].
pub const PROVIDER_ALIASES: &[&str] = &[
    "gen_ai.system",
    "llm.provider",
    "llm.system",
    "ai.model.provider",
];

/// How many aliases `table` lists.
const fn count(table: &[(&str, &[&str])]) -> usize {
    let mut n = 0;
    let mut i = 0;
    while i < table.len() {
        n += table[i].1.len();
        i += 1;
    }
    n
}

/// Every alias above, each a slot of [`AliasIndex`]: the scalars', the tokens', then the
/// providers', in table order (so a table's entries own consecutive slots).
const ALIASES: usize = count(SCALAR_ALIASES) + count(TOKEN_ALIASES) + PROVIDER_ALIASES.len();

/// The slots of [`TOKEN_ALIASES`]' first alias and of [`PROVIDER_ALIASES`]'.
pub const TOKEN_SLOTS: usize = count(SCALAR_ALIASES);
pub const PROVIDER_SLOTS: usize = TOKEN_SLOTS + count(TOKEN_ALIASES);

/// Each alias key's slot.
static SLOTS: LazyLock<HashMap<&'static str, usize, foldhash::fast::RandomState>> =
    LazyLock::new(|| {
        SCALAR_ALIASES
            .iter()
            .chain(TOKEN_ALIASES)
            .flat_map(|(_, aliases)| aliases.iter())
            .chain(PROVIDER_ALIASES)
            .enumerate()
            .map(|(slot, key)| (*key, slot))
            .collect()
    });

/// Where each alias first occurs among a span's attributes, found in one pass over them (a
/// scan of the attributes per alias compared every key with each of some 35 aliases). Stays
/// true while only canonical keys are set: no canonical key is an alias.
pub struct AliasIndex([u32; ALIASES]);

impl AliasIndex {
    pub fn of(attrs: &[KeyValue]) -> Self {
        let mut first = [u32::MAX; ALIASES];
        for (i, kv) in attrs.iter().enumerate() {
            if let Some(&slot) = SLOTS.get(kv.key.as_str())
                && first[slot] == u32::MAX
            {
                first[slot] = u32::try_from(i).unwrap_or(u32::MAX);
            }
        }
        Self(first)
    }

    /// The values of the aliases in `slots` present on the span, in slot order, as
    /// [`llmscope_core::attr::get`] finds each (its first occurrence, when it has a value).
    pub fn values<'a>(
        &'a self,
        attrs: &'a [KeyValue],
        slots: Range<usize>,
    ) -> impl Iterator<Item = &'a Value> + 'a {
        self.0[slots]
            .iter()
            .filter_map(|&at| attrs.get(at as usize)?.value.as_ref()?.value.as_ref())
    }
}

/// `table`'s entries with the slots of their aliases, from `first`.
pub fn with_slots(
    table: &'static [(&'static str, &'static [&'static str])],
    first: usize,
) -> impl Iterator<Item = (&'static str, Range<usize>)> {
    table.iter().scan(first, |next, (canonical, aliases)| {
        let slots = *next..*next + aliases.len();
        *next = slots.end;
        Some((*canonical, slots))
    })
}

/// Provider names as the GenAI conventions spell them (`gen_ai.provider.name` well-known values).
pub fn provider_name(raw: &str) -> String {
    // Vercel AI SDK: `openai.chat`, `anthropic.messages`, `google.generative-ai`.
    let raw = raw.trim().to_ascii_lowercase();
    let base = match raw.split_once('.') {
        Some((head, _))
            if !raw.starts_with("aws.")
                && !raw.starts_with("azure.")
                && !raw.starts_with("gcp.")
                && !raw.starts_with("ibm.") =>
        {
            head.to_owned()
        }
        _ => raw.clone(),
    };
    let mapped = match base.as_str() {
        "azure" | "azure_openai" | "azure-openai" | "azureopenai" => "azure.ai.openai",
        "bedrock" | "aws_bedrock" | "amazon-bedrock" | "amazon_bedrock" => "aws.bedrock",
        "vertex_ai" | "vertexai" | "google-vertex" | "vertex" => "gcp.vertex_ai",
        "google" | "gemini" | "google-generative-ai" | "google_genai" | "generative-ai" => {
            "gcp.gemini"
        }
        "mistral" | "mistralai" => "mistral_ai",
        "xai" | "x-ai" => "x_ai",
        "watsonx" => "ibm.watsonx.ai",
        other => other,
    };
    mapped.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use llmscope_core::attr;

    #[test]
    fn every_alias_has_its_own_slot_and_lookups_match_a_scan() {
        assert_eq!(SLOTS.len(), ALIASES, "an alias is listed twice");
        let canonical = SCALAR_ALIASES
            .iter()
            .chain(TOKEN_ALIASES)
            .map(|(k, _)| *k)
            .chain([sc::PROVIDER_NAME]);
        for key in canonical {
            assert!(!SLOTS.contains_key(key), "{key} is an alias");
        }
        let kv = |k: &str, v: Value| KeyValue {
            key: k.into(),
            value: Some(llmscope_core::otlp::common::v1::AnyValue { value: Some(v) }),
            ..Default::default()
        };
        let attrs = vec![
            kv("llm.usage.prompt_tokens", attr::string(" 12 ")),
            kv("gen_ai.system", attr::string("")),
            kv("llm.usage.prompt_tokens", attr::int(99)),
            KeyValue {
                key: "llm.provider".into(),
                ..Default::default()
            },
            kv("enduser.id", attr::string("u-1")),
            kv("ai.model.provider", attr::string("openai.chat")),
        ];
        let index = AliasIndex::of(&attrs);
        let tables = with_slots(SCALAR_ALIASES, 0)
            .zip(SCALAR_ALIASES)
            .chain(with_slots(TOKEN_ALIASES, TOKEN_SLOTS).zip(TOKEN_ALIASES));
        for ((canonical, slots), (_, aliases)) in tables {
            let scan: Vec<_> = aliases
                .iter()
                .filter_map(|k| attr::get(&attrs, k))
                .collect();
            let found: Vec<_> = index.values(&attrs, slots).collect();
            assert_eq!(found, scan, "{canonical}");
        }
        let providers = PROVIDER_SLOTS..PROVIDER_SLOTS + PROVIDER_ALIASES.len();
        let scan: Vec<_> = PROVIDER_ALIASES
            .iter()
            .filter_map(|k| attr::get(&attrs, k))
            .collect();
        assert_eq!(index.values(&attrs, providers).collect::<Vec<_>>(), scan);
        assert_eq!(scan.len(), 2, "the empty gen_ai.system and the provider");
    }

    #[test]
    fn provider_names_follow_the_conventions() {
        for (raw, want) in [
            ("OpenAI", "openai"),
            ("openai.chat", "openai"),
            ("anthropic.messages", "anthropic"),
            ("azure", "azure.ai.openai"),
            ("MistralAI", "mistral_ai"),
            ("aws.bedrock", "aws.bedrock"),
            ("google.generative-ai", "gcp.gemini"),
            ("vertexai", "gcp.vertex_ai"),
        ] {
            assert_eq!(provider_name(raw), want, "{raw}");
        }
    }
}
