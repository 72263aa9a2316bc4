//! The live stream (`GET /api/v1/stream`, WebSocket or Server-Sent Events): every span, anomaly
//! and alert transition stored through this collector, after the processors (normalized,
//! priced, redacted: never raw content), delivered to subscribers filtered on the server.
//!
//! Guarantees:
//! - Ingestion never waits for the stream: pipelines offer each queued batch to a bounded tap
//!   and move on; a full tap drops the batch for the stream only (counted). Batches of projects
//!   nobody watches (here, or on another collector through Redis) are not even converted.
//! - Each subscriber has a bounded queue ([`hub`]): a slow one loses its oldest messages, is
//!   told how many, and never slows anyone else.
//! - With `redis_url`, what this collector stores is published once per batch to Redis and
//!   delivered by every other collector to its own subscribers (each collector ignores its own
//!   publications, so a subscriber sees a message once). A Redis outage degrades to local
//!   delivery, is warned once and counted, and heals by itself.

mod fanout;
pub mod hub;
pub mod message;
pub mod token;

use std::sync::Arc;
use std::time::Duration;

use llmscope_core::Batch;
use llmscope_core::config::Secret;
use serde::Deserialize;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::telemetry::{Counter, Telemetry, metrics};
use fanout::Fanout;
use hub::Hub;
use message::Message;

/// Batches waiting to be turned into messages; past it, the stream skips batches (counted),
/// so what waits stays a few megabytes.
const TAP_CAPACITY: usize = 64;

/// `stream` in the `api` extension.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct StreamConfig {
    /// Serve `/api/v1/stream`. Default: true.
    pub enabled: bool,
    /// Messages queued per subscriber; past it the oldest are dropped (and counted to it).
    /// Default: 1024.
    pub buffer: usize,
    /// Messages kept per watched project for reconnects (`Last-Event-ID`). Default: 1024.
    pub replay: usize,
    /// Subscribers on this collector. Default: 4096.
    pub max_subscribers: usize,
    /// Subscribers of one project on this collector. Default: 1024.
    pub max_subscribers_per_project: usize,
    /// How often an idle stream says it is alive. Default: `15s`.
    #[serde(with = "llmscope_core::config::duration")]
    pub heartbeat: Duration,
    /// Redis shared by the collectors, to deliver what any of them stores. Default: none.
    pub redis_url: Secret,
    /// Prefix of the Redis channels and keys. Default: `llmscope:stream`.
    pub redis_prefix: String,
    /// Key signing browser tokens (`POST /api/v1/stream/token`). Default: shared through Redis
    /// when configured, else random per process.
    pub token_secret: Secret,
    /// How long a browser token lasts. Default: `5m`.
    #[serde(with = "llmscope_core::config::duration")]
    pub token_ttl: Duration,
}

impl Default for StreamConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            buffer: 1024,
            replay: 1024,
            max_subscribers: 4096,
            max_subscribers_per_project: 1024,
            heartbeat: Duration::from_secs(15),
            redis_url: Secret::default(),
            redis_prefix: "llmscope:stream".into(),
            token_secret: Secret::default(),
            token_ttl: Duration::from_secs(300),
        }
    }
}

impl StreamConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.buffer == 0 || self.max_subscribers == 0 || self.max_subscribers_per_project == 0 {
            return Err("stream: buffer and the subscriber limits must be at least 1".into());
        }
        if self.heartbeat < Duration::from_millis(100) {
            return Err("stream.heartbeat: must be at least 100ms".into());
        }
        if !self.token_secret.is_empty() && self.token_secret.expose().len() < 16 {
            return Err("stream.token_secret: use at least 16 characters".into());
        }
        crate::redis::LazyRedis::open(&self.redis_url, "stream.redis_url")?;
        Ok(())
    }
}

/// The stream of one collector: its hub, the tap pipelines offer batches to, and the Redis
/// fan-out.
pub struct Stream {
    pub hub: Arc<Hub>,
    pub tokens: token::Tokens,
    tap: mpsc::Sender<Arc<Batch>>,
    fanout: Option<Arc<Fanout>>,
    tap_dropped: Counter,
}

impl Stream {
    /// Starts the stream; the conversion of batches to messages runs on `runtime` (the APIs'),
    /// so building messages for subscribers takes no worker from ingestion.
    pub async fn start(
        config: StreamConfig,
        telemetry: &Telemetry,
        stop: &watch::Receiver<bool>,
        runtime: &tokio::runtime::Handle,
    ) -> Result<(Arc<Self>, Vec<JoinHandle<()>>), String> {
        let hub = Hub::new(config.clone(), telemetry);
        let fanout = Fanout::open(&config, &hub.epoch, telemetry)?.map(Arc::new);
        let shared_key = match &fanout {
            Some(f) if config.token_secret.is_empty() => f.shared_token_key().await,
            _ => None,
        };
        let tokens = token::Tokens::new(&config.token_secret, shared_key, config.token_ttl);
        let (tx, rx) = mpsc::channel(TAP_CAPACITY);
        let stream = Arc::new(Self {
            hub: Arc::clone(&hub),
            tokens,
            tap: tx,
            fanout: fanout.clone(),
            tap_dropped: telemetry
                .counter(&metrics::STREAM_MESSAGES, &[("result", "dropped_tap_full")]),
        });
        let mut tasks = vec![runtime.spawn(Arc::clone(&stream).convert(rx, stop.clone()))];
        if let Some(f) = fanout {
            tasks.extend(f.start(hub, stop.clone()));
        }
        Ok((stream, tasks))
    }

    /// Whether messages of `project` have anyone to go to.
    fn wanted(&self, project: &str) -> bool {
        self.hub.watched(project) || self.fanout.as_ref().is_some_and(|f| f.watched(project))
    }

    /// Delivers messages here and, through Redis, on every other collector.
    pub fn publish(&self, project: &str, messages: Vec<Message>) {
        if messages.is_empty() {
            return;
        }
        if let Some(f) = &self.fanout
            && f.watched(project)
        {
            f.publish(project, &messages);
        }
        self.hub
            .publish(project, messages.into_iter().map(Arc::new).collect());
    }

    async fn convert(
        self: Arc<Self>,
        mut rx: mpsc::Receiver<Arc<Batch>>,
        mut stop: watch::Receiver<bool>,
    ) {
        loop {
            let batch = tokio::select! {
                _ = stop.wait_for(|s| *s) => return,
                batch = rx.recv() => batch,
            };
            let Some(batch) = batch else { return };
            let project = &batch.ctx.project;
            // Another collector's subscribers may want anything: their filters are not known here.
            let remote = self.fanout.as_ref().is_some_and(|f| f.watched(project));
            let messages = message::from_batch(&batch, |m| remote || self.hub.wants(project, m));
            self.publish(project, messages);
        }
    }
}

impl crate::pipeline::Tap for Stream {
    fn offer(&self, batch: &Arc<Batch>) {
        if !self.wanted(&batch.ctx.project) {
            return;
        }
        if self.tap.try_send(Arc::clone(batch)).is_err() {
            // Counted in items (spans, log records) of the batch the stream skipped.
            self.tap_dropped.add(batch.payload.item_count() as u64);
        }
    }
}
