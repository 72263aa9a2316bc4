//! The durable queue: processed batches appended to a [`SegmentLog`] and acknowledged only once
//! they are on disk under the fsync policy; each exporter reads with its own cursor and commits
//! what it exported, so a restart resumes where every exporter stopped.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, UNIX_EPOCH};

use llmscope_core::otlp::collector::logs::v1::ExportLogsServiceRequest;
use llmscope_core::otlp::collector::metrics::v1::ExportMetricsServiceRequest;
use llmscope_core::otlp::collector::trace::v1::ExportTraceServiceRequest;
use llmscope_core::telemetry::Counter;
use llmscope_core::{Batch, BatchContext, Payload};
use prost::Message;
use tokio::sync::{Notify, watch};

use super::seal::Sealer;
use super::segment_log::{LogError, Position, Recovery, SegmentLog, WhenFull};
use super::{Content, Letter, PushError, Queue, Reader, Record};

/// A batch as stored: its context, its payload as the OTLP export request, and its events.
#[derive(Clone, PartialEq, prost::Message)]
struct Stored {
    #[prost(string, tag = "1")]
    project: String,
    #[prost(string, optional, tag = "2")]
    api_key_id: Option<String>,
    #[prost(string, tag = "3")]
    receiver: String,
    #[prost(uint64, tag = "4")]
    received_at_ns: u64,
    #[prost(message, optional, tag = "5")]
    traces: Option<ExportTraceServiceRequest>,
    #[prost(message, optional, tag = "6")]
    logs: Option<ExportLogsServiceRequest>,
    #[prost(message, optional, tag = "7")]
    metrics: Option<ExportMetricsServiceRequest>,
    #[prost(message, optional, tag = "8")]
    events: Option<ExportLogsServiceRequest>,
}

/// `batch` as a [`Stored`] record, written without copying its payload: the context fields
/// through [`Stored`], then the payload and events as the same length-delimited fields that
/// `Stored`'s own encoding would write (field order and bytes identical).
pub fn encode(batch: &Batch) -> Vec<u8> {
    let context = context_of(batch);
    let (tag, payload_len) = match &batch.payload {
        Payload::Traces(rs) => (5, request_len(rs)),
        Payload::Logs(rl) => (6, request_len(rl)),
        Payload::Metrics(rm) => (7, request_len(rm)),
    };
    let events_len = request_len(&batch.events);
    let mut buf = Vec::with_capacity(
        context.encoded_len() + field_len(tag, payload_len) + field_len(8, events_len),
    );
    context.encode(&mut buf).expect("a Vec grows to any length");
    match &batch.payload {
        Payload::Traces(rs) => encode_request(tag, rs, payload_len, &mut buf),
        Payload::Logs(rl) => encode_request(tag, rl, payload_len, &mut buf),
        Payload::Metrics(rm) => encode_request(tag, rm, payload_len, &mut buf),
    }
    if !batch.events.is_empty() {
        encode_request(8, &batch.events, events_len, &mut buf);
    }
    buf
}

/// The record of `batch`'s context, without payload or events.
fn context_of(batch: &Batch) -> Stored {
    Stored {
        project: batch.ctx.project.clone(),
        api_key_id: batch.ctx.api_key_id.clone(),
        receiver: batch.ctx.receiver.clone(),
        received_at_ns: batch
            .ctx
            .received_at
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64),
        ..Default::default()
    }
}

/// The encoded length of an OTLP export request holding `items` (its field 1, repeated).
fn request_len<M: prost::Message>(items: &[M]) -> usize {
    prost::encoding::message::encoded_len_repeated(1, items)
}

/// The length of a length-delimited field `tag` of `len` bytes, with its key and length.
fn field_len(tag: u32, len: usize) -> usize {
    prost::encoding::key_len(tag) + prost::encoding::encoded_len_varint(len as u64) + len
}

/// Field `tag`: an OTLP export request of `items` (`len` bytes, from [`request_len`]).
fn encode_request<M: prost::Message>(tag: u32, items: &[M], len: usize, buf: &mut Vec<u8>) {
    prost::encoding::encode_key(tag, prost::encoding::WireType::LengthDelimited, buf);
    prost::encoding::encode_varint(len as u64, buf);
    prost::encoding::message::encode_repeated(1, items, buf);
}

pub fn decode(bytes: &[u8]) -> Result<Batch, prost::DecodeError> {
    let s = Stored::decode(bytes)?;
    let payload = match (s.traces, s.logs, s.metrics) {
        (Some(t), _, _) => Payload::Traces(t.resource_spans),
        (_, Some(l), _) => Payload::Logs(l.resource_logs),
        (_, _, Some(m)) => Payload::Metrics(m.resource_metrics),
        _ => Payload::Traces(Vec::new()),
    };
    let ctx = BatchContext {
        project: s.project,
        api_key_id: s.api_key_id,
        receiver: s.receiver,
        received_at: UNIX_EPOCH + Duration::from_nanos(s.received_at_ns),
    };
    let mut batch = Batch::new(payload, ctx);
    batch.events = s.events.map(|e| e.resource_logs).unwrap_or_default();
    Ok(batch)
}

