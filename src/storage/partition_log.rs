//! `PartitionLog`: the log of one partition, owned by one shard.
//!
//! State lives in `Rc`/`RefCell` (a shard is one thread; nothing here is shared across cores).
//! Appends are synchronous up to the point of waiting: validate, stamp, copy into the active
//! segment's DMA staging, insert into the MemTable. A per-log *flusher* task writes what was
//! staged and, as the policy says, fdatasyncs it.
//!
//! # Group commit
//!
//! The first append of a burst wakes the flusher; the flusher runs only after the appenders that
//! are ready in the same executor turn have staged their batches, and while a write and
//! fdatasync are in flight, later appends keep staging. Each flush cycle takes *everything*
//! staged, issues one write per staging buffer and one fdatasync per touched file, and then
//! completes every append it covered. So N concurrent appenders share far fewer than N
//! fdatasyncs ([`LogStats`] counts both). No timer is involved, and a lone appender pays one
//! write plus one fdatasync.
//!
//! # Segment recycling
//!
//! Retention parks the `.log` of a deleted segment (at most `recycled_segments_max`) and the
//! next new segment renames it into place and overwrites it. ext4 issues an O_DIRECT write
//! into allocated, written blocks inline, while a write that allocates or extends the file goes
//! to an io_uring kernel worker pinned to the shard's core; and an fdatasync after overwrites
//! has no metadata to commit. A `.recycled` marker stays beside such a segment until seal or
//! clean close truncates its stale tail, so recovery after a crash reports that tail as
//! `recycled_space`, not damage. Stale batches can never pass for new ones: their offsets lie
//! below the new segment's base, and recovery checks the offset chain.
//!
//! # Visibility
//!
//! Under `always`, the high watermark is the durable offset: consumers never see a batch that a
//! crash could take back. Under `interval` and `never` it is the log end offset, as in Kafka.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, VecDeque};
use std::future::{poll_fn, Future};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use glommio::io::DmaFile;
use glommio::sync::Semaphore;

use crate::record::{BatchHeader, RecordBatch, RecordIter, TimestampType};

use super::config::{FlushPolicy, LogConfig};
use super::error::{io_error, std_io_error, StorageError, StorageResult};
use crate::blocking::run_blocking;

use super::fileio::{
    open_read_write, prime_direct_io_probe, read_exact, read_small_file, remove_if_exists,
    short_write, sync_directory, write_small_file, SmallFile,
};
use super::memtable::{MemTable, MemTableBudget};
use super::offset_index::OffsetIndex;
use super::recovery::{is_zero_padding, scan_segment, RecoveryCut, RecoveryReport};
use super::segment::{
    align_down, parse_log_file_name, parse_recyclable_file_name, read_batches, read_first_header,
    recyclable_path, Segment, SegmentPaths, SegmentState, WriteBuffer, RECYCLED_MARKER_SUFFIX,
};
use super::time_index::TimeIndex;

/// Name of the marker a clean close leaves in the partition directory.
pub const CLEAN_SHUTDOWN_MARKER: &str = ".clean_shutdown";
/// Readers a log remembers while they wait for its high watermark to move.
pub const DATA_WAITERS_MAX: usize = 4096;
/// Bytes each step of a timestamp lookup reads.
const TIMESTAMP_SCAN_READ_BYTES: usize = 256 << 10;

/// What an append did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendInfo {
    /// Offset assigned to the batch's first record.
    pub base_offset: u64,
    /// Offset of its last record.
    pub last_offset: u64,
    /// The broker's timestamp, for `LogAppendTime` topics.
    pub log_append_time_ms: Option<i64>,
}

/// The batches a read found, with the log's bounds at the time of the read.
#[derive(Debug, Clone, Default)]
pub struct LogRead {
    /// Whole batches in offset order; each `Bytes` holds one or more batches.
    pub batches: Vec<Bytes>,
    /// Total bytes in `batches`.
    pub bytes: usize,
    /// Offset after the last readable record.
    pub high_watermark: u64,
    /// First offset in the log.
    pub log_start_offset: u64,
}

/// An offset found by timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimestampOffset {
    /// Offset of the first record with a timestamp at or after the one asked for.
    pub offset: u64,
    /// That record's timestamp.
    pub timestamp: i64,
}

/// What a retention pass removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetentionOutcome {
    /// Segments deleted.
    pub segments_deleted: usize,
    /// Bytes deleted.
    pub bytes_deleted: u64,
    /// The log start offset afterwards.
    pub log_start_offset: u64,
}

/// Counters of one log, for tests, benches and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogStats {
    /// Batches appended.
    pub appends: u64,
    /// Bytes appended.
    pub bytes_appended: u64,
    /// Write calls issued to segment files.
    pub writes: u64,
    /// Bytes written to segment files, padding and rewritten tail blocks included.
    pub bytes_written: u64,
    /// fdatasync calls on segment files.
    pub fdatasyncs: u64,
    /// Flush cycles the flusher ran.
    pub flush_cycles: u64,
    /// Microseconds the flusher waited for segment writes (from submitting a cycle's writes to
    /// the last one completing).
    pub write_wait_us: u64,
    /// Microseconds the flusher waited for fdatasync calls.
    pub fdatasync_wait_us: u64,
    /// Segments rolled.
    pub rolls: u64,
    /// New segment files that reused a file retention had deleted.
    pub segments_recycled: u64,
}

type Clock = Rc<dyn Fn() -> i64>;

fn system_clock_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_millis() as i64)
        .unwrap_or(0)
}

/// The log of one partition. Cloning gives another handle to the same log.
#[derive(Clone)]
pub struct PartitionLog {
    inner: Rc<LogInner>,
}

struct LogInner {
    directory: PathBuf,
    config: LogConfig,
    memtable: Rc<MemTable>,
    state: RefCell<LogState>,
    /// Held by the flusher during a cycle and by truncate, retention, close and delete, so that
    /// no two of them change segment files at once. Appends never take it.
    io_lock: Semaphore,
    flush_requested: Cell<bool>,
    sync_requested: Cell<bool>,
    /// A segment was sealed since the last retention pass (with `retention_on_roll`).
    retention_due: Cell<bool>,
    /// A retention task of this log is running: at most one runs at a time, and it goes on
    /// while rolls keep setting `retention_due`.
    retention_running: Cell<bool>,
    flusher_waker: RefCell<Option<Waker>>,
    /// Appenders waiting for durability, for staging room, or for an exclusive operation.
    progress_waiters: RefCell<Vec<Waker>>,
    /// Readers (long-polling fetches) waiting for the high watermark to pass an offset.
    data_waiters: RefCell<Vec<Waker>>,
    stats: Cell<LogStats>,
    clock: RefCell<Clock>,
    recovery: RecoveryReport,
}

struct LogState {
    segments: BTreeMap<u64, Segment>,
    log_start_offset: u64,
    next_offset: u64,
    /// Offsets below this are written to segment files.
    written_offset: u64,
    /// Offsets below this are covered by an fdatasync.
    durable_offset: u64,
    staged_bytes: usize,
    /// Files written since their last fdatasync.
    unsynced_files: Vec<Rc<DmaFile>>,
    /// Segment files retention parked for reuse, oldest first, at most
    /// `recycled_segments_max`.
    recyclable: VecDeque<Recyclable>,
    /// Set while truncate or delete rewrite the log; appends wait.
    exclusive: bool,
    failed: Option<String>,
    closed: bool,
}

impl LogState {
    /// The log's offset invariant: durable ≤ written ≤ next. An acks=-1 answer rests on
    /// `durable_offset`, so a violation would acknowledge data that is not on disk.
    fn debug_assert_offsets(&self) {
        debug_assert!(
            self.durable_offset <= self.written_offset,
            "durable offset {} above written offset {}",
            self.durable_offset,
            self.written_offset
        );
        debug_assert!(
            self.written_offset <= self.next_offset,
            "written offset {} above next offset {}",
            self.written_offset,
            self.next_offset
        );
    }
}

