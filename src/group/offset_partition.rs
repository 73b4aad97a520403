//! One partition of the committed-offsets log (Kafka's `__consumer_offsets` has 50; StreamBus
//! has [`crate::cluster::OFFSETS_PARTITIONS`]): a partition log on the shard that owns it,
//! and in memory the latest commit of every (group, topic, partition) it holds.
//!
//! A commit is appended as one batch (more when it is large) and answered once the log says
//! it may be (`PartitionLog::append`: under `always` after the fdatasync that covers it); only
//! then does it become visible to OffsetFetch. On open the log is replayed, the later record
//! of a key winning and a tombstone removing it.
//!
//! The log must not grow without bound while the live set stays small, so once it exceeds
//! `offsets_rewrite_bytes_min` and twice the live records it is *rewritten*: a new generation
//! directory gets the live commits, is synced, then `CURRENT` is switched to it (atomic
//! replace, directory sync) and the old generation is deleted. A crash before the switch
//! leaves the old generation current and the new one is removed at the next open.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use glommio::sync::Semaphore;
use tracing::{info, warn};

use crate::record::{BatchHeader, Record, RecordBatch, RecordBatchBuilder, RecordIter};
use crate::storage::fileio::{read_small_file, sync_directory, write_small_file, SmallFile};
use crate::storage::io::StorageIo;
use crate::storage::{LogConfig, MemTableBudget, PartitionLog, StorageError, StorageResult};

use super::offset_record::{
    decode_key, decode_value, encode_key, encode_value, encoded_key_bytes, encoded_value_bytes,
    CommittedOffset, OffsetKey,
};

/// The file naming the current generation directory.
const CURRENT_FILE: &str = "CURRENT";
/// Bytes of records one commit batch holds at most; a larger commit is split.
const COMMIT_BATCH_BYTES_MAX: usize = 512 << 10;
/// Bytes a replay read asks for at once.
const REPLAY_READ_BYTES: usize = 4 << 20;
/// Framing bytes a record adds to its key and value in a batch (length, attributes, deltas,
/// key and value lengths, header count), an upper bound for the live-size estimate.
const RECORD_OVERHEAD_BYTES: u64 = 24;

/// A group's committed offsets, by (topic, partition).
pub type GroupOffsets = BTreeMap<(String, i32), CommittedOffset>;

/// One offsets partition: its log and the live commits.
pub struct OffsetPartition {
    index: u32,
    root: PathBuf,
    config: LogConfig,
    budget: Rc<MemTableBudget>,
    rewrite_bytes_min: u64,
    log: RefCell<PartitionLog>,
    generation: Cell<u64>,
    groups: RefCell<HashMap<String, GroupOffsets>>,
    /// Encoded bytes of the live records, an estimate of the rewritten log's size.
    live_bytes: Cell<u64>,
    /// Live commits (group, topic, partition) held in memory.
    live_offsets: Cell<usize>,
    /// Held by a commit from its append to its publication, and by a rewrite: a rewrite never
    /// misses a commit, and commits of one partition are applied in log order.
    write_lock: Semaphore,
}

fn generation_directory(root: &Path, generation: u64) -> PathBuf {
    root.join(format!("{generation:020}"))
}

fn record_bytes(key: &[u8], value: &[u8]) -> u64 {
    (key.len() + value.len()) as u64 + RECORD_OVERHEAD_BYTES
}

/// `record_bytes` of a stored commit, from its lengths: no encoding on the commit path.
fn stored_bytes(group: &str, topic: &str, committed: &CommittedOffset) -> u64 {
    (encoded_key_bytes(group, topic) + encoded_value_bytes(committed)) as u64
        + RECORD_OVERHEAD_BYTES
}