/// How far the `interval` syncs got, in append generations (the n-th append is generation n).
#[derive(Debug, Clone, Copy, Default)]
struct Synced {
    /// Every append up to this one is on disk.
    through: u64,
    /// A sync covering appends up to this one failed: they are refused, so their clients retry
    /// (a later sync that succeeds does not prove their pages were not lost).
    failed_through: u64,
}

/// When appended batches are made durable, and so when a client is acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fsync {
    /// After every append, before acknowledging it.
    Always,
    /// At most once per interval: acknowledgements wait for the next sync, which covers
    /// everything appended before it (group commit); after a quiet interval, at once.
    Interval(Duration),
    /// Left to the OS; acknowledged once written.
    Never,
}

pub struct DurableQueue {
    log: Arc<SegmentLog>,
    fsync: Fsync,
    appended: AtomicU64,
    synced: watch::Sender<Synced>,
    /// Wakes the `interval` syncer: something was appended (or the queue is going away).
    unsynced: Arc<Notify>,
    new_data: Notify,
    /// Records `drop_oldest` deleted unread, as last reported to `dropped`.
    dropped_seen: AtomicU64,
    dropped: OnceLock<Counter>,
    /// Bytes each exporter's dead-letter file may reach.
    dead_letter_max: AtomicU64,
    /// Seals records and dead letters when the queue is encrypted.
    sealer: Option<Arc<Sealer>>,
}

