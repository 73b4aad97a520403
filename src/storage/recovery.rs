//! Crash recovery: checking a segment batch by batch and reporting what was cut.
//!
//! On open, every segment is checked from its last index entry to its end, and the active
//! segment after an unclean shutdown from its start (its index is only persisted on seal and
//! on clean close, so nothing after the last clean close has been vouched for). A batch passes
//! when its header parses, its length fits the file, its CRC32C matches and its base offset is
//! the one expected. The first failure ends the segment: the file is truncated there and the
//! cut is logged and reported. A tail of zeros is the alignment pad O_DIRECT writes leave
//! before a clean close truncates them, and is trimmed as such.

use std::path::Path;

use super::io::StorageFile;

use crate::record::{BatchError, BatchHeader};

use super::error::StorageResult;
use super::fileio::read_exact;
use super::segment::{Segment, DMA_ALIGNMENT_BYTES};

/// Bytes read per step of a recovery scan.
const RECOVERY_READ_BYTES: usize = 1 << 20;

/// What recovery did to one partition log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// The previous close was clean, so the active segment was only checked from its last index
    /// entry.
    pub clean_shutdown: bool,
    /// Segments found.
    pub segments: usize,
    /// Tails cut off segments.
    pub cuts: Vec<RecoveryCut>,
    /// Base offsets of segments whose index or time index was missing or invalid and rebuilt.
    pub indexes_rebuilt: Vec<u64>,
    /// Base offsets of segments removed because an earlier segment was cut short.
    pub segments_removed: Vec<u64>,
}

impl RecoveryReport {
    /// Cuts that removed data (not alignment padding, nor a recycled file's stale space).
    pub fn damage_cuts(&self) -> impl Iterator<Item = &RecoveryCut> {
        self.cuts
            .iter()
            .filter(|cut| !cut.padding_only && !cut.recycled_space)
    }
}

/// One tail cut off a segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveryCut {
    /// Base offset of the segment.
    pub segment_base_offset: u64,
    /// Byte position the file was truncated to.
    pub position: u64,
    /// Bytes removed.
    pub bytes_cut: u64,
    /// The first offset that is no longer in the log (the offset the next append gets).
    pub first_offset_cut: u64,
    /// The cut bytes were all zeros: alignment padding, no data lost.
    pub padding_only: bool,
    /// The segment file was recycled from a deleted segment, so bytes past its last good batch
    /// are expected after an unclean stop: the older segment's, or a write the crash tore.
    /// Acknowledged batches all precede the cut (each was written before the fdatasync that
    /// acknowledged it, and batches are written in order).
    pub recycled_space: bool,
    /// Why the scan stopped.
    pub reason: String,
}

impl std::fmt::Display for RecoveryCut {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            formatter,
            "{} bytes cut at position {} of segment {}, first offset cut {}: {}",
            self.bytes_cut,
            self.position,
            self.segment_base_offset,
            self.first_offset_cut,
            self.reason
        )
    }
}

/// Where a scan stopped short of the file end.
pub(crate) struct ScanStop {
    pub position: u64,
    pub reason: String,
}

/// Scans `segment`'s file from `from_position` (a batch boundary whose batch has base offset
/// `segment.next_offset`) to `file_size`, feeding every good batch to the segment's index
/// bookkeeping. Returns where it stopped if it stopped early.
pub(crate) async fn scan_segment(
    segment: &mut Segment,
    file: &StorageFile,
    from_position: u64,
    file_size: u64,
    index_interval_bytes: u32,
) -> StorageResult<Option<ScanStop>> {
    let path = segment.paths.log.clone();
    let mut window: Vec<u8> = Vec::new();
    let mut window_position = from_position;
    let mut position = from_position;
    // Bounded: each iteration consumes one batch or reads more of the file, and stops at its end.
    loop {
        if position >= file_size {
            return Ok(None);
        }
        let at = (position - window_position) as usize;
        let available = &window[at.min(window.len())..];
        let header = match BatchHeader::parse(available) {
            Ok(header) if header.total_bytes() <= available.len() => {
                let batch = &available[..header.total_bytes()];
                if let Err(reason) = header.verify_crc(batch) {
                    return Ok(Some(stop(position, segment.next_offset, reason)));
                }
                header
            }
            Ok(header) if position + header.total_bytes() as u64 > file_size => {
                let have = (file_size - position) as usize;
                let reason = BatchError::Truncated {
                    need: header.total_bytes(),
                    have,
                };
                return Ok(Some(stop(position, segment.next_offset, reason)));
            }
            Ok(_) | Err(BatchError::Truncated { .. }) => {
                let remaining = file_size - position;
                if available.len() as u64 >= remaining {
                    let reason = BatchError::Truncated {
                        need: crate::record::BATCH_HEADER_BYTES,
                        have: available.len(),
                    };
                    return Ok(Some(stop(position, segment.next_offset, reason)));
                }
                // Refill: keep the unconsumed bytes, read the next step (at least the whole
                // pending batch when its header is known).
                let wanted = match BatchHeader::parse(available) {
                    Ok(header) => header.total_bytes().max(RECOVERY_READ_BYTES),
                    Err(_) => RECOVERY_READ_BYTES,
                };
                let read_bytes = (wanted as u64).min(remaining) as usize;
                let fresh = read_exact(file, &path, position, read_bytes).await?;
                window.clear();
                window.extend_from_slice(&fresh);
                window_position = position;
                continue;
            }
            Err(reason) => return Ok(Some(stop(position, segment.next_offset, reason))),
        };
        if header.base_offset != segment.next_offset {
            let reason = BatchError::InvalidField {
                field: "base_offset",
                value: header.base_offset as i64,
            };
            return Ok(Some(stop(position, segment.next_offset, reason)));
        }
        segment.track_batch(&header, position, index_interval_bytes);
        position += header.total_bytes() as u64;
    }
}

fn stop(position: u64, expected_offset: u64, reason: BatchError) -> ScanStop {
    ScanStop {
        position,
        reason: format!("at offset {expected_offset}: {reason}"),
    }
}

/// Whether `[position, file_size)` is the zero pad an O_DIRECT write leaves: under one block of
/// zeros ending on a block boundary. Any other tail, zeros included, is reported as damage.
pub(crate) async fn is_zero_padding(
    file: &StorageFile,
    path: &Path,
    position: u64,
    file_size: u64,
) -> StorageResult<bool> {
    let block = DMA_ALIGNMENT_BYTES as u64;
    if !file_size.is_multiple_of(block) || file_size - position >= block {
        return Ok(false);
    }
    let tail = read_exact(file, path, position, (file_size - position) as usize).await?;
    Ok(tail.iter().all(|&byte| byte == 0))
}
