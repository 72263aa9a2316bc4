//! The alias table: for each canonical key, the keys other instrumentation families use for the
//! same value, in order of preference. A canonical value already on the span always wins.

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