/// Why a batch could not be dead-lettered.
#[derive(Debug, thiserror::Error)]
pub enum DeadLetterError {
    #[error("the dead-letter file {} is full ({max} bytes)", path.display())]
    Full { path: PathBuf, max: u64 },
    #[error("cannot write the dead-letter file: {0}")]
    Io(#[from] std::io::Error),
    /// The memory queue keeps no dead-letter file.
    #[error("the memory queue keeps no dead-letter file")]
    NoFile,
}

/// Why the queue could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(transparent)]
    Key(#[from] super::seal::KeyError),
    #[error(transparent)]
    Log(#[from] LogError),
}

/// Bytes a dead-letter file may reach unless [`DurableQueue::limit_dead_letters`] says.
pub const DEAD_LETTER_MAX_BYTES: u64 = 256 << 20;

impl DurableQueue {
    /// Opens the queue in `dir`; with `Fsync::Interval`, starts the syncing task (needs a Tokio
    /// runtime). With `sealer`, records and dead letters are encrypted; the key is checked
    /// against the folder before anything in it is read or changed (`seal::check_folder`).
    pub fn open(
        dir: &Path,
        fsync: Fsync,
        segment_bytes: u64,
        max_bytes: u64,
        when_full: WhenFull,
        sealer: Option<Arc<Sealer>>,
    ) -> Result<(Arc<Self>, Recovery), OpenError> {
        super::seal::check_folder(dir, sealer.as_deref())?;
        let (log, recovery) = SegmentLog::open(dir, segment_bytes, max_bytes, when_full)?;
        let queue = Arc::new(Self {
            log: Arc::new(log),
            fsync,
            appended: AtomicU64::new(0),
            synced: watch::channel(Synced::default()).0,
            unsynced: Arc::new(Notify::new()),
            new_data: Notify::new(),
            dropped_seen: AtomicU64::new(0),
            dropped: OnceLock::new(),
            dead_letter_max: AtomicU64::new(DEAD_LETTER_MAX_BYTES),
            sealer,
        });
        if let Fsync::Interval(every) = fsync {
            tokio::spawn(sync_every(
                Arc::downgrade(&queue),
                Arc::clone(&queue.unsynced),
                every,
            ));
        }
        Ok((queue, recovery))
    }

    pub fn log(&self) -> &SegmentLog {
        &self.log
    }

    /// Bytes the reader of `exporter` has yet to commit.
    pub fn pending_bytes(&self, exporter: &str) -> u64 {
        self.log.pending_bytes(&file_safe(exporter))
    }

    /// Counts in `counter` the records `drop_oldest` deletes before every exporter read them.
    pub fn count_drops(&self, counter: Counter) {
        let _ = self.dropped.set(counter);
    }

    /// Caps each exporter's dead-letter file at `max` bytes: past it, batches are refused by
    /// [`LogReader::dead_letter`] (and so dropped, counted) until the file is moved away.
    pub fn limit_dead_letters(&self, max: u64) {
        self.dead_letter_max.store(max, Ordering::Relaxed);
    }

    /// A reader with its own persisted cursor, starting where that cursor last committed.
    /// `exporter` may be any component id: it is escaped to name the cursor's file.
    pub fn reader(self: &Arc<Self>, exporter: &str) -> LogReader {
        let cursor = file_safe(exporter);
        self.log.add_cursor(&cursor);
        let committed = self.log.position(&cursor);
        LogReader {
            read_at: std::sync::Mutex::new(committed),
            plan: std::sync::Mutex::new(Plan::open(
                &self.log.dir().join(format!("plan-{cursor}")),
                committed,
            )),
            queue: Arc::clone(self),
            cursor,
            oldest: Arc::default(),
        }
    }

    async fn append(&self, batch: &Batch) -> Result<(), PushError> {
        let plain = encode(batch);
        let bytes = match &self.sealer {
            Some(sealer) => sealer.seal(&plain),
            None => plain,
        };
        let log = Arc::clone(&self.log);
        let always = self.fsync == Fsync::Always;
        let appended = tokio::task::spawn_blocking(move || {
            log.append(&bytes)?;
            if always {
                log.sync()?;
            }
            Ok::<_, LogError>(())
        })
        .await
        .map_err(|_| PushError::Closed)?;
        match appended {
            Ok(()) => {}
            Err(LogError::Full) => return Err(PushError::Full),
            Err(error) => {
                tracing::error!(%error, "durable queue append failed");
                return Err(PushError::Storage);
            }
        }
        let dropped = self.log.dropped_records();
        let before = self.dropped_seen.fetch_max(dropped, Ordering::AcqRel);
        if let (Some(counter), true) = (self.dropped.get(), dropped > before) {
            counter.add(dropped - before);
        }
        let generation = self.appended.fetch_add(1, Ordering::AcqRel) + 1;
        self.new_data.notify_waiters();
        if let Fsync::Interval(_) = self.fsync {
            self.unsynced.notify_one();
            let mut synced = self.synced.subscribe();
            let done = *synced
                .wait_for(|s| s.through >= generation || s.failed_through >= generation)
                .await
                .map_err(|_| PushError::Closed)?;
            if done.failed_through >= generation {
                return Err(PushError::Storage);
            }
        }
        Ok(())
    }
}

impl Drop for DurableQueue {
    fn drop(&mut self) {
        // Lets the syncer see the queue is gone.
        self.unsynced.notify_one();
    }
}

/// The `interval` syncer: a sync starts when something is unsynced and at least `every` has
/// passed since the last one started, so there is at most one sync per interval under load
/// (group commit) and a batch arriving after a quiet spell is synced at once instead of waiting
/// for a tick. Ends when the queue is dropped.
async fn sync_every(queue: Weak<DurableQueue>, unsynced: Arc<Notify>, every: Duration) {
    let mut last: Option<tokio::time::Instant> = None;
    loop {
        // A permit is kept when nobody waits, so an append made meanwhile is never missed.
        unsynced.notified().await;
        // Under load syncs start on a grid `every` apart (timer lateness does not add up);
        // after a quiet spell, at once.
        let now = tokio::time::Instant::now();
        let start = match last {
            Some(last) if last + every > now => {
                // Appends made meanwhile wake this too; the sync after the wait covers them.
                let wait = tokio::time::sleep_until(last + every);
                tokio::pin!(wait);
                loop {
                    tokio::select! {
                        () = &mut wait => break,
                        () = unsynced.notified() => if queue.strong_count() == 0 { return },
                    }
                }
                last + every
            }
            _ => now,
        };
        let Some(queue) = queue.upgrade() else { break };
        let target = queue.appended.load(Ordering::Acquire);
        let done = *queue.synced.borrow();
        if target <= done.through.max(done.failed_through) {
            continue;
        }
        last = Some(start);
        let log = Arc::clone(&queue.log);
        let synced = tokio::task::spawn_blocking(move || log.sync())
            .await
            .map_err(std::io::Error::other)
            .and_then(|r| r);
        match synced {
            Ok(()) => queue.synced.send_modify(|s| s.through = target),
            Err(error) => {
                tracing::error!(%error, "durable queue sync failed; refusing the batches it covered");
                queue.synced.send_modify(|s| s.failed_through = target);
            }
        }
    }
}

/// `name` with every byte other than ASCII letters, digits, `-`, `_` and `.` written `%XX`.
fn file_safe(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// A pipeline's handle on its durable queue.
#[derive(Clone)]
pub struct DurableHandle(pub Arc<DurableQueue>);

impl Queue for DurableHandle {
    async fn push(&self, batch: Arc<Batch>) -> Result<(), PushError> {
        self.0.append(&batch).await
    }
}

/// Where the exports an exporter started end, in order, so that after a crash the exports that
/// were in flight are formed again from the same records: a re-sent export is then the same
/// export, which every store takes once (ClickHouse's insert token covers its rollups too).
/// Written, not synced: it survives a crash of the process, not of the machine.
struct Plan {
    path: PathBuf,
    /// `None` when the file cannot be opened: planning is best effort.
    file: Option<std::fs::File>,
    /// Ends read back at open past the committed cursor, oldest first, not yet replayed.
    replay: std::collections::VecDeque<Position>,
    /// Every end in the file past the committed cursor, oldest first.
    uncommitted: std::collections::VecDeque<Position>,
    /// Lines in the file.
    lines: usize,
}

impl Plan {
    fn open(path: &Path, committed: Position) -> Self {
        let mut replay = std::collections::VecDeque::new();
        let mut lines = 0;
        if let Ok(text) = std::fs::read_to_string(path) {
            for line in text.lines() {
                lines += 1;
                let mut parts = line.split(' ').map(str::parse::<u64>);
                if let (Some(Ok(segment)), Some(Ok(offset))) = (parts.next(), parts.next()) {
                    let end = Position { segment, offset };
                    if end > committed && replay.back().is_none_or(|&last| end > last) {
                        replay.push_back(end);
                    }
                }
            }
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .inspect_err(|error| tracing::warn!(%error, path = %path.display(), "cannot keep the export plan; exports in flight at a crash may be re-sent regrouped"))
            .ok();
        let mut plan = Self {
            path: path.to_owned(),
            file,
            uncommitted: replay.clone(),
            replay,
            lines,
        };
        plan.committed(committed);
        plan
    }

    fn write(&mut self, end: Position) {
        if let Some(file) = &mut self.file
            && let Err(error) = writeln!(file, "{} {}", end.segment, end.offset)
        {
            tracing::warn!(%error, path = %self.path.display(), "cannot write the export plan");
        }
        self.lines += 1;
        self.uncommitted.push_back(end);
    }

    /// Forgets the exports up to `to`; empties the file once none is left, and rewrites it when
    /// most of its lines are stale, so it stays small under steady load.
    fn committed(&mut self, to: Position) {
        while self.uncommitted.front().is_some_and(|&end| end <= to) {
            self.uncommitted.pop_front();
        }
        if self.lines <= 4 * self.uncommitted.len() + 64 && !self.uncommitted.is_empty() {
            return;
        }
        let Some(file) = &mut self.file else { return };
        let mut text = String::new();
        for end in &self.uncommitted {
            text.push_str(&format!("{} {}\n", end.segment, end.offset));
        }
        if let Err(error) = file
            .set_len(0)
            .and_then(|()| file.write_all(text.as_bytes()))
        {
            tracing::warn!(%error, path = %self.path.display(), "cannot rewrite the export plan");
        }
        self.lines = self.uncommitted.len();
    }
}

/// One exporter's reading of the queue.
pub struct LogReader {
    plan: std::sync::Mutex<Plan>,
    queue: Arc<DurableQueue>,
    cursor: String,
    /// Where the next read starts: ahead of the committed cursor while exports are in flight.
    read_at: std::sync::Mutex<Position>,
    /// When the oldest batch read but not yet exported was received (Unix ns); 0 when none.
    oldest: Arc<AtomicU64>,
}

impl LogReader {
    /// Seconds since the oldest batch this reader has yet to export was received; 0 when none.
    pub fn oldest_age(&self) -> impl Fn() -> u64 + Send + Sync + 'static {
        let oldest = Arc::clone(&self.oldest);
        move || match oldest.load(Ordering::Relaxed) {
            0 => 0,
            ns => std::time::SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |now| {
                    (now.as_nanos() as u64).saturating_sub(ns) / 1_000_000_000
                }),
        }
    }

    fn plan(&self) -> std::sync::MutexGuard<'_, Plan> {
        self.plan.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Appends one JSON line to the dead-letter file, synced, unless it would pass the cap. In an
    /// encrypted queue the line is `{"sealed_hex": ...}`: the letter sealed as a queue record.
    async fn write_letter(&self, line: serde_json::Value) -> Result<PathBuf, DeadLetterError> {
        let mut line = serde_json::to_vec(&line).map_err(std::io::Error::other)?;
        if let Some(sealer) = &self.queue.sealer {
            line = super::seal::seal_letter(sealer, &line);
        }
        line.push(b'\n');
        let path = self
            .queue
            .log
            .dir()
            .join(format!("dead-letter-{}.jsonl", self.cursor));
        let max = self.queue.dead_letter_max.load(Ordering::Relaxed);
        tokio::task::spawn_blocking(move || {
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)?;
            if file.metadata()?.len() + line.len() as u64 > max {
                return Err(DeadLetterError::Full { path, max });
            }
            file.write_all(&line)?;
            file.sync_data()?;
            Ok(path)
        })
        .await
        .map_err(|e| DeadLetterError::Io(std::io::Error::other(e)))?
    }
}

impl Reader for LogReader {
    /// The disk queue never closes: its drivers stop when told to.
    fn closed(&self) -> bool {
        false
    }

