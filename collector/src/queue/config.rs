use std::path::PathBuf;
use std::time::Duration;

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
    /// The `interval` period. Default: `10ms`.
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
}

/// Backoff between the attempts of a failed export: exponential from `initial_interval`, capped
/// at `max_interval`, with full jitter, and never shorter than a backend's `Retry-After`. The
/// disk queue retries without end; the memory queue gives up after `max_attempts`.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RetryConfig {
    /// Default: `100ms`.
    #[serde(with = "llmscope_core::config::duration")]
    pub initial_interval: Duration,
    /// Default: `5s`.
    #[serde(with = "llmscope_core::config::duration")]
    pub max_interval: Duration,
    /// Attempts per batch with the memory queue, the first included. Default: `8`.
    pub max_attempts: u32,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            initial_interval: Duration::from_millis(100),
            max_interval: Duration::from_secs(5),
            max_attempts: 8,
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
}

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
        }
    }
}

impl QueueConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.segment_bytes < 4096 || self.max_bytes < self.segment_bytes {
            return Err("segment_bytes: at least 4096, and max_bytes at least one segment".into());
        }
        if self.fsync == FsyncPolicy::Interval && self.fsync_interval.is_zero() {
            return Err("fsync_interval: must be more than 0".into());
        }
        let retry = &self.retry;
        if retry.initial_interval.is_zero() || retry.max_interval < retry.initial_interval {
            return Err(
                "retry.max_interval: must be at least initial_interval, itself more than 0".into(),
            );
        }
        if retry.max_attempts == 0 {
            return Err("retry.max_attempts: must be at least 1".into());
        }
        Ok(())
    }

    pub fn fsync(&self) -> super::durable::Fsync {
        match self.fsync {
            FsyncPolicy::Always => super::durable::Fsync::Always,
            FsyncPolicy::Interval => super::durable::Fsync::Interval(self.fsync_interval),
            FsyncPolicy::Never => super::durable::Fsync::Never,
        }
    }
}
