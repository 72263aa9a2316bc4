//! The storage of the durable queue: an append-only log of records in segment files, each record
//! framed as `[length: u32 LE][CRC-32 of the payload: u32 LE][payload]`, with one persisted
//! cursor per reader. A torn or corrupt tail (a crash mid-write) is found by its length or
//! checksum on open, cut off and reported; every record before it is kept. Segments are deleted
//! once every cursor has passed them. The log is bounded: past `max_bytes` an append is refused
//! (`block`) or the oldest segment goes (`drop_oldest`, counted).
//!
//! Durability is the caller's choice: `append` writes; `sync` makes everything appended so far
//! survive a power loss (the queue calls it per append, on an interval, or never).

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

const HEADER: u64 = 8;
/// The largest record accepted (a sanity bound for reading lengths back).
pub const MAX_RECORD: u64 = 256 * 1024 * 1024;
/// Payload bytes one read returns at most (beyond its first record).
pub const READ_BYTES: u64 = 8 * 1024 * 1024;

/// What happens when the log is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WhenFull {
    /// Refuse the append; receivers answer with a retryable refusal.
    Block,
    /// Delete the oldest segment, even if a cursor has not read it; its records are counted.
    DropOldest,
}

/// A place in the log: the segment and the byte offset in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Position {
    pub segment: u64,
    pub offset: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("the queue is full")]
    Full,
    #[error("record of {0} bytes is larger than the largest accepted")]
    TooLarge(u64),
    #[error("queue storage: {0}")]
    Io(#[from] io::Error),
}

/// What opening found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Recovery {
    pub records: u64,
    /// Bytes of torn or corrupt tail cut off.
    pub truncated_bytes: u64,
}

#[derive(Debug, Clone, Copy, Default)]
struct Segment {
    bytes: u64,
    records: u64,
}

struct State {
    segments: BTreeMap<u64, Segment>,
    /// The segment appends go to; shared so a sync runs outside the lock.
    active: Arc<File>,
    cursors: HashMap<String, Position>,
    dropped_records: u64,
}

pub struct SegmentLog {
    dir: PathBuf,
    segment_bytes: u64,
    max_bytes: u64,
    when_full: WhenFull,
    state: Mutex<State>,
    /// Tests make `sync` fail with this, as a disk error would.
    #[cfg(test)]
    pub(crate) fail_syncs: std::sync::atomic::AtomicBool,
}

fn segment_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:020}.seg"))
}

fn cursor_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("cursor-{name}"))
}

/// Reads frames from `file` from its start; returns the records' payloads (when `keep`), the
/// length of the valid prefix, and how many records it holds.
fn scan(file: &mut File, keep: bool) -> io::Result<(Vec<Vec<u8>>, u64, u64)> {
    let len = file.metadata()?.len();
    file.seek(SeekFrom::Start(0))?;
    let mut reader = io::BufReader::new(file);
    let (mut offset, mut count, mut out) = (0u64, 0u64, Vec::new());
    loop {
        if offset + HEADER > len {
            break;
        }
        let mut header = [0u8; 8];
        reader.read_exact(&mut header)?;
        let size = u64::from(u32::from_le_bytes([
            header[0], header[1], header[2], header[3],
        ]));
        let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        if size > MAX_RECORD || offset + HEADER + size > len {
            break;
        }
        let mut payload = vec![0u8; size as usize];
        reader.read_exact(&mut payload)?;
        if crc32fast::hash(&payload) != crc {
            break;
        }
        offset += HEADER + size;
        count += 1;
        if keep {
            out.push(payload);
        }
    }
    Ok((out, offset, count))
}

