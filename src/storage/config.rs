//! Per-partition log settings. Defaults are Kafka's where Kafka has one.

use crate::record::TimestampType;

use super::error::StorageError;

/// Kafka's `log.segment.bytes` default: 1 GiB.
pub const SEGMENT_BYTES_DEFAULT: u64 = 1 << 30;
/// Segments address positions with u32 in the offset index, so a segment stays below 4 GiB.
pub const SEGMENT_BYTES_MAX: u64 = u32::MAX as u64;
/// Smallest segment allowed: one write buffer's worth of batches.
pub const SEGMENT_BYTES_MIN: u64 = 4096;
/// Kafka's `log.roll.ms` default: 7 days.
pub const SEGMENT_MS_DEFAULT: u64 = 7 * 24 * 60 * 60 * 1000;
/// Kafka's `log.index.interval.bytes` default.
pub const INDEX_INTERVAL_BYTES_DEFAULT: u32 = 4096;
/// Kafka's `log.retention.ms` default: 7 days.
pub const RETENTION_MS_DEFAULT: u64 = 7 * 24 * 60 * 60 * 1000;
/// Size of one DMA staging buffer. Larger buffers mean fewer, larger writes under load.
pub const WRITE_BUFFER_BYTES_DEFAULT: usize = 1 << 20;
/// Bytes a partition may hold staged but not yet written before appends wait for the flusher.
pub const STAGED_BYTES_MAX_DEFAULT: usize = 8 << 20;
/// Segment files retention keeps for reuse per partition. A new segment written into a recycled
/// file overwrites blocks that are already allocated and written: ext4 then issues the O_DIRECT
/// write inline instead of handing it to a kernel worker, and fdatasync has no metadata to
/// commit. The cost is disk space: up to this many segments per partition stay allocated
/// after retention deleted them (Kafka, too, keeps deleted segments for
/// `file.delete.delay.ms`).
pub const RECYCLED_SEGMENTS_MAX_DEFAULT: usize = 1;
/// Largest `recycled_segments_max` accepted: a pool is disk space retention does not free.
pub const RECYCLED_SEGMENTS_MAX_LIMIT: usize = 64;
/// Kafka's `message.max.bytes` default (1 MiB plus record overhead).
pub const BATCH_BYTES_MAX_DEFAULT: usize = 1_048_588;
/// Largest `producers_per_partition_max`: a snapshot of that many producers is about 140 MiB.
pub const PRODUCERS_PER_PARTITION_LIMIT: usize = 1_000_000;
/// The most `aborted_transactions_per_partition_max` may be: 24 MiB of state per partition.
pub const ABORTED_TRANSACTIONS_PER_PARTITION_LIMIT: usize = 1_000_000;
/// Default fsync period for [`FlushPolicy::Interval`].
pub const FLUSH_INTERVAL_MS_DEFAULT: u64 = 1000;

/// When appended data is made durable with `fdatasync`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlushPolicy {
    /// An append completes only after an `fdatasync` covers it. Concurrent appends share one
    /// `fdatasync` (group commit).
    Always,
    /// Data is written as it arrives and `fdatasync` runs every `interval_ms`.
    Interval {
        /// Milliseconds between `fdatasync`s.
        interval_ms: u64,
    },
    /// Data is written as it arrives; `fdatasync` only when a segment is sealed or the log is
    /// closed. Durability is left to the device and to replication.
    Never,
}

