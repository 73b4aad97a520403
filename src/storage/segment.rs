//! One segment of a partition log: `<base_offset:020>.log` with its `.index` and `.timeindex`.
//!
//! # Writing with O_DIRECT
//!
//! O_DIRECT writes must start and end on the device's block boundary, but batches have any
//! length. A segment therefore *stages* appended batches in fixed-size, block-aligned DMA
//! chunks that mirror the file from the last block boundary on; batches flow across chunk
//! boundaries. The first chunk after a flush starts with a copy of the partial last block (the
//! *carry*, under one block). The flusher writes all chunks of a flush concurrently (full chunks
//! never share a block), the last one padded with zeros to the next boundary; the next flush
//! rewrites that block with more data in it, and starts only after every write of the previous
//! flush completed, so a rewrite never races the write it supersedes. Until a clean close
//! truncates the file to its logical size, a zero-filled pad may follow the last batch;
//! recovery recognises it.
//!
//! Staging buffers come from glommio's registered I/O arena (`alloc_dma_buffer`), a fixed
//! region each executor allocates once and recycles through a buddy allocator. Appends thus
//! copy into memory that is already faulted in and registered with io_uring (writes go out as
//! `WRITE_FIXED`), instead of fresh pages that would cost a page fault each on first touch.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use bytes::Bytes;
use glommio::io::DmaBuffer;

use crate::record::{BatchError, BatchHeader, BATCH_HEADER_BYTES};

use super::error::{StorageError, StorageResult};
use super::fileio::{read_exact, remove_if_exists};
use super::io::{StorageFile, StorageIo};
use super::offset_index::{IndexEntry, OffsetIndex};
use super::time_index::{TimeIndex, TimeIndexEntry};

/// Alignment of every O_DIRECT write. 4096 is a multiple of every logical block size Linux
/// devices use (512 or 4096), so it is valid whatever `DmaFile::alignment` reports.
pub const DMA_ALIGNMENT_BYTES: usize = 4096;

/// Extra bytes a cold read fetches past `max_bytes`, so that the scan from the index entry to
/// the wanted batch usually needs no second read (index entries are this far apart at most,
/// plus one batch).
const COLD_READ_SLACK_BYTES: usize = 64 << 10;

/// Most bytes one cold read fetches from a segment, whatever `max_bytes` asks: a read returns
/// fewer bytes rather than allocating up to a whole segment. The first batch is still returned
/// whole when it alone is larger.
pub const COLD_READ_BYTES_MAX: usize = 16 << 20;

pub(crate) fn align_down(position: u64) -> u64 {
    position - position % DMA_ALIGNMENT_BYTES as u64
}

pub(crate) fn align_up(length: usize) -> usize {
    length.div_ceil(DMA_ALIGNMENT_BYTES) * DMA_ALIGNMENT_BYTES
}

/// File names of a segment.
#[derive(Debug, Clone)]
pub(crate) struct SegmentPaths {
    pub log: PathBuf,
    pub index: PathBuf,
    pub time_index: PathBuf,
    /// Present while the `.log` is a recycled file whose space past the last batch still holds
    /// an older segment's bytes (until seal or clean close truncates it).
    pub recycled_marker: PathBuf,
}

impl SegmentPaths {
    pub fn new(directory: &Path, base_offset: u64) -> Self {
        Self {
            log: directory.join(format!("{base_offset:020}.log")),
            index: directory.join(format!("{base_offset:020}.index")),
            time_index: directory.join(format!("{base_offset:020}.timeindex")),
            recycled_marker: directory.join(format!("{base_offset:020}{RECYCLED_MARKER_SUFFIX}")),
        }
    }
}

/// Suffix of a deleted segment's `.log` kept for reuse by the next new segment.
pub(crate) const RECYCLABLE_SUFFIX: &str = ".recyclable";
/// Suffix of the marker that says a segment's `.log` is a recycled file.
pub(crate) const RECYCLED_MARKER_SUFFIX: &str = ".recycled";

/// Where retention parks the `.log` of the segment based at `base_offset` for reuse.
pub(crate) fn recyclable_path(directory: &Path, base_offset: u64) -> PathBuf {
    directory.join(format!("{base_offset:020}{RECYCLABLE_SUFFIX}"))
}