impl PartitionLog {
    /// Opens (or creates) the log in `directory`, recovering it, and starts its flusher.
    /// Must run inside a glommio executor.
    pub async fn open(
        directory: impl AsRef<Path>,
        config: LogConfig,
        budget: Rc<MemTableBudget>,
    ) -> StorageResult<Self> {
        config.validate()?;
        let requested = directory.as_ref().to_path_buf();
        // glommio runs statfs on DMA paths and unwraps it: give it absolute paths only.
        let directory = run_blocking(move || {
            std::fs::create_dir_all(&requested)
                .map_err(std_io_error("create directory", &requested))?;
            std::fs::canonicalize(&requested).map_err(std_io_error("resolve", &requested))
        })
        .await?;
        prime_direct_io_probe(&directory).await?;
        let (state, recovery) = recover(&directory, &config).await?;
        let memtable = MemTable::new(budget);
        memtable.set_evictable_below(state.written_offset);
        let inner = Rc::new(LogInner {
            directory,
            config,
            memtable,
            state: RefCell::new(state),
            io_lock: Semaphore::new(1),
            flush_requested: Cell::new(false),
            sync_requested: Cell::new(false),
            retention_due: Cell::new(false),
            retention_running: Cell::new(false),
            flusher_waker: RefCell::new(None),
            progress_waiters: RefCell::new(Vec::new()),
            data_waiters: RefCell::new(Vec::new()),
            stats: Cell::new(LogStats::default()),
            clock: RefCell::new(Rc::new(system_clock_ms)),
            recovery,
        });
        // The flusher shares the appenders' task queue on purpose: woken by the first append of
        // a burst, it runs after every appender ready in the same turn has staged, so one flush
        // takes the whole burst. (A separate latency-sensitive queue was measured: it split
        // bursts in two, doubled the fdatasyncs and lowered throughput by a quarter.)
        glommio::spawn_local(flusher_loop(Rc::downgrade(&inner))).detach();
        if let FlushPolicy::Interval { interval_ms } = inner.config.flush_policy {
            glommio::spawn_local(interval_sync_loop(
                Rc::downgrade(&inner),
                Duration::from_millis(interval_ms),
            ))
            .detach();
        }
        Ok(Self { inner })
    }

    /// What recovery found and cut when the log was opened.
    pub fn recovery_report(&self) -> &RecoveryReport {
        &self.inner.recovery
    }

    /// The partition directory.
    pub fn directory(&self) -> &Path {
        &self.inner.directory
    }

    /// The log's settings.
    pub fn config(&self) -> &LogConfig {
        &self.inner.config
    }

    /// Replaces the wall clock (milliseconds since the epoch) used for `segment_ms` and
    /// `LogAppendTime`. For tests.
    pub fn set_clock(&self, clock: impl Fn() -> i64 + 'static) {
        *self.inner.clock.borrow_mut() = Rc::new(clock);
    }

    /// Counters since open.
    pub fn stats(&self) -> LogStats {
        self.inner.stats.get()
    }

    /// First offset in the log.
    pub fn log_start_offset(&self) -> u64 {
        self.inner.state.borrow().log_start_offset
    }

    /// Offset the next append gets.
    pub fn log_end_offset(&self) -> u64 {
        self.inner.state.borrow().next_offset
    }

    /// Offset after the last record consumers may read: the durable offset under `always`,
    /// the log end offset otherwise.
    pub fn high_watermark(&self) -> u64 {
        self.inner.high_watermark(&self.inner.state.borrow())
    }

    /// Offsets below this are covered by an fdatasync.
    pub fn durable_offset(&self) -> u64 {
        self.inner.state.borrow().durable_offset
    }

    /// Segments in the log.
    pub fn segment_count(&self) -> usize {
        self.inner.state.borrow().segments.len()
    }

    /// Base offsets of the segments, oldest first.
    pub fn segment_base_offsets(&self) -> Vec<u64> {
        self.inner.state.borrow().segments.keys().copied().collect()
    }

    /// Logical bytes of all segments.
    pub fn size_bytes(&self) -> u64 {
        let state = self.inner.state.borrow();
        state
            .segments
            .values()
            .map(|segment| segment.size_bytes)
            .sum()
    }

    /// The MemTable of this partition.
    pub fn memtable(&self) -> &MemTable {
        &self.inner.memtable
    }

    /// Appends a batch and returns its offsets. Under `always` it completes once an fdatasync
    /// covers the batch; under `interval` and `never` once the batch is staged.
    pub async fn append(&self, batch: RecordBatch) -> StorageResult<AppendInfo> {
        let info = self.append_staged(batch).await?;
        if self.inner.config.flush_policy == FlushPolicy::Always {
            self.wait_durable(info.last_offset + 1).await?;
        }
        Ok(info)
    }

    /// Appends a batch and returns once it is staged and readable, whatever the flush policy
    /// (acks=1 semantics). Pair with [`PartitionLog::wait_durable`] where durability matters.
    pub async fn append_staged(&self, batch: RecordBatch) -> StorageResult<AppendInfo> {
        let batch_bytes = batch.len();
        self.wait_for_room(batch_bytes).await?;
        self.inner.stage(batch)
    }

    /// Completes once every offset below `offset` is covered by an fdatasync, or the log fails.
    pub async fn wait_durable(&self, offset: u64) -> StorageResult<()> {
        self.wait_until(offset, |state| state.durable_offset).await
    }

    /// Completes once every offset below `offset` is written to its segment file (and rolled
    /// segments before it are sealed), or the log fails.
    async fn wait_written(&self, offset: u64) -> StorageResult<()> {
        self.wait_until(offset, |state| state.written_offset).await
    }

    async fn wait_until(&self, offset: u64, reached: fn(&LogState) -> u64) -> StorageResult<()> {
        let inner = &self.inner;
        if reached(&inner.state.borrow()) >= offset {
            return Ok(());
        }
        inner.request_flush();
        poll_fn(|context| {
            let state = inner.state.borrow();
            if reached(&state) >= offset {
                return Poll::Ready(Ok(()));
            }
            if let Err(error) = inner.check_usable(&state) {
                return Poll::Ready(Err(error));
            }
            drop(state);
            inner.wait_progress(context);
            Poll::Pending
        })
        .await
    }

    /// Writes everything staged and fdatasyncs it, whatever the policy.
    pub async fn sync(&self) -> StorageResult<()> {
        let end = self.log_end_offset();
        self.inner.sync_requested.set(true);
        self.wait_durable(end).await
    }

    async fn wait_for_room(&self, batch_bytes: usize) -> StorageResult<()> {
        let inner = &self.inner;
        let has_room = |state: &LogState| {
            !state.exclusive
                && (state.staged_bytes == 0
                    || state.staged_bytes + batch_bytes <= inner.config.staged_bytes_max)
        };
        if has_room(&inner.state.borrow()) {
            return Ok(());
        }
        poll_fn(|context| {
            let state = inner.state.borrow();
            inner.check_usable(&state)?;
            if has_room(&state) {
                return Poll::Ready(Ok(()));
            }
            drop(state);
            inner.request_flush();
            inner.wait_progress(context);
            Poll::Pending
        })
        .await
    }

    /// Ready once the high watermark is above `offset`, or the log has failed or closed;
    /// otherwise registers the task to be woken when the high watermark moves. Long-polling
    /// fetches use it, so they are woken by appends and flushes, never by a timer loop.
    pub fn poll_readable_beyond(&self, offset: u64, context: &mut Context<'_>) -> Poll<()> {
        let inner = &self.inner;
        let state = inner.state.borrow();
        if inner.high_watermark(&state) > offset || inner.check_usable(&state).is_err() {
            return Poll::Ready(());
        }
        drop(state);
        let mut waiters = inner.data_waiters.borrow_mut();
        if waiters.len() >= DATA_WAITERS_MAX {
            // Readers that timed out leave their wakers behind on an idle partition. Rather
            // than let the list grow, wake them all: a spurious wake-up only makes a reader
            // look again and wait again.
            for waker in waiters.drain(..) {
                waker.wake();
            }
        }
        if !waiters.iter().any(|waker| waker.will_wake(context.waker())) {
            waiters.push(context.waker().clone());
        }
        Poll::Pending
    }

