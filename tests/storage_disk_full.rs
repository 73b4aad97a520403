//! A write that the filesystem refuses (here: past RLIMIT_FSIZE, EFBIG, standing in for ENOSPC)
//! fails the partition log: appends in flight and after get a clear error, nothing panics or
//! hangs, and a reopen keeps every batch that was acknowledged.
//!
//! RLIMIT_FSIZE is per process, so this file holds a single test and runs as its own binary.

mod support;

use streambus::storage::{LogConfig, StorageError};
use support::*;

fn limit_file_size(bytes: u64) {
    let limit = libc::rlimit {
        rlim_cur: bytes as libc::rlim_t,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: setrlimit and signal take plain values; ignoring SIGXFSZ makes an oversized write
    // fail with EFBIG instead of killing the process.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
        assert_eq!(libc::setrlimit(libc::RLIMIT_FSIZE, &limit), 0, "setrlimit");
    }
}

#[test]
fn a_refused_write_fails_the_log_cleanly_and_reopen_keeps_what_was_acknowledged() {
    run(|| async {
        let dir = tempdir();
        let config = LogConfig {
            segment_bytes: 1 << 20,
            batch_bytes_max: 64 << 10,
            ..LogConfig::default()
        };
        let log = open(dir.path(), config.clone()).await.expect("open");
        // Room for about 256 KiB of segment data, then writes fail.
        limit_file_size(256 << 10);
        let mut acknowledged = 0u64;
        let mut first_error = None;
        for seed in 0..100u64 {
            match log.append(batch(seed, 4, 2000, 0)).await {
                Ok(info) => {
                    assert_eq!(
                        info.base_offset, acknowledged,
                        "acknowledged offsets stay dense"
                    );
                    acknowledged = info.last_offset + 1;
                }
                Err(error) => {
                    first_error = Some(error);
                    break;
                }
            }
        }
        let error = first_error.expect("the file size limit was reached");
        assert!(
            matches!(
                error,
                StorageError::Io {
                    operation: "write",
                    ..
                } | StorageError::LogFailed { .. }
            ),
            "a clear I/O error, got {error}"
        );
        println!("acknowledged {acknowledged} offsets before: {error}");
        assert!(acknowledged > 0, "some appends fit before the limit");
        // The log stays failed: further appends are refused at once rather than hanging.
        let again = log
            .append(batch(999, 1, 10, 0))
            .await
            .expect_err("failed log refuses");
        assert!(matches!(again, StorageError::LogFailed { .. }), "{again}");
        // Reads of what was acknowledged still work.
        assert_eq!(
            read_all(&log, 0).await.last().map(|(h, _)| h.next_offset()),
            Some(acknowledged)
        );
        drop(log);

        limit_file_size(u64::MAX);
        let reopened = open(dir.path(), config)
            .await
            .expect("reopen after the disk has room");
        assert!(
            reopened.log_end_offset() >= acknowledged,
            "every acknowledged batch survived ({} < {acknowledged})",
            reopened.log_end_offset()
        );
        let survivors = read_all(&reopened, 0).await;
        for (index, (header, _)) in survivors.iter().enumerate() {
            assert_eq!(header.base_offset, index as u64 * 4);
        }
        let info = reopened
            .append(batch(1000, 1, 10, 0))
            .await
            .expect("appends work again");
        assert_eq!(info.base_offset, reopened.log_end_offset() - 1);
        reopened.close().await.expect("close");
    });
}