/// Parses `<base_offset:020>.recyclable`.
pub(crate) fn parse_recyclable_file_name(name: &str) -> Option<u64> {
    parse_base(name.strip_suffix(RECYCLABLE_SUFFIX)?)
}

/// Parses `<base_offset:020>.log`.
pub(crate) fn parse_log_file_name(name: &str) -> Option<u64> {
    parse_base(name.strip_suffix(".log")?)
}

fn parse_base(stem: &str) -> Option<u64> {
    if stem.len() != 20 || !stem.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

/// Where a segment is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SegmentState {
    /// Takes appends.
    Active,
    /// Rolled: takes no appends; the flusher still has to write its tail, truncate it to its
    /// logical size, fdatasync it and persist its indexes.
    Sealing,
    /// Immutable and durable, indexes persisted.
    Sealed,
}

/// A DMA buffer mirroring the file from `file_position` (block-aligned) on.
pub(crate) struct WriteBuffer {
    pub buffer: DmaBuffer,
    pub file_position: u64,
    pub filled: usize,
}

impl WriteBuffer {
    /// Pads with zeros to the block boundary and trims the buffer to the bytes to write.
    pub fn into_padded(mut self) -> (DmaBuffer, u64) {
        let padded = align_up(self.filled);
        let bytes = self.buffer.as_bytes_mut();
        bytes[self.filled..padded].fill(0);
        self.buffer.trim_to_size(padded);
        (self.buffer, self.file_position)
    }
}

/// One segment's in-memory state. The partition log owns it and changes it only through the
/// operations below, each of which keeps the segment's invariants (written ≤ size, a carry
/// under one block, states moving Active → Sealing → Sealed); the flusher writes its staging.
pub(crate) struct Segment {
    base_offset: u64,
    paths: SegmentPaths,
    /// `None` until the flusher creates the file (a freshly rolled segment).
    file: Option<Rc<StorageFile>>,
    state: SegmentState,
    /// Logical size: every batch appended, staged or written.
    size_bytes: u64,
    /// Bytes below this position are written to the file.
    written_bytes: u64,
    /// Offset after the segment's last batch (`base_offset` when empty).
    next_offset: u64,
    offset_index: OffsetIndex,
    time_index: TimeIndex,
    bytes_since_index_entry: u64,
    /// Largest batch max-timestamp in the segment, -1 when empty.
    max_timestamp: i64,
    /// Base offset of the batch that carried `max_timestamp`.
    max_timestamp_offset: u64,
    /// Basis of `segment_ms`: when the first batch was appended (or its timestamp, after
    /// recovery).
    roll_basis_ms: Option<i64>,
    staging: VecDeque<WriteBuffer>,
    /// Bytes of the partial last block of what the flusher already took, `< DMA_ALIGNMENT_BYTES`.
    carry: Vec<u8>,
    /// Bytes of batches staged since the flusher last took the staging.
    staged_bytes: usize,
}

impl Segment {
    /// An empty segment whose file does not exist yet.
    pub fn new(directory: &Path, base_offset: u64) -> Self {
        Self {
            base_offset,
            paths: SegmentPaths::new(directory, base_offset),
            file: None,
            state: SegmentState::Active,
            size_bytes: 0,
            written_bytes: 0,
            next_offset: base_offset,
            offset_index: OffsetIndex::default(),
            time_index: TimeIndex::default(),
            bytes_since_index_entry: 0,
            max_timestamp: -1,
            max_timestamp_offset: base_offset,
            roll_basis_ms: None,
            staging: VecDeque::new(),
            carry: Vec::with_capacity(DMA_ALIGNMENT_BYTES),
            staged_bytes: 0,
        }
    }

    /// The offset of the segment's first batch (its name).
    pub fn base_offset(&self) -> u64 {
        self.base_offset
    }

    /// The segment's file names.
    pub fn paths(&self) -> &SegmentPaths {
        &self.paths
    }

    /// The open `.log`, once the flusher (or recovery) has it.
    pub fn file(&self) -> Option<&Rc<StorageFile>> {
        self.file.as_ref()
    }

    /// What is left of a segment the log let go of: its names and its open file.
    pub fn into_parts(self) -> (SegmentPaths, Option<Rc<StorageFile>>) {
        (self.paths, self.file)
    }

