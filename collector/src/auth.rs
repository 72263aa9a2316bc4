//! API keys: minted with a recognisable prefix from the OS's random source, stored only as their
//! SHA-256 hash in the metadata store, looked up by hash with a short cache (so revocation
//! takes effect within `cache_ttl` on every collector), and the admin token for the key API and
//! cross-project reads.
//!
//! Keys can also be listed in the config (`keys`), for a collector with no store of its own (a
//! node agent in front of a gateway): they are held only as hashes, checked before the store, and
//! cannot be revoked through the API (change the config and restart).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use llmscope_core::config::Secret;
use llmscope_exporters::metadata::{ApiKey, MetadataStore};
use serde::Deserialize;
use sha2::{Digest, Sha256};

/// Prefix of every key, so leaked keys are recognisable (and scanners can find them).
pub const KEY_PREFIX: &str = "lls_";

/// Configuration of the `auth` extension.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// `api_key`: every OTLP request and API call needs a key. `none`: no keys, allowed only
    /// when every listener is on loopback. Default: `api_key`.
    pub mode: AuthMode,
    /// Token for the key API and for reading any project (`?project=`); use
    /// `${env:LLMSCOPE_ADMIN_TOKEN}`. Default: none (no admin access).
    pub admin_token: Secret,
    /// Id of the exporter whose store holds projects and keys (`sqlite` or `postgres`).
    /// Default: `sqlite`, or none when `keys` are listed. Read it through [`AuthConfig::store`].
    pub store: Option<String>,
    /// Keys given in the config (from `${env:...}`), checked before the store. Default: none.
    pub keys: Vec<ListedKey>,
    /// How long a key lookup is cached; revocation takes effect within it. Default: `5s`.
    #[serde(with = "llmscope_core::config::duration")]
    pub cache_ttl: Duration,
    /// Rate limits per key and per project. Default: none.
    pub limits: crate::limits::LimitsConfig,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMode {
    ApiKey,
    None,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            mode: AuthMode::ApiKey,
            admin_token: Secret::default(),
            store: None,
            keys: Vec::new(),
            cache_ttl: Duration::from_secs(5),
            limits: Default::default(),
        }
    }
}

/// A key listed in the config.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ListedKey {
    /// Shown as the key's id (`config:<name>`) in rate limits and logs.
    pub name: String,
    /// The project its data is stored under. Default: `default`.
    #[serde(default = "default_project")]
    pub project: String,
    /// The key itself, at least [`LISTED_KEY_MIN_LEN`] characters; use `${env:...}`.
    pub key: Secret,
}

fn default_project() -> String {
    "default".into()
}

/// Shortest key accepted in the config: 32 characters (a minted key has 47).
pub const LISTED_KEY_MIN_LEN: usize = 32;

impl AuthConfig {
    /// The exporter holding keys: `store` when given, else `sqlite` unless keys are listed.
    pub fn store(&self) -> Option<&str> {
        match &self.store {
            Some(store) => Some(store),
            None if self.keys.is_empty() => Some("sqlite"),
            None => None,
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        self.limits.validate()?;
        if !self.admin_token.is_empty() && self.admin_token.expose().len() < 16 {
            return Err("admin_token: use at least 16 characters".into());
        }
        if self.mode == AuthMode::None && !self.keys.is_empty() {
            return Err("keys: listed keys need `mode: api_key`".into());
        }
        let (mut seen, mut names) = (
            std::collections::HashSet::new(),
            std::collections::HashSet::new(),
        );
        for (i, k) in self.keys.iter().enumerate() {
            let valid = |v: &str| !v.is_empty() && v.len() <= 128;
            if !valid(&k.name) || !valid(&k.project) {
                return Err(format!(
                    "keys[{i}]: name and project must be 1 to 128 characters"
                ));
            }
            if k.key.expose().trim().len() < LISTED_KEY_MIN_LEN {
                return Err(format!(
                    "keys[{i}] ({}): the key is empty or shorter than {LISTED_KEY_MIN_LEN} \
                     characters (is its environment variable set?)",
                    k.name
                ));
            }
            if !seen.insert(sha256(k.key.expose().trim())) {
                return Err(format!(
                    "keys[{i}] ({}): the same key is listed twice",
                    k.name
                ));
            }
            if !names.insert(k.name.as_str()) {
                return Err(format!("keys[{i}]: the name {:?} is listed twice", k.name));
            }
            if k.key.expose().trim() == self.admin_token.expose().trim() {
                return Err(format!("keys[{i}] ({}): the same as admin_token", k.name));
            }
        }
        Ok(())
    }
}

/// Who sent a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// An API key: its project and id.
    Key { project: String, key_id: String },
    /// The admin token.
    Admin,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    #[error("missing API key: send `Authorization: Bearer <key>` or `x-api-key: <key>`")]
    Missing,
    #[error("invalid or revoked API key")]
    Invalid,
    #[error("the key store is unavailable; retry later")]
    Unavailable,
}

