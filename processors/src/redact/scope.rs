//! Which attribute keys are redacted: the GenAI content attributes and their aliases in every
//! family, plus keys and globs from config.

use std::collections::HashSet;

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

#[derive(Debug, Clone)]
pub struct Scope {
    exact: HashSet<String>,
    /// Globs as their `*`-separated pieces.
    globs: Vec<Vec<String>>,
}

impl Scope {
    pub fn new(defaults: bool, extra: &[String]) -> Self {
        let mut exact = HashSet::new();
        let mut globs = Vec::new();
        let defaults = defaults
            .then_some(DEFAULT_KEYS.iter().chain(DEFAULT_GLOBS))
            .into_iter()
            .flatten();
        for key in defaults.map(|k| k.to_string()).chain(extra.iter().cloned()) {
            if key.contains('*') {
                globs.push(key.split('*').map(str::to_owned).collect());
            } else {
                exact.insert(key);
            }
        }
        Self { exact, globs }
    }

    pub fn contains(&self, key: &str) -> bool {
        self.exact.contains(key) || self.globs.iter().any(|g| glob_match(g, key))
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
    fn defaults_and_globs_cover_every_family() {
        let scope = Scope::new(true, &["custom.*.text".into(), "my.prompt".into()]);
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
        assert!(!Scope::new(false, &[]).contains("gen_ai.input.messages"));
    }
}
