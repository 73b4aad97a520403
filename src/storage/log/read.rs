//! Reads: the MemTable first, then segments through their indexes; the long-poll wake-up for
//! readers waiting past the high watermark; the offset for a timestamp.

use super::*;

impl PartitionLog {
    /// Ready once the high watermark is above `offset`, or the log has failed or closed;
    /// otherwise registers the task to be woken when the high watermark moves. Long-polling
    /// fetches use it, so they are woken by appends and flushes, never by a timer loop.
    pub fn poll_readable_beyond(&self, offset: u64, context: &mut Context<'_>) -> Poll<()> {
        let inner = &self.inner;
        let state = inner.state.borrow();
        if inner.high_watermark(&state) > offset || inner.check_usable(&state).is_err() {
            return Poll::Ready(());
        }
        drop(state);
        if inner.data_waiters.len() >= DATA_WAITERS_MAX {
            // Readers that timed out leave their wakers behind on an idle partition. Rather
            // than let the list grow, wake them all: a spurious wake-up only makes a reader
            // look again and wait again.
            inner.data_waiters.wake_all();
        }
        inner.data_waiters.register(context.waker());
        Poll::Pending
    }

    /// Reads the batches holding `offset` and after, up to `max_bytes` (the first batch whole
    /// even if larger) and never past the high watermark: from the MemTable when it holds
    /// `offset`, else from the segment through its index. One read from disk returns at most
    /// [`crate::storage::COLD_READ_BYTES_MAX`] (or the first batch, whole); read again to continue.
    pub async fn read(&self, offset: u64, max_bytes: usize) -> StorageResult<LogRead> {
        let mut result = LogRead::default();
        self.read_into(offset, max_bytes, &mut result).await?;
        Ok(result)
    }

    /// As [`PartitionLog::read`], reusing `result`'s buffers.
    pub async fn read_into(
        &self,
        offset: u64,
        max_bytes: usize,
        result: &mut LogRead,
    ) -> StorageResult<()> {
        result.batches.clear();
        result.bytes = 0;
        let inner = &self.inner;
        let (file, path, start_position, start_offset, end_position) = {
            let state = inner.state.borrow();
            let high_watermark = inner.high_watermark(&state);
            result.high_watermark = high_watermark;
            result.log_start_offset = state.log_start_offset;
            if offset < state.log_start_offset || offset > high_watermark {
                return Err(StorageError::OffsetOutOfRange {
                    requested: offset,
                    log_start_offset: state.log_start_offset,
                    high_watermark,
                });
            }
            if offset == high_watermark {
                return Ok(());
            }
            if let Some(bytes) =
                inner
                    .memtable
                    .read(offset, high_watermark, max_bytes, &mut result.batches)
            {
                result.bytes = bytes;
                return Ok(());
            }
            let Some((_, segment)) = state.segments.range(..=offset).next_back() else {
                return Ok(());
            };
            let Some(file) = segment.file().cloned() else {
                // Unwritten data is always in the MemTable; nothing on disk to read.
                return Ok(());
            };
            let (start_position, start_offset) = segment.scan_start(offset);
            (
                file,
                segment.paths().log.clone(),
                start_position,
                start_offset,
                segment.written_bytes(),
            )
        };
        let bytes = read_batches(
            &file,
            &path,
            start_position,
            start_offset,
            end_position,
            offset,
            max_bytes,
        )
        .await?;
        if !bytes.is_empty() {
            result.bytes = bytes.len();
            result.batches.push(bytes);
        }
        Ok(())
    }

    /// The first offset whose record has a timestamp at or after `timestamp`, or `None` when
    /// every record is older (Kafka answers offset -1 then). Compressed batches are not opened:
    /// the batch's base offset is returned for them.
    pub async fn offset_for_timestamp(
        &self,
        timestamp: i64,
    ) -> StorageResult<Option<TimestampOffset>> {
        let mut offset = {
            let state = self.inner.state.borrow();
            let Some(segment) = state
                .segments
                .values()
                .find(|segment| segment.max_timestamp() >= timestamp)
            else {
                return Ok(None);
            };
            let start = segment
                .time_index()
                .lookup_before(timestamp)
                .map_or(segment.base_offset(), |entry| {
                    segment.base_offset() + u64::from(entry.relative_offset)
                });
            start.max(state.log_start_offset)
        };
        // Bounded: every pass advances `offset` past at least one batch, up to the high
        // watermark.
        loop {
            if offset >= self.high_watermark() {
                return Ok(None);
            }
            let read = self.read(offset, TIMESTAMP_SCAN_READ_BYTES).await?;
            if read.batches.is_empty() {
                return Ok(None);
            }
            for chunk in &read.batches {
                let mut rest = &chunk[..];
                while !rest.is_empty() {
                    let header = BatchHeader::parse(rest)
                        .map_err(|reason| StorageError::from_batch(offset, reason))?;
                    let batch = rest.get(..header.total_bytes()).unwrap_or(rest);
                    if header.max_timestamp >= timestamp && header.last_offset() >= offset {
                        if let Some(found) = first_record_at_or_after(&header, batch, timestamp) {
                            return Ok(Some(found));
                        }
                    }
                    offset = header.next_offset();
                    rest = rest.get(header.total_bytes()..).unwrap_or_default();
                }
            }
        }
    }
}

impl LogInner {
    pub(super) fn wake_readers(&self) {
        self.data_waiters.wake_all();
    }
}

pub(super) fn first_record_at_or_after(
    header: &BatchHeader,
    batch: &[u8],
    timestamp: i64,
) -> Option<TimestampOffset> {
    let Ok(records) = RecordIter::new(header, batch) else {
        // Compressed: the batch's max timestamp reaches the target; answer its base offset.
        return Some(TimestampOffset {
            offset: header.base_offset,
            timestamp: header.max_timestamp,
        });
    };
    for record in records.flatten() {
        if record.timestamp >= timestamp {
            return Some(TimestampOffset {
                offset: header.base_offset + record.offset_delta.max(0) as u64,
                timestamp: record.timestamp,
            });
        }
    }
    None
}
