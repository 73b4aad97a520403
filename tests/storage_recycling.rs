//! Segment recycling: retention parks deleted segment files, new segments overwrite them, and
//! a crash inside a recycled segment loses no acknowledged batch and reports no damage.

mod support;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use streambus::record::BatchHeader;
use streambus::storage::{FlushPolicy, LogConfig, PartitionLog};
use support::*;

const SEGMENT_BYTES: u64 = 16 << 10;

fn config(recycled_segments_max: usize) -> LogConfig {
    LogConfig {
        segment_bytes: SEGMENT_BYTES,
        batch_bytes_max: 4 << 10,
        index_interval_bytes: 512,
        retention_bytes: Some(2 * SEGMENT_BYTES),
        flush_policy: FlushPolicy::Always,
        recycled_segments_max,
        ..LogConfig::default()
    }
}

fn files_ending(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("list")
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.to_string_lossy().ends_with(suffix))
        .collect();
    files.sort();
    files
}

/// Appends `count` batches with seeds from `first_seed`, each about 1.5 KiB.
async fn append_batches(log: &PartitionLog, first_seed: u64, count: u64) -> Vec<(u64, Vec<u8>)> {
    let mut appended = Vec::new();
    for seed in first_seed..first_seed + count {
        let batch = batch(seed, 2, 700, seed as i64);
        let info = log.append(batch.clone()).await.expect("append");
        appended.push((info.base_offset, stored_form(&batch, info.base_offset)));
    }
    appended
}

/// Every batch from `from` on, as stored bytes, in offset order.
async fn stored_batches(log: &PartitionLog, from: u64) -> Vec<Vec<u8>> {
    read_all(log, from)
        .await
        .into_iter()
        .map(|(_, bytes)| bytes.to_vec())
        .collect()
}

/// Appends batches, seeds from `seed` on, until a new segment reuses a parked file; returns
/// the next seed.
async fn fill_until_recycled(
    log: &PartitionLog,
    appended: &mut Vec<(u64, Vec<u8>)>,
    mut seed: u64,
) -> u64 {
    let recycled_before = log.stats().segments_recycled;
    // Bounded: a 16 KiB segment rolls within a dozen batches.
    for _ in 0..1000 {
        if log.stats().segments_recycled > recycled_before {
            return seed;
        }
        appended.extend(append_batches(log, seed, 1).await);
        seed += 1;
    }
    panic!("no new segment reused the parked file");
}

/// As [`rolled_log`] with a pool of one, after a retention pass has parked a segment file.
async fn parked_log(dir: &Path) -> (PartitionLog, Vec<(u64, Vec<u8>)>) {
    let (log, appended) = rolled_log(dir, 1).await;
    let outcome = log.apply_retention(i64::MAX).await.expect("retention");
    assert!(outcome.segments_deleted >= 2);
    (log, appended)
}

/// The stored bytes of the appended batches at or after `start`.
fn retained(appended: &[(u64, Vec<u8>)], start: u64) -> Vec<Vec<u8>> {
    appended
        .iter()
        .filter(|(offset, _)| *offset >= start)
        .map(|(_, bytes)| bytes.clone())
        .collect()
}

/// A log in `dir` with 60 batches over several segments, before retention.
async fn rolled_log(
    dir: &Path,
    recycled_segments_max: usize,
) -> (PartitionLog, Vec<(u64, Vec<u8>)>) {
    let log = open(dir, config(recycled_segments_max))
        .await
        .expect("open");
    let appended = append_batches(&log, 0, 60).await;
    assert!(log.segment_count() >= 5, "the appends rolled segments");
    (log, appended)
}

#[test]
fn retention_parks_deleted_segment_files_and_new_segments_overwrite_them() {
    run(|| async {
        let dir = tempdir();
        let (log, mut appended) = rolled_log(dir.path(), 1).await;
        let oldest = files_ending(dir.path(), ".log")[0].clone();
        let oldest_inode = std::fs::metadata(&oldest).expect("stat").ino();

        let outcome = log.apply_retention(i64::MAX).await.expect("retention");
        assert!(outcome.segments_deleted >= 2);
        let parked = files_ending(dir.path(), ".recyclable");
        assert_eq!(
            parked.len(),
            1,
            "the pool holds at most recycled_segments_max files"
        );
        assert_eq!(
            std::fs::metadata(&parked[0]).expect("stat").ino(),
            oldest_inode,
            "the oldest deleted segment's file is the one parked"
        );
        assert!(!oldest.exists());
        assert!(files_ending(dir.path(), ".index")
            .iter()
            .all(|index| index.with_extension("log").exists()));

        let before = log.stats().segments_recycled;
        let rolls_before = log.stats().rolls;
        appended.extend(append_batches(&log, 60, 15).await);
        assert!(
            log.stats().rolls > rolls_before,
            "a new segment was started"
        );
        assert_eq!(log.stats().segments_recycled, before + 1);
        assert!(files_ending(dir.path(), ".recyclable").is_empty());
        let reused = files_ending(dir.path(), ".log")
            .into_iter()
            .find(|path| std::fs::metadata(path).expect("stat").ino() == oldest_inode)
            .expect("a new segment reuses the parked file");
        assert_ne!(reused, oldest);

        // Every retained batch reads back exactly, from disk as well as from the MemTable.
        let start = log.log_start_offset();
        let expected = retained(&appended, start);
        assert_eq!(stored_batches(&log, start).await, expected);
        log.memtable().clear();
        assert_eq!(stored_batches(&log, start).await, expected);

        // A clean close trims the recycled file to its batches; the reopened log has no cut.
        log.close().await.expect("close");
        assert!(files_ending(dir.path(), ".recycled").is_empty());
        let log = open(dir.path(), config(1)).await.expect("reopen");
        assert!(log.recovery_report().cuts.is_empty());
        assert_eq!(stored_batches(&log, start).await, expected);
    });
}

