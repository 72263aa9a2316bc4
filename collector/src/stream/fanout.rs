//! Fan-out through Redis: each collector publishes what it stores for watched projects
//! (`PUBLISH <prefix>:msg:<project>`, one message per batch: `{"o": origin, "m": [...]}`),
//! subscribes to every project's channel, and delivers others' messages to its own subscribers.
//! Which projects are watched anywhere is a sorted set (`<prefix>:watched`, scored by expiry)
//! each collector refreshes every second for its own subscribers; a collector publishes only
//! projects in it, so an unwatched project costs nothing.

use std::collections::HashSet;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures_util::StreamExt as _;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::StreamConfig;
use super::hub::Hub;
use super::message::Message;
use crate::redis::{Bursts, LazyRedis};
use crate::telemetry::{Counter, Telemetry, metrics};

/// Publications to Redis in flight at once; past it a batch is not published (counted), so a
/// slow Redis cannot pile up tasks.
const MAX_IN_FLIGHT: usize = 64;

/// How long a collector's interest in a project lasts without being refreshed.
const INTEREST_TTL: Duration = Duration::from_secs(10);
const REFRESH: Duration = Duration::from_secs(1);

#[derive(Serialize, Deserialize)]
struct Wire {
    /// The publishing collector's epoch.
    o: String,
    m: Vec<Message>,
}

pub struct Fanout {
    redis: LazyRedis,
    client: redis::Client,
    prefix: String,
    origin: String,
    watched: RwLock<HashSet<String>>,
    errors: Counter,
    received: Counter,
    busy: Counter,
    in_flight: Arc<tokio::sync::Semaphore>,
    failures: Bursts,
}

impl Fanout {
    pub fn open(
        config: &StreamConfig,
        origin: &str,
        telemetry: &Telemetry,
    ) -> Result<Option<Self>, String> {
        let Some(redis) = LazyRedis::open(&config.redis_url, "stream.redis_url")? else {
            return Ok(None);
        };
        let client = redis::Client::open(config.redis_url.expose())
            .map_err(|e| format!("stream.redis_url: not a Redis URL ({:?})", e.kind()))?;
        Ok(Some(Self {
            redis,
            client,
            prefix: config.redis_prefix.clone(),
            origin: origin.to_owned(),
            watched: RwLock::default(),
            errors: telemetry.counter(&metrics::STREAM_REDIS_ERRORS, &[]),
            received: telemetry.counter(
                &metrics::STREAM_MESSAGES,
                &[("result", "received_from_redis")],
            ),
            busy: telemetry.counter(
                &metrics::STREAM_MESSAGES,
                &[("result", "dropped_redis_busy")],
            ),
            in_flight: Arc::new(tokio::sync::Semaphore::new(MAX_IN_FLIGHT)),
            failures: Bursts::default(),
        }))
    }

    /// Whether some collector's subscribers watch `project` (as of the last refresh).
    pub fn watched(&self, project: &str) -> bool {
        self.watched
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .contains(project)
    }

    fn failed(&self, what: &str, e: &redis::RedisError) {
        self.errors.add(1);
        if self.failures.first() {
            tracing::warn!(error = ?e.kind(), what, "Redis unreachable: the live stream delivers this collector's data only until it answers");
        }
    }

    /// Publishes in the background: the caller (the tap) never waits on Redis.
    pub fn publish(self: &Arc<Self>, project: &str, messages: &[Message]) {
        let Ok(permit) = Arc::clone(&self.in_flight).try_acquire_owned() else {
            self.busy.add(messages.len() as u64);
            return;
        };
        let wire = Wire {
            o: self.origin.clone(),
            m: messages.to_vec(),
        };
        let Ok(payload) = serde_json::to_string(&wire) else {
            return;
        };
        let channel = format!("{}:msg:{project}", self.prefix);
        let this = Arc::clone(self);
        tokio::spawn(async move {
            let _permit = permit;
            let result = async {
                let mut conn = this.redis.connection().await?;
                redis::cmd("PUBLISH")
                    .arg(&channel)
                    .arg(payload)
                    .query_async::<i64>(&mut conn)
                    .await
            }
            .await;
            if let Err(e) = result {
                this.failed("publish", &e);
            }
        });
    }

