//! One lazily opened, self-healing Redis connection, shared by the rate limiter and the query
//! cache: short timeouts and no retries, so a Redis outage costs a request at most half a
//! second before the caller falls back.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use llmscope_core::config::Secret;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

pub struct LazyRedis {
    client: redis::Client,
    connection: tokio::sync::Mutex<Option<ConnectionManager>>,
}

impl LazyRedis {
    /// `None` for an empty URL; `field` names the config key in errors (the URL, which may hold
    /// a password, is never repeated).
    pub fn open(url: &Secret, field: &str) -> Result<Option<Self>, String> {
        if url.is_empty() {
            return Ok(None);
        }
        let client = redis::Client::open(url.expose())
            .map_err(|e| format!("{field}: not a Redis URL ({:?})", e.kind()))?;
        Ok(Some(Self {
            client,
            connection: tokio::sync::Mutex::new(None),
        }))
    }

    /// The connection, opened on first use; the manager reconnects by itself afterwards.
    pub async fn connection(&self) -> Result<ConnectionManager, redis::RedisError> {
        let mut slot = self.connection.lock().await;
        if let Some(conn) = slot.as_ref() {
            return Ok(conn.clone());
        }
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_millis(500)))
            .set_response_timeout(Some(Duration::from_millis(500)))
            .set_number_of_retries(0);
        let conn = ConnectionManager::new_with_config(self.client.clone(), config).await?;
        *slot = Some(conn.clone());
        Ok(conn)
    }
}

/// Whether to log a Redis failure: only the first of a burst (after 10 s without one), so an
/// outage is one warning, not one a request. Every failure is still counted by the caller.
#[derive(Debug, Default)]
pub struct Bursts(AtomicU64);

impl Bursts {
    /// True for the first failure after a quiet spell.
    pub fn first(&self) -> bool {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        self.0.swap(now, Ordering::Relaxed) + 10 <= now
    }
}
