//! Scores: feedback on a trace or one span of it (a user's thumbs-up, an evaluator's grade), sent
//! by any OTLP client as a log record:
//!
//! - event name `llmscope.score` (the record's `event_name`, or the `event.name` attribute);
//! - the record's trace id (required) and span id (optional): what is judged;
//! - attributes `llmscope.score.name` (a non-empty string), `llmscope.score.value` (a number, a
//!   boolean or a category string) and optionally `llmscope.score.comment` (a string).
//!
//! Receivers refuse a score record that breaks these rules (OTLP `partial_success`, counted), so
//! every stored score parses; stores keep scores as log records and readers parse them with
//! [`Score::from_json`], the same rules the receivers apply.

use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use serde_json::Value as J;

use crate::attr;

/// `event.name` of score records.
pub const SCORE_EVENT: &str = "llmscope.score";
pub const SCORE_NAME: &str = "llmscope.score.name";
pub const SCORE_VALUE: &str = "llmscope.score.value";
pub const SCORE_COMMENT: &str = "llmscope.score.comment";

/// Longest score name and category, in bytes.
pub const MAX_NAME_BYTES: usize = 256;
/// Longest comment, in bytes.
pub const MAX_COMMENT_BYTES: usize = 16 * 1024;

/// What a score says.
#[derive(Debug, Clone, PartialEq)]
pub enum ScoreValue {
    Numeric(f64),
    Boolean(bool),
    Categorical(String),
}

impl ScoreValue {
    /// `numeric`, `boolean` or `categorical`.
    pub fn data_type(&self) -> &'static str {
        match self {
            ScoreValue::Numeric(_) => "numeric",
            ScoreValue::Boolean(_) => "boolean",
            ScoreValue::Categorical(_) => "categorical",
        }
    }

    /// What a mean is taken of: the number, or 1 for true and 0 for false; categories have none.
    pub fn as_number(&self) -> Option<f64> {
        match self {
            ScoreValue::Numeric(n) => Some(*n),
            ScoreValue::Boolean(b) => Some(f64::from(u8::from(*b))),
            ScoreValue::Categorical(_) => None,
        }
    }

    pub fn to_json(&self) -> J {
        match self {
            ScoreValue::Numeric(n) => serde_json::Number::from_f64(*n).map_or(J::Null, J::Number),
            ScoreValue::Boolean(b) => J::Bool(*b),
            ScoreValue::Categorical(c) => J::String(c.clone()),
        }
    }
}

/// A valid score's attributes.
#[derive(Debug, Clone, PartialEq)]
pub struct Score {
    pub name: String,
    pub value: ScoreValue,
    pub comment: Option<String>,
}

/// Why a score record was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ScoreProblem {
    #[error("a score needs the trace id of what it judges")]
    NoTrace,
    #[error("{SCORE_NAME} must be a non-empty string")]
    NoName,
    #[error("{SCORE_NAME} is longer than {MAX_NAME_BYTES} bytes")]
    LongName,
    #[error("{SCORE_VALUE} is missing")]
    NoValue,
    #[error("{SCORE_VALUE} must be a number, a boolean or a category string, not {0}")]
    BadValue(&'static str),
    #[error("{SCORE_VALUE} must be finite")]
    NotFinite,
    #[error(
        "a category in {SCORE_VALUE} must be a non-empty string of at most {MAX_NAME_BYTES} bytes"
    )]
    BadCategory,
    #[error("{SCORE_COMMENT} must be a string of at most {MAX_COMMENT_BYTES} bytes")]
    BadComment,
}

impl Score {
    /// A score from stored attributes (a JSON object of the record's attributes).
    pub fn from_json(attributes: &serde_json::Map<String, J>) -> Result<Self, ScoreProblem> {
        let name = match attributes.get(SCORE_NAME) {
            Some(J::String(s)) if !s.trim().is_empty() => s,
            _ => return Err(ScoreProblem::NoName),
        };
        if name.len() > MAX_NAME_BYTES {
            return Err(ScoreProblem::LongName);
        }
        let value = match attributes.get(SCORE_VALUE) {
            None | Some(J::Null) => return Err(ScoreProblem::NoValue),
            Some(J::Bool(b)) => ScoreValue::Boolean(*b),
            // JSON numbers are finite; an infinite or NaN double arrives as null.
            Some(J::Number(n)) => ScoreValue::Numeric(n.as_f64().ok_or(ScoreProblem::NotFinite)?),
            Some(J::String(s)) if s.is_empty() || s.len() > MAX_NAME_BYTES => {
                return Err(ScoreProblem::BadCategory);
            }
            Some(J::String(s)) => ScoreValue::Categorical(s.clone()),
            Some(J::Array(_)) => return Err(ScoreProblem::BadValue("an array")),
            Some(J::Object(_)) => return Err(ScoreProblem::BadValue("a map")),
        };
        let comment = match attributes.get(SCORE_COMMENT) {
            None | Some(J::Null) => None,
            Some(J::String(s)) if s.len() <= MAX_COMMENT_BYTES => Some(s.clone()),
            Some(_) => return Err(ScoreProblem::BadComment),
        };
        Ok(Self {
            name: name.clone(),
            value,
            comment,
        })
    }