impl SegmentLog {
    /// Opens (or creates) the log in `dir`, checking every segment and cutting off a torn tail.
    pub fn open(
        dir: &Path,
        segment_bytes: u64,
        max_bytes: u64,
        when_full: WhenFull,
    ) -> Result<(Self, Recovery), LogError> {
        fs::create_dir_all(dir)?;
        // Queued batches are user data: the folder is the collector's alone.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
        }
        let mut segments = BTreeMap::new();
        let mut recovery = Recovery::default();
        for entry in fs::read_dir(dir)? {
            let path = entry?.path();
            let Some(id) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".seg"))
                .and_then(|n| n.parse::<u64>().ok())
            else {
                continue;
            };
            let mut file = OpenOptions::new().read(true).write(true).open(&path)?;
            let (_, valid, records) = scan(&mut file, false)?;
            let len = file.metadata()?.len();
            if valid < len {
                file.set_len(valid)?;
                file.sync_all()?;
                recovery.truncated_bytes += len - valid;
            }
            recovery.records += records;
            segments.insert(
                id,
                Segment {
                    bytes: valid,
                    records,
                },
            );
        }
        let active_id = segments.keys().next_back().copied().unwrap_or(0);
        segments.entry(active_id).or_default();
        let active = OpenOptions::new()
            .create(true)
            .append(true)
            .open(segment_path(dir, active_id))?;
        sync_dir(dir)?;
        let mut cursors = HashMap::new();
        for entry in fs::read_dir(dir)? {
            let path = entry?.path();
            let Some(name) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_prefix("cursor-"))
            else {
                continue;
            };
            let text = fs::read_to_string(&path)?;
            let mut parts = text.split_whitespace().map(str::parse::<u64>);
            if let (Some(Ok(segment)), Some(Ok(offset))) = (parts.next(), parts.next()) {
                let at = Position { segment, offset };
                // A cursor past a cut tail would skip, or land inside, the records appended
                // where the cut was: it moves back to the end of what is left, durably.
                let end = segments[&active_id].bytes;
                let clamped = match segments.get(&segment) {
                    Some(seg) if offset > seg.bytes => Position {
                        segment,
                        offset: seg.bytes,
                    },
                    None if segment > active_id => Position {
                        segment: active_id,
                        offset: end,
                    },
                    _ => at,
                };
                if clamped != at {
                    tracing::warn!(dir = %dir.display(), cursor = name, ?at, ?clamped, "queue cursor was past a cut tail");
                    persist_cursor(dir, name, clamped)?;
                }
                cursors.insert(name.to_owned(), clamped);
            }
        }
        let log = Self {
            dir: dir.to_owned(),
            segment_bytes: segment_bytes.max(HEADER + 1),
            max_bytes,
            when_full,
            state: Mutex::new(State {
                segments,
                active: Arc::new(active),
                cursors,
                dropped_records: 0,
            }),
            #[cfg(test)]
            fail_syncs: Default::default(),
        };
        Ok((log, recovery))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The folder of the log.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Bytes of records on disk.
    pub fn bytes(&self) -> u64 {
        self.lock().segments.values().map(|s| s.bytes).sum()
    }

    /// Records deleted unread by `drop_oldest`.
    pub fn dropped_records(&self) -> u64 {
        self.lock().dropped_records
    }

    /// Bytes of records `cursor` has not yet passed.
    pub fn pending_bytes(&self, cursor: &str) -> u64 {
        let state = self.lock();
        let at = state.cursors.get(cursor).copied().unwrap_or_default();
        state
            .segments
            .range(at.segment..)
            .map(|(id, seg)| {
                if *id == at.segment {
                    seg.bytes.saturating_sub(at.offset)
                } else {
                    seg.bytes
                }
            })
            .sum()
    }

    /// Registers a reader; a new one starts at the oldest record.
    pub fn add_cursor(&self, name: &str) {
        let mut state = self.lock();
        let first = state.segments.keys().next().copied().unwrap_or(0);
        state.cursors.entry(name.to_owned()).or_insert(Position {
            segment: first,
            offset: 0,
        });
    }

    /// Appends one record; returns the position after it.
    pub fn append(&self, payload: &[u8]) -> Result<Position, LogError> {
        let size = payload.len() as u64;
        if size > MAX_RECORD {
            return Err(LogError::TooLarge(size));
        }
        let frame = HEADER + size;
        let mut state = self.lock();
        let total: u64 = state.segments.values().map(|s| s.bytes).sum();
        if total + frame > self.max_bytes {
            match self.when_full {
                WhenFull::Block => return Err(LogError::Full),
                WhenFull::DropOldest => self.drop_oldest(&mut state, total + frame)?,
            }
        }
        let mut active_id = state.segments.keys().next_back().copied().unwrap_or(0);
        if state.segments[&active_id].bytes + frame > self.segment_bytes
            && state.segments[&active_id].bytes > 0
        {
            state.active.sync_all()?;
            active_id += 1;
            state.active = Arc::new(
                OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(segment_path(&self.dir, active_id))?,
            );
            sync_dir(&self.dir)?;
            state.segments.insert(active_id, Segment::default());
        }
        let mut buf = Vec::with_capacity(frame as usize);
        buf.extend_from_slice(&(size as u32).to_le_bytes());
        buf.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
        buf.extend_from_slice(payload);
        let segment = state.segments.entry(active_id).or_default();
        let valid = segment.bytes;
        if let Err(error) = (&*state.active).write_all(&buf) {
            // A short write (a full disk) must not stay in front of the next record.
            if let Err(cut) = state.active.set_len(valid) {
                tracing::error!(%cut, "cannot cut a failed append off the queue segment");
            }
            return Err(error.into());
        }
        let segment = state.segments.entry(active_id).or_default();
        segment.bytes += frame;
        segment.records += 1;
        Ok(Position {
            segment: active_id,
            offset: segment.bytes,
        })
    }

    /// Deletes oldest segments (never the active one) until `needed` bytes fit.
    fn drop_oldest(&self, state: &mut State, mut needed: u64) -> io::Result<()> {
        let active = state.segments.keys().next_back().copied().unwrap_or(0);
        while needed > self.max_bytes {
            let Some((&oldest, &seg)) = state.segments.iter().next() else {
                break;
            };
            if oldest == active {
                break;
            }
            state.segments.remove(&oldest);
            fs::remove_file(segment_path(&self.dir, oldest))?;
            needed -= seg.bytes;
            state.dropped_records += seg.records;
            for cursor in state.cursors.values_mut() {
                if cursor.segment <= oldest {
                    *cursor = Position {
                        segment: oldest + 1,
                        offset: 0,
                    };
                }
            }
        }
        Ok(())
    }

    /// Makes everything appended so far durable.
    /// Appends go on meanwhile: a segment closed by rotation was synced as it closed.
    pub fn sync(&self) -> io::Result<()> {
        #[cfg(test)]
        if self.fail_syncs.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(io::Error::other("injected fsync failure"));
        }
        let active = Arc::clone(&self.lock().active);
        active.sync_data()
    }

    /// Up to `max` records from `cursor`'s position, each with the position after it; past the
    /// first record, no more than [`READ_BYTES`] of payload, so a reader far behind holds a
    /// bounded amount in memory.
    pub fn read(&self, cursor: &str, max: usize) -> Result<Vec<(Position, Vec<u8>)>, LogError> {
        self.read_from(self.position(cursor), max)
    }

    /// Where `cursor` stands: everything before it is exported.
    pub fn position(&self, cursor: &str) -> Position {
        self.lock().cursors.get(cursor).copied().unwrap_or_default()
    }

    /// Like [`SegmentLog::read`], from `at` (a position `read` returned, or a cursor's): a
    /// reader with exports in flight reads ahead of its committed cursor. A position in a
    /// segment `drop_oldest` deleted reads from the oldest segment left.
    pub fn read_from(
        &self,
        mut at: Position,
        max: usize,
    ) -> Result<Vec<(Position, Vec<u8>)>, LogError> {
        let segments = {
            let state = self.lock();
            let segments: Vec<(u64, Segment)> = state
                .segments
                .range(at.segment..)
                .map(|(k, v)| (*k, *v))
                .collect();
            segments
        };
        let mut out = Vec::new();
        let mut bytes = 0;
        let full = |out: &Vec<_>, bytes: u64| out.len() >= max || bytes >= READ_BYTES;
        for (id, seg) in segments {
            if full(&out, bytes) {
                break;
            }
            if id > at.segment {
                at = Position {
                    segment: id,
                    offset: 0,
                };
            }
            if at.offset >= seg.bytes {
                continue;
            }
            let mut file = File::open(segment_path(&self.dir, id))?;
            file.seek(SeekFrom::Start(at.offset))?;
            let mut reader = io::BufReader::new(file);
            while at.offset < seg.bytes && !full(&out, bytes) {
                let mut header = [0u8; 8];
                reader.read_exact(&mut header)?;
                let size = u64::from(u32::from_le_bytes([
                    header[0], header[1], header[2], header[3],
                ]));
                if size > MAX_RECORD {
                    return Err(LogError::TooLarge(size));
                }
                let mut payload = vec![0u8; size as usize];
                reader.read_exact(&mut payload)?;
                at.offset += HEADER + size;
                bytes += size;
                out.push((at, payload));
            }
        }
        Ok(out)
    }

    /// Moves `cursor` to `to` (a position returned by `read`), persists it, and deletes the
    /// segments every cursor has passed.
    pub fn commit(&self, cursor: &str, to: Position) -> Result<(), LogError> {
        // `drop_oldest` may have moved the cursor past `to` meanwhile: it never goes back.
        let to = self.position(cursor).max(to);
        persist_cursor(&self.dir, cursor, to)?;
        let mut state = self.lock();
        let at = state.cursors.entry(cursor.to_owned()).or_default();
        *at = (*at).max(to);
        let oldest_needed = state.cursors.values().map(|c| c.segment).min().unwrap_or(0);
        let active = state.segments.keys().next_back().copied().unwrap_or(0);
        let done: Vec<u64> = state
            .segments
            .range(..oldest_needed.min(active))
            .map(|(k, _)| *k)
            .collect();
        for id in done {
            state.segments.remove(&id);
            fs::remove_file(segment_path(&self.dir, id))?;
        }
        Ok(())
    }
}

