//! `PartitionLog`: the log of one partition, owned by one shard. This module holds the handle,
//! its state, opening, closing and deletion; each other concept has a file of its own:
//! [`append`] (staging and backpressure), [`flusher`] (group commit and durability waits),
//! [`read`] (reads, long-poll, timestamps), [`retention`] (with recycling) and [`truncate`].
//! The log is built from what `storage::recovery` recovered from its files at open.
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

mod append;
mod flusher;
mod read;
mod retention;
mod truncate;

use flusher::{flusher_loop, interval_sync_loop};
use retention::{apply_retention_after_roll, Recyclable};

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, VecDeque};
use std::future::{poll_fn, Future};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use glommio::sync::Semaphore;

use crate::record::{BatchHeader, RecordBatch, RecordBatchBuilder, RecordIter, TimestampType};

use super::config::{FlushPolicy, LogConfig};
use super::error::{io_error, StorageError, StorageResult};
use crate::wake::WakerSet;

use super::fileio::{
    open_read_write, read_small_file, remove_if_exists, short_write, sync_directory,
    write_small_file, SmallFile,
};
use super::io::{StorageFile, StorageIo};
use super::memtable::{MemTable, MemTableBudget};
use super::producer_state::{
    marker_of, AbortedTransaction, ProducerStates, SequenceCheck, TransactionMarker,
};
use super::recovery::{recover, scan_segment, RecoveryReport};
use super::segment::{
    find_cut, read_batches, read_carry, recyclable_path, remove_segment_files, Segment,
    SegmentPaths, SegmentState, WriteBuffer,
};

/// Name of the marker a clean close leaves in the partition directory.
pub const CLEAN_SHUTDOWN_MARKER: &str = ".clean_shutdown";
/// The producer state snapshot in the partition directory (see `storage::producer_state`).
pub const PRODUCER_SNAPSHOT_FILE: &str = "producer_state.snapshot";
/// Bytes each step of the producer state rebuild reads at open.
const PRODUCER_REBUILD_READ_BYTES: usize = 1 << 20;
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

/// Milliseconds since the epoch: the wall clock logs use unless a test sets another, and the
/// broker's for commit times, retention and expiry.
pub fn system_clock_ms() -> i64 {
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
    /// The file system: every file call of the log goes through it.
    io: StorageIo,
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
    progress_waiters: WakerSet,
    /// Readers (long-polling fetches) waiting for the high watermark to pass an offset.
    data_waiters: WakerSet,
    stats: Cell<LogStats>,
    clock: RefCell<Clock>,
    recovery: RecoveryReport,
    /// Idempotent producers' sequences and epochs in this partition.
    producers: RefCell<ProducerStates>,
    /// A snapshot of `producers` taken at a roll, with the offset it covers (the new segment's
    /// base): written once the segment before that offset is sealed, so it never covers data
    /// a crash could take back.
    pending_producer_snapshot: RefCell<Option<(u64, Vec<u8>)>>,
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
    unsynced_files: Vec<Rc<StorageFile>>,
    /// Segment files retention parked for reuse, oldest first, at most
    /// `recycled_segments_max`.
    recyclable: VecDeque<Recyclable>,
    mode: LogMode,
}

/// What a log is doing, as one value: the states are exclusive of each other, and the moves
/// between them are the ones [`LogInner::set_exclusive`], [`LogInner::fail`] and close/delete
/// make.
#[derive(Debug, Clone, PartialEq, Eq)]
enum LogMode {
    /// Takes appends and reads.
    Serving,
    /// Truncate or delete is rewriting the log's files: appends wait, reads go on.
    Exclusive,
    /// An I/O error left the log in an unknown state on disk: no more appends until it is
    /// reopened (and recovered). Sticky: leaving an exclusive section does not clear it.
    Failed(String),
    /// Closed or deleted: nothing more.
    Closed,
}