impl OffsetPartition {
    /// Opens (or creates) offsets partition `index` under `root`, replaying its log.
    pub async fn open(
        index: u32,
        root: PathBuf,
        config: LogConfig,
        budget: Rc<MemTableBudget>,
        rewrite_bytes_min: u64,
    ) -> StorageResult<Self> {
        let io = StorageIo::Dma;
        let root = io
            .prepare_directory(&root)
            .await
            .map_err(crate::storage::io_error("create directory", &root))?;
        let generation = match read_small_file(&io, &root.join(CURRENT_FILE), 64).await? {
            SmallFile::Contents(bytes) => String::from_utf8_lossy(&bytes)
                .trim()
                .parse::<u64>()
                .map_err(|_| StorageError::Io {
                    operation: "parse",
                    path: root.join(CURRENT_FILE),
                    source: std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        "CURRENT does not name a generation",
                    ),
                })?,
            SmallFile::Missing => 0,
            SmallFile::TooLarge => {
                return Err(StorageError::Io {
                    operation: "read",
                    path: root.join(CURRENT_FILE),
                    source: std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        "CURRENT is larger than a generation number",
                    ),
                })
            }
        };
        // Generations other than the current one are a rewrite a crash interrupted (newer) or
        // one whose deletion it interrupted (older): neither holds anything the current lacks.
        let names = io
            .list(&root)
            .await
            .map_err(crate::storage::io_error("list", &root))?;
        for name in names {
            if name.len() == 20 && name.parse::<u64>().is_ok_and(|found| found != generation) {
                let stale = root.join(&name);
                io.remove_directory_all(&stale)
                    .await
                    .map_err(crate::storage::io_error("remove directory", &stale))?;
            }
        }
        let log = PartitionLog::open(
            generation_directory(&root, generation),
            config.clone(),
            budget.clone(),
        )
        .await?;
        let partition = Self {
            index,
            root,
            config,
            budget,
            rewrite_bytes_min,
            log: RefCell::new(log),
            generation: Cell::new(generation),
            groups: RefCell::new(HashMap::new()),
            live_bytes: Cell::new(0),
            live_offsets: Cell::new(0),
            write_lock: Semaphore::new(1),
        };
        partition.replay().await?;
        Ok(partition)
    }

    async fn replay(&self) -> StorageResult<()> {
        let log = self.log.borrow().clone();
        let mut offset = log.log_start_offset();
        let end = log.log_end_offset();
        let mut records = 0u64;
        let mut skipped = 0u64;
        // Bounded: every read returns at least one batch until the end.
        while offset < end {
            let read = log.read(offset, REPLAY_READ_BYTES).await?;
            if read.batches.is_empty() {
                break;
            }
            for chunk in &read.batches {
                let mut at = 0;
                while at < chunk.len() {
                    let header = BatchHeader::parse(&chunk[at..])
                        .map_err(|reason| StorageError::from_batch(offset, reason))?;
                    let batch = &chunk[at..at + header.total_bytes()];
                    let iter = RecordIter::new(&header, batch)
                        .map_err(|reason| StorageError::from_batch(header.base_offset, reason))?;
                    for record in iter {
                        let applied =
                            record
                                .map_err(|reason| reason.to_string())
                                .and_then(|record| {
                                    self.apply_stored(record.key, record.value)
                                        .map_err(|reason| reason.to_string())
                                });
                        match applied {
                            Ok(()) => records += 1,
                            Err(reason) => {
                                skipped += 1;
                                warn!(partition = self.index, offset = header.base_offset, %reason, "skipping an unreadable offset record");
                            }
                        }
                    }
                    offset = header.next_offset();
                    at += header.total_bytes();
                }
            }
        }
        if records > 0 || skipped > 0 {
            info!(
                partition = self.index,
                records,
                skipped,
                groups = self.groups.borrow().len(),
                "committed offsets loaded"
            );
        }
        Ok(())
    }

    /// Applies one stored record to the in-memory commits.
    fn apply_stored(
        &self,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
    ) -> Result<(), super::offset_record::OffsetRecordError> {
        let Some(key) = key else {
            return Ok(());
        };
        let OffsetKey {
            group,
            topic,
            partition,
        } = decode_key(key)?;
        match value {
            Some(value) => {
                let committed = decode_value(value)?;
                self.insert(group, topic, partition, committed, record_bytes(key, value));
            }
            None => self.remove(&group, &topic, partition),
        }
        Ok(())
    }

    fn insert(
        &self,
        group: String,
        topic: String,
        partition: i32,
        committed: CommittedOffset,
        bytes: u64,
    ) {
        let mut groups = self.groups.borrow_mut();
        let offsets = groups.entry(group.clone()).or_default();
        let old = offsets.insert((topic.clone(), partition), committed);
        if old.is_none() {
            self.live_offsets.set(self.live_offsets.get() + 1);
        }
        let old_bytes = old.map_or(0, |old| stored_bytes(&group, &topic, &old));
        self.live_bytes
            .set(self.live_bytes.get().saturating_sub(old_bytes) + bytes);
    }

    fn remove(&self, group: &str, topic: &str, partition: i32) {
        let mut groups = self.groups.borrow_mut();
        let Some(offsets) = groups.get_mut(group) else {
            return;
        };
        if let Some(old) = offsets.remove(&(topic.to_string(), partition)) {
            let old_bytes = stored_bytes(group, topic, &old);
            self.live_offsets.set(self.live_offsets.get() - 1);
            self.live_bytes
                .set(self.live_bytes.get().saturating_sub(old_bytes));
        }
        if offsets.is_empty() {
            groups.remove(group);
        }
    }

    /// The groups with committed offsets here.
    pub fn group_names(&self) -> Vec<String> {
        self.groups.borrow().keys().cloned().collect()
    }

    /// Live commits held here, over every group.
    pub fn offset_count(&self) -> usize {
        self.live_offsets.get()
    }

    /// Groups with committed offsets here.
    pub fn group_count(&self) -> usize {
        self.groups.borrow().len()
    }

    /// Whether `group` has committed offsets here.
    pub fn has_group(&self, group: &str) -> bool {
        self.groups.borrow().contains_key(group)
    }

    /// Whether `group` has an offset committed for the partition.
    pub fn is_committed(&self, group: &str, topic: &str, partition: i32) -> bool {
        self.groups
            .borrow()
            .get(group)
            .is_some_and(|offsets| offsets.contains_key(&(topic.to_string(), partition)))
    }

    /// Partitions `group` has offsets for.
    pub fn offsets_of(&self, group: &str) -> usize {
        self.groups.borrow().get(group).map_or(0, BTreeMap::len)
    }

    /// A copy of `group`'s committed offsets.
    pub fn group_offsets(&self, group: &str) -> GroupOffsets {
        self.groups.borrow().get(group).cloned().unwrap_or_default()
    }

    /// The committed offset of one partition of `group`.
    pub fn committed(&self, group: &str, topic: &str, partition: i32) -> Option<CommittedOffset> {
        self.groups
            .borrow()
            .get(group)?
            .get(&(topic.to_string(), partition))
            .cloned()
    }

    /// Groups whose newest commit is older than `before_ms`, for expiry.
    pub fn groups_idle_since(&self, before_ms: i64) -> Vec<String> {
        self.groups
            .borrow()
            .iter()
            .filter(|(_, offsets)| {
                offsets
                    .values()
                    .all(|committed| committed.commit_timestamp_ms < before_ms)
            })
            .map(|(group, _)| group.clone())
            .collect()
    }

    /// Stores commits durably (as the flush policy says), then makes them visible.
    pub async fn commit(
        &self,
        group: &str,
        entries: Vec<(String, i32, CommittedOffset)>,
    ) -> StorageResult<()> {
        let records: Vec<(Vec<u8>, Option<Vec<u8>>)> = entries
            .iter()
            .map(|(topic, partition, committed)| {
                (
                    encode_key(group, topic, *partition),
                    Some(encode_value(committed)),
                )
            })
            .collect();
        let timestamp_ms = entries
            .iter()
            .map(|(_, _, committed)| committed.commit_timestamp_ms)
            .max()
            .unwrap_or(0);
        let _permit = self.lock().await?;
        self.append_records(&records, timestamp_ms).await?;
        for ((topic, partition, committed), (key, value)) in entries.into_iter().zip(&records) {
            let bytes = record_bytes(key, value.as_deref().unwrap_or_default());
            self.insert(group.to_string(), topic, partition, committed, bytes);
        }
        drop(_permit);
        self.rewrite_if_due().await
    }

    /// Deletes commits durably (tombstones), then drops them from memory.
    pub async fn delete(
        &self,
        group: &str,
        partitions: &[(String, i32)],
        now_ms: i64,
    ) -> StorageResult<()> {
        let records: Vec<(Vec<u8>, Option<Vec<u8>>)> = partitions
            .iter()
            .map(|(topic, partition)| (encode_key(group, topic, *partition), None))
            .collect();
        let _permit = self.lock().await?;
        self.append_records(&records, now_ms).await?;
        for (topic, partition) in partitions {
            self.remove(group, topic, *partition);
        }
        drop(_permit);
        self.rewrite_if_due().await
    }

    async fn lock(&self) -> StorageResult<glommio::sync::Permit<'_>> {
        self.write_lock
            .acquire_permit(1)
            .await
            .map_err(|_| StorageError::Closed {
                path: self.root.clone(),
            })
    }

    /// Appends records in batches of at most `COMMIT_BATCH_BYTES_MAX` and waits for each.
    async fn append_records(
        &self,
        records: &[(Vec<u8>, Option<Vec<u8>>)],
        timestamp_ms: i64,
    ) -> StorageResult<()> {
        let log = self.log.borrow().clone();
        for batch in build_batches(records, timestamp_ms) {
            log.append(batch).await?;
        }
        Ok(())
    }

    async fn rewrite_if_due(&self) -> StorageResult<()> {
        let size = self.log.borrow().size_bytes();
        if size <= self.rewrite_bytes_min || size <= 2 * self.live_bytes.get() {
            return Ok(());
        }
        let _permit = self.lock().await?;
        let io = StorageIo::Dma;
        let next = self.generation.get() + 1;
        let directory = generation_directory(&self.root, next);
        let fresh =
            PartitionLog::open(&directory, self.config.clone(), self.budget.clone()).await?;
        let records: Vec<(Vec<u8>, Option<Vec<u8>>)> = self
            .groups
            .borrow()
            .iter()
            .flat_map(|(group, offsets)| {
                offsets.iter().map(move |((topic, partition), committed)| {
                    (
                        encode_key(group, topic, *partition),
                        Some(encode_value(committed)),
                    )
                })
            })
            .collect();
        for batch in build_batches(&records, super::now_ms()) {
            fresh.append_staged(batch).await?;
        }
        fresh.sync().await?;
        write_small_file(
            &io,
            &self.root.join(CURRENT_FILE),
            next.to_string().as_bytes(),
        )
        .await?;
        sync_directory(&io, &self.root).await?;
        let old = self.log.replace(fresh);
        self.generation.set(next);
        info!(
            partition = self.index,
            generation = next,
            bytes_before = size,
            records = records.len(),
            "offsets log rewritten with its live commits"
        );
        if let Err(error) = old.delete().await {
            warn!(partition = self.index, %error, "removing the previous offsets log failed; the next open removes it");
        }
        Ok(())
    }

    /// Closes the log (clean shutdown).
    pub async fn close(&self) -> StorageResult<()> {
        let log = self.log.borrow().clone();
        log.close().await
    }

    /// Bytes of the log, for tests and metrics.
    pub fn log_bytes(&self) -> u64 {
        self.log.borrow().size_bytes()
    }
}

/// Builds batches of at most `COMMIT_BATCH_BYTES_MAX` bytes of records.
fn build_batches(records: &[(Vec<u8>, Option<Vec<u8>>)], timestamp_ms: i64) -> Vec<RecordBatch> {
    let mut batches = Vec::new();
    let mut builder = RecordBatchBuilder::with_capacity(COMMIT_BATCH_BYTES_MAX.min(64 << 10));
    for (key, value) in records {
        if builder.record_count() > 0 && builder.encoded_bytes() >= COMMIT_BATCH_BYTES_MAX {
            batches.push(std::mem::take(&mut builder).build());
        }
        builder.push(Record {
            key: Some(key),
            value: value.as_deref(),
            headers: &[],
            timestamp_ms,
        });
    }
    if builder.record_count() > 0 {
        batches.push(builder.build());
    }
    batches
}
