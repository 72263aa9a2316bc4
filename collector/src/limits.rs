//! Rate limits per API key and per project (requests/s and spans/s, with a burst), checked
//! before a batch enters the pipeline, each a GCRA bucket: in process always; with Redis
//! configured, one atomic GCRA script per check on Redis server time, so every collector
//! enforces one shared limit. When Redis cannot be reached, each collector falls back to its
//! local limiter at `limit / collectors`, counts it and warns; clients never see an error for it.
//! A request is charged what it carries, however large: one larger than the burst passes when
//! the bucket is full and leaves a debt that holds later requests back, so the average holds.

use llmscope_core::telemetry::metrics;
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use llmscope_core::config::Secret;
use llmscope_core::telemetry::{Counter, Telemetry};
use serde::Deserialize;

use crate::redis::LazyRedis;

/// A rate: 0 means unlimited.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Rate {
    /// Requests per second. Default: 0 (unlimited).
    pub requests_per_second: f64,
    /// Spans (or log records, or data points) per second. Default: 0 (unlimited).
    pub spans_per_second: f64,
    /// How many seconds of the rate may arrive at once. Default: 1.
    pub burst_seconds: f64,
}

impl Default for Rate {
    fn default() -> Self {
        Self {
            requests_per_second: 0.0,
            spans_per_second: 0.0,
            burst_seconds: 1.0,
        }
    }
}

/// Configuration of rate limits (under the `auth` extension).
#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// The limit of every API key. Default: unlimited.
    pub per_key: Rate,
    /// The limit of every project, unless `projects` names it. Default: unlimited.
    pub per_project: Rate,
    /// Limits of named projects.
    pub projects: BTreeMap<String, Rate>,
    /// Redis URL for limits shared by every collector (`${env:REDIS_URL}`); empty for local only.
    pub redis_url: Secret,
    /// How many collectors share the limits: without Redis each allows `limit / collectors`.
    /// Default: 1.
    pub collectors: u32,
}

impl LimitsConfig {
    pub fn validate(&self) -> Result<(), String> {
        let rates = std::iter::once(&self.per_key)
            .chain(std::iter::once(&self.per_project))
            .chain(self.projects.values());
        for r in rates {
            if [r.requests_per_second, r.spans_per_second]
                .iter()
                .any(|v| !v.is_finite() || *v < 0.0)
                || !(r.burst_seconds.is_finite() && r.burst_seconds > 0.0)
            {
                return Err(
                    "limits: rates must be finite and not negative, burst_seconds positive".into(),
                );
            }
        }
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        let unlimited = |r: &Rate| r.requests_per_second == 0.0 && r.spans_per_second == 0.0;
        unlimited(&self.per_key)
            && unlimited(&self.per_project)
            && self.projects.values().all(unlimited)
    }
}

/// A refusal: what was over its limit, and when to try again.
#[derive(Debug, Clone, PartialEq)]
pub struct Limited {
    pub what: &'static str,
    pub retry_after: Duration,
}

/// GCRA on Redis server time. KEYS[1] the bucket; ARGV rate per second, burst (in units), cost.
/// Returns {1, 0} when allowed, {0, microseconds to wait} when not.
const GCRA: &str = r"
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = 1000000 / rate
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + cost * interval
-- A request larger than the burst passes only when the bucket is full, and its whole cost is
-- charged: the debt holds the next requests back, so the average rate holds.
local allow_at = new_tat - math.max(burst, cost) * interval
if allow_at > now then
  return {0, math.ceil(allow_at - now)}
end
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', math.ceil((new_tat - now) / 1000) + 1000)
return {1, 0}
";

/// Buckets kept in process before the full ones are forgotten.
const LOCAL_BUCKETS: usize = 100_000;

pub struct Limiter {
    config: LimitsConfig,
    /// Per bucket, when it is full again (the theoretical arrival time of GCRA).
    local: Mutex<HashMap<String, Instant>>,
    redis: Option<LazyRedis>,
    script: redis::Script,
    fallbacks: Counter,
    /// Redis failures, to log the first of each burst.
    failures: crate::redis::Bursts,
    telemetry: Telemetry,
}

impl Limiter {
    pub fn new(config: LimitsConfig, telemetry: &Telemetry) -> Result<Self, String> {
        let redis = LazyRedis::open(&config.redis_url, "limits.redis_url")?;
        Ok(Self {
            config,
            local: Mutex::new(HashMap::new()),
            redis,
            script: redis::Script::new(GCRA),
            fallbacks: telemetry.counter(&metrics::RATELIMIT_REDIS_FALLBACK, &[]),
            failures: crate::redis::Bursts::default(),
            telemetry: telemetry.clone(),
        })
    }

