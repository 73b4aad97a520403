//! Group commit: the per-log flusher task that writes what was staged and fdatasyncs it as the
//! flush policy says, seals rolled segments, and the waits for written and durable offsets.

use super::*;

impl PartitionLog {
    /// The durability rule, in one place: completes once an acks=all producer may be answered
    /// for every offset below `end`. Under `always` that is once an fdatasync covers them;
    /// under `interval` and `never` the policy itself says when data becomes durable, so at
    /// once (the batches are appended), as Kafka answers without fsync.
    pub async fn wait_acknowledged(&self, end: u64) -> StorageResult<()> {
        match self.inner.config.flush_policy {
            FlushPolicy::Always => self.wait_durable(end).await,
            FlushPolicy::Interval { .. } | FlushPolicy::Never => Ok(()),
        }
    }

    /// Completes once every offset below `offset` is covered by an fdatasync, or the log fails.
    pub async fn wait_durable(&self, offset: u64) -> StorageResult<()> {
        self.wait_until(offset, |state| state.durable_offset).await
    }

    /// Completes once every offset below `offset` is written to its segment file (and rolled
    /// segments before it are sealed), or the log fails.
    pub(super) async fn wait_written(&self, offset: u64) -> StorageResult<()> {
        self.wait_until(offset, |state| state.written_offset).await
    }

    pub(super) async fn wait_until(
        &self,
        offset: u64,
        reached: fn(&LogState) -> u64,
    ) -> StorageResult<()> {
        let inner = &self.inner;
        if reached(&inner.state.borrow()) >= offset {
            return Ok(());
        }
        inner.request_flush();
        poll_fn(|context| {
            let state = inner.state.borrow();
            if reached(&state) >= offset {
                return Poll::Ready(Ok(()));
            }
            if let Err(error) = inner.check_usable(&state) {
                return Poll::Ready(Err(error));
            }
            drop(state);
            inner.wait_progress(context);
            Poll::Pending
        })
        .await
    }

    /// Writes everything staged and fdatasyncs it, whatever the policy.
    pub async fn sync(&self) -> StorageResult<()> {
        let end = self.log_end_offset();
        self.inner.sync_requested.set(true);
        self.wait_durable(end).await
    }
}

impl LogInner {
    pub(super) fn wait_progress(&self, context: &mut Context<'_>) {
        self.progress_waiters.register(context.waker());
    }

