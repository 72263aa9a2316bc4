//! Short-lived stream tokens for browsers, which cannot set headers on `EventSource` or
//! WebSocket: `POST /api/v1/stream/token` (with a key, or the admin token and `?project=`)
//! answers one, passed as `?token=`. A token is `<base64url payload>.<base64url HMAC-SHA256>`
//! of `{"p": project, "e": expiry (Unix seconds)}`; it reads that project's stream only.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hmac::{Hmac, Mac};
use llmscope_core::config::Secret;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

#[derive(Serialize, Deserialize)]
struct Claims {
    p: String,
    e: i64,
}

pub struct Tokens {
    key: [u8; 32],
    ttl: Duration,
}

impl Tokens {
    /// The key from config, else the one shared through Redis, else a random one (tokens then
    /// work on this collector only).
    pub fn new(secret: &Secret, shared: Option<String>, ttl: Duration) -> Self {
        let key = if !secret.is_empty() {
            Sha256::digest(secret.expose().as_bytes()).into()
        } else if let Some(shared) = shared {
            Sha256::digest(shared.as_bytes()).into()
        } else {
            let mut random = [0u8; 32];
            let _ = getrandom::fill(&mut random);
            random
        };
        Self { key, ttl }
    }

    fn mac(&self, payload: &str) -> Vec<u8> {
        // HMAC takes keys of any length; an error here cannot happen, and would sign nothing.
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.key) else {
            return Vec::new();
        };
        mac.update(payload.as_bytes());
        mac.finalize().into_bytes().to_vec()
    }

    /// A token for `project` and when it expires (Unix seconds).
    pub fn issue(&self, project: &str, now_s: i64) -> (String, i64) {
        let expires = now_s + self.ttl.as_secs() as i64;
        let claims = Claims {
            p: project.to_owned(),
            e: expires,
        };
        let payload = B64.encode(serde_json::to_vec(&claims).unwrap_or_default());
        let sig = B64.encode(self.mac(&payload));
        (format!("{payload}.{sig}"), expires)
    }

    /// The project a valid, unexpired token is for.
    pub fn verify(&self, token: &str, now_s: i64) -> Option<String> {
        let (payload, sig) = token.split_once('.')?;
        let sig = B64.decode(sig).ok()?;
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).ok()?;
        mac.update(payload.as_bytes());
        mac.verify_slice(&sig).ok()?;
        let claims: Claims = serde_json::from_slice(&B64.decode(payload).ok()?).ok()?;
        (claims.e > now_s).then_some(claims.p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_verify_until_they_expire_and_not_when_forged() {
        let tokens = Tokens::new(
            &Secret::new("a long enough secret"),
            None,
            Duration::from_secs(60),
        );
        let (token, expires) = tokens.issue("p1", 1000);
        assert_eq!(expires, 1060);
        assert_eq!(tokens.verify(&token, 1059).as_deref(), Some("p1"));
        assert_eq!(tokens.verify(&token, 1060), None, "expired");
        let (payload, sig) = token.split_once('.').expect("two parts");
        let forged = B64.encode(br#"{"p":"p2","e":99999}"#);
        assert_eq!(tokens.verify(&format!("{forged}.{sig}"), 1000), None);
        let other = Tokens::new(
            &Secret::new("another long secret"),
            None,
            Duration::from_secs(60),
        );
        assert_eq!(other.verify(&token, 1000), None);
        assert_eq!(tokens.verify(payload, 1000), None);
    }
}