    /// Where the segment is in its life.
    pub fn state(&self) -> SegmentState {
        self.state
    }

    /// Logical size: every batch appended, staged or written.
    pub fn size_bytes(&self) -> u64 {
        self.size_bytes
    }

    /// Bytes below this position are written to the file.
    pub fn written_bytes(&self) -> u64 {
        self.written_bytes
    }

    /// Offset after the segment's last batch (`base_offset` when empty).
    pub fn next_offset(&self) -> u64 {
        self.next_offset
    }

    /// The sparse offset index.
    pub fn offset_index(&self) -> &OffsetIndex {
        &self.offset_index
    }

    /// The sparse time index.
    pub fn time_index(&self) -> &TimeIndex {
        &self.time_index
    }

    /// Largest batch max-timestamp in the segment, -1 when empty.
    pub fn max_timestamp(&self) -> i64 {
        self.max_timestamp
    }

    /// When the segment started, for `segment_ms`.
    pub fn roll_basis_ms(&self) -> Option<i64> {
        self.roll_basis_ms
    }

    /// Where a scan for `offset` starts: the file position and base offset of the last
    /// indexed batch at or before it, or the segment's start.
    pub fn scan_start(&self, offset: u64) -> (u64, u64) {
        self.offset_index
            .lookup(self.relative(offset))
            .map_or((0, self.base_offset), |entry| {
                (
                    u64::from(entry.position),
                    self.base_offset + u64::from(entry.relative_offset),
                )
            })
    }

    /// Appends a stamped batch: index bookkeeping, the roll basis, and the copy into staging.
    pub fn append(
        &mut self,
        header: &BatchHeader,
        batch: &[u8],
        index_interval_bytes: u32,
        chunk_bytes: usize,
        now_ms: i64,
        allocate: impl FnMut(usize) -> DmaBuffer,
    ) {
        debug_assert_eq!(
            self.state,
            SegmentState::Active,
            "append to a rolled segment"
        );
        debug_assert_eq!(header.base_offset, self.next_offset, "append out of order");
        let position = self.size_bytes;
        self.track_batch(header, position, index_interval_bytes);
        self.roll_basis_ms.get_or_insert(now_ms);
        self.stage(batch, chunk_bytes, allocate);
    }

    /// Rolled: takes no more appends; the time index gets its final entry. The flusher then
    /// writes the tail and seals it.
    pub fn begin_sealing(&mut self) {
        debug_assert_eq!(
            self.state,
            SegmentState::Active,
            "only the active segment rolls"
        );
        self.state = SegmentState::Sealing;
        self.seal_time_index();
    }

    /// The flusher wrote, truncated and fdatasynced the rolled segment and persisted its
    /// indexes.
    pub fn mark_sealed(&mut self) {
        debug_assert_eq!(self.state, SegmentState::Sealing, "sealed before it rolled");
        self.state = SegmentState::Sealed;
    }

    /// The flusher created the segment's file.
    pub fn attach_file(&mut self, file: Rc<StorageFile>) {
        debug_assert!(self.file.is_none(), "a segment has one file");
        self.file = Some(file);
    }

    /// Everything below `end_bytes` is written to the file.
    pub fn mark_written(&mut self, end_bytes: u64) {
        debug_assert!(
            self.written_bytes <= end_bytes && end_bytes <= self.size_bytes,
            "written bytes move from {} to {end_bytes} with size {}",
            self.written_bytes,
            self.size_bytes
        );
        self.written_bytes = end_bytes;
    }

    /// Takes persisted indexes found valid at open: the segment's end and largest timestamp
    /// are known from their last entries, and the scan goes on from there.
    pub fn adopt_indexes(&mut self, offset_index: OffsetIndex, time_index: TimeIndex) {
        if let Some(entry) = offset_index.last() {
            self.next_offset = self.base_offset + u64::from(entry.relative_offset);
        }
        if let Some(entry) = time_index.last() {
            self.max_timestamp = entry.timestamp;
            self.max_timestamp_offset = self.base_offset + u64::from(entry.relative_offset);
        }
        self.offset_index = offset_index;
        self.time_index = time_index;
    }

