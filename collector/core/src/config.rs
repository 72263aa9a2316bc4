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

/// A 256-bit encryption key (the disk queue's AES-256-GCM, the SQLite store's SQLCipher):
/// usable, never shown by `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct EncryptionKey([u8; 32]);

impl EncryptionKey {
    /// A key given as 64 hexadecimal characters (surrounding whitespace ignored). The error
    /// never quotes the text.
    pub fn from_hex(text: &str) -> Result<Self, String> {
        let mut key = [0u8; 32];
        hex::decode_to_slice(text.trim(), &mut key)
            .map_err(|_| "must be 64 hexadecimal characters (32 bytes, AES-256)".to_owned())?;
        Ok(Self(key))
    }

    /// The key a component's `encryption_key` (`inline`, e.g. `${env:...}`) or
    /// `encryption_key_file` (`file`) gives, if either is set. Messages start with the field
    /// they are about and never quote the key.
    pub fn configured(
        inline: &Secret,
        file: Option<&std::path::Path>,
    ) -> Result<Option<Self>, String> {
        let (field, text) = match (file, inline.is_empty()) {
            (Some(_), false) => {
                return Err(
                    "encryption_key: set either encryption_key or encryption_key_file, not both"
                        .into(),
                );
            }
            (Some(path), true) => (
                "encryption_key_file",
                std::fs::read_to_string(path).map_err(|e| {
                    format!("encryption_key_file: cannot read {}: {e}", path.display())
                })?,
            ),
            (None, false) => ("encryption_key", inline.expose().to_owned()),
            (None, true) => return Ok(None),
        };
        Self::from_hex(&text)
            .map(Some)
            .map_err(|e| format!("{field}: {e}"))
    }

    /// The key itself; keep it out of logs and errors.
    pub fn bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl std::fmt::Debug for EncryptionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EncryptionKey([redacted])")
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
    fn encryption_keys_come_inline_or_from_a_file_and_never_print() {
        let hex = "ab".repeat(32);
        let inline = EncryptionKey::configured(&Secret::new(format!(" {hex}\n")), None)
            .expect("valid")
            .expect("set");
        assert_eq!(inline.bytes(), &[0xab; 32]);
        assert_eq!(format!("{inline:?}"), "EncryptionKey([redacted])");
        assert_eq!(
            EncryptionKey::configured(&Secret::default(), None),
            Ok(None)
        );

        let dir = std::env::temp_dir().join(format!("llmscope-key-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let file = dir.join("key");
        std::fs::write(&file, format!("{hex}\n")).expect("write");
        let from_file = EncryptionKey::configured(&Secret::default(), Some(&file));
        assert_eq!(from_file, Ok(Some(inline)));
        assert_eq!(
            EncryptionKey::configured(&Secret::new(hex.clone()), Some(&file)).unwrap_err(),
            "encryption_key: set either encryption_key or encryption_key_file, not both"
        );
        let short = EncryptionKey::configured(&Secret::new("c0ffee"), None).unwrap_err();
        assert_eq!(
            short,
            "encryption_key: must be 64 hexadecimal characters (32 bytes, AES-256)"
        );
        let missing = EncryptionKey::configured(&Secret::default(), Some(&dir.join("none")));
        assert!(
            missing
                .unwrap_err()
                .starts_with("encryption_key_file: cannot read ")
        );
        std::fs::remove_dir_all(&dir).expect("clean up");
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
