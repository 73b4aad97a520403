//! Retention by time and size, and the recycling of deleted segment files (parked for the
//! next new segment to overwrite).

use super::*;

impl PartitionLog {
    /// Deletes the oldest sealed segments that `retention_ms` (by their newest timestamp,
    /// relative to `now_ms`) or `retention_bytes` put out of retention, and advances the log
    /// start offset. The active segment is never deleted.
    pub async fn apply_retention(&self, now_ms: i64) -> StorageResult<RetentionOutcome> {
        let inner = &self.inner;
        {
            let mut producers = inner.producers.borrow_mut();
            producers.expire(now_ms, inner.config.producer_id_expiration_ms);
            // Aborted transactions whose records retention already removed (as of the last
            // pass) are no use to readers any more.
            producers.forget_aborted_below(self.log_start_offset());
        }
        // Rolled segments are sealed by the flusher; let it finish what was staged so far.
        self.wait_written(self.log_end_offset()).await?;
        let _permit = inner.lock_io().await?;
        let mut removed: Vec<Segment> = Vec::new();
        let mut outcome = RetentionOutcome::default();
        {
            let mut state = inner.state.borrow_mut();
            let mut total_bytes: u64 = state.segments.values().map(Segment::size_bytes).sum();
            loop {
                let mut candidates = state.segments.iter();
                let (Some((&base, oldest)), Some((&next_base, _))) =
                    (candidates.next(), candidates.next())
                else {
                    break;
                };
                if oldest.state() != SegmentState::Sealed {
                    break;
                }
                let too_old = inner.config.retention_ms.is_some_and(|retention_ms| {
                    now_ms.saturating_sub(oldest.max_timestamp()) > retention_ms as i64
                });
                let too_big = inner.config.retention_bytes.is_some_and(|retention_bytes| {
                    total_bytes.saturating_sub(oldest.size_bytes()) >= retention_bytes
                });
                if !too_old && !too_big {
                    break;
                }
                total_bytes -= oldest.size_bytes();
                outcome.bytes_deleted += oldest.size_bytes();
                outcome.segments_deleted += 1;
                if let Some(segment) = state.segments.remove(&base) {
                    removed.push(segment);
                }
                state.log_start_offset = next_base;
            }
            outcome.log_start_offset = state.log_start_offset;
            inner.memtable.remove_below(state.log_start_offset);
        }
        for segment in removed {
            inner.retire_segment(segment).await?;
        }
        if outcome.segments_deleted > 0 {
            tracing::info!(
                directory = %inner.directory.display(),
                segments = outcome.segments_deleted,
                bytes = outcome.bytes_deleted,
                log_start_offset = outcome.log_start_offset,
                "retention deleted segments"
            );
            sync_directory(&inner.io, &inner.directory).await?;
        }
        Ok(outcome)
    }
}

impl LogInner {
    /// Removes a segment retention deleted: its `.log` is parked for reuse while there is room
    /// in the pool, every other file goes. The caller syncs the directory.
    pub(super) async fn retire_segment(&self, segment: Segment) -> StorageResult<()> {
        let room = self.state.borrow().recyclable.len() < self.config.recycled_segments_max;
        // A segment with unsealed state or no file has nothing worth reusing.
        let sealed = segment.state() == SegmentState::Sealed;
        let base_offset = segment.base_offset();
        let (paths, file) = segment.into_parts();
        if !room || file.is_none() || !sealed {
            return remove_segment_files(&self.io, &paths).await;
        }
        let parked = recyclable_path(&self.directory, base_offset);
        self.io
            .rename(&paths.log, &parked)
            .await
            .map_err(io_error("rename", &paths.log))?;
        // The `.log` is gone from its name already; the rest of the segment's files go.
        remove_segment_files(&self.io, &paths).await?;
        self.state
            .borrow_mut()
            .recyclable
            .push_back(Recyclable { path: parked, file });
        Ok(())
    }
}

/// The retention pass a roll triggers. A log closed meanwhile needs none.
/// The retention passes rolls trigger: one task per log, passing again while rolls came
/// during the last pass. A log closed meanwhile needs none.
pub(super) async fn apply_retention_after_roll(log: PartitionLog) {
    // Bounded: each pass clears `retention_due`, and only a roll (a sealed segment) sets it.
    while log.inner.retention_due.replace(false) {
        let now_ms = (log.inner.clock.borrow())();
        match log.apply_retention(now_ms).await {
            Ok(_) => {}
            Err(StorageError::Closed { .. }) => break,
            Err(error) => {
                tracing::warn!(
                    directory = %log.inner.directory.display(),
                    %error,
                    "retention after a roll failed"
                );
                break;
            }
        }
    }
    log.inner.retention_running.set(false);
}

/// A segment file retention parked for reuse.
pub(super) struct Recyclable {
    pub(super) path: PathBuf,
    /// The deleted segment's open file, kept to tell whether a reader still holds it: a file
    /// someone may still read is never overwritten.
    pub(super) file: Option<Rc<StorageFile>>,
}