    /// The token key every collector shares: set once in Redis by the first.
    pub async fn shared_token_key(&self) -> Option<String> {
        let key = format!("{}:token-key", self.prefix);
        let mut random = [0u8; 32];
        getrandom::fill(&mut random).ok()?;
        let result = async {
            let mut conn = self.redis.connection().await?;
            let _: Option<String> = redis::cmd("SET")
                .arg(&key)
                .arg(hex::encode(random))
                .arg("NX")
                .query_async(&mut conn)
                .await?;
            redis::cmd("GET")
                .arg(&key)
                .query_async::<Option<String>>(&mut conn)
                .await
        }
        .await;
        match result {
            Ok(shared) => shared,
            Err(e) => {
                self.failed("token key", &e);
                None
            }
        }
    }

    pub fn start(
        self: Arc<Self>,
        hub: Arc<Hub>,
        stop: watch::Receiver<bool>,
    ) -> Vec<JoinHandle<()>> {
        vec![
            tokio::spawn(Arc::clone(&self).interest(Arc::clone(&hub), stop.clone())),
            tokio::spawn(self.receive(hub, stop)),
        ]
    }

    /// Every second: says which projects this collector watches, and learns which are watched
    /// anywhere.
    async fn interest(self: Arc<Self>, hub: Arc<Hub>, mut stop: watch::Receiver<bool>) {
        let key = format!("{}:watched", self.prefix);
        let mut tick = tokio::time::interval(REFRESH);
        loop {
            tokio::select! {
                _ = stop.changed() => if *stop.borrow() { return },
                _ = tick.tick() => {}
                _ = hub.interest.notified() => {}
            }
            let now_ms = now_ms();
            let expires = now_ms + INTEREST_TTL.as_millis() as i64;
            let mine = hub.watched_projects();
            let result = async {
                let mut conn = self.redis.connection().await?;
                let mut pipe = redis::pipe();
                for p in &mine {
                    pipe.cmd("ZADD")
                        .arg(&key)
                        .arg("GT")
                        .arg(expires)
                        .arg(p)
                        .ignore();
                }
                pipe.cmd("ZREMRANGEBYSCORE")
                    .arg(&key)
                    .arg("-inf")
                    .arg(now_ms)
                    .ignore();
                pipe.cmd("ZRANGEBYSCORE").arg(&key).arg(now_ms).arg("+inf");
                pipe.query_async::<(Vec<String>,)>(&mut conn).await
            }
            .await;
            match result {
                Ok((all,)) => {
                    *self.watched.write().unwrap_or_else(|p| p.into_inner()) =
                        all.into_iter().collect();
                }
                Err(e) => {
                    self.failed("interest", &e);
                    self.watched
                        .write()
                        .unwrap_or_else(|p| p.into_inner())
                        .clear();
                }
            }
        }
    }

    /// Delivers other collectors' messages here; reconnects after an outage.
    async fn receive(self: Arc<Self>, hub: Arc<Hub>, mut stop: watch::Receiver<bool>) {
        let pattern = format!("{}:msg:*", self.prefix);
        let channel_prefix = format!("{}:msg:", self.prefix);
        let mut backoff = Duration::from_millis(200);
        loop {
            let began = std::time::Instant::now();
            let session = async {
                let mut pubsub = self.client.get_async_pubsub().await?;
                pubsub.psubscribe(&pattern).await?;
                let mut messages = pubsub.on_message();
                while let Some(msg) = messages.next().await {
                    let channel = msg.get_channel_name().to_owned();
                    let Some(project) = channel.strip_prefix(&channel_prefix) else {
                        continue;
                    };
                    let Ok(payload) = msg.get_payload::<String>() else {
                        continue;
                    };
                    let Ok(wire) = serde_json::from_str::<Wire>(&payload) else {
                        continue;
                    };
                    if wire.o == self.origin {
                        continue;
                    }
                    self.received.add(wire.m.len() as u64);
                    hub.publish(project, wire.m.into_iter().map(Arc::new).collect());
                }
                Ok::<_, redis::RedisError>(())
            };
            tokio::select! {
                _ = stop.changed() => if *stop.borrow() { return },
                result = session => {
                    match result {
                        Ok(()) => self.failed("subscribe", &redis::RedisError::from((redis::ErrorKind::Io, "subscription closed"))),
                        Err(e) => self.failed("subscribe", &e),
                    }
                }
            }
            if began.elapsed() > Duration::from_secs(30) {
                backoff = Duration::from_millis(200);
            }
            tokio::select! {
                _ = stop.changed() => if *stop.borrow() { return },
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