/// Writes `cursor`'s position with a rename, so a crash leaves the old or the new one.
fn persist_cursor(dir: &Path, cursor: &str, at: Position) -> io::Result<()> {
    let tmp = dir.join(format!(".cursor-{cursor}.tmp"));
    {
        let mut f = File::create(&tmp)?;
        writeln!(f, "{} {}", at.segment, at.offset)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, cursor_path(dir, cursor))?;
    sync_dir(dir)
}

/// Makes the folder's entries (new segments, renamed cursors) survive a power loss.
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(dir: &Path, segment: u64, max: u64, full: WhenFull) -> (SegmentLog, Recovery) {
        SegmentLog::open(dir, segment, max, full).expect("open")
    }

    /// A log of 64-byte segments holding records `[i; 20]` for i in 0..10, with cursors `a`
    /// and `b` at its start.
    fn ten_records_two_cursors(dir: &Path) -> SegmentLog {
        let (log, _) = open(dir, 64, 1 << 20, WhenFull::Block);
        log.add_cursor("a");
        log.add_cursor("b");
        for i in 0..10u8 {
            log.append(&[i; 20]).expect("append");
        }
        log
    }

    fn payloads(records: &[(Position, Vec<u8>)]) -> Vec<Vec<u8>> {
        records.iter().map(|(_, p)| p.clone()).collect()
    }

    #[test]
    fn records_read_back_in_order_and_cursors_survive_a_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = ten_records_two_cursors(dir.path());
        log.sync().expect("sync");
        let first = log.read("a", 4).expect("read");
        assert_eq!(
            payloads(&first),
            (0..4u8).map(|i| vec![i; 20]).collect::<Vec<_>>()
        );
        log.commit("a", first.last().expect("last").0)
            .expect("commit");
        drop(log);

        let (log, recovery) = open(dir.path(), 64, 1 << 20, WhenFull::Block);
        assert_eq!(
            recovery,
            Recovery {
                records: 10,
                truncated_bytes: 0
            }
        );
        assert_eq!(
            payloads(&log.read("a", 100).expect("a")),
            (4..10u8).map(|i| vec![i; 20]).collect::<Vec<_>>()
        );
        assert_eq!(
            log.read("b", 100).expect("b").len(),
            10,
            "each cursor reads on its own"
        );
    }

    #[test]
    fn a_reader_behind_drop_oldest_resumes_at_the_oldest_segment_left() {
        let dir = tempfile::tempdir().expect("tempdir");
        // Two 28-byte frames a segment, four segments at most.
        let (log, _) = open(dir.path(), 64, 256, WhenFull::DropOldest);
        log.add_cursor("a");
        log.append(&[0; 20]).expect("append");
        let (early, _) = log.read("a", 1).expect("read")[0];
        for i in 1..20u8 {
            log.append(&[i; 20]).expect("append");
        }
        assert!(log.dropped_records() > 0);
        let from_cursor = log.read("a", 100).expect("read");
        assert!(log.position("a") > early, "drop_oldest moved the cursor on");
        assert_eq!(
            payloads(&log.read_from(early, 100).expect("read")),
            payloads(&from_cursor),
            "a read from a dropped segment starts at the oldest one left"
        );
        let moved = log.position("a");
        log.commit("a", early).expect("a late commit");
        assert_eq!(
            log.position("a"),
            moved,
            "a commit never moves a cursor back"
        );
    }

    #[test]
    fn segments_go_once_every_cursor_has_passed_them() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = ten_records_two_cursors(dir.path());
        let segments = || {
            fs::read_dir(dir.path())
                .expect("dir")
                .filter(|e| {
                    e.as_ref()
                        .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "seg"))
                })
                .count()
        };
        assert_eq!(segments(), 5, "two 28-byte records per 64-byte segment");
        let all = log.read("a", 100).expect("read");
        log.commit("a", all.last().expect("last").0)
            .expect("commit");
        assert_eq!(segments(), 5, "b has not read them");
        let all = log.read("b", 100).expect("read");
        log.commit("b", all.last().expect("last").0)
            .expect("commit");
        assert_eq!(segments(), 1, "only the active segment stays");
        assert!(log.read("a", 10).expect("read").is_empty());
    }

    #[test]
    fn a_torn_or_corrupt_tail_is_cut_and_every_record_before_it_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let (log, _) = open(dir.path(), 1 << 20, 1 << 20, WhenFull::Block);
            for i in 0..5u8 {
                log.append(&[i; 100]).expect("append");
            }
            log.sync().expect("sync");
        }
        let path = segment_path(dir.path(), 0);
        // A crash mid-write: half a frame at the end.
        let mut f = OpenOptions::new()
            .append(true)
            .open(&path)
            .expect("segment");
        f.write_all(&[7, 0, 0, 0, 1, 2]).expect("torn");
        drop(f);
        let (log, recovery) = open(dir.path(), 1 << 20, 1 << 20, WhenFull::Block);
        assert_eq!(
            recovery,
            Recovery {
                records: 5,
                truncated_bytes: 6
            }
        );
        log.add_cursor("a");
        assert_eq!(log.read("a", 100).expect("read").len(), 5);
        log.append(&[9; 10]).expect("appends after the cut");
        drop(log);
        // A flipped byte inside the last record: its checksum no longer matches.
        let mut bytes = fs::read(&path).expect("read");
        let last = bytes.len() - 3;
        bytes[last] ^= 0xff;
        fs::write(&path, bytes).expect("write");
        let (log, recovery) = open(dir.path(), 1 << 20, 1 << 20, WhenFull::Block);
        assert_eq!(
            recovery,
            Recovery {
                records: 5,
                truncated_bytes: 18
            }
        );
        log.add_cursor("a");
        assert_eq!(log.read("a", 100).expect("read").len(), 5);
    }

    #[test]
    fn a_cursor_past_a_cut_tail_reads_what_is_appended_after_the_cut() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let (log, _) = open(dir.path(), 1 << 20, 1 << 20, WhenFull::Block);
            log.add_cursor("a");
            for i in 0..3u8 {
                log.append(&[i; 100]).expect("append");
            }
            log.sync().expect("sync");
            let read = log.read("a", 100).expect("read");
            log.commit("a", read.last().expect("records").0)
                .expect("commit");
        }
        // The last record, already exported, is damaged on disk and cut at the next start.
        let path = segment_path(dir.path(), 0);
        let mut bytes = fs::read(&path).expect("read");
        let last = bytes.len() - 3;
        bytes[last] ^= 0xff;
        fs::write(&path, bytes).expect("write");
        {
            let (log, recovery) = open(dir.path(), 1 << 20, 1 << 20, WhenFull::Block);
            assert_eq!(recovery.truncated_bytes, 108);
            log.add_cursor("a");
            log.append(&[7; 300]).expect("append");
            log.sync().expect("sync");
            // A crash before the reader commits: the moved cursor was persisted at open.
        }
        let (log, _) = open(dir.path(), 1 << 20, 1 << 20, WhenFull::Block);
        log.add_cursor("a");
        assert_eq!(log.pending_bytes("a"), 308);
        let read = log.read("a", 100).expect("read");
        log.commit("a", read[0].0).expect("commit");
        assert_eq!(log.pending_bytes("a"), 0);
        assert_eq!(read.len(), 1);
        assert_eq!(read[0].1, vec![7; 300]);
    }

    #[test]
    fn a_full_log_blocks_or_drops_its_oldest_segment() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (log, _) = open(dir.path(), 64, 200, WhenFull::Block);
        log.add_cursor("a");
        let mut accepted = 0;
        while log.append(&[1; 20]).is_ok() {
            accepted += 1;
        }
        assert_eq!(accepted, 7, "7 records of 28 bytes fit in 200");
        assert!(matches!(log.append(&[1; 20]), Err(LogError::Full)));
        let all = log.read("a", 3).expect("read");
        log.commit("a", all.last().expect("last").0)
            .expect("commit");
        assert!(log.append(&[2; 20]).is_ok(), "room again once read");

        let dir = tempfile::tempdir().expect("tempdir");
        let (log, _) = open(dir.path(), 64, 200, WhenFull::DropOldest);
        log.add_cursor("a");
        for i in 0..20u8 {
            log.append(&[i; 20]).expect("never refused");
        }
        assert!(log.bytes() <= 200);
        let kept = log.read("a", 100).expect("read");
        assert_eq!(
            kept.len() as u64 + log.dropped_records(),
            20,
            "every record read or counted"
        );
        assert_eq!(
            kept.last().map(|(_, p)| p[0]),
            Some(19),
            "the newest are kept"
        );
    }
}