    /// Reads the batches holding `offset` and after, up to `max_bytes` (the first batch whole
    /// even if larger) and never past the high watermark: from the MemTable when it holds
    /// `offset`, else from the segment through its index. One read from disk returns at most
    /// [`super::COLD_READ_BYTES_MAX`] (or the first batch, whole); read again to continue.
    pub async fn read(&self, offset: u64, max_bytes: usize) -> StorageResult<LogRead> {
        let mut result = LogRead::default();
        self.read_into(offset, max_bytes, &mut result).await?;
        Ok(result)
    }

    /// As [`PartitionLog::read`], reusing `result`'s buffers.
    pub async fn read_into(
        &self,
        offset: u64,
        max_bytes: usize,
        result: &mut LogRead,
    ) -> StorageResult<()> {
        result.batches.clear();
        result.bytes = 0;
        let inner = &self.inner;
        let (file, path, start_position, start_offset, end_position) = {
            let state = inner.state.borrow();
            let high_watermark = inner.high_watermark(&state);
            result.high_watermark = high_watermark;
            result.log_start_offset = state.log_start_offset;
            if offset < state.log_start_offset || offset > high_watermark {
                return Err(StorageError::OffsetOutOfRange {
                    requested: offset,
                    log_start_offset: state.log_start_offset,
                    high_watermark,
                });
            }
            if offset == high_watermark {
                return Ok(());
            }
            if let Some(bytes) =
                inner
                    .memtable
                    .read(offset, high_watermark, max_bytes, &mut result.batches)
            {
                result.bytes = bytes;
                return Ok(());
            }
            let Some((_, segment)) = state.segments.range(..=offset).next_back() else {
                return Ok(());
            };
            let Some(file) = segment.file.clone() else {
                // Unwritten data is always in the MemTable; nothing on disk to read.
                return Ok(());
            };
            let entry = segment.offset_index.lookup(segment.relative(offset));
            let (start_position, start_offset) = entry.map_or((0, segment.base_offset), |entry| {
                (
                    u64::from(entry.position),
                    segment.base_offset + u64::from(entry.relative_offset),
                )
            });
            (
                file,
                segment.paths.log.clone(),
                start_position,
                start_offset,
                segment.written_bytes,
            )
        };
        let bytes = read_batches(
            &file,
            &path,
            start_position,
            start_offset,
            end_position,
            offset,
            max_bytes,
        )
        .await?;
        if !bytes.is_empty() {
            result.bytes = bytes.len();
            result.batches.push(bytes);
        }
        Ok(())
    }

    /// The first offset whose record has a timestamp at or after `timestamp`, or `None` when
    /// every record is older (Kafka answers offset -1 then). Compressed batches are not opened:
    /// the batch's base offset is returned for them.
    pub async fn offset_for_timestamp(
        &self,
        timestamp: i64,
    ) -> StorageResult<Option<TimestampOffset>> {
        let mut offset = {
            let state = self.inner.state.borrow();
            let Some(segment) = state
                .segments
                .values()
                .find(|segment| segment.max_timestamp >= timestamp)
            else {
                return Ok(None);
            };
            let start = segment
                .time_index
                .lookup_before(timestamp)
                .map_or(segment.base_offset, |entry| {
                    segment.base_offset + u64::from(entry.relative_offset)
                });
            start.max(state.log_start_offset)
        };
        // Bounded: every pass advances `offset` past at least one batch, up to the high
        // watermark.
        loop {
            if offset >= self.high_watermark() {
                return Ok(None);
            }
            let read = self.read(offset, TIMESTAMP_SCAN_READ_BYTES).await?;
            if read.batches.is_empty() {
                return Ok(None);
            }
            for chunk in &read.batches {
                let mut rest = &chunk[..];
                while !rest.is_empty() {
                    let header = BatchHeader::parse(rest)
                        .map_err(|reason| StorageError::from_batch(offset, reason))?;
                    let batch = rest.get(..header.total_bytes()).unwrap_or(rest);
                    if header.max_timestamp >= timestamp && header.last_offset() >= offset {
                        if let Some(found) = first_record_at_or_after(&header, batch, timestamp) {
                            return Ok(Some(found));
                        }
                    }
                    offset = header.next_offset();
                    rest = rest.get(header.total_bytes()..).unwrap_or_default();
                }
            }
        }
    }

    /// Deletes the oldest sealed segments that `retention_ms` (by their newest timestamp,
    /// relative to `now_ms`) or `retention_bytes` put out of retention, and advances the log
    /// start offset. The active segment is never deleted.
    pub async fn apply_retention(&self, now_ms: i64) -> StorageResult<RetentionOutcome> {
        let inner = &self.inner;
        // Rolled segments are sealed by the flusher; let it finish what was staged so far.
        self.wait_written(self.log_end_offset()).await?;
        let _permit = inner.lock_io().await?;
        let mut removed: Vec<Segment> = Vec::new();
        let mut outcome = RetentionOutcome::default();
        {
            let mut state = inner.state.borrow_mut();
            let mut total_bytes: u64 = state.segments.values().map(|s| s.size_bytes).sum();
            loop {
                let mut candidates = state.segments.iter();
                let (Some((&base, oldest)), Some((&next_base, _))) =
                    (candidates.next(), candidates.next())
                else {
                    break;
                };
                if oldest.state != SegmentState::Sealed {
                    break;
                }
                let too_old = inner.config.retention_ms.is_some_and(|retention_ms| {
                    now_ms.saturating_sub(oldest.max_timestamp) > retention_ms as i64
                });
                let too_big = inner.config.retention_bytes.is_some_and(|retention_bytes| {
                    total_bytes.saturating_sub(oldest.size_bytes) >= retention_bytes
                });
                if !too_old && !too_big {
                    break;
                }
                total_bytes -= oldest.size_bytes;
                outcome.bytes_deleted += oldest.size_bytes;
                outcome.segments_deleted += 1;
                if let Some(segment) = state.segments.remove(&base) {
                    removed.push(segment);
                }
                state.log_start_offset = next_base;
            }
            outcome.log_start_offset = state.log_start_offset;
            inner.memtable.remove_below(state.log_start_offset);
        }
        for segment in removed {
            inner.retire_segment(segment).await?;
        }
        if outcome.segments_deleted > 0 {
            tracing::info!(
                directory = %inner.directory.display(),
                segments = outcome.segments_deleted,
                bytes = outcome.bytes_deleted,
                log_start_offset = outcome.log_start_offset,
                "retention deleted segments"
            );
            sync_directory(&inner.directory).await?;
        }
        Ok(outcome)
    }

    /// Removes every record at or after `offset`. The cut falls on a batch boundary: the batch
    /// holding `offset` is removed whole, as Kafka does. Returns the new log end offset.
    pub async fn truncate_to(&self, offset: u64) -> StorageResult<u64> {
        let inner = &self.inner;
        if offset >= self.log_end_offset() {
            return Ok(self.log_end_offset());
        }
        self.sync().await?;
        inner.set_exclusive(true);
        let result = self.truncate_locked(offset).await;
        inner.set_exclusive(false);
        if let Err(error) = &result {
            inner.fail(error);
        }
        result
    }