pub fn sha256(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

/// A new key, shown once: `lls_` and 43 base62 characters (256 bits of entropy).
pub fn mint_key() -> Result<String, String> {
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut bytes = [0u8; 64];
    getrandom::fill(&mut bytes).map_err(|e| format!("no random source: {e}"))?;
    // Rejection sampling keeps every character uniform.
    let chars: String = bytes
        .iter()
        .filter(|b| usize::from(**b) < 62 * 4)
        .take(43)
        .map(|b| char::from(ALPHABET[usize::from(*b) % 62]))
        .collect();
    if chars.len() < 43 {
        return mint_key();
    }
    Ok(format!("{KEY_PREFIX}{chars}"))
}

fn random_id() -> Result<String, String> {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).map_err(|e| format!("no random source: {e}"))?;
    Ok(format!("key_{}", hex::encode(bytes)))
}

/// A key just created: the key itself (shown once) and what is stored.
pub struct CreatedKey {
    pub key: String,
    pub stored: ApiKey,
}

/// Creates a key for `project` (creating the project if needed).
pub async fn create_key(
    store: &dyn MetadataStore,
    project: &str,
    name: &str,
) -> Result<CreatedKey, String> {
    let now = now_ns();
    store
        .ensure_project(project, project, now)
        .await
        .map_err(|e| e.to_string())?;
    let key = mint_key()?;
    let stored = ApiKey {
        id: random_id()?,
        project: project.to_owned(),
        name: name.to_owned(),
        display_prefix: key.chars().take(KEY_PREFIX.len() + 6).collect(),
        key_sha256: sha256(&key),
        created_at_ns: now,
        last_used_at_ns: None,
        revoked_at_ns: None,
    };
    store.create_key(&stored).await.map_err(|e| e.to_string())?;
    Ok(CreatedKey { key, stored })
}

type Cached = (Option<(String, String)>, Instant);

/// Checks presented keys and the admin token.
pub struct Authenticator {
    store: Option<Arc<dyn MetadataStore>>,
    /// The config's keys: hash to (project, key id).
    listed: HashMap<[u8; 32], (String, String)>,
    admin_token: Secret,
    ttl: Duration,
    /// Key hash to (project, key id) or `None` for unknown/revoked, and when it was looked up.
    cache: Mutex<HashMap<[u8; 32], Cached>>,
    /// Store lookups at once: a flood of distinct bad keys queues here instead of growing the
    /// blocking pool by a thread a key.
    lookups: tokio::sync::Semaphore,
    /// Refused keys, to log the first of each burst.
    refusals: crate::redis::Bursts,
    failures: Failures,
}

/// Failed authentications per client address, to slow a client that keeps presenting bad keys:
/// past [`FREE_FAILURES`] in a [`FAILURE_WINDOW`], each further refusal is answered after a
/// delay growing by [`FAILURE_DELAY_STEP`] up to [`FAILURE_DELAY_MAX`]. Bounded: at most
/// [`TRACKED_ADDRESSES`] addresses, the windows that ended forgotten first.
#[derive(Default)]
struct Failures(Mutex<HashMap<std::net::IpAddr, (u32, Instant)>>);

const FREE_FAILURES: u32 = 5;
const FAILURE_WINDOW: Duration = Duration::from_secs(10);
const FAILURE_DELAY_STEP: Duration = Duration::from_millis(100);
const FAILURE_DELAY_MAX: Duration = Duration::from_secs(2);
const TRACKED_ADDRESSES: usize = 10_000;

