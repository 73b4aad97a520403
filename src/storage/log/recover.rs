//! Opening a log: every segment on disk checked batch by batch (the scan itself is in
//! `storage::recovery`), damage cut, indexes loaded or rebuilt, parked files found, and the
//! log's state built from what survived.

use super::*;

/// Opens every segment in `directory`, checks it, cuts damage, and builds the log state.
pub(super) async fn recover(
    io: &StorageIo,
    directory: &Path,
    config: &LogConfig,
) -> StorageResult<(LogState, RecoveryReport)> {
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
    let mut recyclable = VecDeque::new();
    for (index, (_, path)) in parked.into_iter().enumerate() {
        if index < keep_from {
            remove_if_exists(io, &path).await?;
        } else {
            recyclable.push_back(Recyclable { path, file: None });
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
                if let Some(entry) = offset_index.last() {
                    segment.next_offset = base + u64::from(entry.relative_offset);
                }
                if let Some(entry) = time_index.last() {
                    segment.max_timestamp = entry.timestamp;
                    segment.max_timestamp_offset = base + u64::from(entry.relative_offset);
                }
                segment.offset_index = offset_index;
                segment.time_index = time_index;
                loaded_indexes = true;
            }
        }
        let scan_from = if loaded_indexes {
            segment
                .offset_index
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
                first_offset_cut: segment.next_offset,
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
            segment.offset_index.truncate_to_position(size_bytes);
            let relative_end = segment.relative(segment.next_offset);
            segment.time_index.truncate_to_offset(relative_end);
            if !padding_only && !is_last {
                cut_short = true;
            }
            report.cuts.push(cut);
        }
        // The file ends at its last good batch now: nothing stale is left past it.
        remove_if_exists(io, &paths.recycled_marker).await?;
        segment.size_bytes = size_bytes;
        segment.written_bytes = size_bytes;
        if segment.max_timestamp >= 0 || size_bytes > 0 {
            segment.roll_basis_ms = read_first_header(&file, &paths.log, size_bytes)
                .await?
                .map(|header| header.max_timestamp);
        }
        if is_last && !cut_short {
            segment.state = SegmentState::Active;
            segment.carry = read_carry(&file, &paths.log, size_bytes).await?;
            // Whatever the previous run wrote may still sit in the device cache: make it durable
            // before calling it so.
            file.fdatasync()
                .await
                .map_err(io_error("fdatasync", &paths.log))?;
        } else {
            segment.state = SegmentState::Sealed;
            segment.seal_time_index();
            if !loaded_indexes || stop_changed(&report, base) {
                write_small_file(io, &paths.index, &segment.offset_index.encode()).await?;
                write_small_file(io, &paths.time_index, &segment.time_index.encode()).await?;
            }
        }
        expected_next = Some(segment.next_offset);
        segment.file = Some(Rc::new(file));
        segments.insert(base, segment);
    }
    // If the last segment was cut short in the middle of the log (cut_short), the segment that
    // was cut is now the last one; make it active again.
    if let Some((_, last)) = segments.iter_mut().next_back() {
        if last.state != SegmentState::Active {
            last.state = SegmentState::Active;
            if let Some(file) = &last.file {
                last.carry = read_carry(file, &last.paths.log, last.size_bytes).await?;
            }
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
    let log_start_offset = segments.keys().next().copied().unwrap_or(0);
    let next_offset = segments
        .values()
        .next_back()
        .map_or(0, |segment| segment.next_offset);
    if report.segments > 0 {
        tracing::info!(
            directory = %directory.display(),
            segments = segments.len(),
            log_start_offset,
            log_end_offset = next_offset,
            clean_shutdown,
            cuts = report.cuts.len(),
            "partition log recovered"
        );
    }
    Ok((
        LogState {
            segments,
            log_start_offset,
            next_offset,
            written_offset: next_offset,
            durable_offset: next_offset,
            staged_bytes: 0,
            unsynced_files: Vec::new(),
            recyclable,
            exclusive: false,
            failed: None,
            closed: false,
        },
        report,
    ))
}

/// Whether the segment's last time index entry names a batch, inside the segment, whose max
/// timestamp is the entry's timestamp.
pub(super) async fn time_index_matches_log(
    segment: &Segment,
    file: &StorageFile,
    file_size: u64,
) -> StorageResult<bool> {
    let Some(entry) = segment.time_index.last() else {
        return Ok(true);
    };
    let offset = segment.base_offset + u64::from(entry.relative_offset);
    if offset >= segment.next_offset {
        return Ok(false);
    }
    let start = segment.offset_index.lookup(entry.relative_offset).map_or(
        (0, segment.base_offset),
        |found| {
            (
                u64::from(found.position),
                segment.base_offset + u64::from(found.relative_offset),
            )
        },
    );
    let path = &segment.paths.log;
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

pub(super) fn stop_changed(report: &RecoveryReport, base: u64) -> bool {
    report
        .cuts
        .iter()
        .any(|cut| cut.segment_base_offset == base)
}

/// Loads and checks a segment's persisted indexes; `None` (and a note in the report) when
/// either is missing or invalid, and the segment is then rescanned from its start.
pub(super) async fn load_indexes(
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
