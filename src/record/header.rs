use super::*;

/// The codec a batch's records are compressed with (attributes bits 0-2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// Uncompressed records.
    None,
    /// gzip.
    Gzip,
    /// snappy (xerial framing).
    Snappy,
    /// lz4 frame.
    Lz4,
    /// zstd.
    Zstd,
}

impl Compression {
    /// Every codec, in attribute order.
    pub const ALL: [Compression; 5] = [Self::None, Self::Gzip, Self::Snappy, Self::Lz4, Self::Zstd];

    fn from_attributes(attributes: i16) -> Result<Self, BatchError> {
        match attributes & ATTRIBUTE_COMPRESSION_MASK {
            0 => Ok(Self::None),
            1 => Ok(Self::Gzip),
            2 => Ok(Self::Snappy),
            3 => Ok(Self::Lz4),
            4 => Ok(Self::Zstd),
            other => Err(BatchError::InvalidField {
                field: "attributes.compression",
                value: i64::from(other),
            }),
        }
    }
}

/// What a batch's timestamps mean (attributes bit 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TimestampType {
    /// Set by the producer.
    #[default]
    CreateTime,
    /// Set by the broker when it appended the batch; `max_timestamp` holds it.
    LogAppendTime,
}

/// The fixed 61-byte header of a v2 batch, decoded. Used where only the header is at hand
/// (recovery scans, index rebuilds, cold reads); [`RecordBatch`] owns a whole batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    /// Offset of the first record.
    pub base_offset: u64,
    /// Bytes after the `batch_length` field.
    pub batch_length: u32,
    /// Leader epoch of the partition when the batch was appended.
    pub partition_leader_epoch: i32,
    /// Stored CRC32C.
    pub crc: u32,
    /// Raw attributes.
    pub attributes: i16,
    /// Offset of the last record, relative to `base_offset`.
    pub last_offset_delta: u32,
    /// Timestamp of the first record.
    pub base_timestamp: i64,
    /// Largest timestamp in the batch (or the log-append time).
    pub max_timestamp: i64,
    /// Idempotent producer id, or -1.
    pub producer_id: i64,
    /// Idempotent producer epoch, or -1.
    pub producer_epoch: i16,
    /// Sequence of the first record, or -1.
    pub base_sequence: i32,
    /// Records in the batch.
    pub record_count: u32,
}

impl BatchHeader {
    /// Decodes and sanity-checks the header at the front of `bytes` (which may hold more than one
    /// batch, or only part of one). Does not check the CRC: see [`BatchHeader::verify_crc`].
    pub fn parse(bytes: &[u8]) -> Result<Self, BatchError> {
        let header: &[u8; BATCH_HEADER_BYTES] = bytes
            .get(..BATCH_HEADER_BYTES)
            .and_then(|slice| slice.try_into().ok())
            .ok_or(BatchError::Truncated {
                need: BATCH_HEADER_BYTES,
                have: bytes.len(),
            })?;
        let magic = header[MAGIC_AT] as i8;
        let batch_length = be_i32(header, BATCH_LENGTH_AT);
        let minimum_length = (BATCH_HEADER_BYTES - BATCH_LENGTH_PREFIX_BYTES) as i32;
        if batch_length < minimum_length {
            return Err(BatchError::BadLength {
                declared: batch_length,
                have: bytes.len().saturating_sub(BATCH_LENGTH_PREFIX_BYTES),
            });
        }
        if magic != BATCH_MAGIC_V2 {
            return Err(BatchError::UnsupportedMagic(magic));
        }
        let base_offset = be_i64(header, BASE_OFFSET_AT);
        let last_offset_delta = be_i32(header, LAST_OFFSET_DELTA_AT);
        let record_count = be_i32(header, RECORD_COUNT_AT);
        let attributes = be_i16(header, ATTRIBUTES_AT);
        Compression::from_attributes(attributes)?;
        non_negative("base_offset", base_offset)?;
        non_negative("last_offset_delta", i64::from(last_offset_delta))?;
        non_negative("record_count", i64::from(record_count))?;
        Ok(Self {
            base_offset: base_offset as u64,
            batch_length: batch_length as u32,
            partition_leader_epoch: be_i32(header, LEADER_EPOCH_AT),
            crc: be_i32(header, CRC_AT) as u32,
            attributes,
            last_offset_delta: last_offset_delta as u32,
            base_timestamp: be_i64(header, BASE_TIMESTAMP_AT),
            max_timestamp: be_i64(header, MAX_TIMESTAMP_AT),
            producer_id: be_i64(header, PRODUCER_ID_AT),
            producer_epoch: be_i16(header, PRODUCER_EPOCH_AT),
            base_sequence: be_i32(header, BASE_SEQUENCE_AT),
            record_count: record_count as u32,
        })
    }

