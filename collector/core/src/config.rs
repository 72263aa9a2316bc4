//! Helpers for component configs: durations written `"200ms"`, `"5s"`, `"1h"`.

use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// `#[serde(with = "llmscope_core::config::duration")]` for `Duration` fields.
pub mod duration {
    use super::*;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        parse(&text).map_err(serde::de::Error::custom)
    }
}

/// Parses a duration such as `200ms`, `5s`, `1h30m`.
pub fn parse(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim()).map_err(|e| {
        format!("invalid duration {text:?} ({e}); write e.g. \"200ms\", \"5s\", \"1h\"")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units_and_explain_mistakes() {
        assert_eq!(parse("200ms"), Ok(Duration::from_millis(200)));
        assert_eq!(parse(" 1h30m "), Ok(Duration::from_secs(5400)));
        assert!(parse("5").unwrap_err().contains("\"5s\""));
    }
}
