//! Appending: backpressure (`staged_bytes_max`), then the synchronous staging of a batch
//! (stamp, roll, copy into the active segment's DMA staging, index, MemTable).

use super::*;

impl PartitionLog {
    /// Appends a batch and returns its offsets. Under `always` it completes once an fdatasync
    /// covers the batch; under `interval` and `never` once the batch is staged.
    pub async fn append(&self, batch: RecordBatch) -> StorageResult<AppendInfo> {
        let info = self.append_staged(batch).await?;
        self.wait_acknowledged(info.last_offset + 1).await?;
        Ok(info)
    }

    /// Appends a batch and returns once it is staged and readable, whatever the flush policy
    /// (acks=1 semantics). Pair with [`PartitionLog::wait_acknowledged`] for acks=all.
    pub async fn append_staged(&self, batch: RecordBatch) -> StorageResult<AppendInfo> {
        let batch_bytes = batch.len();
        self.wait_for_room(batch_bytes).await?;
        self.inner.stage(batch)
    }

    /// Writes a transaction marker (a control batch) for `producer_id` and returns its
    /// offset once it is acknowledged under the flush policy: it ends the producer's open
    /// transaction here, moving the last stable offset, and an abort is remembered for
    /// `read_committed` readers. `producer_epoch` may be newer than the producer's last
    /// batch (the coordinator bumps it to abort); an older one is refused.
    pub async fn append_transaction_marker(
        &self,
        producer_id: i64,
        producer_epoch: i16,
        marker: TransactionMarker,
        coordinator_epoch: i32,
    ) -> StorageResult<AppendInfo> {
        let now_ms = (self.inner.clock.borrow())();
        let batch = RecordBatchBuilder::control_marker(
            producer_id,
            producer_epoch,
            marker.control_type(),
            coordinator_epoch,
            now_ms,
        );
        self.append(batch).await
    }

    pub(super) async fn wait_for_room(&self, batch_bytes: usize) -> StorageResult<()> {
        let inner = &self.inner;
        let has_room = |state: &LogState| {
            state.mode == LogMode::Serving
                && (state.staged_bytes == 0
                    || state.staged_bytes + batch_bytes <= inner.config.staged_bytes_max)
        };
        if has_room(&inner.state.borrow()) {
            return Ok(());
        }
        poll_fn(|context| {
            let state = inner.state.borrow();
            inner.check_usable(&state)?;
            if has_room(&state) {
                return Poll::Ready(Ok(()));
            }
            drop(state);
            inner.request_flush();
            inner.wait_progress(context);
            Poll::Pending
        })
        .await
    }
}

impl LogInner {
    /// The synchronous part of an append: stamp, stage, index, MemTable. No await, so appends
    /// are ordered by the order they reach this point.
    pub(super) fn stage(&self, mut batch: RecordBatch) -> StorageResult<AppendInfo> {
        let mut state = self.state.borrow_mut();
        self.check_usable(&state)?;
        let batch_bytes = batch.len();
        if batch_bytes > self.config.batch_bytes_max {
            return Err(StorageError::BatchTooLarge {
                batch_bytes,
                limit_bytes: self.config.batch_bytes_max,
            });
        }
        // An idempotent producer's retry is answered from its first append, and a batch out
        // of its sequence is refused before it takes an offset.
        if batch.header().producer_id >= 0 {
            let producers = self.producers.borrow();
            producers.check_room(batch.header(), self.config.producers_max)?;
            if let SequenceCheck::Duplicate(original) = producers.check(batch.header())? {
                return Ok(AppendInfo {
                    base_offset: original.base_offset,
                    last_offset: original.last_offset,
                    log_append_time_ms: None,
                });
            }
        }
        let now_ms = (self.clock.borrow())();
        let base_offset = state.next_offset;
        self.maybe_roll(&mut state, batch_bytes, now_ms);
        batch.set_base_offset(base_offset);
        let log_append_time_ms = match self.config.timestamp_type {
            TimestampType::LogAppendTime => {
                batch.set_log_append_time(now_ms);
                Some(now_ms)
            }
            TimestampType::CreateTime => None,
        };
        let header = *batch.header();
        let bytes = batch.into_bytes();
        let Some((_, active)) = state.segments.iter_mut().next_back() else {
            return Err(StorageError::Closed {
                path: self.directory.clone(),
            });
        };
        active.append(
            &header,
            &bytes,
            self.config.index_interval_bytes,
            self.config.write_buffer_bytes,
            now_ms,
            allocate_dma_buffer,
        );
        debug_assert!(header.next_offset() > base_offset, "a batch holds a record");
        state.next_offset = header.next_offset();
        state.staged_bytes += batch_bytes;
        if header.producer_id >= 0 {
            let mut producers = self.producers.borrow_mut();
            producers.record(&header, base_offset, now_ms, self.config.producers_max);
            if let Some(marker) = marker_of(&header, &bytes) {
                producers.end_transaction(
                    header.producer_id,
                    marker,
                    base_offset,
                    self.config.aborted_transactions_max,
                );
            }
        }
        state.debug_assert_offsets();
        drop(state);
        self.memtable.insert(base_offset, bytes);
        let mut stats = self.stats.get();
        stats.appends += 1;
        stats.bytes_appended += batch_bytes as u64;
        self.stats.set(stats);
        self.request_flush();
        if self.config.flush_policy != FlushPolicy::Always {
            // The high watermark is the log end offset: readers can see this batch now.
            self.wake_readers();
        }
        Ok(AppendInfo {
            base_offset,
            last_offset: header.last_offset(),
            log_append_time_ms,
        })
    }

    pub(super) fn maybe_roll(&self, state: &mut LogState, batch_bytes: usize, now_ms: i64) {
        let next_offset = state.next_offset;
        let Some((_, active)) = state.segments.iter_mut().next_back() else {
            return;
        };
        if active.size_bytes() == 0 {
            return;
        }
        let full = active.size_bytes() + batch_bytes as u64 > self.config.segment_bytes;
        let old = active
            .roll_basis_ms()
            .is_some_and(|basis| now_ms.saturating_sub(basis) >= self.config.segment_ms as i64);
        let offsets_exhausted = next_offset - active.base_offset() >= u64::from(u32::MAX);
        if !(full || old || offsets_exhausted) {
            return;
        }
        active.begin_sealing();
        // The producers' state as of the roll, written once the segment is sealed (durable).
        *self.pending_producer_snapshot.borrow_mut() = Some((
            next_offset,
            self.producers.borrow().encode_snapshot(next_offset),
        ));
        state
            .segments
            .insert(next_offset, Segment::new(&self.directory, next_offset));
        let mut stats = self.stats.get();
        stats.rolls += 1;
        self.stats.set(stats);
    }

    pub(super) fn request_flush(&self) {
        self.flush_requested.set(true);
        if let Some(waker) = self.flusher_waker.borrow_mut().take() {
            waker.wake();
        }
    }
}

pub(super) fn allocate_dma_buffer(capacity: usize) -> glommio::io::DmaBuffer {
    // The executor's registered I/O arena: recycled, already-faulted memory. glommio falls back
    // to a fresh aligned allocation when the arena is exhausted.
    glommio::allocate_dma_buffer(capacity)
}