    /// Up to `max` batches after the last ones this reader returned (after its committed
    /// cursor at first), each with the position to commit once it is exported; waits up to
    /// `wait` for data when there is none.
    async fn next(&self, max: usize, wait: Duration) -> Result<Vec<Record>, LogError> {
        for attempt in 0..2 {
            let log = Arc::clone(&self.queue.log);
            let at = *self.read_at.lock().unwrap_or_else(|p| p.into_inner());
            let records = tokio::task::spawn_blocking(move || log.read_from(at, max))
                .await
                .map_err(|e| LogError::Io(std::io::Error::other(e)))??;
            if let Some((last, _)) = records.last() {
                *self.read_at.lock().unwrap_or_else(|p| p.into_inner()) = *last;
            }
            if !records.is_empty() || attempt == 1 {
                let mut out = Vec::with_capacity(records.len());
                for (end, bytes) in records {
                    let size = bytes.len();
                    // A plain record is decoded where it lies; a sealed one from its opening.
                    let opened = match &self.queue.sealer {
                        Some(sealer) => sealer
                            .open(&bytes)
                            .map(std::borrow::Cow::Owned)
                            .map_err(|e| e.to_string()),
                        None => Ok(std::borrow::Cow::Borrowed(bytes.as_slice())),
                    };
                    let content = match opened.and_then(|b| decode(&b).map_err(|e| e.to_string())) {
                        Ok(batch) => Content::Batch(Arc::new(batch)),
                        Err(error) => Content::Undecodable { error, bytes },
                    };
                    out.push(Record {
                        end,
                        content,
                        bytes: size,
                    });
                }
                return Ok(out);
            }
            let _ = tokio::time::timeout(wait, self.queue.new_data.notified()).await;
        }
        Ok(Vec::new())
    }

