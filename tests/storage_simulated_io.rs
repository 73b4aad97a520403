//! The partition log on the in-memory file system of the storage I/O seam: injected faults
//! fail the log and are never acknowledged, and after a simulated power loss (every seed a
//! different loss: unsynced data lost, kept or torn; unsynced directory changes lost or kept)
//! recovery keeps every acknowledged batch.

mod support;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::Path;
use std::rc::Rc;

use streambus::storage::io::{Fault, FaultKind, IoOperation, MemoryFs, StorageIo};
use streambus::storage::{
    FlushPolicy, LogConfig, MemTableBudget, PartitionLog, StorageError, StorageResult,
    CLEAN_SHUTDOWN_MARKER,
};
use support::*;

const PARTITION_DIRECTORY: &str = "/data/topic-0";

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 16 << 10,
        batch_bytes_max: 8 << 10,
        index_interval_bytes: 512,
        flush_policy: FlushPolicy::Always,
        ..LogConfig::default()
    }
}

async fn open_on(fs: &Rc<MemoryFs>, config: LogConfig) -> StorageResult<PartitionLog> {
    PartitionLog::open_with_io(
        StorageIo::Memory(fs.clone()),
        Path::new(PARTITION_DIRECTORY),
        config,
        MemTableBudget::new(64 << 20),
    )
    .await
}

#[test]
fn an_injected_fdatasync_failure_fails_the_appends_it_covered_and_acknowledges_none() {
    run(|| async {
        let fs = MemoryFs::new();
        let log = open_on(&fs, config()).await.expect("open");
        let first = log.append(batch(1, 2, 100, 1)).await.expect("append");
        let synced = fs.calls(IoOperation::Fdatasync);
        fs.inject(Fault::once(IoOperation::Fdatasync, FaultKind::Eio).on_path(".log"));
        // Two appenders in one group commit: the failed fdatasync covers both.
        let (a, b) = futures_lite::future::zip(
            log.append(batch(2, 2, 100, 2)),
            log.append(batch(3, 2, 100, 3)),
        )
        .await;
        for outcome in [a, b] {
            match outcome {
                Err(StorageError::LogFailed { reason, .. }) => {
                    assert!(reason.contains("injected fault"), "{reason}")
                }
                other => panic!("an append covered by a failed fdatasync: {other:?}"),
            }
        }
        assert!(fs.calls(IoOperation::Fdatasync) > synced, "the fault fired");
        assert_eq!(
            log.durable_offset(),
            first.last_offset + 1,
            "nothing past the failed fdatasync is durable"
        );
        assert!(
            log.high_watermark() <= first.last_offset + 1,
            "consumers never see what was not acknowledged"
        );
        // The failure is sticky: the fault is spent, yet the log takes no more appends until
        // it is reopened (a later fdatasync could succeed without the lost pages).
        assert!(matches!(
            log.append(batch(4, 1, 10, 4)).await,
            Err(StorageError::LogFailed { .. })
        ));
        drop(log);
        fs.power_loss(7);
        let reopened = open_on(&fs, config()).await.expect("reopen");
        let all = read_all(&reopened, 0).await;
        assert!(!all.is_empty(), "the acknowledged batch survives");
        assert_eq!(all[0].0.base_offset, first.base_offset);
    });
}

