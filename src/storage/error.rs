use std::path::PathBuf;

use thiserror::Error;

use crate::record::BatchError;

/// Errors of the storage layer. No content of any file on disk produces a panic: damage is
/// reported through these variants (or cut away by recovery, with a log line).
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum StorageError {
    /// An I/O call failed.
    #[error("{operation} {}: {source}", path.display())]
    Io {
        /// What was being done ("write", "fdatasync", "open", ...).
        operation: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A stored batch, or a batch offered for append, is malformed.
    #[error("corrupt batch at offset {offset}: {reason}")]
    CorruptBatch {
        /// Base offset of the batch, or the offset expected at that position.
        offset: u64,
        /// What is wrong with it.
        #[source]
        reason: BatchError,
    },
    /// A batch's bytes do not match its CRC32C.
    #[error("checksum mismatch at offset {offset}: stored {expected:#010x}, computed {got:#010x}")]
    ChecksumMismatch {
        /// Base offset of the batch, or the offset expected at that position.
        offset: u64,
        /// CRC stored in the batch.
        expected: u32,
        /// CRC computed from the bytes.
        got: u32,
    },
    /// A read asked for an offset outside `[log_start_offset, high_watermark]`.
    #[error("offset {requested} is out of range [{log_start_offset}, {high_watermark}]")]
    OffsetOutOfRange {
        /// The offset asked for.
        requested: u64,
        /// First offset still in the log.
        log_start_offset: u64,
        /// Offset after the last readable record.
        high_watermark: u64,
    },
    /// A batch larger than a segment (or than `max_batch_bytes`) was offered.
    #[error("batch of {batch_bytes} bytes exceeds the limit of {limit_bytes} bytes")]
    BatchTooLarge {
        /// Size of the batch.
        batch_bytes: usize,
        /// The limit it broke.
        limit_bytes: usize,
    },
    /// An earlier write or fdatasync failed, so the log refuses further appends until it is
    /// reopened (recovery then cuts whatever was not made durable).
    #[error("partition log {} is failed after an earlier I/O error: {reason}", path.display())]
    LogFailed {
        /// The partition directory.
        path: PathBuf,
        /// The first error.
        reason: String,
    },
    /// An idempotent producer's batch breaks its sequence or epoch.
    #[error(transparent)]
    Sequence(#[from] crate::storage::producer_state::SequenceError),
    /// The log was closed or deleted.
    #[error("partition log {} is closed", path.display())]
    Closed {
        /// The partition directory.
        path: PathBuf,
    },
    /// A configuration value is out of range.
    #[error("invalid storage config {name}: {reason}")]
    InvalidConfig {
        /// Config key.
        name: &'static str,
        /// Why it is rejected.
        reason: String,
    },
}

impl StorageError {
    /// Maps a batch validation failure at `offset` to the precise variant.
    pub fn from_batch(offset: u64, reason: BatchError) -> Self {
        match reason {
            BatchError::ChecksumMismatch { expected, got } => Self::ChecksumMismatch {
                offset,
                expected,
                got,
            },
            reason => Self::CorruptBatch { offset, reason },
        }
    }
}

/// Result alias for the storage layer.
pub type StorageResult<T> = Result<T, StorageError>;

/// Turns an I/O error into a [`StorageError`] naming the operation and path.
pub(crate) fn io_error(
    operation: &'static str,
    path: impl Into<PathBuf>,
) -> impl FnOnce(std::io::Error) -> StorageError {
    let path = path.into();
    move |source| StorageError::Io {
        operation,
        path,
        source,
    }
}