    pub(super) async fn lock_io(&self) -> StorageResult<glommio::sync::Permit<'_>> {
        self.io_lock
            .acquire_permit(1)
            .await
            .map_err(|_| StorageError::Closed {
                path: self.directory.clone(),
            })
    }

    /// One flush cycle: write everything staged, fdatasync as the policy says, finish sealing
    /// segments, publish the new written and durable offsets, wake waiters.
    pub(super) async fn flush_cycle(&self) -> StorageResult<()> {
        let sync_wanted =
            self.config.flush_policy == FlushPolicy::Always || self.sync_requested.take();
        let mut jobs = Vec::new();
        let end_offset = {
            let mut state = self.state.borrow_mut();
            for (&base, segment) in state.segments.iter_mut() {
                if segment.has_staged()
                    || segment.state() == SegmentState::Sealing
                    || (segment.file().is_none() && segment.state() == SegmentState::Active)
                {
                    let mut buffers = Vec::new();
                    let staged_bytes = segment.take_staged(&mut buffers);
                    jobs.push(FlushJob {
                        staged_bytes,
                        base,
                        file: segment.file().cloned(),
                        path: segment.paths().log.clone(),
                        buffers,
                        end_bytes: segment.size_bytes(),
                        seal: segment.state() == SegmentState::Sealing,
                    });
                }
            }
            state.next_offset
        };
        let mut taken_bytes = 0usize;
        for job in jobs {
            let file = match job.file {
                Some(file) => file,
                None => {
                    let file = Rc::new(self.create_segment_file(job.base, &job.path).await?);
                    let mut state = self.state.borrow_mut();
                    if let Some(segment) = state.segments.get_mut(&job.base) {
                        segment.attach_file(file.clone());
                    }
                    file
                }
            };
            taken_bytes += job.staged_bytes;
            let writing = Instant::now();
            self.write_concurrently(&file, &job.path, job.buffers)
                .await?;
            let waited_us = writing.elapsed().as_micros() as u64;
            self.count(|stats| stats.write_wait_us += waited_us);
            {
                let mut state = self.state.borrow_mut();
                if let Some(segment) = state.segments.get_mut(&job.base) {
                    segment.mark_written(job.end_bytes);
                }
                if !state
                    .unsynced_files
                    .iter()
                    .any(|known| Rc::ptr_eq(known, &file))
                {
                    state.unsynced_files.push(file.clone());
                }
            }
            if job.seal {
                self.finish_sealing(job.base, &file, &job.path, job.end_bytes)
                    .await?;
            }
        }
        if sync_wanted {
            let files = std::mem::take(&mut self.state.borrow_mut().unsynced_files);
            for file in &files {
                let syncing = Instant::now();
                file.fdatasync()
                    .await
                    .map_err(io_error("fdatasync", &self.directory))?;
                let waited_us = syncing.elapsed().as_micros() as u64;
                self.count(|stats| {
                    stats.fdatasyncs += 1;
                    stats.fdatasync_wait_us += waited_us;
                });
            }
        }
        {
            let mut state = self.state.borrow_mut();
            state.staged_bytes = state.staged_bytes.saturating_sub(taken_bytes);
            debug_assert!(
                end_offset >= state.written_offset,
                "a write moved the written offset back from {} to {end_offset}",
                state.written_offset
            );
            state.written_offset = end_offset;
            if sync_wanted {
                state.durable_offset = end_offset;
            }
            state.debug_assert_offsets();
        }
        self.memtable.set_evictable_below(end_offset);
        self.count(|stats| stats.flush_cycles += 1);
        self.wake_all();
        Ok(())
    }

    /// Writes a flush's chunks all at once: they do not overlap, and the device takes them in
    /// parallel. At most
    /// `staged_bytes_max / write_buffer_bytes + 1` writes are in flight.
    pub(super) async fn write_concurrently(
        &self,
        file: &StorageFile,
        path: &Path,
        buffers: Vec<WriteBuffer>,
    ) -> StorageResult<()> {
        let mut pending: Vec<Pin<Box<dyn Future<Output = StorageResult<()>> + '_>>> = buffers
            .into_iter()
            .map(|buffer| {
                Box::pin(self.write_buffer(file, path, buffer))
                    as Pin<Box<dyn Future<Output = StorageResult<()>> + '_>>
            })
            .collect();
        poll_fn(|context| {
            let mut index = 0;
            while index < pending.len() {
                match pending[index].as_mut().poll(context) {
                    Poll::Ready(Ok(())) => {
                        drop(pending.swap_remove(index));
                    }
                    Poll::Ready(Err(error)) => return Poll::Ready(Err(error)),
                    Poll::Pending => index += 1,
                }
            }
            if pending.is_empty() {
                Poll::Ready(Ok(()))
            } else {
                Poll::Pending
            }
        })
        .await
    }

    pub(super) async fn write_buffer(
        &self,
        file: &StorageFile,
        path: &Path,
        buffer: WriteBuffer,
    ) -> StorageResult<()> {
        let (buffer, position) = buffer.into_padded();
        let length = buffer.len();
        let written = file
            .write_at(buffer, position)
            .await
            .map_err(io_error("write", path))?;
        if written != length {
            return Err(short_write(path, length, written));
        }
        self.count(|stats| {
            stats.writes += 1;
            stats.bytes_written += length as u64;
        });
        Ok(())
    }

    /// A rolled segment's last write is done: cut the alignment pad, fdatasync, persist the
    /// indexes, and mark it sealed.
    pub(super) async fn finish_sealing(
        &self,
        base: u64,
        file: &StorageFile,
        path: &Path,
        end_bytes: u64,
    ) -> StorageResult<()> {
        file.truncate(end_bytes)
            .await
            .map_err(io_error("truncate", path))?;
        file.fdatasync()
            .await
            .map_err(io_error("fdatasync", path))?;
        self.count(|stats| stats.fdatasyncs += 1);
        // That fdatasync covered the whole file: the next sync need not, and retention may
        // recycle the file once nothing else holds it.
        self.state
            .borrow_mut()
            .unsynced_files
            .retain(|unsynced| !std::ptr::eq(Rc::as_ptr(unsynced), file));
        // Nothing of an older segment is left past the end now.
        remove_if_exists(
            &self.io,
            &SegmentPaths::new(&self.directory, base).recycled_marker,
        )
        .await?;
        let (paths, index, time_index) = {
            let state = self.state.borrow();
            let Some(segment) = state.segments.get(&base) else {
                return Ok(());
            };
            (
                segment.paths().clone(),
                segment.offset_index().encode(),
                segment.time_index().encode(),
            )
        };
        write_small_file(&self.io, &paths.index, &index).await?;
        write_small_file(&self.io, &paths.time_index, &time_index).await?;
        self.write_producer_snapshot_after(base).await?;
        let mut state = self.state.borrow_mut();
        if let Some(segment) = state.segments.get_mut(&base) {
            segment.mark_sealed();
        }
        self.retention_due.set(true);
        Ok(())
    }

    /// Writes the producer state snapshot taken when the segment at `base` was rolled: it
    /// covers that segment's offsets, durable now. A snapshot of a later roll waits for its
    /// own segment's seal.
    async fn write_producer_snapshot_after(&self, base: u64) -> StorageResult<()> {
        let segment_end = {
            let state = self.state.borrow();
            state
                .segments
                .range(base + 1..)
                .next()
                .map(|(&next_base, _)| next_base)
        };
        let due = matches!(
            (&*self.pending_producer_snapshot.borrow(), segment_end),
            (Some((covered, _)), Some(end)) if *covered == end
        );
        if !due {
            return Ok(());
        }
        // Taken out first: an append that rolls during the write puts the next one in.
        let pending = self.pending_producer_snapshot.borrow_mut().take();
        if let Some((_, snapshot)) = pending {
            write_small_file(
                &self.io,
                &self.directory.join(PRODUCER_SNAPSHOT_FILE),
                &snapshot,
            )
            .await?;
        }
        Ok(())
    }

    /// Creates the file of a new segment, reusing a parked one when no reader still holds it.
    /// A reused file keeps its old bytes past what the new segment has written; a marker says
    /// so until seal or close truncates them, so that recovery after a crash knows a cut there
    /// is stale space, not damage.
    pub(super) async fn create_segment_file(
        &self,
        base: u64,
        path: &Path,
    ) -> StorageResult<StorageFile> {
        let reusable = {
            let mut state = self.state.borrow_mut();
            let position = state.recyclable.iter().position(|parked| {
                parked
                    .file
                    .as_ref()
                    .is_none_or(|file| Rc::strong_count(file) == 1)
            });
            position.and_then(|position| state.recyclable.remove(position))
        };
        let Some(parked) = reusable else {
            return self.create_new_segment_file(path).await;
        };
        if let Some(file) = parked.file {
            if let Ok(file) = Rc::try_unwrap(file) {
                // Best effort: the descriptor is closed on drop if this fails.
                let _ = file.close().await;
            }
        }
        if let Err(error) = self.io.rename(&parked.path, path).await {
            // A parked file is an optimisation: without it, the segment starts in a new file.
            tracing::warn!(parked = %parked.path.display(), %error, "could not reuse a parked segment file; creating a new one");
            let _ = remove_if_exists(&self.io, &parked.path).await;
            return self.create_new_segment_file(path).await;
        }
        write_small_file(
            &self.io,
            &SegmentPaths::new(&self.directory, base).recycled_marker,
            &[],
        )
        .await?;
        // The rename must be durable before any append written into the file is called
        // durable: an fdatasync of a file that only overwrote blocks commits no metadata.
        sync_directory(&self.io, &self.directory).await?;
        self.count(|stats| stats.segments_recycled += 1);
        open_read_write(&self.io, path).await
    }

    /// Creates a segment file and makes its name durable before any append written into it
    /// can be called durable: an fdatasync covers the file's data, not the directory entry
    /// that names it, and a power loss may take an unsynced entry with the whole file.
    /// (The power-loss simulation found this: acknowledged batches of a new segment were lost
    /// with its entry.) One directory sync per new segment, in the flusher, before its first
    /// write.
    async fn create_new_segment_file(&self, path: &Path) -> StorageResult<StorageFile> {
        let file = open_read_write(&self.io, path).await?;
        sync_directory(&self.io, &self.directory).await?;
        Ok(file)
    }
}