#[test]
fn a_failed_or_torn_write_fails_the_log_and_recovery_keeps_what_was_acknowledged() {
    for kind in [FaultKind::Eio, FaultKind::NoSpace, FaultKind::TornWrite] {
        run(move || async move {
            let fs = MemoryFs::new();
            let log = open_on(&fs, config()).await.expect("open");
            let mut acknowledged = Vec::new();
            for seed in 0..5 {
                let batch = batch(seed, 3, 700, seed as i64);
                let info = log.append(batch.clone()).await.expect("append");
                acknowledged.push(stored_form(&batch, info.base_offset));
            }
            fs.inject(Fault::once(IoOperation::Write, kind).on_path(".log"));
            let failed = log.append(batch(99, 3, 700, 99)).await;
            match failed {
                Err(StorageError::LogFailed { reason, .. }) => {
                    assert!(reason.contains("injected fault"), "{kind:?}: {reason}")
                }
                other => panic!("{kind:?}: an append whose write failed: {other:?}"),
            }
            drop(log);
            for seed in 0..16 {
                fs.power_loss(seed);
                let reopened = open_on(&fs, config()).await.expect("reopen");
                let all = read_all(&reopened, 0).await;
                assert!(all.len() >= acknowledged.len(), "{kind:?} seed {seed}");
                for (stored, (_, bytes)) in acknowledged.iter().zip(&all) {
                    assert_eq!(&bytes[..], &stored[..], "{kind:?} seed {seed}");
                }
                drop(reopened);
            }
        });
    }
}

/// One life of the log: what its appenders had acknowledged (base offset -> stored bytes),
/// and, once the power was lost, the log start offset at that moment.
#[derive(Default)]
struct Life {
    acknowledged: BTreeMap<u64, Vec<u8>>,
    lost_at_start_offset: Option<u64>,
}

/// Appends from up to four concurrent tasks; the task whose acknowledgement is the `target`-th
/// cuts the power at once, while the other appends are staged, written or being synced.
/// Returns the acknowledged batches and the log start offset at the moment of the loss.
async fn run_until_power_loss(
    fs: &Rc<MemoryFs>,
    config: &LogConfig,
    seed: u64,
    first_seed: u64,
) -> (BTreeMap<u64, Vec<u8>>, u64) {
    let log = open_on(fs, config.clone()).await.expect("open");
    let life: Rc<RefCell<Life>> = Rc::default();
    let mut random = fastrand::Rng::with_seed(seed);
    let appenders = 1 + random.usize(0..4);
    let target = 1 + random.usize(0..40);
    let mut tasks = Vec::new();
    for appender in 0..appenders {
        let log = log.clone();
        let life = life.clone();
        let fs = fs.clone();
        let mut random = fastrand::Rng::with_seed(seed * 31 + appender as u64);
        tasks.push(glommio::spawn_local(async move {
            // Bounded: each pass appends one batch; the log fails at the power loss.
            for index in 0..1000u64 {
                let batch_seed = first_seed + index * 8 + appender as u64;
                let batch = batch(
                    batch_seed,
                    1 + random.usize(0..4),
                    random.usize(10..1500),
                    batch_seed as i64,
                );
                let Ok(info) = log.append(batch.clone()).await else {
                    return;
                };
                let mut life = life.borrow_mut();
                life.acknowledged
                    .insert(info.base_offset, stored_form(&batch, info.base_offset));
                if life.acknowledged.len() >= target && life.lost_at_start_offset.is_none() {
                    life.lost_at_start_offset = Some(log.log_start_offset());
                    fs.power_loss(seed);
                }
            }
        }));
    }
    for task in tasks {
        task.await;
    }
    drop(log);
    let mut life = life.borrow_mut();
    let start = life
        .lost_at_start_offset
        .expect("the appenders reach the target");
    (std::mem::take(&mut life.acknowledged), start)
}

#[test]
fn after_a_power_loss_recovery_keeps_every_acknowledged_batch() {
    run(|| async {
        let config = LogConfig {
            retention_bytes: Some(40 << 10),
            recycled_segments_max: 1,
            retention_on_roll: true,
            ..config()
        };
        let seeds = 1000u64;
        let mut cuts = 0usize;
        for seed in 0..seeds {
            let fs = MemoryFs::new();
            // Three lives of the log, each ended by a power loss and checked after it.
            let mut acknowledged = BTreeMap::new();
            for life in 0..3u64 {
                let (acked, start_before_loss) =
                    run_until_power_loss(&fs, &config, seed * 3 + life, life * 1_000_000).await;
                acknowledged.extend(acked);
                cuts +=
                    check_recovered(&fs, &config, seed, &mut acknowledged, start_before_loss).await;
            }
        }
        // Not an assertion on a count, a check that the losses were not all benign.
        assert!(cuts > 0, "no power loss over {seeds} seeds tore a tail");
    });
}