    async fn truncate_locked(&self, offset: u64) -> StorageResult<u64> {
        let inner = &self.inner;
        let _permit = inner.lock_io().await?;
        // Everything was written and synced before the lock was taken, and appends are held
        // off, so nothing is staged: truncation works on files alone.
        let (removed, keep) = {
            let mut state = inner.state.borrow_mut();
            let offset = offset.max(state.log_start_offset);
            let doomed: Vec<u64> = state
                .segments
                .range(offset..)
                .map(|(&base, _)| base)
                .filter(|&base| base >= offset && base > state.log_start_offset)
                .collect();
            let mut removed = Vec::new();
            for base in doomed {
                if let Some(segment) = state.segments.remove(&base) {
                    removed.push(segment.paths);
                }
            }
            let keep = state
                .segments
                .range(..=offset)
                .next_back()
                .map(|(&base, _)| base);
            (removed, keep)
        };
        for paths in &removed {
            remove_segment_files(paths).await?;
        }
        let Some(keep) = keep else {
            return Ok(self.log_end_offset());
        };
        // Find the cut position inside the kept segment: the first batch whose last offset
        // reaches `offset`.
        let (file, path, start_position, start_offset, end_position) = {
            let state = inner.state.borrow();
            let Some(segment) = state.segments.get(&keep) else {
                return Ok(state.next_offset);
            };
            let entry = segment.offset_index.lookup(segment.relative(offset));
            let (position, base) = entry.map_or((0, segment.base_offset), |entry| {
                (
                    u64::from(entry.position),
                    segment.base_offset + u64::from(entry.relative_offset),
                )
            });
            (
                segment.file.clone(),
                segment.paths.log.clone(),
                position,
                base,
                segment.size_bytes,
            )
        };
        let (cut_position, new_end) = match &file {
            Some(file) if start_position < end_position => {
                find_cut(
                    file,
                    &path,
                    start_position,
                    start_offset,
                    end_position,
                    offset,
                )
                .await?
            }
            _ => (0, keep),
        };
        let carry = match &file {
            Some(file) => {
                file.truncate(cut_position)
                    .await
                    .map_err(io_error("truncate", &path))?;
                file.fdatasync()
                    .await
                    .map_err(io_error("fdatasync", &path))?;
                remove_if_exists(&SegmentPaths::new(&inner.directory, keep).recycled_marker)
                    .await?;
                read_carry(file, &path, cut_position).await?
            }
            None => Vec::new(),
        };
        // Rebuild the kept segment's bookkeeping by scanning what remains of it.
        let mut segment = Segment::new(&inner.directory, keep);
        segment.file = file.clone();
        if let Some(file) = &file {
            scan_segment(
                &mut segment,
                file,
                0,
                cut_position,
                inner.config.index_interval_bytes,
            )
            .await?;
        }
        segment.size_bytes = cut_position;
        segment.written_bytes = cut_position;
        segment.carry = carry;
        segment.roll_basis_ms = Some((inner.clock.borrow())());
        remove_if_exists(&segment.paths.index).await?;
        remove_if_exists(&segment.paths.time_index).await?;
        sync_directory(&inner.directory).await?;
        let mut state = inner.state.borrow_mut();
        state.segments.insert(keep, segment);
        state.next_offset = new_end;
        state.written_offset = new_end;
        state.durable_offset = new_end;
        state.debug_assert_offsets();
        state.unsynced_files.clear();
        inner.memtable.remove_from(new_end);
        tracing::info!(
            directory = %inner.directory.display(),
            log_end_offset = new_end,
            "log truncated"
        );
        Ok(new_end)
    }

    /// Writes everything, fdatasyncs it, truncates the active segment to its logical size,
    /// persists its indexes and leaves the clean-shutdown marker, so the next open skips the
    /// full scan. The log takes no more appends.
    pub async fn close(&self) -> StorageResult<()> {
        let inner = &self.inner;
        if inner.state.borrow().closed {
            return Ok(());
        }
        self.sync().await?;
        let _permit = inner.lock_io().await?;
        {
            let mut state = inner.state.borrow_mut();
            state.closed = true;
        }
        inner.wake_all();
        let segments: Vec<ClosingSegment> = {
            let state = inner.state.borrow();
            state
                .segments
                .values()
                .filter(|segment| segment.state == SegmentState::Active)
                .map(|segment| ClosingSegment {
                    file: segment.file.clone(),
                    paths: segment.paths.clone(),
                    size_bytes: segment.size_bytes,
                    index: segment.offset_index.encode(),
                    time_index: segment.time_index.encode(),
                })
                .collect()
        };
        for ClosingSegment {
            file,
            paths,
            size_bytes,
            index,
            time_index,
        } in segments
        {
            if let Some(file) = file {
                file.truncate(size_bytes)
                    .await
                    .map_err(io_error("truncate", &paths.log))?;
                file.fdatasync()
                    .await
                    .map_err(io_error("fdatasync", &paths.log))?;
            }
            remove_if_exists(&paths.recycled_marker).await?;
            write_small_file(&paths.index, &index).await?;
            write_small_file(&paths.time_index, &time_index).await?;
        }
        write_small_file(&inner.directory.join(CLEAN_SHUTDOWN_MARKER), &[]).await?;
        sync_directory(&inner.directory).await?;
        inner.state.borrow_mut().segments.clear();
        inner.memtable.clear();
        Ok(())
    }

    /// Deletes the log: its files, its directory and its MemTable.
    pub async fn delete(self) -> StorageResult<()> {
        let inner = &self.inner;
        inner.set_exclusive(true);
        let _permit = inner.lock_io().await?;
        let removed: Vec<SegmentPaths> = {
            let mut state = inner.state.borrow_mut();
            state.closed = true;
            let segments = std::mem::take(&mut state.segments);
            segments
                .into_values()
                .map(|segment| segment.paths)
                .collect()
        };
        inner.wake_all();
        inner.memtable.clear();
        for paths in &removed {
            remove_segment_files(paths).await?;
        }
        remove_if_exists(&inner.directory.join(CLEAN_SHUTDOWN_MARKER)).await?;
        let directory = inner.directory.clone();
        run_blocking(move || {
            std::fs::remove_dir_all(&directory)
                .map_err(std_io_error("remove directory", &directory))
        })
        .await
    }
}

impl LogInner {
    fn high_watermark(&self, state: &LogState) -> u64 {
        match self.config.flush_policy {
            FlushPolicy::Always => state.durable_offset,
            _ => state.next_offset,
        }
    }

    fn check_usable(&self, state: &LogState) -> StorageResult<()> {
        if let Some(reason) = &state.failed {
            return Err(StorageError::LogFailed {
                path: self.directory.clone(),
                reason: reason.clone(),
            });
        }
        if state.closed {
            return Err(StorageError::Closed {
                path: self.directory.clone(),
            });
        }
        Ok(())
    }

    /// The synchronous part of an append: stamp, stage, index, MemTable. No await, so appends
    /// are ordered by the order they reach this point.
    fn stage(&self, mut batch: RecordBatch) -> StorageResult<AppendInfo> {
        let mut state = self.state.borrow_mut();
        self.check_usable(&state)?;
        let batch_bytes = batch.len();
        if batch_bytes > self.config.batch_bytes_max {
            return Err(StorageError::BatchTooLarge {
                batch_bytes,
                limit_bytes: self.config.batch_bytes_max,
            });
        }
        let now_ms = (self.clock.borrow())();
        let base_offset = state.next_offset;
        self.maybe_roll(&mut state, batch_bytes, now_ms);
        batch.set_base_offset(base_offset);
        let log_append_time_ms = match self.config.timestamp_type {
            TimestampType::LogAppendTime => {
                batch.set_log_append_time(now_ms);
                Some(now_ms)
            }
            TimestampType::CreateTime => None,
        };
        let header = *batch.header();
        let bytes = batch.into_bytes();
        let Some((_, active)) = state.segments.iter_mut().next_back() else {
            return Err(StorageError::Closed {
                path: self.directory.clone(),
            });
        };
        let position = active.size_bytes;
        active.track_batch(&header, position, self.config.index_interval_bytes);
        active.roll_basis_ms.get_or_insert(now_ms);
        active.stage(&bytes, self.config.write_buffer_bytes, |capacity| {
            allocate_dma_buffer(capacity)
        });
        debug_assert!(header.next_offset() > base_offset, "a batch holds a record");
        state.next_offset = header.next_offset();
        state.staged_bytes += batch_bytes;
        state.debug_assert_offsets();
        drop(state);
        self.memtable.insert(base_offset, bytes);
        let mut stats = self.stats.get();
        stats.appends += 1;
        stats.bytes_appended += batch_bytes as u64;
        self.stats.set(stats);
        self.request_flush();
        if self.config.flush_policy != FlushPolicy::Always {
            // The high watermark is the log end offset: readers can see this batch now.
            self.wake_readers();
        }
        Ok(AppendInfo {
            base_offset,
            last_offset: header.last_offset(),
            log_append_time_ms,
        })
    }

