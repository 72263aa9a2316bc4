//! Who evaluates: with Redis, the one collector holding a lease (`SET NX PX`, renewed by a
//! compare-and-renew script well before it lapses); without, this collector alone.
//!
//! Each lease comes with a fence token (a Redis counter, raised past the store's fence if Redis
//! lost it) that every alert write carries: the store refuses a token lower than one that has
//! written, so a leader that stalled past its lease cannot write after its successor.
//! A leader that cannot renew (Redis down, lease taken) stops at once; nobody evaluates while
//! Redis is unreachable, rather than everybody.

use std::sync::Arc;
use std::time::{Duration, Instant};

use llmscope_exporters::metadata::MetadataStore;

use crate::redis::{Bursts, LazyRedis};
use crate::telemetry::{Telemetry, metrics};

/// Renews the lease if the caller still holds it.
const RENEW: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0";

pub enum Lease {
    Solo { token: i64 },
    Shared(Box<Shared>),
}

pub struct Shared {
    redis: LazyRedis,
    /// `<prefix>:leader` and `<prefix>:token`.
    keys: [String; 2],
    me: String,
    ttl: Duration,
    held: tokio::sync::Mutex<Option<Held>>,
    store: Arc<dyn MetadataStore>,
    telemetry: Telemetry,
    failures: Bursts,
}

pub struct Held {
    token: i64,
    value: String,
    renewed: Instant,
}

impl Lease {
    pub fn shared(
        redis: LazyRedis,
        prefix: &str,
        ttl: Duration,
        store: Arc<dyn MetadataStore>,
        telemetry: Telemetry,
    ) -> Self {
        let mut id = [0u8; 8];
        let _ = getrandom::fill(&mut id);
        Lease::Shared(Box::new(Shared {
            redis,
            keys: [format!("{prefix}:leader"), format!("{prefix}:token")],
            me: format!("{}-{}", std::process::id(), hex::encode(id)),
            ttl,
            held: tokio::sync::Mutex::new(None),
            store,
            telemetry,
            failures: Bursts::default(),
        }))
    }

    /// The fence token to write with, when this collector is the evaluator now.
    pub async fn hold(&self) -> Option<i64> {
        let shared = match self {
            Lease::Solo { token } => return Some(*token),
            Lease::Shared(shared) => shared,
        };
        let Shared {
            redis,
            keys: [leader_key, token_key],
            me,
            ttl,
            held,
            store,
            telemetry,
            failures,
        } = shared.as_ref();
        let mut held = held.lock().await;
        let changes =
            |change| telemetry.counter(&metrics::ALERT_LEADER_CHANGES, &[("change", change)]);
        let result = async {
            let mut conn = redis.connection().await?;
            let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
            if let Some(h) = held.as_mut() {
                if h.renewed.elapsed() < *ttl / 3 {
                    return Ok(Some(h.token));
                }
                let renewed: i64 = redis::Script::new(RENEW)
                    .key(leader_key)
                    .arg(&h.value)
                    .arg(ms)
                    .invoke_async(&mut conn)
                    .await?;
                if renewed == 1 {
                    h.renewed = Instant::now();
                    return Ok(Some(h.token));
                }
                tracing::warn!(
                    token = h.token,
                    "alert evaluator lease lost to another collector"
                );
                changes("lost").add(1);
                *held = None;
                return Ok(None);
            }
            let current: Option<String> = redis::cmd("GET")
                .arg(leader_key)
                .query_async(&mut conn)
                .await?;
            if current.is_some() {
                return Ok(None);
            }
            let mut token: i64 = redis::cmd("INCR")
                .arg(token_key)
                .query_async(&mut conn)
                .await?;
            // Redis may have lost the counter: never go below a token that already wrote.
            if let Ok(fence) = store.fence().await
                && token <= fence
            {
                token = redis::cmd("INCRBY")
                    .arg(token_key)
                    .arg(fence + 1 - token)
                    .query_async(&mut conn)
                    .await?;
            }
            let value = format!("{me}:{token}");
            let set: Option<String> = redis::cmd("SET")
                .arg(leader_key)
                .arg(&value)
                .arg("NX")
                .arg("PX")
                .arg(ms)
                .query_async(&mut conn)
                .await?;
            if set.is_none() {
                return Ok(None);
            }
            tracing::info!(token, "this collector is now the alert evaluator");
            changes("acquired").add(1);
            *held = Some(Held {
                token,
                value,
                renewed: Instant::now(),
            });
            Ok::<_, redis::RedisError>(Some(token))
        }
        .await;
        match result {
            Ok(token) => token,
            Err(e) => {
                if failures.first() {
                    tracing::warn!(error = ?e.kind(), "Redis unreachable: alert evaluation paused until it answers");
                }
                if held.take().is_some() {
                    changes("lost").add(1);
                }
                None
            }
        }
    }

    /// Gives the lease up (on shutdown), so another collector takes over without waiting.
    pub async fn release(&self) {
        let Lease::Shared(shared) = self else {
            return;
        };
        let Shared {
            redis,
            keys: [leader_key, _],
            held: h,
            ..
        } = shared.as_ref();
        let Some(held) = h.lock().await.take() else {
            return;
        };
        const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0";
        if let Ok(mut conn) = redis.connection().await {
            let _: Result<i64, _> = redis::Script::new(RELEASE)
                .key(leader_key)
                .arg(&held.value)
                .invoke_async(&mut conn)
                .await;
        }
    }
}
