//! Transactions in one partition log (KIP-98): open transactions hold the last stable offset
//! back, markers end them, aborts are remembered for `read_committed` readers, and all of it
//! survives a reopen, from the snapshot and from the log alone.

mod support;

use streambus::record::{Record, RecordBatch, RecordBatchBuilder};
use streambus::storage::{
    AbortedTransaction, LogConfig, StorageError, TransactionMarker, CLEAN_SHUTDOWN_MARKER,
};
use support::*;

/// A transactional batch of `records` records from `producer_id` at `sequence`.
fn transactional(producer_id: i64, epoch: i16, sequence: i32, records: usize) -> RecordBatch {
    let mut builder = RecordBatchBuilder::with_capacity(records * 40)
        .producer(producer_id, epoch, sequence)
        .transactional();
    for index in 0..records {
        builder.push(Record {
            key: None,
            value: Some(format!("p{producer_id}-s{}", sequence as usize + index).as_bytes()),
            headers: &[],
            timestamp_ms: 1_000,
        });
    }
    builder.build()
}

fn aborted(producer_id: i64, first_offset: u64, last_offset: u64) -> AbortedTransaction {
    AbortedTransaction {
        producer_id,
        first_offset,
        last_offset,
    }
}

#[test]
fn open_transactions_hold_the_lso_and_markers_release_it() {
    run(|| async {
        let dir = tempdir();
        let log = open(dir.path(), LogConfig::default()).await.expect("open");
        // Plain data first: the LSO follows the high watermark.
        log.append(batch(1, 2, 10, 1_000)).await.expect("append");
        assert_eq!(log.last_stable_offset(), 2);

        // Producer 7 opens a transaction at offset 2, producer 8 at offset 5.
        log.append(transactional(7, 0, 0, 3)).await.expect("txn 7");
        log.append(transactional(8, 0, 0, 1)).await.expect("txn 8");
        log.append(transactional(7, 0, 3, 1))
            .await
            .expect("txn 7 again");
        assert_eq!(log.high_watermark(), 7);
        assert_eq!(log.last_stable_offset(), 2, "held at 7's first offset");
        assert_eq!(log.ongoing_transactions(), 2);

        // 7 commits (marker at 7): the LSO moves to 8's first offset.
        let marker = log
            .append_transaction_marker(7, 0, TransactionMarker::Commit, 0)
            .await
            .expect("commit marker");
        assert_eq!((marker.base_offset, marker.last_offset), (7, 7));
        assert_eq!(log.last_stable_offset(), 5);
        // 8 aborts (marker at 8): nothing is open, the LSO is the high watermark.
        log.append_transaction_marker(8, 0, TransactionMarker::Abort, 0)
            .await
            .expect("abort marker");
        assert_eq!(log.high_watermark(), 9);
        assert_eq!(log.last_stable_offset(), 9);
        assert_eq!(log.ongoing_transactions(), 0);
        assert_eq!(log.aborted_transactions(0, 9), vec![aborted(8, 5, 8)]);
        // Only a range that may hold its records names it.
        assert_eq!(log.aborted_transactions(9, 20), vec![]);
        assert_eq!(log.aborted_transactions(0, 5), vec![]);
        assert_eq!(log.aborted_transactions(6, 7), vec![aborted(8, 5, 8)]);

        // The markers are control batches in the log, one offset each.
        let stored = read_all(&log, 0).await;
        let controls: Vec<u64> = stored
            .iter()
            .filter(|(header, _)| header.is_control())
            .map(|(header, _)| header.base_offset)
            .collect();
        assert_eq!(controls, vec![7, 8]);
        for (header, _) in stored.iter().filter(|(header, _)| header.is_control()) {
            assert!(header.is_transactional());
            assert_eq!(header.record_count, 1);
        }
        log.close().await.expect("close");
    });
}