    fn maybe_roll(&self, state: &mut LogState, batch_bytes: usize, now_ms: i64) {
        let next_offset = state.next_offset;
        let Some((_, active)) = state.segments.iter_mut().next_back() else {
            return;
        };
        if active.size_bytes == 0 {
            return;
        }
        let full = active.size_bytes + batch_bytes as u64 > self.config.segment_bytes;
        let old = active
            .roll_basis_ms
            .is_some_and(|basis| now_ms.saturating_sub(basis) >= self.config.segment_ms as i64);
        let offsets_exhausted = next_offset - active.base_offset >= u64::from(u32::MAX);
        if !(full || old || offsets_exhausted) {
            return;
        }
        active.state = SegmentState::Sealing;
        active.seal_time_index();
        state
            .segments
            .insert(next_offset, Segment::new(&self.directory, next_offset));
        let mut stats = self.stats.get();
        stats.rolls += 1;
        self.stats.set(stats);
    }

    fn request_flush(&self) {
        self.flush_requested.set(true);
        if let Some(waker) = self.flusher_waker.borrow_mut().take() {
            waker.wake();
        }
    }

    fn wait_progress(&self, context: &mut Context<'_>) {
        let mut waiters = self.progress_waiters.borrow_mut();
        if !waiters.iter().any(|waker| waker.will_wake(context.waker())) {
            waiters.push(context.waker().clone());
        }
    }

    fn wake_readers(&self) {
        let waiters = std::mem::take(&mut *self.data_waiters.borrow_mut());
        for waker in waiters {
            waker.wake();
        }
    }

    fn wake_all(&self) {
        let waiters = std::mem::take(&mut *self.progress_waiters.borrow_mut());
        for waker in waiters {
            waker.wake();
        }
        self.wake_readers();
        if let Some(waker) = self.flusher_waker.borrow_mut().take() {
            waker.wake();
        }
    }

    fn set_exclusive(&self, exclusive: bool) {
        self.state.borrow_mut().exclusive = exclusive;
        if !exclusive {
            self.wake_all();
        }
    }

    fn fail(&self, error: &StorageError) {
        let mut state = self.state.borrow_mut();
        if state.failed.is_none() {
            tracing::error!(
                directory = %self.directory.display(),
                %error,
                "partition log failed; it takes no more appends until reopened"
            );
            state.failed = Some(error.to_string());
        }
        drop(state);
        self.wake_all();
    }

    async fn lock_io(&self) -> StorageResult<glommio::sync::Permit<'_>> {
        self.io_lock
            .acquire_permit(1)
            .await
            .map_err(|_| StorageError::Closed {
                path: self.directory.clone(),
            })
    }

    /// One flush cycle: write everything staged, fdatasync as the policy says, finish sealing
    /// segments, publish the new written and durable offsets, wake waiters.
    async fn flush_cycle(&self) -> StorageResult<()> {
        let sync_wanted =
            self.config.flush_policy == FlushPolicy::Always || self.sync_requested.take();
        let mut jobs = Vec::new();
        let end_offset = {
            let mut state = self.state.borrow_mut();
            for (&base, segment) in state.segments.iter_mut() {
                if segment.has_staged()
                    || segment.state == SegmentState::Sealing
                    || (segment.file.is_none() && segment.state == SegmentState::Active)
                {
                    let mut buffers = Vec::new();
                    let staged_bytes = segment.take_staged(&mut buffers);
                    jobs.push(FlushJob {
                        staged_bytes,
                        base,
                        file: segment.file.clone(),
                        path: segment.paths.log.clone(),
                        buffers,
                        end_bytes: segment.size_bytes,
                        seal: segment.state == SegmentState::Sealing,
                    });
                }
            }
            state.next_offset
        };
        let mut taken_bytes = 0usize;
        for job in jobs {
            let file = match job.file {
                Some(file) => file,
                None => {
                    let file = Rc::new(self.create_segment_file(job.base, &job.path).await?);
                    let mut state = self.state.borrow_mut();
                    if let Some(segment) = state.segments.get_mut(&job.base) {
                        segment.file = Some(file.clone());
                    }
                    file
                }
            };
            taken_bytes += job.staged_bytes;
            let writing = Instant::now();
            self.write_concurrently(&file, &job.path, job.buffers)
                .await?;
            let waited_us = writing.elapsed().as_micros() as u64;
            self.count(|stats| stats.write_wait_us += waited_us);
            {
                let mut state = self.state.borrow_mut();
                if let Some(segment) = state.segments.get_mut(&job.base) {
                    segment.written_bytes = job.end_bytes;
                }
                if !state
                    .unsynced_files
                    .iter()
                    .any(|known| Rc::ptr_eq(known, &file))
                {
                    state.unsynced_files.push(file.clone());
                }
            }
            if job.seal {
                self.finish_sealing(job.base, &file, &job.path, job.end_bytes)
                    .await?;
            }
        }
        if sync_wanted {
            let files = std::mem::take(&mut self.state.borrow_mut().unsynced_files);
            for file in &files {
                let syncing = Instant::now();
                file.fdatasync()
                    .await
                    .map_err(io_error("fdatasync", &self.directory))?;
                let waited_us = syncing.elapsed().as_micros() as u64;
                self.count(|stats| {
                    stats.fdatasyncs += 1;
                    stats.fdatasync_wait_us += waited_us;
                });
            }
        }
        {
            let mut state = self.state.borrow_mut();
            state.staged_bytes = state.staged_bytes.saturating_sub(taken_bytes);
            debug_assert!(
                end_offset >= state.written_offset,
                "a write moved the written offset back from {} to {end_offset}",
                state.written_offset
            );
            state.written_offset = end_offset;
            if sync_wanted {
                state.durable_offset = end_offset;
            }
            state.debug_assert_offsets();
        }
        self.memtable.set_evictable_below(end_offset);
        self.count(|stats| stats.flush_cycles += 1);
        self.wake_all();
        Ok(())
    }

    /// Writes a flush's chunks all at once: they do not overlap, and the device takes them in
    /// parallel. At most
    /// `staged_bytes_max / write_buffer_bytes + 1` writes are in flight.
    async fn write_concurrently(
        &self,
        file: &DmaFile,
        path: &Path,
        buffers: Vec<WriteBuffer>,
    ) -> StorageResult<()> {
        let mut pending: Vec<Pin<Box<dyn Future<Output = StorageResult<()>> + '_>>> = buffers
            .into_iter()
            .map(|buffer| {
                Box::pin(self.write_buffer(file, path, buffer))
                    as Pin<Box<dyn Future<Output = StorageResult<()>> + '_>>
            })
            .collect();
        poll_fn(|context| {
            let mut index = 0;
            while index < pending.len() {
                match pending[index].as_mut().poll(context) {
                    Poll::Ready(Ok(())) => {
                        drop(pending.swap_remove(index));
                    }
                    Poll::Ready(Err(error)) => return Poll::Ready(Err(error)),
                    Poll::Pending => index += 1,
                }
            }
            if pending.is_empty() {
                Poll::Ready(Ok(()))
            } else {
                Poll::Pending
            }
        })
        .await
    }

    async fn write_buffer(
        &self,
        file: &DmaFile,
        path: &Path,
        buffer: WriteBuffer,
    ) -> StorageResult<()> {
        let (buffer, position) = buffer.into_padded();
        let length = buffer.len();
        let written = file
            .write_at(buffer, position)
            .await
            .map_err(io_error("write", path))?;
        if written != length {
            return Err(short_write(path, length, written));
        }
        self.count(|stats| {
            stats.writes += 1;
            stats.bytes_written += length as u64;
        });
        Ok(())
    }

    /// A rolled segment's last write is done: cut the alignment pad, fdatasync, persist the
    /// indexes, and mark it sealed.
    async fn finish_sealing(
        &self,
        base: u64,
        file: &DmaFile,
        path: &Path,
        end_bytes: u64,
    ) -> StorageResult<()> {
        file.truncate(end_bytes)
            .await
            .map_err(io_error("truncate", path))?;
        file.fdatasync()
            .await
            .map_err(io_error("fdatasync", path))?;
        self.count(|stats| stats.fdatasyncs += 1);
        // That fdatasync covered the whole file: the next sync need not, and retention may
        // recycle the file once nothing else holds it.
        self.state
            .borrow_mut()
            .unsynced_files
            .retain(|unsynced| !std::ptr::eq(Rc::as_ptr(unsynced), file));
        // Nothing of an older segment is left past the end now.
        remove_if_exists(&SegmentPaths::new(&self.directory, base).recycled_marker).await?;
        let (paths, index, time_index) = {
            let state = self.state.borrow();
            let Some(segment) = state.segments.get(&base) else {
                return Ok(());
            };
            (
                segment.paths.clone(),
                segment.offset_index.encode(),
                segment.time_index.encode(),
            )
        };
        write_small_file(&paths.index, &index).await?;
        write_small_file(&paths.time_index, &time_index).await?;
        let mut state = self.state.borrow_mut();
        if let Some(segment) = state.segments.get_mut(&base) {
            segment.state = SegmentState::Sealed;
        }
        self.retention_due.set(true);
        Ok(())
    }

    /// Removes a segment retention deleted: its `.log` is parked for reuse while there is room
    /// in the pool, every other file goes. The caller syncs the directory.
    async fn retire_segment(&self, segment: Segment) -> StorageResult<()> {
        let room = self.state.borrow().recyclable.len() < self.config.recycled_segments_max;
        // A segment with unsealed state or no file has nothing worth reusing.
        if !room || segment.file.is_none() || segment.state != SegmentState::Sealed {
            return remove_segment_files(&segment.paths).await;
        }
        let parked = recyclable_path(&self.directory, segment.base_offset);
        glommio::io::rename(&segment.paths.log, &parked)
            .await
            .map_err(io_error("rename", &segment.paths.log))?;
        // The `.log` is gone from its name already; the rest of the segment's files go.
        remove_segment_files(&segment.paths).await?;
        self.state.borrow_mut().recyclable.push_back(Recyclable {
            path: parked,
            file: segment.file,
        });
        Ok(())
    }

    /// Creates the file of a new segment, reusing a parked one when no reader still holds it.
    /// A reused file keeps its old bytes past what the new segment has written; a marker says
    /// so until seal or close truncates them, so that recovery after a crash knows a cut there
    /// is stale space, not damage.
    async fn create_segment_file(&self, base: u64, path: &Path) -> StorageResult<DmaFile> {
        let reusable = {
            let mut state = self.state.borrow_mut();
            let position = state.recyclable.iter().position(|parked| {
                parked
                    .file
                    .as_ref()
                    .is_none_or(|file| Rc::strong_count(file) == 1)
            });
            position.and_then(|position| state.recyclable.remove(position))
        };
        let Some(parked) = reusable else {
            return open_read_write(path).await;
        };
        if let Some(file) = parked.file {
            if let Ok(file) = Rc::try_unwrap(file) {
                // Best effort: the descriptor is closed on drop if this fails.
                let _ = file.close().await;
            }
        }
        if let Err(error) = glommio::io::rename(&parked.path, path).await {
            // A parked file is an optimisation: without it, the segment starts in a new file.
            tracing::warn!(parked = %parked.path.display(), %error, "could not reuse a parked segment file; creating a new one");
            let _ = remove_if_exists(&parked.path).await;
            return open_read_write(path).await;
        }
        write_small_file(
            &SegmentPaths::new(&self.directory, base).recycled_marker,
            &[],
        )
        .await?;
        // The rename must be durable before any append written into the file is called
        // durable: an fdatasync of a file that only overwrote blocks commits no metadata.
        sync_directory(&self.directory).await?;
        self.count(|stats| stats.segments_recycled += 1);
        open_read_write(path).await
    }

    fn count(&self, update: impl FnOnce(&mut LogStats)) {
        let mut stats = self.stats.get();
        update(&mut stats);
        self.stats.set(stats);
    }
}