pub(super) struct FlushJob {
    /// Bytes of batches in `buffers` (the carried block excluded).
    pub(super) staged_bytes: usize,
    pub(super) base: u64,
    pub(super) file: Option<Rc<StorageFile>>,
    pub(super) path: PathBuf,
    pub(super) buffers: Vec<WriteBuffer>,
    pub(super) end_bytes: u64,
    pub(super) seal: bool,
}

/// Waits until a flush is requested; `None` once the log is gone or closed.
pub(super) struct FlushRequested<'a> {
    pub(super) log: &'a Weak<LogInner>,
}

impl Future for FlushRequested<'_> {
    type Output = Option<Rc<LogInner>>;

    fn poll(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<Self::Output> {
        let Some(inner) = self.log.upgrade() else {
            return Poll::Ready(None);
        };
        if inner.state.borrow().mode == LogMode::Closed {
            return Poll::Ready(None);
        }
        if inner.flush_requested.replace(false) {
            return Poll::Ready(Some(inner));
        }
        *inner.flusher_waker.borrow_mut() = Some(context.waker().clone());
        Poll::Pending
    }
}

pub(super) async fn flusher_loop(log: Weak<LogInner>) {
    // Bounded by the log's life: ends when the last handle is dropped or the log is closed.
    while let Some(inner) = (FlushRequested { log: &log }).await {
        let Ok(permit) = inner.lock_io().await else {
            return;
        };
        let failed = matches!(inner.state.borrow().mode, LogMode::Failed(_));
        if !failed {
            if let Err(error) = inner.flush_cycle().await {
                inner.fail(&error);
            }
        }
        drop(permit);
        if inner.config.retention_on_roll
            && inner.retention_due.get()
            && !inner.retention_running.replace(true)
        {
            // Its own task: retention waits for the flusher and takes every I/O permit.
            let log = PartitionLog {
                inner: inner.clone(),
            };
            glommio::spawn_local(apply_retention_after_roll(log)).detach();
        }
    }
}

pub(super) async fn interval_sync_loop(log: Weak<LogInner>, interval: Duration) {
    loop {
        glommio::timer::sleep(interval).await;
        let Some(inner) = log.upgrade() else { return };
        let state = inner.state.borrow();
        if state.mode == LogMode::Closed {
            return;
        }
        let behind = state.durable_offset < state.next_offset;
        drop(state);
        if behind {
            inner.sync_requested.set(true);
            inner.request_flush();
        }
    }
}