    /// Checks a request of `items` items from `key_id` (if any) of `project`.
    pub async fn check(
        &self,
        project: &str,
        key_id: Option<&str>,
        items: u64,
    ) -> Result<(), Limited> {
        let project_rate = self
            .config
            .projects
            .get(project)
            .copied()
            .unwrap_or(self.config.per_project);
        let mut checks: Vec<(String, &'static str, f64, f64, u64)> = Vec::new();
        if let Some(key) = key_id {
            let r = self.config.per_key;
            checks.push((
                format!("key:{key}:req"),
                "key requests",
                r.requests_per_second,
                r.burst_seconds,
                1,
            ));
            checks.push((
                format!("key:{key}:items"),
                "key spans",
                r.spans_per_second,
                r.burst_seconds,
                items,
            ));
        }
        let r = project_rate;
        checks.push((
            format!("project:{project}:req"),
            "project requests",
            r.requests_per_second,
            r.burst_seconds,
            1,
        ));
        checks.push((
            format!("project:{project}:items"),
            "project spans",
            r.spans_per_second,
            r.burst_seconds,
            items,
        ));
        for (bucket, what, rate, burst_s, cost) in checks {
            if rate <= 0.0 || cost == 0 {
                continue;
            }
            let burst = (rate * burst_s).max(1.0);
            // The real count is charged. A request larger than the whole burst passes when the
            // bucket is full and leaves a debt that holds later requests back: on average the
            // rate holds, whatever the request sizes.
            let cost = cost as f64;
            if let Err(retry_after) = self.check_one(&bucket, rate, burst, cost).await {
                self.telemetry
                    .counter(&metrics::RATELIMIT_REFUSED, &[("limit", what)])
                    .add(1);
                return Err(Limited { what, retry_after });
            }
        }
        Ok(())
    }

    async fn check_one(
        &self,
        bucket: &str,
        rate: f64,
        burst: f64,
        cost: f64,
    ) -> Result<(), Duration> {
        if let Some(redis) = &self.redis {
            match self.check_redis(redis, bucket, rate, burst, cost).await {
                Ok(result) => return result,
                Err(error) => {
                    self.fallbacks.add(1);
                    if self.failures.first() {
                        tracing::warn!(error = ?error.kind(), "Redis unreachable; rate limits are local until it is back");
                    }
                    let n = f64::from(self.config.collectors.max(1));
                    return self.check_local(bucket, rate / n, (burst / n).max(1.0), cost);
                }
            }
        }
        self.check_local(bucket, rate, burst, cost)
    }

    async fn check_redis(
        &self,
        redis: &LazyRedis,
        bucket: &str,
        rate: f64,
        burst: f64,
        cost: f64,
    ) -> Result<Result<(), Duration>, redis::RedisError> {
        let mut conn = redis.connection().await?;
        let (allowed, wait_us): (i64, i64) = self
            .script
            .key(format!("llmscope:rl:{bucket}"))
            .arg(rate)
            .arg(burst)
            .arg(cost)
            .invoke_async(&mut conn)
            .await?;
        Ok(if allowed == 1 {
            Ok(())
        } else {
            Err(Duration::from_micros(wait_us.max(0) as u64))
        })
    }

    /// GCRA in process, the same rule as the Redis script: `tat` is when the bucket will be
    /// full again; a request is allowed when `tat - max(burst, cost) * interval` has passed.
    fn check_local(&self, bucket: &str, rate: f64, burst: f64, cost: f64) -> Result<(), Duration> {
        let now = Instant::now();
        let interval = 1.0 / rate;
        let mut local = self.local.lock().unwrap_or_else(|p| p.into_inner());
        if local.len() >= LOCAL_BUCKETS && !local.contains_key(bucket) {
            // Buckets that are full again hold nothing worth keeping.
            local.retain(|_, tat| *tat > now);
        }
        let tat = local.get(bucket).copied().unwrap_or(now).max(now);
        let new_tat = tat + Duration::from_secs_f64(cost * interval);
        let allow_at = new_tat
            .checked_sub(Duration::from_secs_f64(burst.max(cost) * interval))
            .unwrap_or(now);
        if allow_at > now {
            return Err(allow_at - now);
        }
        local.insert(bucket.to_owned(), new_tat);
        Ok(())
    }
}
