//! Kafka RecordBatch v2: the on-wire and on-disk unit of StreamBus.
//!
//! A batch is stored byte-for-byte as the producer sent it. The broker only writes the fields
//! outside the CRC (base offset) or, for topics with `LogAppendTime`, the attributes and max
//! timestamp, after which it recomputes the CRC.
//!
//! ```text
//! offset  size  field                  covered by CRC32C
//!  0       8    base_offset            no
//!  8       4    batch_length           no   (bytes after this field)
//! 12       4    partition_leader_epoch no
//! 16       1    magic (= 2)            no
//! 17       4    crc (CRC32C)           no
//! 21       2    attributes             yes  (bits 0-2 codec, 3 timestamp type,
//! 23       4    last_offset_delta      yes   4 transactional, 5 control)
//! 27       8    base_timestamp         yes
//! 35       8    max_timestamp          yes
//! 43       8    producer_id            yes
//! 51       2    producer_epoch         yes
//! 53       4    base_sequence          yes
//! 57       4    record_count           yes
//! 61       ..   records                yes
//! ```

mod batch;
mod builder;
pub mod compression;
mod error;
mod header;
mod records;
mod varint;

pub use batch::RecordBatch;
pub use builder::{Header, Record, RecordBatchBuilder};
pub use error::BatchError;
pub use header::{BatchHeader, Compression, TimestampType};
pub use records::{RecordHeaderIter, RecordIter, RecordView};

/// Size of the fixed batch header, up to and including `record_count`.
pub const BATCH_HEADER_BYTES: usize = 61;
/// Bytes before `batch_length` counts: base offset (8) and the length field itself (4).
pub const BATCH_LENGTH_PREFIX_BYTES: usize = 12;
/// The only magic StreamBus accepts: RecordBatch v2 (Kafka 0.11+).
pub const BATCH_MAGIC_V2: i8 = 2;

/// Byte position of `base_offset` in a batch.
pub const BASE_OFFSET_AT: usize = 0;
pub(crate) const BATCH_LENGTH_AT: usize = 8;
pub(crate) const LEADER_EPOCH_AT: usize = 12;
pub(crate) const MAGIC_AT: usize = 16;
pub(crate) const CRC_AT: usize = 17;
pub(crate) const ATTRIBUTES_AT: usize = 21;
/// Byte position of `last_offset_delta` in a batch.
pub const LAST_OFFSET_DELTA_AT: usize = 23;
pub(crate) const BASE_TIMESTAMP_AT: usize = 27;
pub(crate) const MAX_TIMESTAMP_AT: usize = 35;
pub(crate) const PRODUCER_ID_AT: usize = 43;
pub(crate) const PRODUCER_EPOCH_AT: usize = 51;
pub(crate) const BASE_SEQUENCE_AT: usize = 53;
pub(crate) const RECORD_COUNT_AT: usize = 57;

/// Attribute bit for `LogAppendTime` timestamps.
pub(crate) const ATTRIBUTE_TIMESTAMP_TYPE_BIT: i16 = 1 << 3;
pub(crate) const ATTRIBUTE_TRANSACTIONAL_BIT: i16 = 1 << 4;
pub(crate) const ATTRIBUTE_CONTROL_BIT: i16 = 1 << 5;
pub(crate) const ATTRIBUTE_COMPRESSION_MASK: i16 = 0b111;

/// CRC32C over `attributes..end`, as the v2 format defines it.
pub fn batch_crc(batch: &[u8]) -> u32 {
    crc32c::crc32c(batch.get(ATTRIBUTES_AT..).unwrap_or_default())
}
