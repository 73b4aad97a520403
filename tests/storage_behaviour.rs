//! Group commit, rolls, retention, time lookups, MemTable eviction, truncation and
//! LogAppendTime on the real log.

mod support;

use std::cell::Cell;
use std::rc::Rc;

use streambus::record::TimestampType;
use streambus::storage::{FlushPolicy, LogConfig, MemTableBudget, TimestampOffset};
use support::*;

/// 8 KiB segments with an index entry every 256 bytes: many rolls and index entries.
fn small_segments() -> LogConfig {
    LogConfig {
        segment_bytes: 8192,
        batch_bytes_max: 4096,
        index_interval_bytes: 256,
        ..LogConfig::default()
    }
}

#[test]
fn group_commit_shares_fdatasyncs_among_64_concurrent_appenders() {
    run(|| async {
        let dir = tempdir();
        let log = open(dir.path(), LogConfig::default()).await.expect("open");
        const APPENDERS: u64 = 64;
        const APPENDS_EACH: u64 = 20;
        let mut tasks = Vec::new();
        for appender in 0..APPENDERS {
            let log = log.clone();
            tasks.push(glommio::spawn_local(async move {
                let mut offsets = Vec::new();
                for round in 0..APPENDS_EACH {
                    let info = log
                        .append(batch(appender * 1000 + round, 1, 1024, 0))
                        .await
                        .expect("append");
                    // `always`: when append returns, an fdatasync covers the batch.
                    assert!(log.durable_offset() > info.last_offset);
                    offsets.push(info.base_offset);
                }
                offsets
            }));
        }
        let mut all = Vec::new();
        for task in tasks {
            all.extend(task.await);
        }
        all.sort_unstable();
        assert_eq!(
            all,
            (0..APPENDERS * APPENDS_EACH).collect::<Vec<_>>(),
            "every offset once"
        );
        let stats = log.stats();
        println!(
            "group commit: {} appends, {} fdatasyncs, {} writes, {} flush cycles",
            stats.appends, stats.fdatasyncs, stats.writes, stats.flush_cycles
        );
        assert_eq!(stats.appends, APPENDERS * APPENDS_EACH);
        assert!(
            stats.fdatasyncs * 8 <= stats.appends,
            "fdatasyncs ({}) must be far below appends ({})",
            stats.fdatasyncs,
            stats.appends
        );
        log.close().await.expect("close");
    });
}

#[test]
fn rolls_on_size_and_on_age() {
    run(|| async {
        let dir = tempdir();
        let now = Rc::new(Cell::new(1_000_000i64));
        let config = LogConfig {
            segment_bytes: 8192,
            batch_bytes_max: 4096,
            segment_ms: 60_000,
            ..LogConfig::default()
        };
        let log = open(dir.path(), config.clone()).await.expect("open");
        let clock = now.clone();
        log.set_clock(move || clock.get());
        for seed in 0..3 {
            log.append(batch(seed, 1, 3000, 0)).await.expect("append");
        }
        assert_eq!(
            log.segment_base_offsets(),
            vec![0, 2],
            "size roll before the batch that would overflow"
        );
        now.set(now.get() + 59_999);
        log.append(batch(9, 1, 10, 0)).await.expect("append");
        assert_eq!(log.segment_count(), 2, "not old enough yet");
        now.set(now.get() + 60_000);
        log.append(batch(10, 1, 10, 0)).await.expect("append");
        assert_eq!(log.segment_base_offsets(), vec![0, 2, 4], "age roll");
        assert_eq!(log.stats().rolls, 2);
        log.close().await.expect("close");
        let files: Vec<_> = log_files(dir.path())
            .iter()
            .map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .collect();
        assert_eq!(
            files,
            vec![
                Some("00000000000000000000.log".to_string()),
                Some("00000000000000000002.log".to_string()),
                Some("00000000000000000004.log".to_string())
            ]
        );
        for base in ["00000000000000000000", "00000000000000000002"] {
            assert!(dir.path().join(format!("{base}.index")).exists());
            assert!(dir.path().join(format!("{base}.timeindex")).exists());
        }
    });
}