    /// Appends `batch`, which the exporter refused for good, to `dead-letter-<exporter>.jsonl`
    /// beside the queue, synced: one JSON object a line with the time, the reason, the project,
    /// the signal, the item count and the batch as an OTLP/JSON export request (`request`),
    /// which can be posted again to `/v1/<signal>` once the cause is fixed. A line that would
    /// take the file past its cap is refused.
    async fn dead_letter(
        &self,
        letter: Letter<'_>,
        reason: &str,
    ) -> Result<PathBuf, DeadLetterError> {
        let batch = match letter {
            Letter::Batch(batch) => batch,
            Letter::Undecodable { bytes, error } => {
                let line = serde_json::json!({
                    "time_unix_nano": now_ns().to_string(),
                    "reason": format!("{reason}: {error}"),
                    "record_hex": hex::encode(bytes),
                });
                return self.write_letter(line).await;
            }
        };
        let (signal, request) = match &batch.payload {
            Payload::Traces(rs) => (
                "traces",
                serde_json::to_value(ExportTraceServiceRequest {
                    resource_spans: rs.clone(),
                }),
            ),
            Payload::Logs(rl) => (
                "logs",
                serde_json::to_value(ExportLogsServiceRequest {
                    resource_logs: rl.clone(),
                }),
            ),
            Payload::Metrics(rm) => (
                "metrics",
                serde_json::to_value(ExportMetricsServiceRequest {
                    resource_metrics: rm.clone(),
                }),
            ),
        };
        let line = serde_json::json!({
            "time_unix_nano": now_ns().to_string(),
            "reason": reason,
            "project": batch.ctx.project,
            "signal": signal,
            "items": batch.payload.item_count(),
            "request": request.map_err(std::io::Error::other)?,
        });
        self.write_letter(line).await
    }

    /// Records that the oldest batch this reader has yet to export was received at `received`
    /// (`None`: nothing is waiting).
    fn mark_oldest(&self, received: Option<std::time::SystemTime>) {
        let ns = received
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| (d.as_nanos() as u64).max(1));
        self.oldest.store(ns, Ordering::Relaxed);
    }

    /// Marks everything up to `to` exported.
    async fn commit(&self, to: Position) -> Result<(), LogError> {
        let log = Arc::clone(&self.queue.log);
        let cursor = self.cursor.clone();
        tokio::task::spawn_blocking(move || log.commit(&cursor, to))
            .await
            .map_err(|e| LogError::Io(std::io::Error::other(e)))??;
        self.plan().committed(to);
        Ok(())
    }

    /// Records that an export ending at `end` is about to be sent.
    fn plan_export(&self, end: Position) {
        self.plan().write(end);
    }

