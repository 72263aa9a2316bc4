//! Which attribute keys are redacted. By default (`scan: all`) every key, except those that are
//! never content ([`NEVER_CONTENT`]: identifiers, model and provider names, enums, what the
//! SDKs and LLMScope itself write), which are skipped for speed; with `scan: listed`, only the
//! GenAI content attributes and their aliases in every family. Keys and globs from config are
//! added to either: `attributes` are always scanned, `skip_attributes` never.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};

/// Content attributes, exact keys.
const DEFAULT_KEYS: &[&str] = &[
    "gen_ai.input.messages",
    "gen_ai.output.messages",
    "gen_ai.system_instructions",
    "gen_ai.tool.call.arguments",
    "gen_ai.tool.call.result",
    "gen_ai.prompt",
    "gen_ai.completion",
    "input.value",
    "output.value",
    "ai.prompt",
    "ai.prompt.messages",
    "ai.response.text",
    "ai.response.toolCalls",
    "ai.response.object",
    "ai.toolCall.args",
    "ai.toolCall.result",
    "langfuse.observation.input",
    "langfuse.observation.output",
    "langfuse.trace.input",
    "langfuse.trace.output",
    "traceloop.entity.input",
    "traceloop.entity.output",
    "tool.parameters",
];

/// Content attributes spread over indexed keys, as globs.
const DEFAULT_GLOBS: &[&str] = &[
    "gen_ai.prompt.*",
    "gen_ai.completion.*",
    "llm.input_messages.*",
    "llm.output_messages.*",
    "llm.prompts.*",
    "retrieval.documents.*",
    "reranker.*_documents.*",
    "embedding.embeddings.*",
];

/// Keys that are never content, skipped under `scan: all`: identifiers (an id kept as sent is
/// what analytics group by; list one in `attributes` to redact it anyway), model and provider
/// names, operation and kind enums, and the resource attributes SDKs set.
pub const NEVER_CONTENT: &[&str] = &[
    // OpenTelemetry GenAI
    "gen_ai.operation.name",
    "gen_ai.provider.name",
    "gen_ai.system",
    "gen_ai.request.model",
    "gen_ai.response.model",
    "gen_ai.response.id",
    "gen_ai.response.finish_reasons",
    "gen_ai.output.type",
    "gen_ai.token.type",
    "gen_ai.tool.name",
    "gen_ai.tool.type",
    "gen_ai.tool.call.id",
    "gen_ai.agent.id",
    "gen_ai.agent.name",
    "gen_ai.conversation.id",
    "gen_ai.data_source.id",
    "gen_ai.embeddings.dimension.count",
    // OpenInference, OpenLLMetry, Vercel AI SDK, Langfuse
    "openinference.span.kind",
    "llm.model_name",
    "llm.provider",
    "llm.system",
    "llm.request.type",
    "llm.is_streaming",
    "traceloop.span.kind",
    "traceloop.workflow.name",
    "traceloop.entity.name",
    "traceloop.entity.path",
    "ai.model.id",
    "ai.model.provider",
    "ai.operationId",
    "ai.response.id",
    "ai.response.model",
    "ai.response.finishReason",
    "langfuse.observation.type",
    "langfuse.observation.model.name",
    "langfuse.observation.level",
    // Identifiers of users, sessions and requests
    "user.id",
    "session.id",
    "enduser.id",
    "http.request.id",
    // Protocol enums
    "http.method",
    "http.request.method",
    "url.scheme",
    "rpc.system",
    "rpc.service",
    "rpc.method",
    "db.system",
    "error.type",
    "exception.type",
    "event.name",
    "span.kind",
];

/// Never-content key families, as globs.
const NEVER_CONTENT_GLOBS: &[&str] = &[
    "llmscope.*",
    "telemetry.*",
    "service.*",
    "deployment.*",
    "otel.*",
    "k8s.*",
    "container.*",
    "cloud.*",
    "os.*",
    "process.runtime.*",
    "gen_ai.usage.*",
    "llm.token_count.*",
];

/// Exact keys and globs.
#[derive(Debug, Clone, Default)]
struct Keys {
    exact: HashSet<String>,
    /// Globs as their `*`-separated pieces.
    globs: Vec<Vec<String>>,
}