#[test]
fn a_crash_inside_a_recycled_segment_keeps_every_acknowledged_batch() {
    run(|| async {
        let dir = tempdir();
        let (log, mut appended) = parked_log(dir.path()).await;
        // Fill until the next segment reuses the parked file, then a few batches more.
        let seed = fill_until_recycled(&log, &mut appended, 60).await;
        appended.extend(append_batches(&log, seed, 3).await);
        assert_eq!(
            files_ending(dir.path(), ".recycled").len(),
            1,
            "the active segment is marked as a recycled file"
        );
        let active = files_ending(dir.path(), ".log")
            .pop()
            .expect("active segment");
        let end_offset = log.log_end_offset();
        let start = log.log_start_offset();
        drop(log); // no close: as if the process died after the appends were acknowledged
        assert!(
            std::fs::metadata(&active).expect("stat").len() > 4096,
            "the recycled file still holds the older segment's bytes past the new ones"
        );

        let log = open(dir.path(), config(1)).await.expect("reopen");
        let report = log.recovery_report().clone();
        assert!(!report.clean_shutdown);
        assert_eq!(report.damage_cuts().count(), 0, "stale space is not damage");
        assert!(report.cuts.iter().any(|cut| cut.recycled_space));
        assert_eq!(
            log.log_end_offset(),
            end_offset,
            "every acknowledged batch survived"
        );
        assert!(files_ending(dir.path(), ".recycled").is_empty());
        let expected = retained(&appended, start);
        assert_eq!(stored_batches(&log, start).await, expected);
        let next = log
            .append(batch(999, 1, 100, 0))
            .await
            .expect("append after recovery");
        assert_eq!(next.base_offset, end_offset);
    });
}

#[test]
fn without_a_pool_retention_deletes_and_a_reopen_trims_the_pool_to_its_limit() {
    run(|| async {
        let dir = tempdir();
        let (log, _) = rolled_log(dir.path(), 0).await;
        let outcome = log.apply_retention(i64::MAX).await.expect("retention");
        assert!(outcome.segments_deleted >= 2);
        assert!(files_ending(dir.path(), ".recyclable").is_empty());
        log.close().await.expect("close");

        let dir = tempdir();
        let log = open(dir.path(), config(3)).await.expect("open");
        append_batches(&log, 0, 80).await;
        log.apply_retention(i64::MAX).await.expect("retention");
        assert_eq!(files_ending(dir.path(), ".recyclable").len(), 3);
        log.close().await.expect("close");
        let log = open(dir.path(), config(1)).await.expect("reopen");
        assert_eq!(
            files_ending(dir.path(), ".recyclable").len(),
            1,
            "a smaller limit on reopen deletes the surplus"
        );
        let recycled_before = log.stats().segments_recycled;
        append_batches(&log, 80, 15).await;
        assert_eq!(
            log.stats().segments_recycled,
            recycled_before + 1,
            "a parked file found on open is reused"
        );
    });
}

#[test]
fn a_parked_file_that_vanished_is_replaced_by_a_new_file_without_failing_the_log() {
    run(|| async {
        let dir = tempdir();
        let (log, mut appended) = parked_log(dir.path()).await;
        for parked in files_ending(dir.path(), ".recyclable") {
            std::fs::remove_file(parked).expect("remove the parked file behind the log's back");
        }
        let rolls_before = log.stats().rolls;
        appended.extend(append_batches(&log, 60, 15).await);
        assert!(
            log.stats().rolls > rolls_before,
            "a new segment was started"
        );
        let start = log.log_start_offset();
        assert_eq!(
            stored_batches(&log, start).await,
            retained(&appended, start)
        );
        log.close().await.expect("close");
    });
}