impl Failures {
    /// Records a failure from `from`; returns how long to hold the answer.
    fn failed(&self, from: std::net::IpAddr) -> Duration {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= TRACKED_ADDRESSES && !map.contains_key(&from) {
            map.retain(|_, (_, since)| since.elapsed() < FAILURE_WINDOW);
            if map.len() >= TRACKED_ADDRESSES {
                map.clear();
            }
        }
        let entry = map.entry(from).or_insert((0, Instant::now()));
        if entry.1.elapsed() >= FAILURE_WINDOW {
            *entry = (0, Instant::now());
        }
        entry.0 += 1;
        FAILURE_DELAY_STEP
            .saturating_mul(entry.0.saturating_sub(FREE_FAILURES))
            .min(FAILURE_DELAY_MAX)
    }
}

/// Store lookups of keys not in the cache, at once at most.
const CONCURRENT_LOOKUPS: usize = 8;

/// Cached lookups at most; past it, expired entries and then refusals are evicted.
const CACHE_CAPACITY: usize = 100_000;

impl Authenticator {
    /// Checks `config`'s listed keys, then `store`'s.
    pub fn new(store: Option<Arc<dyn MetadataStore>>, config: &AuthConfig) -> Self {
        let listed = config
            .keys
            .iter()
            .map(|k| {
                let who = (k.project.clone(), format!("config:{}", k.name));
                (sha256(k.key.expose().trim()), who)
            })
            .collect();
        Self {
            store,
            listed,
            admin_token: config.admin_token.clone(),
            ttl: config.cache_ttl,
            cache: Mutex::new(HashMap::new()),
            lookups: tokio::sync::Semaphore::new(CONCURRENT_LOOKUPS),
            refusals: crate::redis::Bursts::default(),
            failures: Failures::default(),
        }
    }

    /// The store keys are created in and revoked from; `None` when only listed keys exist.
    pub fn store(&self) -> Option<&Arc<dyn MetadataStore>> {
        self.store.as_ref()
    }