#[test]
fn a_plain_batch_inside_an_open_transaction_and_a_fenced_marker_are_refused() {
    run(|| async {
        let dir = tempdir();
        let log = open(dir.path(), LogConfig::default()).await.expect("open");
        log.append(transactional(3, 2, 0, 1)).await.expect("txn");
        let plain = RecordBatchBuilder::with_capacity(64).producer(3, 2, 1);
        let mut plain = plain;
        plain.push(Record {
            key: None,
            value: Some(b"plain"),
            headers: &[],
            timestamp_ms: 1,
        });
        let refused = log.append(plain.build()).await;
        assert!(
            matches!(refused, Err(StorageError::Sequence(_))),
            "INVALID_TXN_STATE: {refused:?}"
        );
        // A marker from an older epoch is a zombie coordinator's: refused.
        let stale = log
            .append_transaction_marker(3, 1, TransactionMarker::Abort, 0)
            .await;
        assert!(matches!(stale, Err(StorageError::Sequence(_))), "{stale:?}");
        // One from a bumped epoch (the coordinator aborting on timeout) ends it.
        log.append_transaction_marker(3, 3, TransactionMarker::Abort, 0)
            .await
            .expect("bumped abort");
        assert_eq!(log.last_stable_offset(), log.high_watermark());
        // The producer goes on in the new epoch from sequence 0.
        log.append(transactional(3, 3, 0, 1))
            .await
            .expect("next txn");
        assert_eq!(log.last_stable_offset(), 2);
        log.close().await.expect("close");
    });
}

#[test]
fn transactions_survive_a_reopen_from_the_snapshot_and_from_the_log_alone() {
    run(|| async {
        let config = LogConfig {
            segment_bytes: 64 << 10,
            batch_bytes_max: 16 << 10,
            ..LogConfig::default()
        };
        for with_snapshot in [true, false] {
            let dir = tempdir();
            let log = open(dir.path(), config.clone()).await.expect("open");
            // Aborted (producer 1), committed (producer 2), still open (producer 3), across
            // several segments.
            log.append(transactional(1, 0, 0, 1)).await.expect("1");
            log.append(transactional(2, 0, 0, 1)).await.expect("2");
            for filler in 0..40u64 {
                log.append(batch(filler, 2, 2_000, 1_000))
                    .await
                    .expect("filler");
            }
            log.append_transaction_marker(1, 0, TransactionMarker::Abort, 0)
                .await
                .expect("abort 1");
            let open_at = log.log_end_offset();
            log.append(transactional(3, 0, 0, 2)).await.expect("3");
            log.append_transaction_marker(2, 0, TransactionMarker::Commit, 0)
                .await
                .expect("commit 2");
            assert!(log.segment_count() > 1, "rolled");
            let abort_offset = open_at - 1;
            let expected_aborted = vec![aborted(1, 0, abort_offset)];
            assert_eq!(log.aborted_transactions(0, u64::MAX), expected_aborted);
            assert_eq!(log.last_stable_offset(), open_at);
            let end = log.log_end_offset();
            log.close().await.expect("close");
            if !with_snapshot {
                std::fs::remove_file(dir.path().join("producer_state.snapshot"))
                    .expect("remove snapshot");
                let _ = std::fs::remove_file(dir.path().join(CLEAN_SHUTDOWN_MARKER));
            }

            let reopened = open(dir.path(), config.clone()).await.expect("reopen");
            assert_eq!(reopened.log_end_offset(), end);
            assert_eq!(
                reopened.last_stable_offset(),
                open_at,
                "producer 3's transaction is still open (snapshot: {with_snapshot})"
            );
            assert_eq!(reopened.aborted_transactions(0, u64::MAX), expected_aborted);
            // And it can still end.
            reopened
                .append_transaction_marker(3, 0, TransactionMarker::Commit, 0)
                .await
                .expect("commit 3");
            assert_eq!(reopened.last_stable_offset(), reopened.high_watermark());
            reopened.close().await.expect("close");
        }
    });
}
