//! Truncation to an offset: the log end moves back, the active segment is cut at a batch
//! boundary, and later segments are removed.

use super::*;

impl PartitionLog {
    /// Removes every record at or after `offset`. The cut falls on a batch boundary: the batch
    /// holding `offset` is removed whole, as Kafka does. Returns the new log end offset.
    pub async fn truncate_to(&self, offset: u64) -> StorageResult<u64> {
        let inner = &self.inner;
        if offset >= self.log_end_offset() {
            return Ok(self.log_end_offset());
        }
        self.sync().await?;
        inner.set_exclusive(true);
        let result = self.truncate_locked(offset).await;
        inner.set_exclusive(false);
        if let Err(error) = &result {
            inner.fail(error);
        }
        result
    }

    pub(super) async fn truncate_locked(&self, offset: u64) -> StorageResult<u64> {
        let inner = &self.inner;
        let _permit = inner.lock_io().await?;
        // A snapshot covering removed offsets would be taken for the truth once the log grows
        // past them again.
        inner.producers.borrow_mut().truncate_to(offset);
        inner.pending_producer_snapshot.borrow_mut().take();
        remove_if_exists(&inner.io, &inner.directory.join(PRODUCER_SNAPSHOT_FILE)).await?;
        // Everything was written and synced before the lock was taken, and appends are held
        // off, so nothing is staged: truncation works on files alone.
        let (removed, keep) = {
            let mut state = inner.state.borrow_mut();
            let offset = offset.max(state.log_start_offset);
            let doomed: Vec<u64> = state
                .segments
                .range(offset..)
                .map(|(&base, _)| base)
                .filter(|&base| base >= offset && base > state.log_start_offset)
                .collect();
            let mut removed = Vec::new();
            for base in doomed {
                if let Some(segment) = state.segments.remove(&base) {
                    removed.push(segment.into_parts().0);
                }
            }
            let keep = state
                .segments
                .range(..=offset)
                .next_back()
                .map(|(&base, _)| base);
            (removed, keep)
        };
        for paths in &removed {
            remove_segment_files(&inner.io, paths).await?;
        }
        let Some(keep) = keep else {
            return Ok(self.log_end_offset());
        };
        // Find the cut position inside the kept segment: the first batch whose last offset
        // reaches `offset`.
        let (file, path, start_position, start_offset, end_position) = {
            let state = inner.state.borrow();
            let Some(segment) = state.segments.get(&keep) else {
                return Ok(state.next_offset);
            };
            let (position, base) = segment.scan_start(offset);
            (
                segment.file().cloned(),
                segment.paths().log.clone(),
                position,
                base,
                segment.size_bytes(),
            )
        };
        let (cut_position, new_end) = match &file {
            Some(file) if start_position < end_position => {
                find_cut(
                    file,
                    &path,
                    start_position,
                    start_offset,
                    end_position,
                    offset,
                )
                .await?
            }
            _ => (0, keep),
        };
        let carry = match &file {
            Some(file) => {
                file.truncate(cut_position)
                    .await
                    .map_err(io_error("truncate", &path))?;
                file.fdatasync()
                    .await
                    .map_err(io_error("fdatasync", &path))?;
                remove_if_exists(
                    &inner.io,
                    &SegmentPaths::new(&inner.directory, keep).recycled_marker,
                )
                .await?;
                read_carry(file, &path, cut_position).await?
            }
            None => Vec::new(),
        };
        // Rebuild the kept segment's bookkeeping by scanning what remains of it.
        let mut segment = Segment::new(&inner.directory, keep);
        if let Some(file) = &file {
            segment.attach_file(file.clone());
            scan_segment(
                &mut segment,
                file,
                0,
                cut_position,
                inner.config.index_interval_bytes,
            )
            .await?;
        }
        segment.restore_end(cut_position, Some((inner.clock.borrow())()));
        segment.activate(carry);
        remove_if_exists(&inner.io, &segment.paths().index).await?;
        remove_if_exists(&inner.io, &segment.paths().time_index).await?;
        sync_directory(&inner.io, &inner.directory).await?;
        let mut state = inner.state.borrow_mut();
        state.segments.insert(keep, segment);
        state.next_offset = new_end;
        state.written_offset = new_end;
        state.durable_offset = new_end;
        state.debug_assert_offsets();
        state.unsynced_files.clear();
        inner.memtable.remove_from(new_end);
        tracing::info!(
            directory = %inner.directory.display(),
            log_end_offset = new_end,
            "log truncated"
        );
        Ok(new_end)
    }
}