    /// Drops index entries past a cut at `size_bytes` (the segment ends at `next_offset`).
    pub fn cut_indexes_at(&mut self, size_bytes: u64) {
        self.offset_index.truncate_to_position(size_bytes);
        let relative_end = self.relative(self.next_offset);
        self.time_index.truncate_to_offset(relative_end);
    }

    /// After recovery or truncation: the file holds `size_bytes` of whole batches, all of
    /// them written.
    pub fn restore_end(&mut self, size_bytes: u64, roll_basis_ms: Option<i64>) {
        debug_assert!(
            self.staging.is_empty(),
            "nothing is staged in a reopened segment"
        );
        self.size_bytes = size_bytes;
        self.written_bytes = size_bytes;
        self.roll_basis_ms = roll_basis_ms;
    }

    /// Makes a reopened segment the active one, appending after `carry` (the partial last
    /// block of the file).
    pub fn activate(&mut self, carry: Vec<u8>) {
        assert!(
            carry.len() < DMA_ALIGNMENT_BYTES
                && carry.len() as u64 == self.size_bytes % DMA_ALIGNMENT_BYTES as u64,
            "carry of {} bytes for a segment of {} bytes",
            carry.len(),
            self.size_bytes
        );
        self.state = SegmentState::Active;
        self.carry = carry;
    }

    /// Marks a reopened segment sealed: immutable, with its final time index entry.
    pub fn seal_recovered(&mut self) {
        self.state = SegmentState::Sealed;
        self.seal_time_index();
    }

    /// `offset` relative to the segment's base, as the indexes store it. The log rolls before a
    /// segment's offsets span more than `u32` (`maybe_roll`), so it always fits; a value that
    /// did not would write a wrong index entry, so it is an assertion, not a saturation.
    pub fn relative(&self, offset: u64) -> u32 {
        assert!(
            offset >= self.base_offset,
            "offset {offset} below segment base {}",
            self.base_offset
        );
        let relative = offset - self.base_offset;
        assert!(
            relative <= u64::from(u32::MAX),
            "offset {offset} is {relative} past segment base {}: beyond u32",
            self.base_offset
        );
        relative as u32
    }

    /// Records a batch that starts at `position` in the index bookkeeping: an index entry every
    /// `index_interval_bytes`, a time index entry alongside when the largest timestamp grew.
    /// Recovery's scan feeds every good batch here.
    pub fn track_batch(&mut self, header: &BatchHeader, position: u64, index_interval_bytes: u32) {
        if self.bytes_since_index_entry >= u64::from(index_interval_bytes) {
            self.offset_index.push(IndexEntry {
                relative_offset: self.relative(header.base_offset),
                position: index_position(position),
            });
            if self.max_timestamp >= 0 {
                self.time_index.push(TimeIndexEntry {
                    timestamp: self.max_timestamp,
                    relative_offset: self.relative(self.max_timestamp_offset),
                });
            }
            self.bytes_since_index_entry = 0;
        }
        self.bytes_since_index_entry += header.total_bytes() as u64;
        if header.max_timestamp > self.max_timestamp {
            self.max_timestamp = header.max_timestamp;
            self.max_timestamp_offset = header.base_offset;
        }
        self.next_offset = header.next_offset();
    }

    /// On sealing, the time index gets the segment's final largest timestamp, so that its last
    /// entry tells retention how old the segment is.
    fn seal_time_index(&mut self) {
        if self.max_timestamp >= 0 {
            self.time_index.push(TimeIndexEntry {
                timestamp: self.max_timestamp,
                relative_offset: self.relative(self.max_timestamp_offset),
            });
        }
    }

