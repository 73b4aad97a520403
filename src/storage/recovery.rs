//! Crash recovery: checking a segment batch by batch and reporting what was cut.
//!
//! On open, every segment is checked from its last index entry to its end, and the active
//! segment after an unclean shutdown from its start (its index is only persisted on seal and
//! on clean close, so nothing after the last clean close has been vouched for). A batch passes
//! when its header parses, its length fits the file, its CRC32C matches and its base offset is
//! the one expected. The first failure ends the segment: the file is truncated there and the
//! cut is logged and reported. A tail of zeros is the alignment pad O_DIRECT writes leave
//! before a clean close truncates them, and is trimmed as such.
//!
//! [`recover`] does all of it for one partition directory, through the storage I/O seam, and
//! returns a [`RecoveredLog`]: the segments that survived, the parked files for recycling and
//! the report. The partition log is built from that value and from nothing else.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use crate::record::{BatchError, BatchHeader};

use super::config::LogConfig;
use super::error::{io_error, StorageResult};
use super::fileio::{
    open_read_write, read_exact, read_small_file, remove_if_exists, sync_directory,
    write_small_file, SmallFile,
};
use super::io::{StorageFile, StorageIo};
use super::log::CLEAN_SHUTDOWN_MARKER;
use super::offset_index::OffsetIndex;
use super::segment::{
    find_cut, parse_log_file_name, parse_recyclable_file_name, read_carry, read_first_header,
    remove_segment_files, Segment, SegmentPaths, SegmentState, DMA_ALIGNMENT_BYTES,
    RECYCLED_MARKER_SUFFIX,
};
use super::time_index::TimeIndex;

/// What recovery left of a partition directory: the log is built from this.
pub(crate) struct RecoveredLog {
    /// The segments that survived, by base offset; never empty (an empty log gets one empty
    /// segment at offset 0). The last one is active.
    pub segments: BTreeMap<u64, Segment>,
    /// Parked segment files kept for recycling, oldest first.
    pub parked: Vec<PathBuf>,
    /// What recovery found and cut.
    pub report: RecoveryReport,
}

impl RecoveredLog {
    /// The first offset in the log.
    pub fn log_start_offset(&self) -> u64 {
        self.segments.keys().next().copied().unwrap_or(0)
    }

