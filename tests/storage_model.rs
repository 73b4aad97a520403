//! Property test: random sequences of append, read, roll, reopen (clean and crash), retention
//! and truncation agree with a plain in-memory model of the log.

mod support;

use std::cell::Cell;
use std::rc::Rc;

use proptest::prelude::*;
use streambus::record::BatchHeader;
use streambus::storage::{FlushPolicy, LogConfig, PartitionLog};
use support::*;

#[derive(Debug, Clone)]
enum Op {
    Append { records: usize, value_bytes: usize },
    Read { selector: u64, max_bytes: usize },
    Roll,
    Reopen { clean: bool },
    Retention,
    Truncate { selector: u64 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (1usize..5, 0usize..1500).prop_map(|(records, value_bytes)| Op::Append { records, value_bytes }),
        3 => (any::<u64>(), 1usize..6000).prop_map(|(selector, max_bytes)| Op::Read { selector, max_bytes }),
        1 => Just(Op::Roll),
        1 => any::<bool>().prop_map(|clean| Op::Reopen { clean }),
        1 => Just(Op::Retention),
        1 => any::<u64>().prop_map(|selector| Op::Truncate { selector }),
    ]
}

const SEGMENT_BYTES: u64 = 8192;
const RETENTION_BYTES: u64 = 16384;

fn config(policy: FlushPolicy) -> LogConfig {
    LogConfig {
        segment_bytes: SEGMENT_BYTES,
        batch_bytes_max: 8192,
        segment_ms: 1_000,
        index_interval_bytes: 300,
        retention_bytes: Some(RETENTION_BYTES),
        retention_ms: None,
        flush_policy: policy,
        ..LogConfig::default()
    }
}

/// The model: the stored bytes of every batch still in the log, and the log start offset.
struct Model {
    batches: Vec<(u64, u64, Vec<u8>)>,
    log_start_offset: u64,
    log_end_offset: u64,
}

impl Model {
    fn holding(&self, offset: u64) -> Option<usize> {
        self.batches
            .iter()
            .position(|(base, last, _)| *base <= offset && offset <= *last)
    }
}

async fn check_everything(log: &PartitionLog, model: &Model) {
    assert_eq!(log.log_end_offset(), model.log_end_offset);
    assert_eq!(log.log_start_offset(), model.log_start_offset);
    let read: Vec<Vec<u8>> = read_all(log, model.log_start_offset)
        .await
        .into_iter()
        .map(|(_, b)| b.to_vec())
        .collect();
    let expected: Vec<Vec<u8>> = model.batches.iter().map(|(_, _, b)| b.clone()).collect();
    assert_eq!(read, expected);
}

fn run_ops(ops: Vec<Op>, policy: FlushPolicy) {
    run(move || async move {
        let dir = tempdir();
        let now = Rc::new(Cell::new(10_000i64));
        let mut log = open(dir.path(), config(policy)).await.expect("open");
        let clock = now.clone();
        log.set_clock(move || clock.get());
        let mut model = Model {
            batches: Vec::new(),
            log_start_offset: 0,
            log_end_offset: 0,
        };
        for (step, op) in ops.into_iter().enumerate() {
            match op {
                Op::Append {
                    records,
                    value_bytes,
                } => {
                    let batch = batch(step as u64, records, value_bytes, now.get());
                    let info = log.append(batch.clone()).await.expect("append");
                    assert_eq!(info.base_offset, model.log_end_offset, "step {step}");
                    model.batches.push((
                        info.base_offset,
                        info.last_offset,
                        stored_form(&batch, info.base_offset),
                    ));
                    model.log_end_offset = info.last_offset + 1;
                }
                Op::Read {
                    selector,
                    max_bytes,
                } => {
                    let span = model.log_end_offset - model.log_start_offset + 1;
                    let offset = model.log_start_offset + selector % span;
                    let read = log.read(offset, max_bytes).await.expect("read in range");
                    let got: Vec<Vec<u8>> = headers(&read.batches)
                        .into_iter()
                        .map(|(_, b)| b.to_vec())
                        .collect();
                    match model.holding(offset) {
                        None => assert!(got.is_empty(), "step {step}: read at the end"),
                        Some(first) => {
                            assert!(!got.is_empty(), "step {step}: at least one batch");
                            assert_eq!(
                                got[..],
                                model.batches[first..first + got.len()]
                                    .iter()
                                    .map(|(_, _, b)| b.clone())
                                    .collect::<Vec<_>>()[..]
                            );
                            let total: usize = got.iter().map(Vec::len).sum();
                            assert!(
                                got.len() == 1 || total <= max_bytes,
                                "step {step}: max_bytes honoured"
                            );
                        }
                    }
                }
                Op::Roll => now.set(now.get() + 1_000),
                Op::Reopen { clean } => {
                    if clean {
                        log.close().await.expect("close");
                    } else {
                        log.sync().await.expect("sync");
                    }
                    drop(log);
                    log = open(dir.path(), config(policy)).await.expect("reopen");
                    let clock = now.clone();
                    log.set_clock(move || clock.get());
                    assert_eq!(
                        log.recovery_report().damage_cuts().count(),
                        0,
                        "nothing acknowledged is cut"
                    );
                    check_everything(&log, &model).await;
                }
                Op::Retention => {
                    let outcome = log.apply_retention(now.get()).await.expect("retention");
                    let start = outcome.log_start_offset;
                    assert!(start >= model.log_start_offset);
                    assert!(
                        start == model.log_end_offset
                            || model.batches.iter().any(|(base, _, _)| *base == start),
                        "step {step}: retention cuts on a batch boundary"
                    );
                    model.batches.retain(|(base, _, _)| *base >= start);
                    model.log_start_offset = start;
                    assert!(
                        log.size_bytes() < RETENTION_BYTES + SEGMENT_BYTES,
                        "step {step}"
                    );
                }
                Op::Truncate { selector } => {
                    let span = model.log_end_offset - model.log_start_offset + 1;
                    let offset = model.log_start_offset + selector % span;
                    let new_end = log.truncate_to(offset).await.expect("truncate");
                    let expected_end = match model.holding(offset) {
                        Some(index) => model.batches[index].0,
                        None => model.log_end_offset,
                    };
                    assert_eq!(new_end, expected_end, "step {step}");
                    model.batches.retain(|(base, _, _)| *base < expected_end);
                    model.log_end_offset = expected_end;
                }
            }
            assert_eq!(log.log_end_offset(), model.log_end_offset, "step {step}");
            assert_eq!(
                log.log_start_offset(),
                model.log_start_offset,
                "step {step}"
            );
        }
        check_everything(&log, &model).await;
        // Whatever the history, the headers on disk chain without gaps.
        for window in model.batches.windows(2) {
            let left = BatchHeader::parse(&window[0].2).expect("h");
            assert_eq!(left.next_offset(), window[1].0);
        }
        log.close().await.expect("final close");
    });
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn log_matches_model_under_always(ops in proptest::collection::vec(op(), 1..60)) {
        run_ops(ops, FlushPolicy::Always);
    }

    #[test]
    fn log_matches_model_under_never(ops in proptest::collection::vec(op(), 1..60)) {
        run_ops(ops, FlushPolicy::Never);
    }
}