/// What `close` needs of the active segment, taken out of the state before awaiting.
struct ClosingSegment {
    file: Option<Rc<DmaFile>>,
    paths: SegmentPaths,
    size_bytes: u64,
    index: Vec<u8>,
    time_index: Vec<u8>,
}

struct FlushJob {
    /// Bytes of batches in `buffers` (the carried block excluded).
    staged_bytes: usize,
    base: u64,
    file: Option<Rc<DmaFile>>,
    path: PathBuf,
    buffers: Vec<WriteBuffer>,
    end_bytes: u64,
    seal: bool,
}

fn allocate_dma_buffer(capacity: usize) -> glommio::io::DmaBuffer {
    // The executor's registered I/O arena: recycled, already-faulted memory. glommio falls back
    // to a fresh aligned allocation when the arena is exhausted.
    glommio::allocate_dma_buffer(capacity)
}

/// Waits until a flush is requested; `None` once the log is gone or closed.
struct FlushRequested<'a> {
    log: &'a Weak<LogInner>,
}

impl Future for FlushRequested<'_> {
    type Output = Option<Rc<LogInner>>;

    fn poll(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<Self::Output> {
        let Some(inner) = self.log.upgrade() else {
            return Poll::Ready(None);
        };
        if inner.state.borrow().closed {
            return Poll::Ready(None);
        }
        if inner.flush_requested.replace(false) {
            return Poll::Ready(Some(inner));
        }
        *inner.flusher_waker.borrow_mut() = Some(context.waker().clone());
        Poll::Pending
    }
}

async fn flusher_loop(log: Weak<LogInner>) {
    // Bounded by the log's life: ends when the last handle is dropped or the log is closed.
    while let Some(inner) = (FlushRequested { log: &log }).await {
        let Ok(permit) = inner.lock_io().await else {
            return;
        };
        let failed = inner.state.borrow().failed.is_some();
        if !failed {
            if let Err(error) = inner.flush_cycle().await {
                inner.fail(&error);
            }
        }
        drop(permit);
        if inner.config.retention_on_roll
            && inner.retention_due.get()
            && !inner.retention_running.replace(true)
        {
            // Its own task: retention waits for the flusher and takes every I/O permit.
            let log = PartitionLog {
                inner: inner.clone(),
            };
            glommio::spawn_local(apply_retention_after_roll(log)).detach();
        }
    }
}

/// The retention pass a roll triggers. A log closed meanwhile needs none.
/// The retention passes rolls trigger: one task per log, passing again while rolls came
/// during the last pass. A log closed meanwhile needs none.
async fn apply_retention_after_roll(log: PartitionLog) {
    // Bounded: each pass clears `retention_due`, and only a roll (a sealed segment) sets it.
    while log.inner.retention_due.replace(false) {
        let now_ms = (log.inner.clock.borrow())();
        match log.apply_retention(now_ms).await {
            Ok(_) => {}
            Err(StorageError::Closed { .. }) => break,
            Err(error) => {
                tracing::warn!(
                    directory = %log.inner.directory.display(),
                    %error,
                    "retention after a roll failed"
                );
                break;
            }
        }
    }
    log.inner.retention_running.set(false);
}

async fn interval_sync_loop(log: Weak<LogInner>, interval: Duration) {
    loop {
        glommio::timer::sleep(interval).await;
        let Some(inner) = log.upgrade() else { return };
        let state = inner.state.borrow();
        if state.closed {
            return;
        }
        let behind = state.durable_offset < state.next_offset;
        drop(state);
        if behind {
            inner.sync_requested.set(true);
            inner.request_flush();
        }
    }
}

async fn remove_segment_files(paths: &SegmentPaths) -> StorageResult<()> {
    remove_if_exists(&paths.log).await?;
    remove_if_exists(&paths.index).await?;
    remove_if_exists(&paths.time_index).await?;
    remove_if_exists(&paths.recycled_marker).await
}

/// A segment file retention parked for reuse.
struct Recyclable {
    path: PathBuf,
    /// The deleted segment's open file, kept to tell whether a reader still holds it: a file
    /// someone may still read is never overwritten.
    file: Option<Rc<DmaFile>>,
}

/// Reads the partial last block before `size_bytes`: the first bytes of the next staging buffer.
async fn read_carry(file: &DmaFile, path: &Path, size_bytes: u64) -> StorageResult<Vec<u8>> {
    let boundary = align_down(size_bytes);
    let length = (size_bytes - boundary) as usize;
    if length == 0 {
        return Ok(Vec::new());
    }
    Ok(read_exact(file, path, boundary, length).await?.to_vec())
}

