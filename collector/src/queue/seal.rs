//! Encryption at rest of what the disk queue writes: every record of its segments and every
//! line of its dead-letter files is sealed with AES-256-GCM under the key of
//! `service.queue.encryption_key` (or `encryption_key_file`): a random 96-bit nonce, then the
//! ciphertext and its 128-bit tag, so a record read back is also checked for tampering.
//!
//! Guarantees: a queue folder written with a key holds a `key-check` record (a known text sealed
//! with that key); opening it with another key, without one, or opening a folder of plain records
//! with a key, is a start-up error that names the cause and changes no file. The key is never
//! logged, and `Debug` shows none of it.

use std::io::Write;
use std::path::Path;

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};

/// The key check's file in a queue folder, and what it seals.
const KEY_CHECK: &str = "key-check";
const KEY_CHECK_TEXT: &[u8] = b"llmscope disk queue key check, version 1";
const NONCE: usize = 12;

/// Seals and opens records under one AES-256-GCM key.
pub struct Sealer {
    cipher: Aes256Gcm,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(AES-256-GCM, key hidden)")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("the record cannot be opened with this key (another key wrote it, or it was altered)")]
    Open,
    #[error("the record is shorter than a nonce and a tag")]
    Short,
}

/// Why a queue folder cannot be opened with the key given (or without one).
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error(
        "the queue was written with another encryption key; give it the key it was written \
         with (nothing was changed)"
    )]
    Wrong,
    #[error(
        "the queue is encrypted; set service.queue.encryption_key (or encryption_key_file) to \
         the key it was written with (nothing was changed)"
    )]
    Missing,
    #[error(
        "the queue holds records written without encryption; let it drain with the key unset, \
         or move the folder away, before turning encryption on (nothing was changed)"
    )]
    Plain,
    #[error("queue storage: {0}")]
    Io(#[from] std::io::Error),
}

impl Sealer {
    /// A sealer of the 32-byte `key`.
    pub fn new(key: &[u8; 32]) -> Self {
        Self {
            cipher: Aes256Gcm::new(key.into()),
        }
    }

    /// A sealer of a key given as 64 hexadecimal characters; the error never quotes the text.
    pub fn from_hex(text: &str) -> Result<Self, String> {
        llmscope_core::config::EncryptionKey::from_hex(text).map(|key| Self::new(key.bytes()))
    }

    /// `nonce || ciphertext || tag` of `plain`, under a fresh random nonce.
    pub fn seal(&self, plain: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE];
        // The OS's generator; failing it, the process could not have started its TLS either.
        getrandom::fill(&mut nonce).expect("the OS random number generator");
        let sealed = self
            .cipher
            .encrypt(Nonce::from_slice(&nonce), plain)
            .expect("AES-GCM encrypts any record under 64 GiB");
        let mut out = Vec::with_capacity(NONCE + sealed.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        out
    }

    /// The plain bytes of a record [`Sealer::seal`] made with this key.
    pub fn open(&self, sealed: &[u8]) -> Result<Vec<u8>, SealError> {
        if sealed.len() < NONCE + 16 {
            return Err(SealError::Short);
        }
        let (nonce, body) = sealed.split_at(NONCE);
        self.cipher
            .decrypt(Nonce::from_slice(nonce), body)
            .map_err(|_| SealError::Open)
    }
}

/// A dead letter (one JSON line, without its newline) as an encrypted queue writes it:
/// `{"sealed_hex": ...}`, the line sealed.
pub fn seal_letter(sealer: &Sealer, line: &[u8]) -> Vec<u8> {
    let sealed = serde_json::json!({ "sealed_hex": hex::encode(sealer.seal(line)) });
    sealed.to_string().into_bytes()
}

/// The plain line of a letter [`seal_letter`] wrote, `None` for a line that is not sealed, or
/// an error when this key cannot open it.
pub fn open_letter(sealer: &Sealer, line: &str) -> Option<Result<Vec<u8>, SealError>> {
    let value: serde_json::Value = serde_json::from_str(line).ok()?;
    let text = value.get("sealed_hex")?.as_str()?;
    Some(
        hex::decode(text)
            .map_err(|_| SealError::Open)
            .and_then(|bytes| sealer.open(&bytes)),
    )
}

/// Checks, before anything in `dir` is read or changed, that `sealer` (or its absence) fits the
/// queue there, and marks a new or empty encrypted queue with its key check.
pub fn check_folder(dir: &Path, sealer: Option<&Sealer>) -> Result<(), KeyError> {
    let check = dir.join(KEY_CHECK);
    match (std::fs::read(&check), sealer) {
        (Ok(sealed), Some(sealer)) => match sealer.open(&sealed) {
            Ok(text) if text == KEY_CHECK_TEXT => Ok(()),
            _ => Err(KeyError::Wrong),
        },
        (Ok(_), None) => Err(KeyError::Missing),
        (Err(e), _) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
        (Err(_), None) => Ok(()),
        (Err(_), Some(sealer)) => {
            if holds_records(dir)? {
                return Err(KeyError::Plain);
            }
            std::fs::create_dir_all(dir)?;
            let tmp = dir.join(format!("{KEY_CHECK}.tmp"));
            let mut file = std::fs::File::create(&tmp)?;
            file.write_all(&sealer.seal(KEY_CHECK_TEXT))?;
            file.sync_all()?;
            std::fs::rename(&tmp, &check)?;
            std::fs::File::open(dir)?.sync_all()?;
            Ok(())
        }
    }
}

/// Whether `dir` has a non-empty segment or dead-letter file.
fn holds_records(dir: &Path) -> std::io::Result<bool> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let data = name.ends_with(".seg") || name.starts_with("dead-letter-");
        if data && entry.metadata()?.len() > 0 {
            return Ok(true);
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_open_only_with_their_key_and_unaltered() {
        let sealer = Sealer::from_hex(&"11".repeat(32)).expect("key");
        let sealed = sealer.seal(b"a prompt with jane@example.com");
        assert!(!sealed.windows(4).any(|w| w == b"jane"));
        assert_eq!(
            sealer.open(&sealed).expect("open"),
            b"a prompt with jane@example.com"
        );
        assert_ne!(
            sealer.seal(b"x"),
            sealer.seal(b"x"),
            "a fresh nonce each time"
        );
        let mut altered = sealed.clone();
        altered[20] ^= 1;
        assert!(matches!(sealer.open(&altered), Err(SealError::Open)));
        let other = Sealer::from_hex(&"22".repeat(32)).expect("key");
        assert!(matches!(other.open(&sealed), Err(SealError::Open)));
        assert!(matches!(sealer.open(&sealed[..10]), Err(SealError::Short)));
        let refused = Sealer::from_hex("00ff-not-hex").unwrap_err();
        assert!(!refused.contains("00ff"), "{refused}");
        assert_eq!(
            format!("{sealer:?}"),
            "Sealer(AES-256-GCM, key hidden)",
            "no key in Debug"
        );
    }
}
