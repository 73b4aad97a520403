use bytes::{Bytes, BytesMut};

use super::*;

/// One validated Kafka RecordBatch v2, owning its bytes.
///
/// Construction checks the length, the magic and the CRC32C, so a `RecordBatch` is always
/// well-formed. The bytes are never re-encoded: the log writes the base offset in place (outside
/// the CRC) and, for `LogAppendTime` topics, the attributes and max timestamp (then recomputes
/// the CRC). [`RecordBatch::into_bytes`] hands the same allocation on without copying.
#[derive(Debug, Clone)]
pub struct RecordBatch {
    bytes: BytesMut,
    header: BatchHeader,
}

impl RecordBatch {
    /// Validates `bytes` as exactly one batch.
    pub fn parse(bytes: BytesMut) -> Result<Self, BatchError> {
        let header = BatchHeader::parse_verified(&bytes)?;
        if header.total_bytes() != bytes.len() {
            return Err(BatchError::BadLength {
                declared: header.batch_length as i32,
                have: bytes.len() - BATCH_LENGTH_PREFIX_BYTES,
            });
        }
        Ok(Self { bytes, header })
    }

    /// Validates `bytes` as one batch, reusing its allocation when this is its only handle and
    /// copying it otherwise.
    pub fn from_bytes(bytes: Bytes) -> Result<Self, BatchError> {
        let bytes = bytes
            .try_into_mut()
            .unwrap_or_else(|shared| BytesMut::from(&shared[..]));
        Self::parse(bytes)
    }

    /// Splits the first batch off the front of `bytes` (a produce request may carry several).
    /// On error `bytes` is left as it was.
    pub fn split_first(bytes: &mut BytesMut) -> Result<Self, BatchError> {
        let header = BatchHeader::parse_verified(bytes)?;
        let batch = bytes.split_to(header.total_bytes());
        Ok(Self {
            bytes: batch,
            header,
        })
    }

    /// Stricter checks for a batch a producer sends: at least one record, and offsets that run
    /// 0..record_count without gaps (gaps only arise from compaction, never from producers).
    pub fn validate_for_append(&self) -> Result<(), BatchError> {
        let header = &self.header;
        if header.record_count == 0 {
            return Err(BatchError::InvalidField {
                field: "record_count",
                value: 0,
            });
        }
        if header.last_offset_delta != header.record_count - 1 {
            return Err(BatchError::InvalidField {
                field: "last_offset_delta",
                value: i64::from(header.last_offset_delta),
            });
        }
        Ok(())
    }

    /// The decoded header.
    pub fn header(&self) -> &BatchHeader {
        &self.header
    }

    /// Offset of the first record.
    pub fn base_offset(&self) -> u64 {
        self.header.base_offset
    }

    /// Offset of the last record.
    pub fn last_offset(&self) -> u64 {
        self.header.last_offset()
    }

    /// Records in the batch.
    pub fn record_count(&self) -> u32 {
        self.header.record_count
    }

    /// Largest timestamp in the batch.
    pub fn max_timestamp(&self) -> i64 {
        self.header.max_timestamp
    }

    /// Whole batch size in bytes.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Never true: a valid batch has at least its header.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The batch's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Writes the base offset. It lies outside the CRC, so the CRC stays valid.
    pub fn set_base_offset(&mut self, base_offset: u64) {
        self.bytes[BASE_OFFSET_AT..BASE_OFFSET_AT + 8].copy_from_slice(&base_offset.to_be_bytes());
        self.header.base_offset = base_offset;
    }

    /// Marks the batch as `LogAppendTime` with `timestamp_ms` as its max timestamp, as Kafka does
    /// for topics with `message.timestamp.type=LogAppendTime`, and recomputes the CRC.
    pub fn set_log_append_time(&mut self, timestamp_ms: i64) {
        let attributes = self.header.attributes | ATTRIBUTE_TIMESTAMP_TYPE_BIT;
        self.bytes[ATTRIBUTES_AT..ATTRIBUTES_AT + 2].copy_from_slice(&attributes.to_be_bytes());
        self.bytes[MAX_TIMESTAMP_AT..MAX_TIMESTAMP_AT + 8]
            .copy_from_slice(&timestamp_ms.to_be_bytes());
        let crc = batch_crc(&self.bytes);
        self.bytes[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
        self.header.attributes = attributes;
        self.header.max_timestamp = timestamp_ms;
        self.header.crc = crc;
    }

    /// Stamps the idempotent producer's id, epoch and first sequence (fields the CRC covers,
    /// so it is recomputed). A producer stamps a batch when it is its turn to be sent, and
    /// again under a new producer id when the broker lost the old one.
    pub fn set_producer(&mut self, producer_id: i64, producer_epoch: i16, base_sequence: i32) {
        self.bytes[PRODUCER_ID_AT..PRODUCER_ID_AT + 8].copy_from_slice(&producer_id.to_be_bytes());
        self.bytes[PRODUCER_EPOCH_AT..PRODUCER_EPOCH_AT + 2]
            .copy_from_slice(&producer_epoch.to_be_bytes());
        self.bytes[BASE_SEQUENCE_AT..BASE_SEQUENCE_AT + 4]
            .copy_from_slice(&base_sequence.to_be_bytes());
        let crc = batch_crc(&self.bytes);
        self.bytes[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
        self.header.producer_id = producer_id;
        self.header.producer_epoch = producer_epoch;
        self.header.base_sequence = base_sequence;
        self.header.crc = crc;
    }

    /// Iterates the records of an uncompressed batch.
    pub fn records(&self) -> Result<RecordIter<'_>, BatchError> {
        RecordIter::new(&self.header, &self.bytes)
    }

    /// Gives up the bytes without copying.
    pub fn into_bytes(self) -> Bytes {
        self.bytes.freeze()
    }
}

impl RecordBatch {
    /// For the builder, which computed the header as it wrote the bytes.
    pub(super) fn from_parts(bytes: BytesMut, header: BatchHeader) -> Self {
        Self { bytes, header }
    }
}