    /// Copies a batch into staging: the only copy on the append path. Staging is a run of
    /// fixed-size, block-aligned chunks that mirror the file; a batch flows across a chunk
    /// boundary when it must. Full chunks therefore never share a block, so the flusher writes
    /// all of them at once, and only the last, partial chunk needs the carry.
    fn stage(
        &mut self,
        batch: &[u8],
        chunk_bytes: usize,
        mut allocate: impl FnMut(usize) -> DmaBuffer,
    ) {
        let chunk_bytes = align_up(chunk_bytes);
        let mut rest = batch;
        // Bounded: every pass copies at least one byte into a chunk with room.
        while !rest.is_empty() {
            let has_room = self
                .staging
                .back()
                .is_some_and(|back| back.filled < back.buffer.len());
            if !has_room {
                let mut buffer = allocate(chunk_bytes);
                let (file_position, carried) = match self.staging.back() {
                    // The previous chunk is full and ends on a block boundary.
                    Some(back) => (back.file_position + back.buffer.len() as u64, 0),
                    None => {
                        let carry = &self.carry;
                        buffer.as_bytes_mut()[..carry.len()].copy_from_slice(carry);
                        (align_down(self.size_bytes), carry.len())
                    }
                };
                self.staging.push_back(WriteBuffer {
                    buffer,
                    file_position,
                    filled: carried,
                });
            }
            if let Some(back) = self.staging.back_mut() {
                let taken = (back.buffer.len() - back.filled).min(rest.len());
                back.buffer.as_bytes_mut()[back.filled..back.filled + taken]
                    .copy_from_slice(&rest[..taken]);
                back.filled += taken;
                rest = &rest[taken..];
            }
        }
        self.size_bytes += batch.len() as u64;
        self.staged_bytes += batch.len();
    }

    /// Hands the staged chunks to the flusher, keeping the partial last block as the carry for
    /// the next chunk. Returns the bytes of batches handed over.
    pub fn take_staged(&mut self, into: &mut Vec<WriteBuffer>) -> usize {
        if let Some(back) = self.staging.back() {
            let boundary = align_down(self.size_bytes);
            let from = (boundary - back.file_position) as usize;
            self.carry.clear();
            self.carry
                .extend_from_slice(&back.buffer.as_bytes()[from..back.filled]);
            // The carry is the unwritten tail of one block, never a whole block.
            debug_assert!(
                self.carry.len() < DMA_ALIGNMENT_BYTES,
                "carry of {} bytes is not shorter than a block",
                self.carry.len()
            );
        }
        into.extend(self.staging.drain(..));
        std::mem::take(&mut self.staged_bytes)
    }

    /// Staged bytes not yet handed to the flusher (carry excluded).
    pub fn has_staged(&self) -> bool {
        !self.staging.is_empty()
    }
}

/// Reads, from a segment file, the batches that hold `target_offset` and follow it, up to
/// `max_bytes` (the first whole even if larger), never past `end_position`. Every batch is
/// checked (header, CRC, offset order) before it is returned: a read never serves damage.
/// Returns one `Bytes` holding whole batches (empty if `target_offset` is past the data).
pub(crate) async fn read_batches(
    file: &StorageFile,
    path: &Path,
    start_position: u64,
    start_offset: u64,
    end_position: u64,
    target_offset: u64,
    max_bytes: usize,
) -> StorageResult<Bytes> {
    let mut position = start_position;
    let mut expected_offset = start_offset;
    // Bounded: each pass moves `position` forward by at least one batch or returns.
    loop {
        if position >= end_position {
            return Ok(Bytes::new());
        }
        let window_bytes = ((end_position - position) as usize)
            .min(max_bytes.min(COLD_READ_BYTES_MAX) + COLD_READ_SLACK_BYTES);
        let window = read_exact(file, path, position, window_bytes).await?;
        let mut cursor = 0usize;
        let mut first_found: Option<usize> = None;
        let mut collected_end = 0usize;
        while cursor < window.len() {
            let rest = &window[cursor..];
            let header = match BatchHeader::parse(rest) {
                Ok(header) => header,
                Err(BatchError::Truncated { .. }) => break,
                Err(reason) => return Err(StorageError::from_batch(expected_offset, reason)),
            };
            let batch_end_position = position + (cursor + header.total_bytes()) as u64;
            if batch_end_position > end_position {
                return Err(StorageError::from_batch(
                    expected_offset,
                    BatchError::Truncated {
                        need: header.total_bytes(),
                        have: (end_position - position) as usize - cursor,
                    },
                ));
            }
            if header.total_bytes() > rest.len() {
                break;
            }
            if header.base_offset != expected_offset {
                return Err(StorageError::CorruptBatch {
                    offset: expected_offset,
                    reason: BatchError::InvalidField {
                        field: "base_offset",
                        value: header.base_offset as i64,
                    },
                });
            }
            let batch = &rest[..header.total_bytes()];
            if header.last_offset() >= target_offset {
                let taken = first_found.map_or(0, |start| collected_end - start);
                let limit_bytes = max_bytes.min(COLD_READ_BYTES_MAX);
                if first_found.is_some() && taken + batch.len() > limit_bytes {
                    break;
                }
                header
                    .verify_crc(batch)
                    .map_err(|reason| StorageError::from_batch(header.base_offset, reason))?;
                first_found.get_or_insert(cursor);
                collected_end = cursor + batch.len();
                if collected_end - first_found.unwrap_or(0) >= limit_bytes {
                    break;
                }
            }
            expected_offset = header.next_offset();
            cursor += header.total_bytes();
        }
        if let Some(start) = first_found {
            return Ok(Bytes::copy_from_slice(&window[start..collected_end]));
        }
        if cursor == 0 {
            // Not even one whole batch fit: the first batch is larger than the window. Read it
            // alone, whole, on the next pass.
            let header = BatchHeader::parse(&window[..])
                .map_err(|reason| StorageError::from_batch(expected_offset, reason))?;
            let whole = read_exact(file, path, position, header.total_bytes()).await?;
            if header.last_offset() >= target_offset {
                BatchHeader::parse_verified(&whole)
                    .map_err(|reason| StorageError::from_batch(expected_offset, reason))?;
                return Ok(Bytes::copy_from_slice(&whole));
            }
            expected_offset = header.next_offset();
            position += header.total_bytes() as u64;
            continue;
        }
        position += cursor as u64;
    }
}

