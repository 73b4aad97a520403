//! Appends and reads through the real log on a real directory: the MemTable path, the disk
//! path, reopen, rolls and the index at every boundary.

mod support;

use streambus::storage::{FlushPolicy, LogConfig, MemTableBudget, StorageError};
use support::*;

#[test]
fn appends_read_back_hot_and_cold_and_after_reopen() {
    run(|| async {
        let dir = tempdir();
        let config = LogConfig {
            segment_bytes: 64 << 10,
            batch_bytes_max: 32 << 10,
            index_interval_bytes: 1024,
            ..LogConfig::default()
        };
        let log = open(dir.path(), config.clone()).await.expect("open");
        let mut expected = Vec::new();
        let mut next = 0u64;
        for seed in 0..200u64 {
            let records = 1 + (seed as usize % 5);
            let batch = batch(
                seed,
                records,
                100 + (seed as usize * 37) % 900,
                1_000 + seed as i64,
            );
            let info = log.append(batch.clone()).await.expect("append");
            assert_eq!(info.base_offset, next);
            assert_eq!(info.last_offset, next + records as u64 - 1);
            expected.push(stored_form(&batch, next));
            next += records as u64;
        }
        assert_eq!(log.log_end_offset(), next);
        assert_eq!(log.high_watermark(), next, "always: hw is durable end");
        assert!(log.segment_count() > 3, "64 KiB segments rolled");

        let hot: Vec<Vec<u8>> = read_all(&log, 0)
            .await
            .into_iter()
            .map(|(_, b)| b.to_vec())
            .collect();
        assert_eq!(hot, expected);

        // Evict everything from the MemTable: the same reads now come from disk via the index.
        let reads_from_disk = {
            let budget = MemTableBudget::new(0);
            let cold = open_with(&tempdir().keep(), config.clone(), budget).await;
            drop(cold);
            log.close().await.expect("close");
            let reopened = open(dir.path(), config.clone()).await.expect("reopen");
            assert!(reopened.recovery_report().clean_shutdown);
            assert!(reopened.memtable().is_empty());
            assert_eq!(reopened.log_end_offset(), next);
            reopened
        };
        let cold: Vec<Vec<u8>> = read_all(&reads_from_disk, 0)
            .await
            .into_iter()
            .map(|(_, b)| b.to_vec())
            .collect();
        assert_eq!(cold, expected);

        // Every offset, hot or cold, returns the batch that holds it first.
        let mut base = 0u64;
        for bytes in &expected {
            let header = streambus::record::BatchHeader::parse(bytes).expect("header");
            for offset in header.base_offset..=header.last_offset() {
                let read = reads_from_disk.read(offset, 1).await.expect("read");
                let found = headers(&read.batches);
                assert_eq!(found.len(), 1);
                assert_eq!(found[0].0.base_offset, base, "offset {offset}");
            }
            base = header.next_offset();
        }

        // Appends continue at the right offset after reopen.
        let info = reads_from_disk
            .append(batch(999, 2, 10, 5))
            .await
            .expect("append after reopen");
        assert_eq!(info.base_offset, next);
        reads_from_disk.close().await.expect("close");
    });
}

#[test]
fn read_bounds_and_errors() {
    run(|| async {
        let dir = tempdir();
        let log = open(dir.path(), LogConfig::default()).await.expect("open");
        let read = log.read(0, 1000).await.expect("empty log reads empty at 0");
        assert!(read.batches.is_empty());
        assert!(matches!(
            log.read(1, 1000).await,
            Err(StorageError::OffsetOutOfRange {
                requested: 1,
                log_start_offset: 0,
                high_watermark: 0
            })
        ));
        log.append(batch(1, 3, 10, 0)).await.expect("append");
        assert_eq!(log.read(3, 10).await.expect("at hw").bytes, 0);
        assert!(log.read(4, 10).await.is_err());
        let too_big = batch(2, 1, 2 << 20, 0);
        assert!(matches!(
            log.append(too_big).await,
            Err(StorageError::BatchTooLarge { .. })
        ));
        assert_eq!(log.log_end_offset(), 3, "a refused batch takes no offsets");
        log.close().await.expect("close");
        assert!(matches!(
            log.append(batch(3, 1, 1, 0)).await,
            Err(StorageError::Closed { .. })
        ));
    });
}

#[test]
fn interval_and_never_policies_make_data_visible_at_once_and_durable_later() {
    run(|| async {
        for policy in [
            FlushPolicy::Interval { interval_ms: 20 },
            FlushPolicy::Never,
        ] {
            let dir = tempdir();
            let config = LogConfig {
                flush_policy: policy,
                ..LogConfig::default()
            };
            let log = open(dir.path(), config.clone()).await.expect("open");
            for seed in 0..10 {
                log.append(batch(seed, 1, 100, 0)).await.expect("append");
            }
            assert_eq!(log.high_watermark(), 10, "{policy:?}: hw is the log end");
            if policy == FlushPolicy::Never {
                glommio::timer::sleep(std::time::Duration::from_millis(60)).await;
                assert_eq!(log.durable_offset(), 0, "never: no fdatasync by itself");
                assert_eq!(log.stats().fdatasyncs, 0);
                log.sync().await.expect("explicit sync");
            } else {
                // The 20 ms timer makes it durable; allow a loaded machine up to 5 s.
                let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
                while log.durable_offset() < 10 && std::time::Instant::now() < deadline {
                    glommio::timer::sleep(std::time::Duration::from_millis(10)).await;
                }
            }
            assert_eq!(log.durable_offset(), 10, "{policy:?}");
            log.close().await.expect("close");
            let reopened = open(dir.path(), config).await.expect("reopen");
            assert_eq!(read_all(&reopened, 0).await.len(), 10);
            reopened.close().await.expect("close");
        }
    });
}

#[test]
fn one_cold_read_is_bounded_whatever_max_bytes_asks() {
    run(|| async {
        let dir = tempdir();
        let config = LogConfig {
            flush_policy: FlushPolicy::Never,
            ..LogConfig::default()
        };
        let log = open(dir.path(), config.clone()).await.expect("open");
        let batches = (streambus::storage::COLD_READ_BYTES_MAX / 4000) + 100;
        for seed in 0..batches as u64 {
            log.append_staged(batch(seed, 1, 4000, 0))
                .await
                .expect("append");
        }
        log.close().await.expect("close");
        let cold = open(dir.path(), config)
            .await
            .expect("reopen: nothing in the MemTable");
        let read = cold.read(0, usize::MAX).await.expect("read");
        assert!(read.bytes > 0);
        assert!(
            read.bytes <= streambus::storage::COLD_READ_BYTES_MAX,
            "{} bytes in one read",
            read.bytes
        );
        let found = headers(&read.batches);
        assert_eq!(found[0].0.base_offset, 0);
        assert!(found.len() < batches, "the rest needs another read");
        assert_eq!(
            read_all(&cold, 0).await.len(),
            batches,
            "and reading on finds it all"
        );
    });
}