/// Settings of one partition log.
#[derive(Debug, Clone)]
pub struct LogConfig {
    /// Roll to a new segment when the active one would exceed this size.
    pub segment_bytes: u64,
    /// Roll to a new segment when the active one is this old (since its first append).
    pub segment_ms: u64,
    /// One offset-index and time-index entry per this many bytes of batches.
    pub index_interval_bytes: u32,
    /// Delete sealed segments whose newest record is older than this; `None` keeps forever.
    pub retention_ms: Option<u64>,
    /// Delete the oldest sealed segments while the log is larger than this; `None`: no limit.
    pub retention_bytes: Option<u64>,
    /// When appends are made durable.
    pub flush_policy: FlushPolicy,
    /// Capacity of one DMA staging buffer.
    pub write_buffer_bytes: usize,
    /// Staged-but-unwritten bytes above which appends wait for the flusher (backpressure).
    pub staged_bytes_max: usize,
    /// Largest batch accepted.
    pub batch_bytes_max: usize,
    /// Segment files retention keeps for reuse by new segments; 0 deletes them at once.
    pub recycled_segments_max: usize,
    /// Apply retention each time a segment is sealed, besides the caller's periodic passes:
    /// `retention_bytes` then holds at every roll, and the segment it deletes is parked in
    /// time for the next roll to reuse.
    pub retention_on_roll: bool,
    /// Whether batches keep the producer's timestamps or get the broker's.
    pub timestamp_type: TimestampType,
    /// Idempotent producers whose state the partition keeps; when full, the one that
    /// appended least recently is forgotten.
    pub producers_max: usize,
    /// Kafka's `producer.id.expiration.ms`: a producer idle this long is forgotten.
    pub producer_id_expiration_ms: u64,
    /// Aborted transactions the partition remembers for `read_committed` readers; past it the
    /// oldest is forgotten (with a warning).
    pub aborted_transactions_max: usize,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            segment_bytes: SEGMENT_BYTES_DEFAULT,
            segment_ms: SEGMENT_MS_DEFAULT,
            index_interval_bytes: INDEX_INTERVAL_BYTES_DEFAULT,
            retention_ms: Some(RETENTION_MS_DEFAULT),
            retention_bytes: None,
            flush_policy: FlushPolicy::Always,
            write_buffer_bytes: WRITE_BUFFER_BYTES_DEFAULT,
            staged_bytes_max: STAGED_BYTES_MAX_DEFAULT,
            batch_bytes_max: BATCH_BYTES_MAX_DEFAULT,
            recycled_segments_max: RECYCLED_SEGMENTS_MAX_DEFAULT,
            retention_on_roll: false,
            timestamp_type: TimestampType::CreateTime,
            producers_max: super::producer_state::PRODUCERS_PER_PARTITION_MAX_DEFAULT,
            producer_id_expiration_ms: super::producer_state::PRODUCER_ID_EXPIRATION_MS_DEFAULT,
            aborted_transactions_max: super::producer_state::ABORTED_TRANSACTIONS_MAX_DEFAULT,
        }
    }
}

impl LogConfig {
    /// Checks every value and the relations between them.
    pub fn validate(&self) -> Result<(), StorageError> {
        let invalid =
            |name: &'static str, reason: String| Err(StorageError::InvalidConfig { name, reason });
        if !(SEGMENT_BYTES_MIN..=SEGMENT_BYTES_MAX).contains(&self.segment_bytes) {
            return invalid(
                "segment_bytes",
                format!(
                    "{} is outside {SEGMENT_BYTES_MIN}..={SEGMENT_BYTES_MAX}",
                    self.segment_bytes
                ),
            );
        }
        if self.segment_ms == 0 {
            return invalid("segment_ms", "must be positive".into());
        }
        if self.index_interval_bytes == 0 {
            return invalid("index_interval_bytes", "must be positive".into());
        }
        if let FlushPolicy::Interval { interval_ms: 0 } = self.flush_policy {
            return invalid("flush_interval_ms", "must be positive".into());
        }
        if self.write_buffer_bytes < super::segment::DMA_ALIGNMENT_BYTES * 2 {
            return invalid(
                "write_buffer_bytes",
                format!("{} is below two DMA blocks", self.write_buffer_bytes),
            );
        }
        if self.staged_bytes_max < self.write_buffer_bytes {
            return invalid(
                "staged_bytes_max",
                format!(
                    "{} is below write_buffer_bytes {}",
                    self.staged_bytes_max, self.write_buffer_bytes
                ),
            );
        }
        if self.recycled_segments_max > RECYCLED_SEGMENTS_MAX_LIMIT {
            return invalid(
                "recycled_segments_max",
                format!(
                    "{} is above {RECYCLED_SEGMENTS_MAX_LIMIT}",
                    self.recycled_segments_max
                ),
            );
        }
        if !(1..=PRODUCERS_PER_PARTITION_LIMIT).contains(&self.producers_max) {
            return invalid(
                "producers_per_partition_max",
                format!(
                    "{} is outside 1..={PRODUCERS_PER_PARTITION_LIMIT}",
                    self.producers_max
                ),
            );
        }
        if !(1..=ABORTED_TRANSACTIONS_PER_PARTITION_LIMIT).contains(&self.aborted_transactions_max)
        {
            return invalid(
                "aborted_transactions_per_partition_max",
                format!(
                    "{} is outside 1..={ABORTED_TRANSACTIONS_PER_PARTITION_LIMIT}",
                    self.aborted_transactions_max
                ),
            );
        }
        if self.batch_bytes_max as u64 > self.segment_bytes {
            return invalid(
                "batch_bytes_max",
                format!(
                    "{} exceeds segment_bytes {}",
                    self.batch_bytes_max, self.segment_bytes
                ),
            );
        }
        Ok(())
    }
}