#[test]
fn retention_by_bytes_and_by_time_deletes_whole_sealed_segments() {
    run(|| async {
        let dir = tempdir();
        let config = LogConfig {
            segment_bytes: 8192,
            batch_bytes_max: 4096,
            retention_bytes: Some(20_000),
            retention_ms: Some(1_000),
            ..LogConfig::default()
        };
        let log = open(dir.path(), config).await.expect("open");
        // Ten segments of two 3 KB batches each; timestamps 100 ms apart per batch.
        for seed in 0..20u64 {
            log.append(batch(seed, 1, 3000, seed as i64 * 100))
                .await
                .expect("append");
        }
        let before = log.segment_count();
        assert_eq!(before, 10);
        let outcome = log.apply_retention(0).await.expect("retention by bytes");
        assert!(log.size_bytes() < 20_000 + 8192);
        assert!(outcome.segments_deleted >= 6, "{outcome:?}");
        assert_eq!(outcome.log_start_offset, log.log_start_offset());
        assert_eq!(log.log_start_offset(), log.segment_base_offsets()[0]);
        assert!(
            log.read(0, 100).await.is_err(),
            "deleted offsets are out of range"
        );
        assert_eq!(
            read_all(&log, log.log_start_offset()).await.len() as u64,
            20 - log.log_start_offset()
        );
        assert!(!dir.path().join("00000000000000000000.log").exists());

        // By time: newest record of segment [16,18) is at 1700 ms.
        let outcome = log
            .apply_retention(1_700 + 1_001)
            .await
            .expect("retention by time");
        assert_eq!(log.log_start_offset(), 18, "{outcome:?}");
        let outcome = log.apply_retention(i64::MAX).await.expect("all old");
        assert_eq!(
            outcome.segments_deleted, 0,
            "the active segment is never deleted"
        );
        assert_eq!(log.segment_count(), 1);
        log.close().await.expect("close");
        let reopened = open(
            dir.path(),
            LogConfig {
                segment_bytes: 8192,
                batch_bytes_max: 4096,
                ..LogConfig::default()
            },
        )
        .await
        .expect("reopen");
        assert_eq!(reopened.log_start_offset(), 18);
        assert_eq!(reopened.log_end_offset(), 20);
    });
}

#[test]
fn timestamp_lookups_earliest_latest_and_by_time() {
    run(|| async {
        let dir = tempdir();
        let config = small_segments();
        let log = open(dir.path(), config.clone()).await.expect("open");
        assert_eq!(log.offset_for_timestamp(0).await.expect("empty"), None);
        // Batch n: 4 records with timestamps 1000*n + 0..4.
        for seed in 0..30u64 {
            log.append(batch(seed, 4, 300, seed as i64 * 1000))
                .await
                .expect("append");
        }
        assert_eq!(log.log_start_offset(), 0, "earliest");
        assert_eq!(
            log.high_watermark(),
            120,
            "latest: after the last record, not the last batch"
        );
        for reopened in [false, true] {
            let log = if reopened {
                log.close().await.expect("close");
                open(dir.path(), config.clone()).await.expect("reopen")
            } else {
                log.clone()
            };
            for seed in 0..30u64 {
                for record in 0..4u64 {
                    let timestamp = seed as i64 * 1000 + record as i64;
                    assert_eq!(
                        log.offset_for_timestamp(timestamp).await.expect("lookup"),
                        Some(TimestampOffset {
                            offset: seed * 4 + record,
                            timestamp
                        }),
                        "reopened {reopened}"
                    );
                }
                // Between batches: the next batch's first record.
                if seed < 29 {
                    let found = log
                        .offset_for_timestamp(seed as i64 * 1000 + 500)
                        .await
                        .expect("lookup");
                    assert_eq!(found.map(|f| f.offset), Some((seed + 1) * 4));
                }
            }
            assert_eq!(
                log.offset_for_timestamp(i64::MIN)
                    .await
                    .expect("lookup")
                    .map(|f| f.offset),
                Some(0)
            );
            assert_eq!(
                log.offset_for_timestamp(29_004)
                    .await
                    .expect("later than all"),
                None
            );
            if reopened {
                log.close().await.expect("close");
            }
        }
    });
}