#[test]
fn with_retention_on_roll_every_roll_after_the_first_deletion_reuses_a_file() {
    run(|| async {
        let dir = tempdir();
        let config = LogConfig {
            retention_on_roll: true,
            ..config(1)
        };
        let log = open(dir.path(), config).await.expect("open");
        let mut appended = Vec::new();
        // Bounded: 400 batches of about 1.5 KiB roll about 40 segments of 16 KiB.
        for seed in 0..400 {
            appended.extend(append_batches(&log, seed, 1).await);
            // Retention after a roll runs in its own task; let it finish before the next
            // roll needs the file it parks.
            glommio::executor().yield_now().await;
            // retention_bytes (two segments) plus the active segment, plus one roll that the
            // retention task may not have caught up with yet; without retention at every roll
            // the log would grow to about 600 KiB.
            assert!(
                log.size_bytes() <= 4 * SEGMENT_BYTES + 4096,
                "retention_bytes holds at every roll, without a periodic pass"
            );
        }
        let stats = log.stats();
        assert!(stats.rolls >= 30);
        // The first rolls happen before retention deletes anything, and a roll may come
        // before the retention task of the previous one has parked its file.
        assert!(
            stats.segments_recycled * 2 >= stats.rolls,
            "{} of {} rolls reused a file",
            stats.segments_recycled,
            stats.rolls
        );
        let start = log.log_start_offset();
        assert!(start > 0);
        assert_eq!(
            stored_batches(&log, start).await,
            retained(&appended, start)
        );
    });
}

#[test]
fn a_crash_at_every_byte_of_the_last_three_batches_of_a_recycled_segment_keeps_what_landed() {
    run(|| async {
        let dir = tempdir();
        let (log, mut appended) = parked_log(dir.path()).await;
        let parked = files_ending(dir.path(), ".recyclable")
            .pop()
            .expect("parked");
        let stale = std::fs::read(&parked).expect("read the parked file");
        // Fill until a new segment reuses the parked file, then three batches of varied size.
        let mut seed = fill_until_recycled(&log, &mut appended, 60).await;
        let active_base = *log.segment_base_offsets().last().expect("active");
        for value_bytes in [300, 517, 801] {
            let batch = batch(seed, 1, value_bytes, seed as i64);
            let info = log.append(batch.clone()).await.expect("append");
            appended.push((info.base_offset, stored_form(&batch, info.base_offset)));
            seed += 1;
        }
        let start = log.log_start_offset();
        drop(log); // a crash: everything above was acknowledged
        let active = dir.path().join(format!("{active_base:020}.log"));
        let written = std::fs::read(&active).expect("read the active segment");
        let pristine: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(dir.path())
            .expect("list")
            .filter_map(|entry| entry.ok())
            .filter(|entry| entry.path().is_file())
            .map(|entry| (entry.path(), std::fs::read(entry.path()).expect("read")))
            .collect();
        let in_active: Vec<&(u64, Vec<u8>)> = appended
            .iter()
            .filter(|(offset, _)| *offset >= active_base)
            .collect();
        assert!(in_active.len() >= 3);
        let data_end: usize = in_active.iter().map(|(_, bytes)| bytes.len()).sum();
        let tail: usize = in_active[in_active.len() - 3..]
            .iter()
            .map(|(_, bytes)| bytes.len())
            .sum();
        for landed in data_end - tail..=data_end {
            // The writes landed up to `landed`; past it the file still holds the older
            // segment's bytes (or zeros past the older segment's end).
            for entry in std::fs::read_dir(dir.path()).expect("list").flatten() {
                if entry.path().is_file() {
                    std::fs::remove_file(entry.path()).expect("clear");
                }
            }
            for (path, bytes) in &pristine {
                std::fs::write(path, bytes).expect("restore");
            }
            let mut torn = written[..landed].to_vec();
            torn.extend(
                (landed..written.len().max(stale.len()))
                    .map(|at| stale.get(at).copied().unwrap_or(0)),
            );
            std::fs::write(&active, &torn).expect("tear the tail");

            let mut covered = 0;
            let mut survivors = 0;
            for (_, bytes) in &in_active {
                if covered + bytes.len() > landed {
                    break;
                }
                covered += bytes.len();
                survivors += 1;
            }
            let end_offset = match survivors {
                0 => active_base,
                _ => BatchHeader::parse(&in_active[survivors - 1].1)
                    .expect("stored batch")
                    .next_offset(),
            };
            let log = open(dir.path(), config(1)).await.expect("reopen");
            assert_eq!(log.log_end_offset(), end_offset, "landed up to {landed}");
            assert_eq!(
                log.recovery_report().damage_cuts().count(),
                0,
                "landed up to {landed}: stale bytes are not damage"
            );
            let expected: Vec<Vec<u8>> = appended
                .iter()
                .filter(|(offset, _)| *offset >= start && *offset < end_offset)
                .map(|(_, bytes)| bytes.clone())
                .collect();
            assert_eq!(
                stored_batches(&log, start).await,
                expected,
                "landed up to {landed}"
            );
            let next = log
                .append(batch(7, 1, 10, 0))
                .await
                .expect("append after recovery");
            assert_eq!(next.base_offset, end_offset);
            drop(log);
        }
    });
}