    /// Where the next export must end to be the one in flight when the process last stopped,
    /// given that its first record ends at `first`; `None` when there is no such export (left).
    fn replayed_end(&self, first: Position) -> Option<Position> {
        let mut plan = self.plan();
        while plan.replay.front().is_some_and(|&end| end < first) {
            plan.replay.pop_front();
        }
        plan.replay.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use llmscope_core::test_util::{fixtures, kv, span, traces};

    use super::*;

    /// The record as a `Stored` with copies of the payload and events: what `encode` writes
    /// without copying them.
    fn encoded_by_copying(batch: &Batch) -> Vec<u8> {
        let request = |resource_logs: &Vec<_>| ExportLogsServiceRequest {
            resource_logs: resource_logs.clone(),
        };
        let mut stored = Stored {
            events: (!batch.events.is_empty()).then(|| request(&batch.events)),
            ..context_of(batch)
        };
        match &batch.payload {
            Payload::Traces(rs) => {
                stored.traces = Some(ExportTraceServiceRequest {
                    resource_spans: rs.clone(),
                })
            }
            Payload::Logs(rl) => stored.logs = Some(request(rl)),
            Payload::Metrics(rm) => {
                stored.metrics = Some(ExportMetricsServiceRequest {
                    resource_metrics: rm.clone(),
                })
            }
        }
        stored.encode_to_vec()
    }

    #[test]
    fn records_are_written_as_stored_would_write_them_and_read_back() {
        let mut with_events = fixtures::traces_batch(fixtures::OPENLLMETRY_OPENAI_CHAT);
        with_events.ctx.api_key_id = Some("key-1".into());
        let Payload::Logs(events) = fixtures::logs_batch(fixtures::OTLP_EVENTS).payload else {
            panic!("logs")
        };
        with_events.events = events;
        let metrics = Batch::new(
            Payload::Metrics(vec![Default::default()]),
            BatchContext::default(),
        );
        for batch in [
            with_events,
            fixtures::logs_batch(fixtures::OTEL_GENAI_OPENAI_CHAT_LOGS),
            metrics,
            traces("svc", Vec::new()),
        ] {
            let bytes = encode(&batch);
            assert_eq!(bytes, encoded_by_copying(&batch));
            let back = decode(&bytes).expect("decode");
            assert_eq!((back.payload, back.events), (batch.payload, batch.events));
        }
    }

    fn batch(n: u8) -> Batch {
        let mut b = traces(
            "svc",
            (0..n)
                .map(|i| span(1, i + 1, "s", vec![kv("i", i64::from(i))]))
                .collect(),
        );
        b.ctx.project = "team-a".into();
        b.ctx.api_key_id = Some("key_1".into());
        b
    }

    #[test]
    fn batches_round_trip_through_their_stored_form() {
        let b = batch(3);
        let back = decode(&encode(&b)).expect("decode");
        assert_eq!(back.payload, b.payload);
        assert_eq!(
            (back.ctx.project, back.ctx.api_key_id),
            (b.ctx.project, b.ctx.api_key_id)
        );
    }

    #[tokio::test]
    async fn acknowledged_batches_are_read_by_each_exporter_and_survive_a_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let open = || {
            DurableQueue::open(
                dir.path(),
                Fsync::Interval(Duration::from_millis(10)),
                1 << 20,
                1 << 24,
                WhenFull::Block,
                None,
            )
            .expect("open")
        };
        let (queue, _) = open();
        // Exporter ids may hold a `/` (`type/name`): cursors are files all the same.
        let (a, b) = (queue.reader("sqlite/archive"), queue.reader("clickhouse"));
        let handle = DurableHandle(Arc::clone(&queue));
        for n in 1..=3 {
            handle
                .push(Arc::new(batch(n)))
                .await
                .expect("acknowledged after sync");
        }
        let read = a.next(10, Duration::from_millis(10)).await.expect("read");
        assert_eq!(
            read.iter()
                .map(|r| match &r.content {
                    Content::Batch(b) => b.payload.item_count(),
                    Content::Undecodable { .. } => 0,
                })
                .collect::<Vec<_>>(),
            [1, 2, 3]
        );
        a.commit(read[1].end).await.expect("commit");
        drop((a, b, handle, queue));

        let (queue, recovery) = open();
        assert_eq!(recovery.records, 3);
        let a = queue.reader("sqlite/archive");
        let left = a.next(10, Duration::from_millis(10)).await.expect("read");
        assert_eq!(left.len(), 1, "sqlite resumes after what it committed");
        assert_eq!(
            queue
                .reader("clickhouse")
                .next(10, Duration::from_millis(10))
                .await
                .expect("read")
                .len(),
            3
        );
    }

    /// A queue in `dir` that syncs every append, sealed by `sealer` when given.
    fn open_synced(
        dir: &Path,
        sealer: Option<Arc<Sealer>>,
    ) -> Result<(Arc<DurableQueue>, Recovery), OpenError> {
        DurableQueue::open(
            dir,
            Fsync::Always,
            1 << 20,
            1 << 24,
            WhenFull::Block,
            sealer,
        )
    }

