use thiserror::Error;

/// Why a byte range is not a valid Kafka RecordBatch v2.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum BatchError {
    /// Fewer bytes than the header or the declared length needs.
    #[error("batch truncated: need {need} bytes, have {have}")]
    Truncated {
        /// Bytes required.
        need: usize,
        /// Bytes present.
        have: usize,
    },
    /// `batch_length` disagrees with the bytes given, or is below the header size.
    #[error("batch_length {declared} is invalid for {have} bytes")]
    BadLength {
        /// The declared `batch_length` field.
        declared: i32,
        /// Bytes present after the length prefix.
        have: usize,
    },
    /// Magic other than 2 (pre-0.11 message sets are refused).
    #[error("unsupported magic {0} (only RecordBatch v2 is accepted)")]
    UnsupportedMagic(i8),
    /// The stored CRC32C does not match the bytes.
    #[error("CRC32C mismatch: stored {expected:#010x}, computed {got:#010x}")]
    ChecksumMismatch {
        /// CRC stored in the batch.
        expected: u32,
        /// CRC computed over the batch.
        got: u32,
    },
    /// A header field holds a value the format forbids.
    #[error("invalid {field}: {value}")]
    InvalidField {
        /// Field name, as in the Kafka spec.
        field: &'static str,
        /// The offending value.
        value: i64,
    },
    /// A record inside the batch is malformed.
    #[error("malformed record: {0}")]
    MalformedRecord(&'static str),
    /// Records of a compressed batch cannot be iterated without decompressing.
    #[error("batch is compressed with {0:?}; records cannot be iterated in place")]
    Compressed(crate::record::Compression),
    /// Compressing or decompressing the records failed, or they inflate beyond the limit.
    #[error("{codec:?} records: {reason}")]
    Codec {
        /// The codec.
        codec: crate::record::Compression,
        /// What went wrong.
        reason: String,
    },
}