/// Opens the log after a power loss and checks that every acknowledged batch at or after the
/// log start at the loss is there, unchanged. Returns the cuts recovery made.
async fn check_recovered(
    fs: &Rc<MemoryFs>,
    config: &LogConfig,
    seed: u64,
    acknowledged: &mut BTreeMap<u64, Vec<u8>>,
    start_before_loss: u64,
) -> usize {
    let log = open_on(fs, config.clone()).await.unwrap_or_else(|error| {
        panic!("seed {seed}: recovery failed: {error}");
    });
    let cuts = log.recovery_report().cuts.len();
    assert!(
        log.log_start_offset() <= start_before_loss,
        "seed {seed}: the log start moved past {start_before_loss} to {}",
        log.log_start_offset()
    );
    let all = read_all(&log, log.log_start_offset()).await;
    let found: BTreeMap<u64, &[u8]> = all
        .iter()
        .map(|(header, bytes)| (header.base_offset, &bytes[..]))
        .collect();
    for (offset, stored) in acknowledged.range(start_before_loss..) {
        match found.get(offset) {
            Some(bytes) => assert_eq!(
                *bytes,
                &stored[..],
                "seed {seed}: acknowledged batch at {offset} changed"
            ),
            None => panic!(
                "seed {seed}: acknowledged batch at {offset} lost (log {}..{}, {} batches)",
                log.log_start_offset(),
                log.log_end_offset(),
                all.len()
            ),
        }
    }
    // The recovered log takes appends and makes them durable.
    let extra = batch(seed, 1, 100, 7);
    let info = log
        .append(extra.clone())
        .await
        .unwrap_or_else(|error| panic!("seed {seed}: append after recovery: {error}"));
    assert_eq!(info.base_offset + 1, log.durable_offset());
    acknowledged.insert(info.base_offset, stored_form(&extra, info.base_offset));
    cuts
}

#[test]
fn recovery_on_in_memory_files_cuts_a_damaged_tail_and_reports_it() {
    run(|| async {
        let fs = MemoryFs::new();
        let log = open_on(&fs, config()).await.expect("open");
        let mut stored = Vec::new();
        for seed in 0..30 {
            let batch = batch(seed, 2, 300, seed as i64);
            let info = log.append(batch.clone()).await.expect("append");
            stored.push((info.base_offset, stored_form(&batch, info.base_offset)));
        }
        let bases = log.segment_base_offsets();
        log.close().await.expect("close");
        drop(log);
        // Damage the middle of the last segment: recovery keeps the batches before it.
        let last = *bases.last().expect("segments");
        let path = Path::new(PARTITION_DIRECTORY).join(format!("{last:020}.log"));
        let size = fs.contents(&path).expect("segment file").len();
        fs.damage(&path, size / 2, &[0xff; 8]).expect("damage");
        // A clean close skips the tail scan; the crash marker must go for a full check.
        StorageIo::Memory(fs.clone())
            .remove(&Path::new(PARTITION_DIRECTORY).join(CLEAN_SHUTDOWN_MARKER))
            .await
            .expect("the clean-shutdown marker exists");
        let reopened = open_on(&fs, config()).await.expect("reopen");
        let all = read_all(&reopened, 0).await;
        assert_eq!(
            reopened.recovery_report().cuts.len(),
            1,
            "one cut, reported"
        );
        assert!(
            all.len() < stored.len(),
            "the damaged batch and later ones are cut"
        );
        for ((_, bytes), (offset, expected)) in all.iter().zip(&stored) {
            assert_eq!(&bytes[..], &expected[..], "batch at {offset}");
        }
        let _ = reopened;
    });
}