impl LogState {
    /// The state of a log just recovered: everything on disk is written and durable (recovery
    /// fdatasynced the active segment), nothing is staged.
    fn recovered(segments: BTreeMap<u64, Segment>, parked: Vec<PathBuf>) -> Self {
        let log_start_offset = segments.keys().next().copied().unwrap_or(0);
        let next_offset = segments
            .values()
            .next_back()
            .map_or(0, Segment::next_offset);
        Self {
            segments,
            log_start_offset,
            next_offset,
            written_offset: next_offset,
            durable_offset: next_offset,
            staged_bytes: 0,
            unsynced_files: Vec::new(),
            recyclable: parked
                .into_iter()
                .map(|path| Recyclable { path, file: None })
                .collect(),
            mode: LogMode::Serving,
        }
    }

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
        Self::open_with_io(StorageIo::Dma, directory, config, budget).await
    }

    /// As [`PartitionLog::open`], on the file system `io` (the in-memory one in tests).
    pub async fn open_with_io(
        io: StorageIo,
        directory: impl AsRef<Path>,
        config: LogConfig,
        budget: Rc<MemTableBudget>,
    ) -> StorageResult<Self> {
        config.validate()?;
        let requested = directory.as_ref();
        // glommio runs statfs on DMA paths and unwraps it: give it absolute paths only.
        let directory = io
            .prepare_directory(requested)
            .await
            .map_err(io_error("create directory", requested))?;
        io.prime_direct_io(&directory)
            .await
            .map_err(io_error("probe direct I/O", &directory))?;
        let recovered = recover(&io, &directory, &config).await?;
        let state = LogState::recovered(recovered.segments, recovered.parked);
        let recovery = recovered.report;
        let memtable = MemTable::new(budget);
        memtable.set_evictable_below(state.written_offset);
        let inner = Rc::new(LogInner {
            io,
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
            progress_waiters: WakerSet::default(),
            data_waiters: WakerSet::default(),
            stats: Cell::new(LogStats::default()),
            clock: RefCell::new(Rc::new(system_clock_ms)),
            recovery,
            producers: RefCell::new(ProducerStates::default()),
            pending_producer_snapshot: RefCell::new(None),
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
        let log = Self { inner };
        log.rebuild_producer_states().await?;
        Ok(log)
    }

    /// Rebuilds the idempotent producers' state: the snapshot, then every batch after the
    /// offset it covers. A snapshot that does not fit the recovered log (damaged, or covering
    /// offsets a cut removed) is deleted and the whole log is read instead.
    async fn rebuild_producer_states(&self) -> StorageResult<()> {
        let inner = &self.inner;
        let path = inner.directory.join(PRODUCER_SNAPSHOT_FILE);
        let (log_start, log_end) = (self.log_start_offset(), self.log_end_offset());
        let bytes_max = ProducerStates::snapshot_bytes_max(
            inner.config.producers_max,
            inner.config.aborted_transactions_max,
        );
        let snapshot = match read_small_file(&inner.io, &path, bytes_max).await? {
            SmallFile::Missing => Err(None),
            SmallFile::TooLarge => Err(Some(format!("larger than {bytes_max} bytes"))),
            SmallFile::Contents(bytes) => match ProducerStates::decode_snapshot(&bytes) {
                Ok((_, covered)) if covered > log_end => Err(Some(format!(
                    "it covers offsets up to {covered}, past the log end {log_end}"
                ))),
                Ok(decoded) => Ok(decoded),
                Err(reason) => Err(Some(reason)),
            },
        };
        let (states, mut offset) = match snapshot {
            Ok(decoded) => decoded,
            Err(problem) => {
                if let Some(problem) = problem {
                    tracing::warn!(
                        directory = %inner.directory.display(),
                        %problem,
                        "producer state snapshot not used; rebuilding from the log"
                    );
                    remove_if_exists(&inner.io, &path).await?;
                }
                (ProducerStates::default(), log_start)
            }
        };
        *inner.producers.borrow_mut() = states;
        offset = offset.max(log_start);
        let now_ms = (inner.clock.borrow())();
        let mut read = LogRead::default();
        // Bounded: every step moves `offset` past at least one batch, up to the log end.
        while offset < log_end {
            self.read_into(offset, PRODUCER_REBUILD_READ_BYTES, &mut read)
                .await?;
            let before = offset;
            for chunk in &read.batches {
                let mut rest = &chunk[..];
                while !rest.is_empty() {
                    let header = BatchHeader::parse(rest)
                        .map_err(|reason| StorageError::CorruptBatch { offset, reason })?;
                    let mut producers = inner.producers.borrow_mut();
                    producers.record(
                        &header,
                        header.base_offset,
                        now_ms,
                        inner.config.producers_max,
                    );
                    if let Some(marker) = marker_of(&header, rest) {
                        producers.end_transaction(
                            header.producer_id,
                            marker,
                            header.base_offset,
                            inner.config.aborted_transactions_max,
                        );
                    }
                    drop(producers);
                    offset = header.next_offset();
                    rest = rest.get(header.total_bytes()..).unwrap_or_default();
                }
            }
            if offset == before {
                break;
            }
        }
        Ok(())
    }

    /// The epoch and the offsets of the last batch this partition holds of an idempotent
    /// producer (for tests and operators).
    pub fn producer_last_batch(
        &self,
        producer_id: i64,
    ) -> Option<(i16, Option<crate::storage::producer_state::ProducerBatch>)> {
        self.inner.producers.borrow().last_batch(producer_id)
    }

    /// The last stable offset (KIP-98): below it every transaction has ended, so
    /// `read_committed` readers read up to it. The high watermark when none is open.
    pub fn last_stable_offset(&self) -> u64 {
        let high_watermark = self.high_watermark();
        self.inner
            .producers
            .borrow()
            .first_unstable_offset()
            .map_or(high_watermark, |first| first.min(high_watermark))
    }

    /// The aborted transactions whose records may lie in `[from, to)`, for a
    /// `read_committed` fetch of that range.
    pub fn aborted_transactions(&self, from: u64, to: u64) -> Vec<AbortedTransaction> {
        self.inner.producers.borrow().aborted_overlapping(from, to)
    }

    /// Transactions open in this partition.
    pub fn ongoing_transactions(&self) -> usize {
        self.inner.producers.borrow().ongoing_count()
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
        state.segments.values().map(Segment::size_bytes).sum()
    }

    /// The MemTable of this partition.
    pub fn memtable(&self) -> &MemTable {
        &self.inner.memtable
    }

    /// Writes everything, fdatasyncs it, truncates the active segment to its logical size,
    /// persists its indexes and leaves the clean-shutdown marker, so the next open skips the
    /// full scan. The log takes no more appends.
    pub async fn close(&self) -> StorageResult<()> {
        let inner = &self.inner;
        if inner.state.borrow().mode == LogMode::Closed {
            return Ok(());
        }
        self.sync().await?;
        let _permit = inner.lock_io().await?;
        {
            let mut state = inner.state.borrow_mut();
            state.mode = LogMode::Closed;
        }
        inner.wake_all();
        let segments: Vec<ClosingSegment> = {
            let state = inner.state.borrow();
            state
                .segments
                .values()
                .filter(|segment| segment.state() == SegmentState::Active)
                .map(|segment| ClosingSegment {
                    file: segment.file().cloned(),
                    paths: segment.paths().clone(),
                    size_bytes: segment.size_bytes(),
                    index: segment.offset_index().encode(),
                    time_index: segment.time_index().encode(),
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
            remove_if_exists(&inner.io, &paths.recycled_marker).await?;
            write_small_file(&inner.io, &paths.index, &index).await?;
            write_small_file(&inner.io, &paths.time_index, &time_index).await?;
        }
        let snapshot = {
            let state = inner.state.borrow();
            inner.producers.borrow().encode_snapshot(state.next_offset)
        };
        write_small_file(
            &inner.io,
            &inner.directory.join(PRODUCER_SNAPSHOT_FILE),
            &snapshot,
        )
        .await?;
        write_small_file(&inner.io, &inner.directory.join(CLEAN_SHUTDOWN_MARKER), &[]).await?;
        sync_directory(&inner.io, &inner.directory).await?;
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
            state.mode = LogMode::Closed;
            let segments = std::mem::take(&mut state.segments);
            segments
                .into_values()
                .map(|segment| segment.into_parts().0)
                .collect()
        };
        inner.wake_all();
        inner.memtable.clear();
        for paths in &removed {
            remove_segment_files(&inner.io, paths).await?;
        }
        remove_if_exists(&inner.io, &inner.directory.join(CLEAN_SHUTDOWN_MARKER)).await?;
        inner
            .io
            .remove_directory_all(&inner.directory)
            .await
            .map_err(io_error("remove directory", &inner.directory))
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
        match &state.mode {
            LogMode::Serving | LogMode::Exclusive => Ok(()),
            LogMode::Failed(reason) => Err(StorageError::LogFailed {
                path: self.directory.clone(),
                reason: reason.clone(),
            }),
            LogMode::Closed => Err(StorageError::Closed {
                path: self.directory.clone(),
            }),
        }
    }

    fn wake_all(&self) {
        self.progress_waiters.wake_all();
        self.wake_readers();
        if let Some(waker) = self.flusher_waker.borrow_mut().take() {
            waker.wake();
        }
    }

    /// Enters or leaves an exclusive section (truncate, delete). Only a serving log enters and
    /// only an exclusive one leaves: a failure or a close meanwhile stays.
    fn set_exclusive(&self, exclusive: bool) {
        let mut state = self.state.borrow_mut();
        state.mode = match (&state.mode, exclusive) {
            (LogMode::Serving, true) => LogMode::Exclusive,
            (LogMode::Exclusive, false) => LogMode::Serving,
            (mode, _) => mode.clone(),
        };
        drop(state);
        if !exclusive {
            self.wake_all();
        }
    }

    fn fail(&self, error: &StorageError) {
        let mut state = self.state.borrow_mut();
        if matches!(state.mode, LogMode::Serving | LogMode::Exclusive) {
            tracing::error!(
                directory = %self.directory.display(),
                %error,
                "partition log failed; it takes no more appends until reopened"
            );
            state.mode = LogMode::Failed(error.to_string());
        }
        drop(state);
        self.wake_all();
    }

    fn count(&self, update: impl FnOnce(&mut LogStats)) {
        let mut stats = self.stats.get();
        update(&mut stats);
        self.stats.set(stats);
    }
}

/// What `close` needs of the active segment, taken out of the state before awaiting.
struct ClosingSegment {
    file: Option<Rc<StorageFile>>,
    paths: SegmentPaths,
    size_bytes: u64,
    index: Vec<u8>,
    time_index: Vec<u8>,
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
