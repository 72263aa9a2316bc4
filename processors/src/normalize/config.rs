use serde::Deserialize;

/// Configuration of the `normalize` processor.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct NormalizeConfig {
    /// Copy `session.id` and `user.id` from a trace's root span to its GenAI spans when both
    /// arrive in the same request, so per-user and per-session analytics see them. Default: true.
    pub propagate_trace_identity: bool,
}

impl Default for NormalizeConfig {
    fn default() -> Self {
        Self {
            propagate_trace_identity: true,
        }
    }
}

impl NormalizeConfig {
    pub fn validate(&self) -> Result<(), String> {
        Ok(())
    }
}