    /// Whether `token` is the admin token, compared in constant time: as SHA-256 digests, so
    /// that not even a length mismatch returns early.
    pub fn is_admin(&self, token: &str) -> bool {
        let admin = self.admin_token.expose();
        let (a, b) = (sha256(admin), sha256(token));
        let differ = a.iter().zip(&b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
        !admin.is_empty() && differ == 0
    }

    /// Forgets the cached lookups of the key `id` (just revoked here): it is refused at once on
    /// this collector, on others within `cache_ttl`.
    pub fn forget_key(&self, id: &str) {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache.retain(|_, (found, _)| found.as_ref().is_none_or(|(_, key)| key != id));
    }

    /// The principal behind a presented secret (the admin token or an unrevoked key), for a
    /// client at `from` when known: a client that keeps failing is answered ever more slowly.
    pub async fn authenticate_from(
        &self,
        presented: Option<&str>,
        from: Option<std::net::IpAddr>,
    ) -> Result<Principal, AuthError> {
        let result = self.authenticate(presented).await;
        if let (Err(AuthError::Missing | AuthError::Invalid), Some(from)) = (&result, from) {
            self.hold_failure(from).await;
        }
        result
    }

    /// Records a failed authentication from `from` and waits as long as that client has earned.
    pub async fn hold_failure(&self, from: std::net::IpAddr) {
        let hold = self.failures.failed(from);
        if !hold.is_zero() {
            tokio::time::sleep(hold).await;
        }
    }

    /// The principal behind a presented secret: the admin token or an unrevoked key.
    pub async fn authenticate(&self, presented: Option<&str>) -> Result<Principal, AuthError> {
        let presented = presented
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .ok_or(AuthError::Missing)?;
        if self.is_admin(presented) {
            return Ok(Principal::Admin);
        }
        let hash = sha256(presented);
        if let Some((project, key_id)) = self.listed.get(&hash) {
            return Ok(Principal::Key {
                project: project.clone(),
                key_id: key_id.clone(),
            });
        }
        let Some(store) = &self.store else {
            return Err(self.refused());
        };
        let cached = {
            let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            cache
                .get(&hash)
                .filter(|(_, at)| at.elapsed() < self.ttl)
                .map(|(v, _)| v.clone())
        };
        let found = match cached {
            Some(found) => found,
            None => {
                let _lookup = self.lookups.acquire().await;
                let key = store.key_by_hash(&hash).await.map_err(|error| {
                    tracing::warn!(%error, "API key lookup failed");
                    AuthError::Unavailable
                })?;
                let found = key
                    .filter(|k| k.revoked_at_ns.is_none())
                    .map(|k| (k.project, k.id));
                if let Some((_, id)) = &found {
                    // Recorded once per cache period, not per request.
                    if let Err(error) = store.touch_key(id, now_ns()).await {
                        tracing::debug!(%error, "could not record key use");
                    }
                }
                let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
                if cache.len() >= CACHE_CAPACITY {
                    // Make room without dropping valid keys' entries: the expired first, then
                    // the refusals (a flood of bad keys must not evict the good ones).
                    cache.retain(|_, (_, at)| at.elapsed() < self.ttl);
                    if cache.len() >= CACHE_CAPACITY {
                        cache.retain(|_, (found, _)| found.is_some());
                    }
                    if cache.len() >= CACHE_CAPACITY {
                        cache.clear();
                    }
                }
                cache.insert(hash, (found.clone(), Instant::now()));
                found
            }
        };
        match found {
            Some((project, key_id)) => Ok(Principal::Key { project, key_id }),
            None => Err(self.refused()),
        }
    }

    fn refused(&self) -> AuthError {
        if self.refusals.first() {
            // The key is never logged: only that one was refused (every refusal is counted by
            // the receiver or the API).
            tracing::warn!("an unknown or revoked API key was refused");
        }
        AuthError::Invalid
    }
}

/// The secret a request presents: `Authorization: Bearer <key>`, `x-api-key: <key>`, or, with
/// `basic`, the password of `Authorization: Basic` (what Langfuse's OTel SDKs send).
pub fn presented<'a>(
    authorization: Option<&'a str>,
    x_api_key: Option<&'a str>,
    basic: bool,
) -> Option<std::borrow::Cow<'a, str>> {
    if let Some(key) = x_api_key {
        return Some(key.into());
    }
    let auth = authorization?.trim();
    let (scheme, value) = auth.split_once(' ')?;
    if scheme.eq_ignore_ascii_case("bearer") {
        return Some(value.trim().into());
    }
    if basic && scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64_decode(value.trim())?;
        let text = String::from_utf8(decoded).ok()?;
        let (_, password) = text.split_once(':')?;
        return Some(password.to_owned().into());
    }
    None
}

/// Standard base64 (with or without padding).
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    };
    let bytes: Vec<u8> = s.bytes().filter(|b| *b != b'=').collect();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let v: Vec<u8> = chunk.iter().map(|c| value(*c)).collect::<Option<_>>()?;
        let n = v.iter().fold(0u32, |acc, x| (acc << 6) | u32::from(*x)) << (6 * (4 - v.len()));
        let take = match v.len() {
            4 => 3,
            3 => 2,
            2 => 1,
            _ => return None,
        };
        out.extend_from_slice(&n.to_be_bytes()[1..1 + take]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_prefixed_long_and_distinct() {
        let a = mint_key().expect("key");
        let b = mint_key().expect("key");
        assert!(
            a.starts_with(KEY_PREFIX) && a.len() == KEY_PREFIX.len() + 43,
            "{a}"
        );
        assert_ne!(a, b);
    }

    #[test]
    fn credentials_are_read_from_bearer_x_api_key_and_basic() {
        assert_eq!(
            presented(Some("Bearer lls_x"), None, false).as_deref(),
            Some("lls_x")
        );
        assert_eq!(
            presented(Some("bearer  lls_x "), None, false).as_deref(),
            Some("lls_x")
        );
        assert_eq!(
            presented(None, Some("lls_y"), false).as_deref(),
            Some("lls_y")
        );
        // pk-lf-1:lls_z
        let basic = "Basic cGstbGYtMTpsbHNfeg==";
        assert_eq!(presented(Some(basic), None, true).as_deref(), Some("lls_z"));
        assert_eq!(
            presented(Some(basic), None, false),
            None,
            "Basic only on the Langfuse path"
        );
        assert_eq!(presented(Some("Basic !!!"), None, true), None);
        assert_eq!(presented(None, None, true), None);
    }
}