    /// Whole batch size in bytes, length prefix included.
    pub fn total_bytes(&self) -> usize {
        BATCH_LENGTH_PREFIX_BYTES + self.batch_length as usize
    }

    /// Offset of the last record.
    pub fn last_offset(&self) -> u64 {
        self.base_offset + u64::from(self.last_offset_delta)
    }

    /// The offset after this batch.
    pub fn next_offset(&self) -> u64 {
        self.last_offset() + 1
    }

    /// The records' codec. `parse` already rejected unknown codecs.
    pub fn compression(&self) -> Compression {
        Compression::from_attributes(self.attributes).unwrap_or(Compression::None)
    }

    /// CreateTime or LogAppendTime.
    pub fn timestamp_type(&self) -> TimestampType {
        if self.attributes & ATTRIBUTE_TIMESTAMP_TYPE_BIT != 0 {
            TimestampType::LogAppendTime
        } else {
            TimestampType::CreateTime
        }
    }

    /// Part of a transaction.
    pub fn is_transactional(&self) -> bool {
        self.attributes & ATTRIBUTE_TRANSACTIONAL_BIT != 0
    }

    /// A control batch (transaction markers).
    pub fn is_control(&self) -> bool {
        self.attributes & ATTRIBUTE_CONTROL_BIT != 0
    }

    /// Checks the stored CRC against `batch`, which must be exactly this batch's bytes.
    pub fn verify_crc(&self, batch: &[u8]) -> Result<(), BatchError> {
        let got = batch_crc(batch);
        if got == self.crc {
            Ok(())
        } else {
            Err(BatchError::ChecksumMismatch {
                expected: self.crc,
                got,
            })
        }
    }

    /// Decodes the header at the front of `bytes` and checks that the whole batch is present and
    /// intact. Returns the header; the batch is `bytes[..header.total_bytes()]`.
    pub fn parse_verified(bytes: &[u8]) -> Result<Self, BatchError> {
        let header = Self::parse(bytes)?;
        let batch = bytes
            .get(..header.total_bytes())
            .ok_or(BatchError::Truncated {
                need: header.total_bytes(),
                have: bytes.len(),
            })?;
        header.verify_crc(batch)?;
        Ok(header)
    }
}

fn non_negative(field: &'static str, value: i64) -> Result<(), BatchError> {
    if value < 0 {
        Err(BatchError::InvalidField { field, value })
    } else {
        Ok(())
    }
}

pub(crate) fn be_i16(bytes: &[u8; BATCH_HEADER_BYTES], at: usize) -> i16 {
    i16::from_be_bytes([bytes[at], bytes[at + 1]])
}

pub(crate) fn be_i32(bytes: &[u8; BATCH_HEADER_BYTES], at: usize) -> i32 {
    let mut out = [0u8; 4];
    out.copy_from_slice(&bytes[at..at + 4]);
    i32::from_be_bytes(out)
}

pub(crate) fn be_i64(bytes: &[u8; BATCH_HEADER_BYTES], at: usize) -> i64 {
    let mut out = [0u8; 8];
    out.copy_from_slice(&bytes[at..at + 8]);
    i64::from_be_bytes(out)
}