    /// Every file under `dir`, by name.
    fn files(dir: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
        std::fs::read_dir(dir)
            .expect("dir")
            .map(|e| {
                let e = e.expect("entry");
                (
                    e.file_name().to_string_lossy().into_owned(),
                    std::fs::read(e.path()).expect("read"),
                )
            })
            .collect()
    }

    #[tokio::test]
    async fn an_encrypted_queue_holds_no_plaintext_and_opens_only_with_its_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let key = |byte: &str| Some(Arc::new(Sealer::from_hex(&byte.repeat(32)).expect("key")));
        let open = |sealer| open_synced(dir.path(), sealer);
        let secret = |n: u8| {
            let mut b = traces(
                "billing-svc",
                vec![span(
                    1,
                    n,
                    "charge jane.doe@example.com",
                    vec![kv("card", "4111")],
                )],
            );
            b.ctx.project = "team-a".into();
            b
        };
        let (queue, _) = open(key("5a")).expect("open");
        let reader = queue.reader("sqlite");
        let handle = DurableHandle(Arc::clone(&queue));
        for n in 1..=3 {
            handle.push(Arc::new(secret(n))).await.expect("stored");
        }
        let read = reader
            .next(10, Duration::from_millis(10))
            .await
            .expect("read");
        let Content::Batch(first) = &read[0].content else {
            panic!("a batch")
        };
        reader
            .dead_letter(Letter::Batch(first), "refused")
            .await
            .expect("dead letter");
        drop((reader, handle, queue));

        let before = files(dir.path());
        assert!(before.keys().any(|f| f.ends_with(".seg")));
        assert!(before.keys().any(|f| f.starts_with("dead-letter-")));
        for (name, bytes) in &before {
            for plain in [&b"jane.doe"[..], b"billing-svc", b"team-a", b"charge"] {
                assert!(
                    !bytes.windows(plain.len()).any(|w| w == plain),
                    "{name} holds {}",
                    String::from_utf8_lossy(plain)
                );
            }
        }

        let refusal = |opened: Result<(Arc<DurableQueue>, Recovery), OpenError>| match opened {
            Ok(_) => panic!("opened"),
            Err(e) => e.to_string(),
        };
        let wrong = refusal(open(key("a5")));
        assert!(wrong.contains("another encryption key"), "{wrong}");
        let missing = refusal(open(None));
        assert!(missing.contains("the queue is encrypted"), "{missing}");
        assert_eq!(files(dir.path()), before, "refusing changed nothing");