#[test]
fn memtable_budget_evicts_oldest_across_partitions_and_reads_fall_back_to_disk() {
    run(|| async {
        let root = tempdir();
        let budget = MemTableBudget::new(64 << 10);
        let left = open_with(
            &root.path().join("left-0"),
            LogConfig::default(),
            budget.clone(),
        )
        .await
        .expect("open");
        let right = open_with(
            &root.path().join("right-0"),
            LogConfig::default(),
            budget.clone(),
        )
        .await
        .expect("open");
        for seed in 0..100u64 {
            left.append(batch(seed, 1, 1000, 0)).await.expect("append");
            right
                .append(batch(seed + 500, 1, 1000, 0))
                .await
                .expect("append");
        }
        assert!(
            budget.used_bytes() <= budget.budget_bytes(),
            "within budget once written"
        );
        assert!(budget.evicted_bytes_total() > 0);
        let left_first = left.memtable().first_offset().expect("hot tail kept");
        let right_first = right.memtable().first_offset().expect("hot tail kept");
        assert!(
            left_first > 0 && right_first > 0,
            "oldest evicted from both partitions"
        );
        assert!(
            left_first.abs_diff(right_first) <= 1,
            "oldest first across partitions"
        );
        for log in [&left, &right] {
            let all = read_all(log, 0).await;
            assert_eq!(all.len(), 100, "evicted batches come from disk");
            for (index, (header, _)) in all.iter().enumerate() {
                assert_eq!(header.base_offset, index as u64);
            }
        }
        left.close().await.expect("close");
        right.close().await.expect("close");
        assert_eq!(budget.used_bytes(), 0, "closing releases the budget");
    });
}

#[test]
fn truncate_removes_whole_batches_across_segments_and_appends_continue() {
    run(|| async {
        let dir = tempdir();
        let config = small_segments();
        let log = open(dir.path(), config.clone()).await.expect("open");
        let mut stored = Vec::new();
        for seed in 0..40u64 {
            let batch = batch(seed, 2, 700, seed as i64);
            let info = log.append(batch.clone()).await.expect("append");
            stored.push(stored_form(&batch, info.base_offset));
        }
        let segments_before = log.segment_count();
        // Offset 41 sits inside batch [40, 41]: the whole batch goes.
        assert_eq!(log.truncate_to(41).await.expect("truncate"), 40);
        assert!(log.segment_count() < segments_before);
        assert_eq!(log.log_end_offset(), 40);
        let read: Vec<Vec<u8>> = read_all(&log, 0)
            .await
            .into_iter()
            .map(|(_, b)| b.to_vec())
            .collect();
        assert_eq!(read, stored[..20].to_vec());
        let info = log
            .append(batch(77, 1, 10, 0))
            .await
            .expect("append after truncate");
        assert_eq!(info.base_offset, 40);
        assert_eq!(log.truncate_to(0).await.expect("truncate all"), 0);
        assert_eq!(log.log_end_offset(), 0);
        assert_eq!(
            log.append(batch(1, 1, 10, 0))
                .await
                .expect("append")
                .base_offset,
            0
        );
        log.close().await.expect("close");
        let reopened = open(dir.path(), config).await.expect("reopen");
        assert_eq!(reopened.log_end_offset(), 1);
        assert_eq!(read_all(&reopened, 0).await.len(), 1);
        reopened.delete().await.expect("delete");
        assert!(!dir.path().exists(), "delete removes the directory");
    });
}

#[test]
fn log_append_time_topics_get_the_broker_timestamp() {
    run(|| async {
        let dir = tempdir();
        let config = LogConfig {
            timestamp_type: TimestampType::LogAppendTime,
            flush_policy: FlushPolicy::Never,
            ..LogConfig::default()
        };
        let log = open(dir.path(), config).await.expect("open");
        log.set_clock(|| 123_456);
        let info = log.append(batch(1, 3, 10, 5)).await.expect("append");
        assert_eq!(info.log_append_time_ms, Some(123_456));
        let read = log.read(0, 1000).await.expect("read");
        let (header, bytes) = headers(&read.batches).remove(0);
        assert_eq!(header.max_timestamp, 123_456);
        assert_eq!(header.timestamp_type(), TimestampType::LogAppendTime);
        let batch = streambus::record::RecordBatch::from_bytes(bytes).expect("CRC was recomputed");
        for record in batch.records().expect("records") {
            assert_eq!(record.expect("record").timestamp, 123_456);
        }
        log.close().await.expect("close");
    });
}