/// The position of the first batch whose last offset reaches `offset`, and that batch's base
/// offset (the new log end).
async fn find_cut(
    file: &DmaFile,
    path: &Path,
    mut position: u64,
    mut expected: u64,
    end_position: u64,
    offset: u64,
) -> StorageResult<(u64, u64)> {
    while position < end_position {
        let header_bytes = read_exact(
            file,
            path,
            position,
            crate::record::BATCH_HEADER_BYTES.min((end_position - position) as usize),
        )
        .await?;
        let header = BatchHeader::parse(&header_bytes)
            .map_err(|reason| StorageError::from_batch(expected, reason))?;
        if header.last_offset() >= offset {
            return Ok((position, header.base_offset));
        }
        expected = header.next_offset();
        position += header.total_bytes() as u64;
    }
    Ok((end_position, expected))
}

fn first_record_at_or_after(
    header: &BatchHeader,
    batch: &[u8],
    timestamp: i64,
) -> Option<TimestampOffset> {
    let Ok(records) = RecordIter::new(header, batch) else {
        // Compressed: the batch's max timestamp reaches the target; answer its base offset.
        return Some(TimestampOffset {
            offset: header.base_offset,
            timestamp: header.max_timestamp,
        });
    };
    for record in records.flatten() {
        if record.timestamp >= timestamp {
            return Some(TimestampOffset {
                offset: header.base_offset + record.offset_delta.max(0) as u64,
                timestamp: record.timestamp,
            });
        }
    }
    None
}

/// Opens every segment in `directory`, checks it, cuts damage, and builds the log state.
async fn recover(
    directory: &Path,
    config: &LogConfig,
) -> StorageResult<(LogState, RecoveryReport)> {
    let marker = directory.join(CLEAN_SHUTDOWN_MARKER);
    let mut bases = Vec::new();
    let mut parked = Vec::new();
    let mut markers = Vec::new();
    let listed = directory.to_path_buf();
    let (clean_shutdown, names) = run_blocking(move || {
        let clean_shutdown = listed.join(CLEAN_SHUTDOWN_MARKER).exists();
        let mut names = Vec::new();
        for entry in std::fs::read_dir(&listed).map_err(std_io_error("list", &listed))? {
            let entry = entry.map_err(std_io_error("list", &listed))?;
            // Names that are not UTF-8 are not ours.
            if let Ok(name) = entry.file_name().into_string() {
                names.push(name);
            }
        }
        StorageResult::Ok((clean_shutdown, names))
    })
    .await?;
    for name in &names {
        let name = name.as_str();
        if name.ends_with(".tmp") {
            remove_if_exists(&directory.join(name)).await?;
            continue;
        }
        if let Some(base) = parse_log_file_name(name) {
            bases.push(base);
        } else if let Some(base) = parse_recyclable_file_name(name) {
            parked.push((base, directory.join(name)));
        } else if name.ends_with(RECYCLED_MARKER_SUFFIX) {
            markers.push(directory.join(name));
        }
    }
    bases.sort_unstable();
    parked.sort_unstable();
    // Keep the newest parked files the pool has room for; the rest only take space.
    let keep_from = parked.len().saturating_sub(config.recycled_segments_max);
    let mut recyclable = VecDeque::new();
    for (index, (_, path)) in parked.into_iter().enumerate() {
        if index < keep_from {
            remove_if_exists(&path).await?;
        } else {
            recyclable.push_back(Recyclable { path, file: None });
        }
    }
    let mut report = RecoveryReport {
        clean_shutdown,
        segments: bases.len(),
        ..RecoveryReport::default()
    };
    let mut segments = BTreeMap::new();
    let mut expected_next: Option<u64> = None;
    let last_base = bases.last().copied();
    let mut cut_short = false;
    for base in bases {
        let paths = SegmentPaths::new(directory, base);
        if cut_short || expected_next.is_some_and(|expected| expected != base) {
            // An earlier segment lost its tail (or a segment is missing): what follows would
            // leave a hole in the offsets, so it goes too.
            tracing::error!(
                segment = %paths.log.display(),
                "removing segment that follows a cut or a gap in the log"
            );
            remove_segment_files(&paths).await?;
            report.segments_removed.push(base);
            cut_short = true;
            continue;
        }
        let file = open_read_write(&paths.log).await?;
        let file_size = file
            .file_size()
            .await
            .map_err(io_error("stat", &paths.log))?;
        let mut segment = Segment::new(directory, base);
        let recycled = paths.recycled_marker.exists();
        let is_last = Some(base) == last_base;
        let full_scan = is_last && !clean_shutdown;
        let mut loaded_indexes = false;
        if !full_scan {
            if let Some((offset_index, time_index)) =
                load_indexes(&paths, file_size, &mut report, base).await?
            {
                if let Some(entry) = offset_index.last() {
                    segment.next_offset = base + u64::from(entry.relative_offset);
                }
                if let Some(entry) = time_index.last() {
                    segment.max_timestamp = entry.timestamp;
                    segment.max_timestamp_offset = base + u64::from(entry.relative_offset);
                }
                segment.offset_index = offset_index;
                segment.time_index = time_index;
                loaded_indexes = true;
            }
        }
        let scan_from = if loaded_indexes {
            segment
                .offset_index
                .last()
                .map_or(0, |entry| u64::from(entry.position))
        } else {
            0
        };
        let mut stop = scan_segment(
            &mut segment,
            &file,
            scan_from,
            file_size,
            config.index_interval_bytes,
        )
        .await?;
        if loaded_indexes && !time_index_matches_log(&segment, &file, file_size).await? {
            // Retention trusts the time index's timestamps: one that disagrees with the batch it
            // names means the file is damaged, so rebuild both indexes from the log.
            tracing::warn!(segment = %paths.time_index.display(), "time index disagrees with the log; rebuilding");
            report.indexes_rebuilt.push(base);
            loaded_indexes = false;
            segment = Segment::new(directory, base);
            stop = scan_segment(
                &mut segment,
                &file,
                0,
                file_size,
                config.index_interval_bytes,
            )
            .await?;
        }
        let mut size_bytes = file_size;
        if let Some(stop) = stop {
            let padding_only = is_zero_padding(&file, &paths.log, stop.position, file_size).await?;
            let cut = RecoveryCut {
                segment_base_offset: base,
                position: stop.position,
                bytes_cut: file_size - stop.position,
                first_offset_cut: segment.next_offset,
                padding_only,
                recycled_space: recycled && !padding_only,
                reason: stop.reason,
            };
            if padding_only {
                tracing::debug!(segment = %paths.log.display(), bytes = cut.bytes_cut, "trimmed alignment padding");
            } else if cut.recycled_space {
                tracing::info!(segment = %paths.log.display(), %cut, "recovery trimmed a recycled segment file past its last good batch (an older segment's bytes, or a write the crash tore)");
            } else {
                tracing::warn!(segment = %paths.log.display(), %cut, "recovery cut a torn or corrupt tail: offsets from the first one cut on are gone");
            }
            file.truncate(stop.position)
                .await
                .map_err(io_error("truncate", &paths.log))?;
            file.fdatasync()
                .await
                .map_err(io_error("fdatasync", &paths.log))?;
            size_bytes = stop.position;
            // The persisted indexes may point into the cut: they get rewritten below.
            segment.offset_index.truncate_to_position(size_bytes);
            let relative_end = segment.relative(segment.next_offset);
            segment.time_index.truncate_to_offset(relative_end);
            if !padding_only && !is_last {
                cut_short = true;
            }
            report.cuts.push(cut);
        }
        // The file ends at its last good batch now: nothing stale is left past it.
        remove_if_exists(&paths.recycled_marker).await?;
        segment.size_bytes = size_bytes;
        segment.written_bytes = size_bytes;
        if segment.max_timestamp >= 0 || size_bytes > 0 {
            segment.roll_basis_ms = read_first_header(&file, &paths.log, size_bytes)
                .await?
                .map(|header| header.max_timestamp);
        }
        if is_last && !cut_short {
            segment.state = SegmentState::Active;
            segment.carry = read_carry(&file, &paths.log, size_bytes).await?;
            // Whatever the previous run wrote may still sit in the device cache: make it durable
            // before calling it so.
            file.fdatasync()
                .await
                .map_err(io_error("fdatasync", &paths.log))?;
        } else {
            segment.state = SegmentState::Sealed;
            segment.seal_time_index();
            if !loaded_indexes || stop_changed(&report, base) {
                write_small_file(&paths.index, &segment.offset_index.encode()).await?;
                write_small_file(&paths.time_index, &segment.time_index.encode()).await?;
            }
        }
        expected_next = Some(segment.next_offset);
        segment.file = Some(Rc::new(file));
        segments.insert(base, segment);
    }
    // If the last segment was cut short in the middle of the log (cut_short), the segment that
    // was cut is now the last one; make it active again.
    if let Some((_, last)) = segments.iter_mut().next_back() {
        if last.state != SegmentState::Active {
            last.state = SegmentState::Active;
            if let Some(file) = &last.file {
                last.carry = read_carry(file, &last.paths.log, last.size_bytes).await?;
            }
        }
    }
    if segments.is_empty() {
        segments.insert(0, Segment::new(directory, 0));
    }
    // Markers whose segment is gone (removed above, or a crash between steps).
    for marker in markers {
        remove_if_exists(&marker).await?;
    }
    if clean_shutdown {
        remove_if_exists(&marker).await?;
    }
    sync_directory(directory).await?;
    let log_start_offset = segments.keys().next().copied().unwrap_or(0);
    let next_offset = segments
        .values()
        .next_back()
        .map_or(0, |segment| segment.next_offset);
    if report.segments > 0 {
        tracing::info!(
            directory = %directory.display(),
            segments = segments.len(),
            log_start_offset,
            log_end_offset = next_offset,
            clean_shutdown,
            cuts = report.cuts.len(),
            "partition log recovered"
        );
    }
    Ok((
        LogState {
            segments,
            log_start_offset,
            next_offset,
            written_offset: next_offset,
            durable_offset: next_offset,
            staged_bytes: 0,
            unsynced_files: Vec::new(),
            recyclable,
            exclusive: false,
            failed: None,
            closed: false,
        },
        report,
    ))
}