/// Reads the header of the first batch of a segment, if it has one whole header.
pub(crate) async fn read_first_header(
    file: &StorageFile,
    path: &Path,
    size_bytes: u64,
) -> StorageResult<Option<BatchHeader>> {
    if size_bytes < BATCH_HEADER_BYTES as u64 {
        return Ok(None);
    }
    let head = read_exact(file, path, 0, BATCH_HEADER_BYTES).await?;
    Ok(BatchHeader::parse(&head).ok())
}

/// A file position as the offset index stores it. `segment_bytes` is at most `u32::MAX`
/// (validated), so positions fit; one that did not would write a wrong index entry.
fn index_position(position: u64) -> u32 {
    assert!(
        position <= u64::from(u32::MAX),
        "segment position {position} beyond u32"
    );
    position as u32
}

/// Removes every file of a segment; files already gone are not an error.
pub(crate) async fn remove_segment_files(
    io: &StorageIo,
    paths: &SegmentPaths,
) -> StorageResult<()> {
    remove_if_exists(io, &paths.log).await?;
    remove_if_exists(io, &paths.index).await?;
    remove_if_exists(io, &paths.time_index).await?;
    remove_if_exists(io, &paths.recycled_marker).await
}

/// Reads the partial last block before `size_bytes`: the first bytes of the next staging buffer.
pub(crate) async fn read_carry(
    file: &StorageFile,
    path: &Path,
    size_bytes: u64,
) -> StorageResult<Vec<u8>> {
    let boundary = align_down(size_bytes);
    let length = (size_bytes - boundary) as usize;
    if length == 0 {
        return Ok(Vec::new());
    }
    Ok(read_exact(file, path, boundary, length).await?.to_vec())
}

