//! Caching of analytics responses, in Redis when configured (shared by every collector) or in
//! process. Keys are the project and the parsed query; a range that reaches the present is kept
//! `live_ttl`, a closed one `closed_ttl`. Redis trouble never fails a query: it is a miss (or
//! a response not kept), counted in `llmscope_query_cache_redis_errors_total` and logged once
//! per burst.

use llmscope_core::telemetry::metrics;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use llmscope_core::config::Secret;
use llmscope_core::telemetry::{Counter, Telemetry};
use serde::Deserialize;

use crate::redis::LazyRedis;

/// Configuration of the API's query cache (`extensions.api.cache`).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct CacheConfig {
    /// Cache analytics responses. Default: true.
    pub enabled: bool,
    /// Redis URL (`${env:REDIS_URL}`); empty keeps the cache in process. Default: empty.
    pub redis_url: Secret,
    /// Time a response over a range reaching the present is reused: long enough to serve a burst
    /// of identical dashboard queries, short enough that new data shows at once. Default: `2s`.
    #[serde(with = "llmscope_core::config::duration")]
    pub live_ttl: Duration,
    /// Time a response over a closed range (ending a minute or more ago) is reused. Default: `5m`.
    #[serde(with = "llmscope_core::config::duration")]
    pub closed_ttl: Duration,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            redis_url: Secret::default(),
            live_ttl: Duration::from_secs(2),
            closed_ttl: Duration::from_secs(300),
        }
    }
}

/// Entries kept in process at most; the cache is cleared when full.
const LOCAL_CAPACITY: usize = 10_000;

pub struct QueryCache {
    config: CacheConfig,
    local: Mutex<HashMap<String, (String, Instant)>>,
    redis: Option<LazyRedis>,
    hits: Counter,
    misses: Counter,
    redis_errors: Counter,
    bursts: crate::redis::Bursts,
}

impl QueryCache {
    pub fn new(config: CacheConfig, telemetry: &Telemetry) -> Result<Self, String> {
        let redis = LazyRedis::open(&config.redis_url, "cache.redis_url")?;
        Ok(Self {
            config,
            local: Mutex::new(HashMap::new()),
            redis,
            hits: telemetry.counter(&metrics::QUERY_CACHE, &[("result", "hit")]),
            misses: telemetry.counter(&metrics::QUERY_CACHE, &[("result", "miss")]),
            redis_errors: telemetry.counter(&metrics::QUERY_CACHE_REDIS_ERRORS, &[]),
            bursts: crate::redis::Bursts::default(),
        })
    }

    /// The time to keep a response over a range ending at `to_ns` (`None`: now).
    pub fn ttl(&self, to_ns: Option<i64>, now_ns: i64) -> Duration {
        match to_ns {
            Some(to) if to < now_ns - 60_000_000_000 => self.config.closed_ttl,
            _ => self.config.live_ttl,
        }
    }

    async fn connection(&self) -> Option<redis::aio::ConnectionManager> {
        let connection = self.redis.as_ref()?.connection().await;
        connection.map_err(|error| self.failed(&error)).ok()
    }

    /// Counts a Redis failure; logs the first of a burst.
    fn failed(&self, error: &redis::RedisError) {
        self.redis_errors.add(1);
        if self.bursts.first() {
            tracing::warn!(error = ?error.kind(), "Redis unreachable; the query cache misses until it is back");
        }
    }

    pub async fn get(&self, key: &str) -> Option<String> {
        if !self.config.enabled {
            return None;
        }
        let found = match self.connection().await {
            Some(mut conn) => redis::cmd("GET")
                .arg(format!("llmscope:qc:{key}"))
                .query_async::<Option<String>>(&mut conn)
                .await
                .map_err(|error| self.failed(&error))
                .ok()
                .flatten(),
            None if self.redis.is_some() => None,
            None => {
                let local = self.local.lock().unwrap_or_else(|p| p.into_inner());
                local
                    .get(key)
                    .filter(|(_, until)| Instant::now() < *until)
                    .map(|(v, _)| v.clone())
            }
        };
        match &found {
            Some(_) => self.hits.add(1),
            None => self.misses.add(1),
        }
        found
    }

    pub async fn put(&self, key: &str, value: &str, ttl: Duration) {
        if !self.config.enabled || ttl.is_zero() {
            return;
        }
        match self.connection().await {
            Some(mut conn) => {
                let set = redis::cmd("SET")
                    .arg(format!("llmscope:qc:{key}"))
                    .arg(value)
                    .arg("PX")
                    .arg(ttl.as_millis() as u64)
                    .query_async::<()>(&mut conn)
                    .await;
                if let Err(error) = set {
                    self.failed(&error);
                }
            }
            None if self.redis.is_some() => {}
            None => {
                let mut local = self.local.lock().unwrap_or_else(|p| p.into_inner());
                if local.len() >= LOCAL_CAPACITY {
                    local.clear();
                }
                local.insert(key.to_owned(), (value.to_owned(), Instant::now() + ttl));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_unreachable_redis_is_a_counted_miss() {
        let telemetry = Telemetry::default();
        // Nothing listens on port 1.
        let config = CacheConfig {
            redis_url: Secret::new("redis://127.0.0.1:1"),
            ..CacheConfig::default()
        };
        let cache = QueryCache::new(config, &telemetry).expect("cache");
        cache.put("k", "v", Duration::from_secs(5)).await;
        assert_eq!(cache.get("k").await, None);
        assert_eq!(
            telemetry.value("llmscope_query_cache_redis_errors_total", &[]),
            2,
            "the failed set and the failed get"
        );
        assert_eq!(
            telemetry.value("llmscope_query_cache_total", &[("result", "miss")]),
            1
        );
    }
}
