//! Grouping queued records into exports: consecutive batches of one signal and project, until
//! an item, byte or time limit; after a restart, the exports that were in flight are formed
//! again from the same records.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use llmscope_core::{Batch, Payload};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::queue::segment_log::Position;
use crate::queue::{Content, Reader, Record};

/// How queued batches are grouped into one export: the first batch waits at most `max_delay`
/// for more of the same signal and project, until `max_items` items or `max_bytes` bytes
/// (protobuf size) are reached.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BatchPolicy {
    pub max_items: usize,
    pub max_bytes: usize,
    pub max_delay: Duration,
}

impl Default for BatchPolicy {
    fn default() -> Self {
        Self {
            max_items: 10_000,
            max_bytes: 8 * 1024 * 1024,
            max_delay: Duration::from_millis(200),
        }
    }
}

/// Records per read of the queue.
const READ_RECORDS: usize = 256;
/// How long an idle reader waits for data before it checks whether to stop.
const IDLE_WAIT: Duration = Duration::from_millis(100);

/// What to do with the next stretch of the queue.
pub enum Work {
    /// Export `batch`, then commit `end`.
    Export {
        batch: Arc<Batch>,
        end: Position,
        /// When the group's first batch was received.
        received_at: SystemTime,
    },
    /// A record that does not decode: dead-letter its bytes, then commit `end`.
    Undecodable {
        bytes: Vec<u8>,
        error: String,
        end: Position,
    },
}

impl Work {
    pub fn end(&self) -> Position {
        match self {
            Work::Export { end, .. } | Work::Undecodable { end, .. } => *end,
        }
    }
}

fn compatible(a: &Batch, b: &Batch) -> bool {
    std::mem::discriminant(&a.payload) == std::mem::discriminant(&b.payload)
        && a.ctx.project == b.ctx.project
}

/// Several batches of one signal and project as one: payloads and events concatenated. A batch
/// no one else holds is moved, not copied.
fn merge(mut group: Vec<Arc<Batch>>) -> Arc<Batch> {
    if group.len() == 1 {
        return group.swap_remove(0);
    }
    let mut merged = Batch::new(
        match &group[0].payload {
            Payload::Traces(_) => Payload::Traces(Vec::new()),
            Payload::Logs(_) => Payload::Logs(Vec::new()),
            Payload::Metrics(_) => Payload::Metrics(Vec::new()),
        },
        group[0].ctx.clone(),
    );
    for b in group {
        let b = Arc::try_unwrap(b).unwrap_or_else(|shared| (*shared).clone());
        match (&mut merged.payload, b.payload) {
            (Payload::Traces(out), Payload::Traces(rs)) => out.extend(rs),
            (Payload::Logs(out), Payload::Logs(rl)) => out.extend(rl),
            (Payload::Metrics(out), Payload::Metrics(rm)) => out.extend(rm),
            _ => {}
        }
        merged.events.extend(b.events);
    }
    Arc::new(merged)
}

/// Consecutive records of a queue grouped into exports.
pub struct Groups<R> {
    pub reader: Arc<R>,
    pub policy: BatchPolicy,
    pub stop: watch::Receiver<bool>,
    /// Read, not yet in a group.
    pub pending: VecDeque<Record>,
}

impl<R: Reader> Groups<R> {
    /// Reads more records into `pending`, waiting up to `wait` for them. False when there were
    /// none (or the read failed, logged).
    async fn fill(&mut self, wait: Duration) -> bool {
        match self.reader.next(READ_RECORDS, wait).await {
            Ok(records) => {
                self.pending.extend(records);
                !self.pending.is_empty()
            }
            Err(error) => {
                tracing::error!(%error, "cannot read the queue");
                tokio::time::sleep(Duration::from_secs(1)).await;
                false
            }
        }
    }

    /// Told to stop, or nothing can come any more.
    fn stopping(&self) -> bool {
        *self.stop.borrow() || self.reader.closed()
    }

    /// The end, item count and size of the next record in `pending`, if it is a batch that
    /// can join a group starting with `first`.
    fn joining(&self, first: &Batch) -> Option<(Position, usize, usize)> {
        let record = self.pending.front()?;
        match &record.content {
            Content::Batch(next) if compatible(first, next) => {
                Some((record.end, next.payload.item_count(), record.bytes))
            }
            _ => None,
        }
    }

    /// Takes the next record's batch (one [`Self::joining`] accepted).
    fn take(&mut self) -> Option<Arc<Batch>> {
        match self.pending.pop_front()?.content {
            Content::Batch(batch) => Some(batch),
            Content::Undecodable { .. } => None,
        }
    }

    /// The next work; `None` once stopping and nothing is left to read.
    pub async fn next(&mut self) -> Option<Work> {
        let first = loop {
            if let Some(record) = self.pending.pop_front() {
                break record;
            }
            if !self.fill(IDLE_WAIT).await && self.stopping() {
                return None;
            }
        };
        let first_batch = match first.content {
            Content::Batch(batch) => batch,
            Content::Undecodable { bytes, error } => {
                return Some(Work::Undecodable {
                    bytes,
                    error,
                    end: first.end,
                });
            }
        };
        let (mut end, received_at) = (first.end, first_batch.ctx.received_at);
        let mut group = vec![first_batch];
        if let Some(planned) = self.reader.replayed_end(end) {
            // The export in flight when the process last stopped: the same records again.
            while end < planned {
                if self.pending.is_empty() {
                    if self.stopping() || !self.fill(IDLE_WAIT).await {
                        break;
                    }
                    continue;
                }
                match self.joining(&group[0]) {
                    Some((next_end, _, _)) if next_end <= planned => {
                        group.extend(self.take());
                        end = next_end;
                    }
                    _ => break,
                }
            }
            return Some(Work::Export {
                batch: merge(group),
                end,
                received_at,
            });
        }
        let deadline = Instant::now() + self.policy.max_delay;
        let (mut items, mut bytes) = (group[0].payload.item_count(), first.bytes);
        while items < self.policy.max_items && bytes < self.policy.max_bytes {
            if self.pending.is_empty() {
                let now = Instant::now();
                if self.stopping() || now >= deadline || !self.fill(deadline - now).await {
                    break;
                }
                continue;
            }
            let Some((next_end, n, size)) = self.joining(&group[0]) else {
                break;
            };
            if items + n > self.policy.max_items || bytes + size > self.policy.max_bytes {
                break;
            }
            group.extend(self.take());
            items += n;
            bytes += size;
            end = next_end;
        }
        self.reader.plan_export(end);
        Some(Work::Export {
            batch: merge(group),
            end,
            received_at,
        })
    }
}