impl Keys {
    fn of<'a>(keys: impl IntoIterator<Item = &'a str>) -> Self {
        let mut out = Self::default();
        for key in keys {
            if key.contains('*') {
                out.globs.push(key.split('*').map(str::to_owned).collect());
            } else {
                out.exact.insert(key.to_owned());
            }
        }
        out
    }

    fn matches(&self, key: &str) -> bool {
        self.exact.contains(key) || self.globs.iter().any(|g| glob_match(g, key))
    }
}

/// Keys whose decision is remembered, at most: OTLP keys repeat from span to span, but indexed
/// ones (`gen_ai.prompt.17.content`) need not.
const REMEMBERED: usize = 4096;

#[derive(Debug, Clone)]
pub struct Scope {
    /// Scan every key but the skipped ones.
    all: bool,
    /// Always scanned.
    listed: Keys,
    /// Never scanned under `all`.
    skipped: Keys,
    /// Decisions made so far, by key (a processor instance runs on one thread at a time).
    decided: RefCell<HashMap<Box<str>, bool, foldhash::fast::FixedState>>,
}

impl Scope {
    /// `all`: every key but [`NEVER_CONTENT`] and `skip`; else only the default content keys
    /// (when `defaults`). `extra` keys are scanned either way.
    pub fn new(all: bool, defaults: bool, extra: &[String], skip: &[String]) -> Self {
        let defaults = defaults
            .then_some(DEFAULT_KEYS.iter().chain(DEFAULT_GLOBS))
            .into_iter()
            .flatten()
            .copied();
        let never = NEVER_CONTENT.iter().chain(NEVER_CONTENT_GLOBS).copied();
        Self {
            all,
            listed: Keys::of(defaults.chain(extra.iter().map(String::as_str))),
            skipped: Keys::of(never.chain(skip.iter().map(String::as_str))),
            decided: RefCell::default(),
        }
    }

    pub fn contains(&self, key: &str) -> bool {
        if let Some(&scanned) = self.decided.borrow().get(key) {
            return scanned;
        }
        let scanned = self.listed.matches(key) || (self.all && !self.skipped.matches(key));
        let mut decided = self.decided.borrow_mut();
        if decided.len() < REMEMBERED {
            decided.insert(key.into(), scanned);
        }
        scanned
    }
}

/// `pieces` are a glob split at `*`: the key starts with the first, ends with the last, and
/// holds the others in order between.
fn glob_match(pieces: &[String], key: &str) -> bool {
    let (Some(first), Some(last)) = (pieces.first(), pieces.last()) else {
        return false;
    };
    if !key.starts_with(first.as_str())
        || key.len() < first.len() + last.len()
        || !key.ends_with(last.as_str())
    {
        return false;
    }
    let mut rest = &key[first.len()..key.len() - last.len()];
    for piece in &pieces[1..pieces.len() - 1] {
        match rest.find(piece.as_str()) {
            Some(i) => rest = &rest[i + piece.len()..],
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_scans_every_key_but_those_never_content() {
        let scope = Scope::new(true, true, &["user.id".into()], &["app.order.*".into()]);
        for key in [
            "gen_ai.task.input",
            "llm.openai.messages",
            "mlflow.spanInputs",
            "mlflow.chunk.value",
            "anything.at.all",
            "user.id",
        ] {
            assert!(scope.contains(key), "{key}");
        }
        for key in [
            "gen_ai.request.model",
            "gen_ai.response.id",
            "session.id",
            "llmscope.pii.types",
            "service.name",
            "telemetry.sdk.version",
            "app.order.number",
        ] {
            assert!(!scope.contains(key), "{key}");
        }
    }

    #[test]
    fn defaults_and_globs_cover_every_family() {
        let scope = Scope::new(
            false,
            true,
            &["custom.*.text".into(), "my.prompt".into()],
            &[],
        );
        for key in [
            "gen_ai.input.messages",
            "input.value",
            "llm.input_messages.0.message.content",
            "gen_ai.prompt.3.content",
            "reranker.input_documents.0.document.content",
            "custom.a.b.text",
            "my.prompt",
        ] {
            assert!(scope.contains(key), "{key}");
        }
        for key in [
            "gen_ai.request.model",
            "llm.token_count.prompt",
            "custom.text.x",
            "user.id",
        ] {
            assert!(!scope.contains(key), "{key}");
        }
        assert!(!Scope::new(false, false, &[], &[]).contains("gen_ai.input.messages"));
    }
}