/// The position of the first batch whose last offset reaches `offset`, and that batch's base
/// offset (the new log end).
pub(crate) async fn find_cut(
    file: &StorageFile,
    path: &Path,
    mut position: u64,
    mut expected: u64,
    end_position: u64,
    offset: u64,
) -> StorageResult<(u64, u64)> {
    while position < end_position {
        let header_bytes = read_exact(
            file,
            path,
            position,
            crate::record::BATCH_HEADER_BYTES.min((end_position - position) as usize),
        )
        .await?;
        let header = BatchHeader::parse(&header_bytes)
            .map_err(|reason| StorageError::from_batch(expected, reason))?;
        if header.last_offset() >= offset {
            return Ok((position, header.base_offset));
        }
        expected = header.next_offset();
        position += header.total_bytes() as u64;
    }
    Ok((end_position, expected))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn in_executor(body: impl FnOnce() + Send + 'static) {
        glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
            .io_memory(4 << 20)
            .spawn(|| async move { body() })
            .expect("executor")
            .join()
            .expect("test executor");
    }

    /// Writes `buffers` (padded, as the flusher does) into a file image.
    fn write_into(image: &mut Vec<u8>, buffers: Vec<WriteBuffer>) {
        for buffer in buffers {
            let (bytes, position) = buffer.into_padded();
            assert_eq!(
                position % DMA_ALIGNMENT_BYTES as u64,
                0,
                "writes start on a block"
            );
            assert_eq!(
                bytes.len() % DMA_ALIGNMENT_BYTES,
                0,
                "writes end on a block"
            );
            let end = position as usize + bytes.len();
            if image.len() < end {
                image.resize(end, 0);
            }
            image[position as usize..end].copy_from_slice(bytes.as_bytes());
        }
    }

    #[test]
    fn staging_mirrors_the_file_and_the_carry_is_the_partial_last_block() {
        in_executor(|| {
            for seed in 0..200u64 {
                let mut random = fastrand::Rng::with_seed(seed);
                let chunk_bytes = [4096, 8192, 12288, 65536][random.usize(0..4)];
                let mut segment = Segment::new(Path::new("/segment"), 0);
                let mut expected = Vec::new();
                let mut image = Vec::new();
                for _cycle in 0..6 {
                    let mut staged = 0;
                    for _ in 0..random.usize(0..8) {
                        let batch: Vec<u8> = (0..random.usize(1..20_000))
                            .map(|_| random.u8(..))
                            .collect();
                        segment.stage(&batch, chunk_bytes, glommio::allocate_dma_buffer);
                        expected.extend_from_slice(&batch);
                        staged += batch.len();
                    }
                    let mut buffers = Vec::new();
                    assert_eq!(segment.take_staged(&mut buffers), staged, "seed {seed}");
                    assert!(!segment.has_staged());
                    let mut previous_end = None;
                    for buffer in &buffers {
                        assert!(buffer.filled <= buffer.buffer.len(), "seed {seed}");
                        if let Some(end) = previous_end {
                            assert_eq!(buffer.file_position, end, "seed {seed}: chunks abut");
                        }
                        previous_end = Some(buffer.file_position + buffer.buffer.len() as u64);
                    }
                    write_into(&mut image, buffers);
                    let size = segment.size_bytes() as usize;
                    assert_eq!(size, expected.len(), "seed {seed}");
                    assert_eq!(
                        &image[..size],
                        &expected[..],
                        "seed {seed}: the file mirrors"
                    );
                    assert!(
                        image[size..].iter().all(|&byte| byte == 0),
                        "seed {seed}: pad"
                    );
                    let boundary = size - size % DMA_ALIGNMENT_BYTES;
                    assert_eq!(segment.carry, expected[boundary..], "seed {seed}: carry");
                }
            }
        });
    }

    #[test]
    fn scan_start_is_the_last_indexed_batch_at_or_before_an_offset() {
        let mut segment = Segment::new(Path::new("/segment"), 100);
        assert_eq!(
            segment.scan_start(150),
            (0, 100),
            "no index: the segment start"
        );
        let mut index = OffsetIndex::default();
        index.push(IndexEntry {
            relative_offset: 10,
            position: 4096,
        });
        index.push(IndexEntry {
            relative_offset: 30,
            position: 9000,
        });
        segment.adopt_indexes(index, TimeIndex::default());
        assert_eq!(segment.next_offset(), 130, "the last entry bounds the end");
        assert_eq!(segment.scan_start(105), (0, 100));
        assert_eq!(segment.scan_start(110), (4096, 110));
        assert_eq!(segment.scan_start(129), (4096, 110));
        assert_eq!(segment.scan_start(130), (9000, 130));
    }

    #[test]
    #[should_panic(expected = "carry of 10 bytes for a segment of 4097 bytes")]
    fn a_carry_that_is_not_the_partial_last_block_is_refused() {
        let mut segment = Segment::new(Path::new("/segment"), 0);
        segment.restore_end(4097, None);
        segment.activate(vec![0; 10]);
    }

    #[test]
    #[should_panic(expected = "beyond u32")]
    fn an_offset_past_u32_of_the_base_is_an_assertion_not_a_saturation() {
        Segment::new(Path::new("/segment"), 0).relative(u64::from(u32::MAX) + 1);
    }
}