    /// Checks a score record as a receiver gets it. Bytes values are refused (stored as hex
    /// text they would read back as categories).
    pub fn check(record: &LogRecord) -> Result<(), ScoreProblem> {
        if record.trace_id.len() != 16 || record.trace_id.iter().all(|b| *b == 0) {
            return Err(ScoreProblem::NoTrace);
        }
        let mut attributes = serde_json::Map::new();
        // Stores keep the last of duplicate keys (`attr::attrs_to_json`); so does this.
        for kv in &record.attributes {
            if ![SCORE_NAME, SCORE_VALUE, SCORE_COMMENT].contains(&kv.key.as_str()) {
                continue;
            }
            let value = kv.value.as_ref().and_then(|v| v.value.as_ref());
            if let Some(Value::DoubleValue(d)) = value
                && !d.is_finite()
            {
                return Err(ScoreProblem::NotFinite);
            }
            if let Some(Value::BytesValue(_)) = value {
                return Err(ScoreProblem::BadValue("bytes"));
            }
            attributes.insert(kv.key.clone(), value.map_or(J::Null, attr::to_json));
        }
        Self::from_json(&attributes).map(drop)
    }
}

/// Whether a log record is a score.
pub fn is_score(record: &LogRecord) -> bool {
    crate::semconv::event_name(record) == Some(SCORE_EVENT)
}

#[cfg(test)]
mod tests {
    use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue};

    use super::*;

    fn record(attrs: Vec<(&str, Value)>) -> LogRecord {
        LogRecord {
            event_name: SCORE_EVENT.into(),
            trace_id: vec![1; 16],
            attributes: attrs
                .into_iter()
                .map(|(k, v)| KeyValue {
                    key: k.into(),
                    value: Some(AnyValue { value: Some(v) }),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn numbers_booleans_and_categories_are_scores() {
        use Value as V;
        for (value, data_type, mean) in [
            (V::DoubleValue(0.75), "numeric", Some(0.75)),
            (V::IntValue(4), "numeric", Some(4.0)),
            (V::BoolValue(true), "boolean", Some(1.0)),
            (V::StringValue("helpful".into()), "categorical", None),
        ] {
            let r = record(vec![
                (SCORE_NAME, attr::string("quality")),
                (SCORE_VALUE, value),
            ]);
            assert_eq!(Score::check(&r), Ok(()));
            let json = attr::attrs_to_json(&r.attributes);
            let score = Score::from_json(&json).expect("valid");
            assert_eq!(score.value.data_type(), data_type);
            assert_eq!(score.value.as_number(), mean);
            assert_eq!(score.comment, None);
        }
    }

    #[test]
    fn bad_scores_are_named_problems() {
        use Value as V;
        let name = || (SCORE_NAME, attr::string("quality"));
        let cases = [
            (vec![(SCORE_VALUE, V::IntValue(1))], ScoreProblem::NoName),
            (
                vec![
                    (SCORE_NAME, attr::string(" ")),
                    (SCORE_VALUE, V::IntValue(1)),
                ],
                ScoreProblem::NoName,
            ),
            (
                vec![
                    (SCORE_NAME, attr::string("x".repeat(300))),
                    (SCORE_VALUE, V::IntValue(1)),
                ],
                ScoreProblem::LongName,
            ),
            (vec![name()], ScoreProblem::NoValue),
            (
                vec![name(), (SCORE_VALUE, V::DoubleValue(f64::NAN))],
                ScoreProblem::NotFinite,
            ),
            (
                vec![name(), (SCORE_VALUE, V::BytesValue(vec![1]))],
                ScoreProblem::BadValue("bytes"),
            ),
            (
                vec![name(), (SCORE_VALUE, attr::string(""))],
                ScoreProblem::BadCategory,
            ),
            (
                vec![
                    name(),
                    (SCORE_VALUE, V::IntValue(1)),
                    (SCORE_COMMENT, V::IntValue(3)),
                ],
                ScoreProblem::BadComment,
            ),
        ];
        for (attrs, problem) in cases {
            assert_eq!(Score::check(&record(attrs)), Err(problem));
        }
        let mut no_trace = record(vec![name(), (SCORE_VALUE, V::IntValue(1))]);
        no_trace.trace_id.clear();
        assert_eq!(Score::check(&no_trace), Err(ScoreProblem::NoTrace));
    }

    #[test]
    fn the_last_of_duplicate_keys_counts_as_stores_keep_it() {
        let r = record(vec![
            (SCORE_NAME, attr::string("quality")),
            (SCORE_VALUE, Value::ArrayValue(Default::default())),
            (SCORE_VALUE, Value::BoolValue(false)),
        ]);
        assert_eq!(Score::check(&r), Ok(()));
    }
}