/// Whether the segment's last time index entry names a batch, inside the segment, whose max
/// timestamp is the entry's timestamp.
async fn time_index_matches_log(
    segment: &Segment,
    file: &DmaFile,
    file_size: u64,
) -> StorageResult<bool> {
    let Some(entry) = segment.time_index.last() else {
        return Ok(true);
    };
    let offset = segment.base_offset + u64::from(entry.relative_offset);
    if offset >= segment.next_offset {
        return Ok(false);
    }
    let start = segment.offset_index.lookup(entry.relative_offset).map_or(
        (0, segment.base_offset),
        |found| {
            (
                u64::from(found.position),
                segment.base_offset + u64::from(found.relative_offset),
            )
        },
    );
    let path = &segment.paths.log;
    let Ok((position, base)) = find_cut(file, path, start.0, start.1, file_size, offset).await
    else {
        return Ok(false);
    };
    if base != offset || position >= file_size {
        return Ok(false);
    }
    let header = read_exact(file, path, position, crate::record::BATCH_HEADER_BYTES).await?;
    Ok(BatchHeader::parse(&header).is_ok_and(|header| header.max_timestamp == entry.timestamp))
}

fn stop_changed(report: &RecoveryReport, base: u64) -> bool {
    report
        .cuts
        .iter()
        .any(|cut| cut.segment_base_offset == base)
}

/// Loads and checks a segment's persisted indexes; `None` (and a note in the report) when
/// either is missing or invalid, and the segment is then rescanned from its start.
async fn load_indexes(
    paths: &SegmentPaths,
    log_bytes: u64,
    report: &mut RecoveryReport,
    base: u64,
) -> StorageResult<Option<(OffsetIndex, TimeIndex)>> {
    // An index holds at most one entry per batch, and a batch is at least a header long: a
    // larger file is garbage and is not read.
    let batches_max = log_bytes / crate::record::BATCH_HEADER_BYTES as u64 + 1;
    let index_bytes = read_small_file(
        &paths.index,
        batches_max * crate::storage::OFFSET_INDEX_ENTRY_BYTES as u64,
    )
    .await?;
    let time_bytes = read_small_file(
        &paths.time_index,
        batches_max * crate::storage::TIME_INDEX_ENTRY_BYTES as u64,
    )
    .await?;
    let mut rebuild = |file: &Path, reason: &str| {
        tracing::warn!(file = %file.display(), reason, "index unusable; rebuilding from the log");
        report.indexes_rebuilt.push(base);
        Ok(None)
    };
    let (index_bytes, time_bytes) = match (index_bytes, time_bytes) {
        (SmallFile::Contents(index), SmallFile::Contents(time)) => (index, time),
        (SmallFile::TooLarge, _) => return rebuild(&paths.index, "larger than the log allows"),
        (_, SmallFile::TooLarge) => {
            return rebuild(&paths.time_index, "larger than the log allows")
        }
        _ => return rebuild(&paths.index, "missing"),
    };
    let offset_index = match OffsetIndex::decode(&index_bytes, log_bytes) {
        Ok(index) => index,
        Err(reason) => return rebuild(&paths.index, reason),
    };
    // Offsets are checked against the segment's end, and the last entry against its batch,
    // once the tail scan has found the end (`time_index_matches_log`).
    let time_index = match TimeIndex::decode(&time_bytes, u64::from(u32::MAX)) {
        Ok(index) => index,
        Err(reason) => return rebuild(&paths.time_index, reason),
    };
    Ok(Some((offset_index, time_index)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Record, RecordBatchBuilder};

    fn batch(seed: u64) -> RecordBatch {
        let value = vec![seed as u8; 1500];
        let mut builder = RecordBatchBuilder::with_capacity(1600);
        builder.push(Record {
            key: Some(&seed.to_be_bytes()),
            value: Some(&value),
            headers: &[],
            timestamp_ms: seed as i64,
        });
        builder.build()
    }

    /// Appends until the log has rolled `rolls` more times.
    async fn append_until_rolled(log: &PartitionLog, seed: &mut u64, rolls: u64) {
        let target = log.stats().rolls + rolls;
        // Bounded: every segment of 16 KiB fills within a dozen 1.5 KiB batches.
        for _ in 0..1000 {
            if log.stats().rolls >= target {
                return;
            }
            log.append(batch(*seed)).await.expect("append");
            *seed += 1;
        }
        panic!("the log did not roll");
    }

    #[test]
    fn a_parked_file_a_reader_still_holds_is_not_overwritten() {
        glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
            .io_memory(16 << 20)
            .spawn(|| async {
                let dir = tempfile::tempdir().expect("tempdir");
                let config = LogConfig {
                    segment_bytes: 16 << 10,
                    batch_bytes_max: 4 << 10,
                    retention_bytes: Some(32 << 10),
                    recycled_segments_max: 1,
                    ..LogConfig::default()
                };
                let log = PartitionLog::open(dir.path(), config, MemTableBudget::new(8 << 20))
                    .await
                    .expect("open");
                let mut seed = 0;
                append_until_rolled(&log, &mut seed, 5).await;
                log.apply_retention(i64::MAX).await.expect("retention");
                // A cold read in flight holds the deleted segment's file, as `read_into` does
                // across its await.
                let held = {
                    let state = log.inner.state.borrow();
                    let parked = state.recyclable.front().expect("a parked file");
                    parked
                        .file
                        .clone()
                        .expect("the deleted segment's open file")
                };
                let recycled = log.stats().segments_recycled;
                append_until_rolled(&log, &mut seed, 1).await;
                assert_eq!(
                    log.stats().segments_recycled,
                    recycled,
                    "a file a reader holds is not reused"
                );
                assert_eq!(
                    log.inner.state.borrow().recyclable.len(),
                    1,
                    "it stays parked"
                );
                drop(held);
                append_until_rolled(&log, &mut seed, 1).await;
                assert_eq!(
                    log.stats().segments_recycled,
                    recycled + 1,
                    "once the reader let go, the next roll reuses it"
                );
                log.close().await.expect("close");
            })
            .expect("executor")
            .join()
            .expect("test executor");
    }
}