    /// The offset after the last batch that survived.
    pub fn next_offset(&self) -> u64 {
        self.segments
            .values()
            .next_back()
            .map_or(0, Segment::next_offset)
    }
}

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
/// `segment.next_offset()`) to `file_size`, feeding every good batch to the segment's index
/// bookkeeping. Returns where it stopped if it stopped early.
pub(crate) async fn scan_segment(
    segment: &mut Segment,
    file: &StorageFile,
    from_position: u64,
    file_size: u64,
    index_interval_bytes: u32,
) -> StorageResult<Option<ScanStop>> {
    let path = segment.paths().log.clone();
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
                    return Ok(Some(stop(position, segment.next_offset(), reason)));
                }
                header
            }
            Ok(header) if position + header.total_bytes() as u64 > file_size => {
                let have = (file_size - position) as usize;
                let reason = BatchError::Truncated {
                    need: header.total_bytes(),
                    have,
                };
                return Ok(Some(stop(position, segment.next_offset(), reason)));
            }
            Ok(_) | Err(BatchError::Truncated { .. }) => {
                let remaining = file_size - position;
                if available.len() as u64 >= remaining {
                    let reason = BatchError::Truncated {
                        need: crate::record::BATCH_HEADER_BYTES,
                        have: available.len(),
                    };
                    return Ok(Some(stop(position, segment.next_offset(), reason)));
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
            Err(reason) => return Ok(Some(stop(position, segment.next_offset(), reason))),
        };
        if header.base_offset != segment.next_offset() {
            let reason = BatchError::InvalidField {
                field: "base_offset",
                value: header.base_offset as i64,
            };
            return Ok(Some(stop(position, segment.next_offset(), reason)));
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

/// Opens every segment in `directory`, checks it, cuts damage, and builds the log state.
pub(crate) async fn recover(
    io: &StorageIo,
    directory: &Path,
    config: &LogConfig,
) -> StorageResult<RecoveredLog> {
    let marker = directory.join(CLEAN_SHUTDOWN_MARKER);
    let mut bases = Vec::new();
    let mut parked = Vec::new();
    let mut markers = Vec::new();
    let names = io
        .list(directory)
        .await
        .map_err(io_error("list", directory))?;
    let clean_shutdown = names.iter().any(|name| name == CLEAN_SHUTDOWN_MARKER);
    for name in &names {
        let name = name.as_str();
        if name.ends_with(".tmp") {
            remove_if_exists(io, &directory.join(name)).await?;
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
    let mut kept_parked = Vec::new();
    for (index, (_, path)) in parked.into_iter().enumerate() {
        if index < keep_from {
            remove_if_exists(io, &path).await?;
        } else {
            kept_parked.push(path);
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
            remove_segment_files(io, &paths).await?;
            report.segments_removed.push(base);
            cut_short = true;
            continue;
        }
        let file = open_read_write(io, &paths.log).await?;
        let file_size = file
            .file_size()
            .await
            .map_err(io_error("stat", &paths.log))?;
        let mut segment = Segment::new(directory, base);
        let recycled = markers.contains(&paths.recycled_marker);
        let is_last = Some(base) == last_base;
        let full_scan = is_last && !clean_shutdown;
        let mut loaded_indexes = false;
        if !full_scan {
            if let Some((offset_index, time_index)) =
                load_indexes(io, &paths, file_size, &mut report, base).await?
            {
                segment.adopt_indexes(offset_index, time_index);
                loaded_indexes = true;
            }
        }
        let scan_from = if loaded_indexes {
            segment
                .offset_index()
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
                first_offset_cut: segment.next_offset(),
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
            segment.cut_indexes_at(size_bytes);
            if !padding_only && !is_last {
                cut_short = true;
            }
            report.cuts.push(cut);
        }
        // The file ends at its last good batch now: nothing stale is left past it.
        remove_if_exists(io, &paths.recycled_marker).await?;
        let roll_basis_ms = if segment.max_timestamp() >= 0 || size_bytes > 0 {
            read_first_header(&file, &paths.log, size_bytes)
                .await?
                .map(|header| header.max_timestamp)
        } else {
            None
        };
        segment.restore_end(size_bytes, roll_basis_ms);
        if is_last && !cut_short {
            segment.activate(read_carry(&file, &paths.log, size_bytes).await?);
            // Whatever the previous run wrote may still sit in the device cache: make it durable
            // before calling it so.
            file.fdatasync()
                .await
                .map_err(io_error("fdatasync", &paths.log))?;
        } else {
            segment.seal_recovered();
            if !loaded_indexes || stop_changed(&report, base) {
                write_small_file(io, &paths.index, &segment.offset_index().encode()).await?;
                write_small_file(io, &paths.time_index, &segment.time_index().encode()).await?;
            }
        }
        expected_next = Some(segment.next_offset());
        segment.attach_file(Rc::new(file));
        segments.insert(base, segment);
    }
    // If the last segment was cut short in the middle of the log (cut_short), the segment that
    // was cut is now the last one; make it active again.
    if let Some((_, last)) = segments.iter_mut().next_back() {
        if last.state() != SegmentState::Active {
            let carry = match last.file().cloned() {
                Some(file) => read_carry(&file, &last.paths().log, last.size_bytes()).await?,
                None => Vec::new(),
            };
            last.activate(carry);
        }
    }
    if segments.is_empty() {
        segments.insert(0, Segment::new(directory, 0));
    }
    // Markers whose segment is gone (removed above, or a crash between steps).
    for marker in markers {
        remove_if_exists(io, &marker).await?;
    }
    if clean_shutdown {
        remove_if_exists(io, &marker).await?;
    }
    sync_directory(io, directory).await?;
    let recovered = RecoveredLog {
        segments,
        parked: kept_parked,
        report,
    };
    if recovered.report.segments > 0 {
        tracing::info!(
            directory = %directory.display(),
            segments = recovered.segments.len(),
            log_start_offset = recovered.log_start_offset(),
            log_end_offset = recovered.next_offset(),
            clean_shutdown,
            cuts = recovered.report.cuts.len(),
            "partition log recovered"
        );
    }
    Ok(recovered)
}

/// Whether the segment's last time index entry names a batch, inside the segment, whose max
/// timestamp is the entry's timestamp.
async fn time_index_matches_log(
    segment: &Segment,
    file: &StorageFile,
    file_size: u64,
) -> StorageResult<bool> {
    let Some(entry) = segment.time_index().last() else {
        return Ok(true);
    };
    let offset = segment.base_offset() + u64::from(entry.relative_offset);
    if offset >= segment.next_offset() {
        return Ok(false);
    }
    let start = segment.scan_start(offset);
    let path = &segment.paths().log;
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
    io: &StorageIo,
    paths: &SegmentPaths,
    log_bytes: u64,
    report: &mut RecoveryReport,
    base: u64,
) -> StorageResult<Option<(OffsetIndex, TimeIndex)>> {
    // An index holds at most one entry per batch, and a batch is at least a header long: a
    // larger file is garbage and is not read.
    let batches_max = log_bytes / crate::record::BATCH_HEADER_BYTES as u64 + 1;
    let index_bytes = read_small_file(
        io,
        &paths.index,
        batches_max * crate::storage::OFFSET_INDEX_ENTRY_BYTES as u64,
    )
    .await?;
    let time_bytes = read_small_file(
        io,
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