        let (queue, recovery) = open(key("5a")).expect("reopen with the key");
        assert_eq!(recovery.records, 3);
        let read = queue
            .reader("sqlite")
            .next(10, Duration::from_millis(10))
            .await
            .expect("read");
        let names: Vec<String> = read
            .iter()
            .map(|r| match &r.content {
                Content::Batch(b) => match &b.payload {
                    Payload::Traces(rs) => rs[0].scope_spans[0].spans[0].name.clone(),
                    _ => String::new(),
                },
                Content::Undecodable { error, .. } => error.clone(),
            })
            .collect();
        assert_eq!(names, ["charge jane.doe@example.com"; 3]);
    }

    #[tokio::test]
    async fn a_plain_queue_is_not_taken_for_an_encrypted_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let open = |sealer| open_synced(dir.path(), sealer);
        let (queue, _) = open(None).expect("open");
        DurableHandle(Arc::clone(&queue))
            .push(Arc::new(batch(1)))
            .await
            .expect("stored");
        drop(queue);
        let before = files(dir.path());
        let sealer = Some(Arc::new(Sealer::from_hex(&"5a".repeat(32)).expect("key")));
        let Err(plain) = open(sealer) else {
            panic!("opened")
        };
        let plain = plain.to_string();
        assert!(plain.contains("written without encryption"), "{plain}");
        assert_eq!(files(dir.path()), before, "refusing changed nothing");
    }

    #[test]
    fn the_export_plan_stays_small_and_replays_what_was_in_flight() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("plan-x");
        let at = |offset| Position { segment: 0, offset };
        let mut plan = Plan::open(&path, at(0));
        // Steady load: each export is planned before the one ahead of it is committed.
        for i in 1..=1000 {
            plan.write(at(i + 1));
            plan.committed(at(i));
        }
        let lines = std::fs::read_to_string(&path)
            .expect("plan")
            .lines()
            .count();
        assert!(lines <= 70, "{lines} lines for one export in flight");
        drop(plan);
        let mut reopened = Plan::open(&path, at(1000));
        assert_eq!(reopened.replay, [at(1001)], "the export in flight");
        reopened.committed(at(1001));
        assert_eq!(std::fs::metadata(&path).expect("plan").len(), 0);
    }

    #[tokio::test]
    async fn a_full_queue_refuses_retryably() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (queue, _) = DurableQueue::open(
            dir.path(),
            Fsync::Never,
            1 << 20,
            600,
            WhenFull::Block,
            None,
        )
        .expect("open");
        let _reader = queue.reader("x");
        let handle = DurableHandle(queue);
        let mut results = Vec::new();
        for _ in 0..10 {
            results.push(handle.push(Arc::new(batch(2))).await);
        }
        assert!(results.iter().any(Result::is_ok));
        assert!(results.iter().any(|r| r == &Err(PushError::Full)));
    }

    #[tokio::test]
    async fn a_queue_that_cannot_write_refuses_retryably() {
        let dir = tempfile::tempdir().expect("tempdir");
        let folder = dir.path().join("traces");
        let (queue, _) =
            DurableQueue::open(&folder, Fsync::Never, 4096, 1 << 20, WhenFull::Block, None)
                .expect("open");
        let handle = DurableHandle(Arc::clone(&queue));
        handle.push(Arc::new(batch(2))).await.expect("stored");
        // Gone from under the queue: the next segment cannot be created.
        std::fs::remove_dir_all(&folder).expect("remove");
        let mut refused = None;
        for _ in 0..1000 {
            if let Err(e) = handle.push(Arc::new(batch(2))).await {
                refused = Some(e);
                break;
            }
        }
        assert_eq!(refused, Some(PushError::Storage));
        assert!(PushError::Storage.to_string().contains("retry later"));
    }

    /// A plain queue in `dir` syncing every `every`.
    fn interval_queue(dir: &Path, every: Duration) -> Arc<DurableQueue> {
        DurableQueue::open(
            dir,
            Fsync::Interval(every),
            1 << 20,
            1 << 24,
            WhenFull::Block,
            None,
        )
        .expect("open")
        .0
    }

    #[tokio::test]
    async fn a_failed_fsync_refuses_what_it_covered_at_once_and_later_syncs_acknowledge() {
        use std::sync::atomic::Ordering::Relaxed;

        let dir = tempfile::tempdir().expect("tempdir");
        let queue = interval_queue(dir.path(), Duration::from_millis(5));
        let handle = DurableHandle(Arc::clone(&queue));
        let push = || {
            let handle = handle.clone();
            async move {
                tokio::time::timeout(Duration::from_secs(5), handle.push(Arc::new(batch(1))))
                    .await
                    .expect("answered without waiting for the client's timeout")
            }
        };
        queue.log().fail_syncs.store(true, Relaxed);
        assert_eq!(push().await, Err(PushError::Storage));
        queue.log().fail_syncs.store(false, Relaxed);
        assert_eq!(push().await, Ok(()));
    }

    #[tokio::test]
    async fn an_idle_queue_syncs_at_once_a_busy_one_once_per_interval_and_the_syncer_ends_with_it()
    {
        let dir = tempfile::tempdir().expect("tempdir");
        let queue = interval_queue(dir.path(), Duration::from_secs(60));
        let handle = DurableHandle(Arc::clone(&queue));
        let push = || handle.push(Arc::new(batch(1)));
        // Nothing synced for a whole interval (never): the first batch does not wait a minute.
        tokio::time::timeout(Duration::from_secs(10), push())
            .await
            .expect("acknowledged without waiting for the interval")
            .expect("stored");
        // The next one, within the interval, waits for the next sync.
        assert!(
            tokio::time::timeout(Duration::from_millis(500), push())
                .await
                .is_err(),
            "a second sync within the interval"
        );
        let syncer = Arc::clone(&queue.unsynced);
        drop(handle);
        drop(queue);
        tokio::time::timeout(Duration::from_secs(10), async {
            while Arc::strong_count(&syncer) > 1 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .expect("the syncer ended with its queue");
    }

    #[tokio::test]
    async fn drop_oldest_counts_every_record_no_reader_saw() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (queue, _) = DurableQueue::open(
            dir.path(),
            Fsync::Never,
            400,
            1200,
            WhenFull::DropOldest,
            None,
        )
        .expect("open");
        let telemetry = llmscope_core::telemetry::Telemetry::default();
        let dropped = telemetry.counter(
            &llmscope_core::telemetry::metrics::QUEUE_DROPPED_RECORDS,
            &[("pipeline", "x")],
        );
        queue.count_drops(dropped.clone());
        let reader = queue.reader("x");
        let handle = DurableHandle(Arc::clone(&queue));
        for _ in 0..30 {
            handle
                .push(Arc::new(batch(2)))
                .await
                .expect("drop_oldest never refuses");
        }
        let read = reader.next(100, Duration::ZERO).await.expect("read").len() as u64;
        assert!(dropped.get() > 0, "the limit forced drops");
        assert_eq!(
            read + dropped.get(),
            30,
            "every record is either readable or counted"
        );
    }
}
