//! Helpers for component configs: durations written `"200ms"`, `"5s"`, `"1h"`, and secrets that
//! never print.

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

/// `#[serde(default, with = "llmscope_core::config::option_duration")]` for `Option<Duration>`.
pub mod option_duration {
    use super::*;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        super::duration::deserialize(d).map(Some)
    }
}

/// Parses a duration such as `200ms`, `5s`, `1h30m`.
pub fn parse(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim()).map_err(|e| {
        format!("invalid duration {text:?} ({e}); write e.g. \"200ms\", \"5s\", \"1h\"")
    })
}

/// A secret from config (a key, a password): usable, never shown by `Debug` or `Display`.
/// A number or boolean (`password: ${env:PG_PASSWORD}` holding `31415926535`) is taken as its
/// text, and a value that is no scalar is refused without being echoed.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Text;
        impl serde::de::Visitor<'_> for Text {
            type Value = Secret;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a secret (text)")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Secret, E> {
                Ok(Secret(v.to_owned()))
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Secret, E> {
                Ok(Secret(v))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Secret, E> {
                Ok(Secret(v.to_string()))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Secret, E> {
                Ok(Secret(v.to_string()))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Secret, E> {
                Ok(Secret(v.to_string()))
            }
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Secret, E> {
                Ok(Secret(v.to_string()))
            }
            fn visit_unit<E: serde::de::Error>(self) -> Result<Secret, E> {
                Ok(Secret::default())
            }
        }
        d.deserialize_any(Text)
    }
}

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself; keep it out of logs and errors.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_empty() {
            "Secret(empty)"
        } else {
            "Secret([redacted])"
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_secrets_are_their_text_and_other_shapes_are_refused_unechoed() {
        let s: Secret = serde_json::from_str("31415926535").expect("a number");
        assert_eq!(s.expose(), "31415926535");
        let s: Secret = serde_json::from_str("true").expect("a boolean");
        assert_eq!(s.expose(), "true");
        let error = serde_json::from_str::<Secret>(r#"{"hunter2": 1}"#)
            .expect_err("a map")
            .to_string();
        assert!(!error.contains("hunter2"), "{error}");
    }

    #[test]
    fn secrets_never_print() {
        let s: Secret = serde_json::from_str("\"hunter2\"").expect("secret");
        assert_eq!(s.expose(), "hunter2");
        assert_eq!(format!("{s:?}"), "Secret([redacted])");
    }

    #[test]
    fn durations_parse_with_units_and_explain_mistakes() {
        assert_eq!(parse("200ms"), Ok(Duration::from_millis(200)));
        assert_eq!(parse(" 1h30m "), Ok(Duration::from_secs(5400)));
        assert!(parse("5").unwrap_err().contains("\"5s\""));
    }
}
