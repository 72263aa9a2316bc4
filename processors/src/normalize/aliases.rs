//! The alias table: for each canonical key, the keys other instrumentation families use for the
//! same value, in order of preference. A canonical value already on the span always wins.

use std::collections::HashMap;
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

/// Every alias key above, once.
const ALIAS_KEYS: usize = {
    let mut n = PROVIDER_ALIASES.len();
    let mut i = 0;
    while i < SCALAR_ALIASES.len() {
        n += SCALAR_ALIASES[i].1.len();
        i += 1;
    }
    let mut i = 0;
    while i < TOKEN_ALIASES.len() {
        n += TOKEN_ALIASES[i].1.len();
        i += 1;
    }
    n
};

/// Each alias key's slot in [`AliasIndex`].
static SLOTS: LazyLock<HashMap<&'static str, usize, foldhash::fast::RandomState>> =
    LazyLock::new(|| {
        let keys = SCALAR_ALIASES
            .iter()
            .chain(TOKEN_ALIASES)
            .flat_map(|(_, aliases)| aliases.iter())
            .chain(PROVIDER_ALIASES);
        let mut slots = HashMap::default();
        for key in keys {
            let next = slots.len();
            slots.entry(*key).or_insert(next);
        }
        slots
    });

/// Where each alias key first occurs among a span's attributes, found in one pass over them
/// (a scan of the attributes per alias compared every key with some 35 aliases). Stays true
/// while only canonical keys are set: no canonical key is an alias.
pub struct AliasIndex([u32; ALIAS_KEYS]);

impl AliasIndex {
    pub fn of(attrs: &[KeyValue]) -> Self {
        let mut first = [u32::MAX; ALIAS_KEYS];
        for (i, kv) in attrs.iter().enumerate() {
            if let Some(&slot) = SLOTS.get(kv.key.as_str())
                && first[slot] == u32::MAX
            {
                first[slot] = u32::try_from(i).unwrap_or(u32::MAX);
            }
        }
        Self(first)
    }

    /// The value of alias `key`, as [`llmscope_core::attr::get`] finds it.
    pub fn get<'a>(&self, attrs: &'a [KeyValue], key: &str) -> Option<&'a Value> {
        let at = self.0[*SLOTS.get(key)?];
        attrs.get(at as usize)?.value.as_ref()?.value.as_ref()
    }

    pub fn get_str<'a>(&self, attrs: &'a [KeyValue], key: &str) -> Option<&'a str> {
        match self.get(attrs, key)? {
            Value::StringValue(s) if !s.is_empty() => Some(s),
            _ => None,
        }
    }

    pub fn get_i64(&self, attrs: &[KeyValue], key: &str) -> Option<i64> {
        llmscope_core::attr::value_as_i64(self.get(attrs, key)?)
    }
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
    fn no_canonical_key_is_an_alias_and_lookups_match_a_scan() {
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
        ];
        let found = AliasIndex::of(&attrs);
        for key in SLOTS.keys() {
            assert_eq!(found.get(&attrs, key), attr::get(&attrs, key), "{key}");
            assert_eq!(found.get_str(&attrs, key), attr::get_str(&attrs, key));
            assert_eq!(found.get_i64(&attrs, key), attr::get_i64(&attrs, key));
        }
        assert_eq!(found.get_i64(&attrs, "llm.usage.prompt_tokens"), Some(12));
        assert_eq!(found.get(&attrs, "not.an.alias"), None);
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
