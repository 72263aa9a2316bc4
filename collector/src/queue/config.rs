use std::path::PathBuf;
use std::time::Duration;

use llmscope_core::config::Secret;
use serde::Deserialize;

use super::segment_log::WhenFull;

/// Where processed batches wait for the exporters (`service.queue`).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct QueueConfig {
    /// `memory` (bounded channels; lost if the process dies) or `disk` (the durable queue).
    /// Default: `memory`.
    pub kind: QueueKind,
    /// Folder of the durable queue, one subfolder per pipeline. Default: `./data/queue`.
    pub dir: PathBuf,
    /// `always`, `interval` or `never`: when appended batches are fsynced (and acknowledged).
    /// Default: `interval`.
    pub fsync: FsyncPolicy,
    /// The `interval` period: at most one fsync per period; a batch arriving after a quiet
    /// period is synced at once. Default: `10ms`.
    #[serde(with = "llmscope_core::config::duration")]
    pub fsync_interval: Duration,
    /// Bytes on disk per pipeline at most. Default: 1073741824 (1 GiB).
    pub max_bytes: u64,
    /// Size of one segment file. Default: 67108864 (64 MiB).
    pub segment_bytes: u64,
    /// `block` (refuse retryably) or `drop_oldest` (counted) when full. Default: `block`.
    pub when_full: WhenFull,
    /// How every exporter retries a failed export.
    pub retry: RetryConfig,
    /// Bytes each exporter's dead-letter file may reach; past it, batches given up on are
    /// dropped (counted). Default: 268435456 (256 MiB).
    pub dead_letter_max_bytes: u64,
    /// AES-256-GCM key (64 hexadecimal characters, e.g. `${env:LLMSCOPE_QUEUE_KEY}`) that
    /// encrypts the disk queue's records and dead letters. Default: none (not encrypted).
    pub encryption_key: Secret,
    /// A file holding the key instead (64 hexadecimal characters).
    pub encryption_key_file: Option<PathBuf>,
}

/// Backoff between the attempts of a failed export: exponential from `initial_interval`, capped
/// at `max_interval`, with full jitter, and never shorter than a backend's `Retry-After`.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RetryConfig {
    /// Default: `100ms`.
    #[serde(with = "llmscope_core::config::duration")]
    pub initial_interval: Duration,
    /// Default: `5s`.
    #[serde(with = "llmscope_core::config::duration")]
    pub max_interval: Duration,
    /// Attempts per export, the first included; then the batch goes to the dead-letter file
    /// (disk queue) or is dropped (memory queue), counted either way. Default: unset, retry
    /// until the export succeeds (the queue fills meanwhile, then refuses clients retryably).
    pub max_attempts: Option<u32>,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            initial_interval: Duration::from_millis(100),
            max_interval: Duration::from_secs(5),
            max_attempts: None,
        }
    }
}

impl RetryConfig {
    pub fn policy(&self) -> crate::driver::RetryPolicy {
        crate::driver::RetryPolicy {
            initial_backoff: self.initial_interval,
            max_backoff: self.max_interval,
            max_attempts: self.max_attempts,
        }
    }

    /// Messages start with the field they are about.
    pub fn validate(&self) -> Result<(), String> {
        if self.initial_interval.is_zero() || self.max_interval < self.initial_interval {
            return Err(
                "max_interval: must be at least initial_interval, itself more than 0".into(),
            );
        }
        if self.max_attempts == Some(0) {
            return Err("max_attempts: must be at least 1".into());
        }
        Ok(())
    }

    /// These settings with `over`'s set fields in their place.
    pub fn overridden(&self, over: &RetryOverride) -> Self {
        Self {
            initial_interval: over.initial_interval.unwrap_or(self.initial_interval),
            max_interval: over.max_interval.unwrap_or(self.max_interval),
            max_attempts: over.max_attempts.or(self.max_attempts),
        }
    }
}

/// How one exporter is fed, set beside its own settings in `exporters.<id>` (the names are
/// the OpenTelemetry Collector's exporter helper's).
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DeliveryConfig {
    /// Overrides `service.queue.retry` field by field for this exporter.
    pub retry_on_failure: RetryOverride,
    pub sending_queue: SendingQueue,
}

/// [`RetryConfig`] with every field optional.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RetryOverride {
    #[serde(with = "llmscope_core::config::option_duration")]
    pub initial_interval: Option<Duration>,
    #[serde(with = "llmscope_core::config::option_duration")]
    pub max_interval: Option<Duration>,
    pub max_attempts: Option<u32>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SendingQueue {
    /// Exports in flight at once. Default: 1 (ClickHouse prefers few large inserts; SQLite has
    /// one writer). The durable queue's cursor still moves in order.
    pub num_consumers: usize,
}

impl Default for SendingQueue {
    fn default() -> Self {
        Self { num_consumers: 1 }
    }
}

/// Most exports one exporter may have in flight.
pub const MAX_CONSUMERS: usize = 64;

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum QueueKind {
    Memory,
    Disk,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum FsyncPolicy {
    Always,
    Interval,
    Never,
}

impl Default for QueueConfig {
    fn default() -> Self {
        Self {
            kind: QueueKind::Memory,
            dir: PathBuf::from("./data/queue"),
            fsync: FsyncPolicy::Interval,
            fsync_interval: Duration::from_millis(10),
            max_bytes: 1 << 30,
            segment_bytes: 64 << 20,
            when_full: WhenFull::Block,
            retry: RetryConfig::default(),
            dead_letter_max_bytes: super::durable::DEAD_LETTER_MAX_BYTES,
            encryption_key: Secret::default(),
            encryption_key_file: None,
        }
    }
}

impl QueueConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.segment_bytes < 4096 || self.max_bytes < self.segment_bytes {
            return Err("segment_bytes: at least 4096, and max_bytes at least one segment".into());
        }
        if self.dead_letter_max_bytes < 4096 {
            return Err("dead_letter_max_bytes: at least 4096".into());
        }
        if self.fsync == FsyncPolicy::Interval && self.fsync_interval.is_zero() {
            return Err("fsync_interval: must be more than 0".into());
        }
        self.sealer()?;
        self.retry.validate().map_err(|e| format!("retry.{e}"))
    }

    /// How the exporter with these settings of its own is fed.
    pub fn delivery(&self, own: &DeliveryConfig) -> crate::driver::Delivery {
        crate::driver::Delivery {
            retry: self.retry.overridden(&own.retry_on_failure).policy(),
            batching: crate::driver::BatchPolicy::default(),
            concurrency: own.sending_queue.num_consumers,
        }
    }

    /// The sealer of the configured key, if any. Messages start with the field they are about
    /// and never quote the key.
    pub fn sealer(&self) -> Result<Option<std::sync::Arc<super::seal::Sealer>>, String> {
        let key = llmscope_core::config::EncryptionKey::configured(
            &self.encryption_key,
            self.encryption_key_file.as_deref(),
        )?;
        Ok(key.map(|key| std::sync::Arc::new(super::seal::Sealer::new(key.bytes()))))
    }

    pub fn fsync(&self) -> super::durable::Fsync {
        match self.fsync {
            FsyncPolicy::Always => super::durable::Fsync::Always,
            FsyncPolicy::Interval => super::durable::Fsync::Interval(self.fsync_interval),
            FsyncPolicy::Never => super::durable::Fsync::Never,
        }
    }
}
