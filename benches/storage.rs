//! Storage micro-benchmarks: `cargo bench --bench storage` (with `ulimit -l unlimited`).
//!
//! Synchronous pieces (index, MemTable, batch validation) run on criterion's thread. The log
//! benches run on one long-lived glommio executor pinned to the last core; criterion's thread
//! sends it a job per sample and the job times itself, so cross-thread hand-off is not measured
//! and the executor's I/O arena stays warm between samples, as it would in the broker.

use std::cell::RefCell;
use std::future::Future;
use std::hint::black_box;
use std::path::PathBuf;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use glommio::{LocalExecutorBuilder, Placement};
use streambus::record::{Record, RecordBatch, RecordBatchBuilder};
use streambus::storage::{
    FlushPolicy, IndexEntry, LogConfig, LogRead, MemTable, MemTableBudget, OffsetIndex,
    PartitionLog,
};

// ---------------------------------------------------------------------------------------------
// A glommio executor thread that runs timed jobs.

type Job = Box<dyn FnOnce() -> Pin<Box<dyn Future<Output = ()>>> + Send>;

struct Shard {
    jobs: mpsc::Sender<Job>,
}

impl Shard {
    fn start() -> Self {
        let (jobs, receiver) = mpsc::channel::<Job>();
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        LocalExecutorBuilder::new(Placement::Fixed(cores - 1))
            .io_memory(64 << 20)
            .name("bench-shard")
            .spawn(move || async move {
                loop {
                    match receiver.try_recv() {
                        Ok(job) => job().await,
                        Err(mpsc::TryRecvError::Empty) => {
                            glommio::timer::sleep(Duration::from_micros(200)).await
                        }
                        Err(mpsc::TryRecvError::Disconnected) => break,
                    }
                }
            })
            .expect("start bench executor (ulimit -l unlimited?)");
        Self { jobs }
    }

    /// Runs `job` on the shard and returns its result.
    fn run<R, F, Fut>(&self, job: F) -> R
    where
        R: Send + 'static,
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = R> + 'static,
    {
        let (done, result) = mpsc::channel();
        let boxed: Job = Box::new(move || {
            Box::pin(async move {
                let _ = done.send(job().await);
            })
        });
        self.jobs.send(boxed).expect("shard alive");
        result.recv().expect("shard answered")
    }
}

thread_local! {
    /// Logs that live across samples on the shard thread.
    static LOGS: RefCell<Vec<(String, PartitionLog)>> = const { RefCell::new(Vec::new()) };
}

fn stored_log(name: &str) -> PartitionLog {
    LOGS.with(|logs| {
        logs.borrow()
            .iter()
            .find(|(known, _)| known == name)
            .map(|(_, log)| log.clone())
            .expect("log opened by setup")
    })
}

fn bench_root() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench-data");
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).expect("bench dir");
    root
}

fn record_batch(records: usize, value_bytes: usize) -> RecordBatch {
    let value = vec![0xabu8; value_bytes];
    let mut builder = RecordBatchBuilder::with_capacity(records * (value_bytes + 16));
    for index in 0..records {
        let key = (index as u64).to_be_bytes();
        builder.push(Record {
            key: Some(&key),
            value: Some(&value),
            headers: &[],
            timestamp_ms: 1_700_000_000_000 + index as i64,
        });
    }
    builder.build()
}

/// `count` copies of a batch, made before the clock starts (in the broker each batch arrives
/// in its own request buffer).
fn copies(template: &RecordBatch, count: usize) -> Vec<RecordBatch> {
    (0..count)
        .map(|_| RecordBatch::parse(BytesMut::from(template.as_bytes())).expect("valid"))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Synchronous pieces.

fn index_benches(c: &mut Criterion) {
    let mut group = c.benchmark_group("index");
    // A full 1 GiB segment at the default 4 KiB interval: 262,144 entries.
    for entries in [1_000u32, 262_144] {
        // One entry per 4 KiB of batches; the records each 4 KiB holds vary (2 to 6), as batch
        // sizes do.
        let mut index = OffsetIndex::default();
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut relative_offset = 0u32;
        for entry in 0..entries {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            relative_offset += 2 + (state % 5) as u32;
            index.push(IndexEntry {
                relative_offset,
                position: entry * 4096,
            });
        }
        let targets: Vec<u32> = (0..4096)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state % u64::from(relative_offset)) as u32
            })
            .collect();
        group.bench_function(format!("lookup/{entries}_entries"), |b| {
            let mut at = 0usize;
            b.iter(|| {
                at = (at + 1) & 4095;
                black_box(index.lookup(black_box(targets[at])))
            })
        });
    }
    group.bench_function("add", |b| {
        b.iter_batched_ref(
            || {
                let mut index = OffsetIndex::default();
                // Warm the capacity, then start empty: steady-state pushes, not growth.
                for entry in 0..10_000u32 {
                    index.push(IndexEntry {
                        relative_offset: entry + 1,
                        position: entry + 1,
                    });
                }
                index.truncate_to_position(0);
                (index, 0u32)
            },
            |(index, next)| {
                *next += 1;
                index.push(IndexEntry {
                    relative_offset: *next,
                    position: *next * 4096,
                });
            },
            BatchSize::NumIterations(10_000),
        )
    });
    group.finish();
}

fn memtable_benches(c: &mut Criterion) {
    let mut group = c.benchmark_group("memtable");
    let batch = {
        let mut batch = record_batch(1, 1024);
        batch.set_base_offset(0);
        batch.into_bytes()
    };
    group.bench_function("put_1KiB", |b| {
        // Steady state: the budget (10,000 batches) is full, so each put also evicts the
        // oldest batch.
        let budget = MemTableBudget::new(10_000 * batch.len());
        let table = MemTable::new(budget);
        table.set_evictable_below(u64::MAX);
        let mut offset = 0u64;
        b.iter(|| {
            offset += 1;
            table.insert(offset, batch.clone());
        })
    });
    let budget = MemTableBudget::new(1 << 30);
    let table = MemTable::new(budget);
    let entries = 10_000u64;
    for offset in 0..entries {
        let mut one = RecordBatch::from_bytes(batch.clone()).expect("valid");
        one.set_base_offset(offset);
        table.insert(offset, one.into_bytes());
    }
    group.bench_function("get_1KiB", |b| {
        let mut out: Vec<Bytes> = Vec::with_capacity(4);
        let mut offset = 0u64;
        b.iter(|| {
            offset = (offset + 7919) % entries;
            out.clear();
            black_box(table.read(offset, entries, 1, &mut out))
        })
    });
    group.throughput(Throughput::Elements(entries));
    group.bench_function("iterate_10k", |b| {
        b.iter(|| {
            let mut total = 0usize;
            table.for_each_batch(|_, bytes| total += bytes.len());
            black_box(total)
        })
    });
    group.finish();

    // The alternative the MemTable replaced, measured the same way, so the choice can be
    // rechecked on any machine.
    let mut group = c.benchmark_group("memtable_crossbeam_skiplist");
    group.bench_function("put_1KiB", |b| {
        let map = crossbeam_skiplist::SkipMap::new();
        for offset in 0..entries {
            map.insert(offset, batch.clone());
        }
        let mut offset = entries;
        b.iter(|| {
            map.insert(offset, batch.clone());
            map.remove(&(offset - entries));
            offset += 1;
        })
    });
    let map = crossbeam_skiplist::SkipMap::new();
    for offset in 0..entries {
        map.insert(offset, batch.clone());
    }
    group.bench_function("get_1KiB", |b| {
        let mut out: Vec<Bytes> = Vec::with_capacity(4);
        let mut offset = 0u64;
        b.iter(|| {
            offset = (offset + 7919) % entries;
            out.clear();
            if let Some(entry) = map.upper_bound(std::ops::Bound::Included(&offset)) {
                out.push(entry.value().clone());
            }
            black_box(out.len())
        })
    });
    group.finish();

    let mut group = c.benchmark_group("record_batch");
    let template = record_batch(1, 1024);
    group.throughput(Throughput::Bytes(template.len() as u64));
    group.bench_function("validate_1KiB", |b| {
        let bytes = template.as_bytes();
        b.iter(|| {
            black_box(streambus::record::BatchHeader::parse_verified(black_box(
                bytes,
            )))
        })
    });
    group.finish();
}

// ---------------------------------------------------------------------------------------------
// The log, on the glommio shard.

fn open_log(shard: &Shard, name: &'static str, config: LogConfig, budget_bytes: usize) {
    let directory = bench_root().join(name);
    shard.run(move || async move {
        let log = PartitionLog::open(&directory, config, MemTableBudget::new(budget_bytes))
            .await
            .expect("open bench log");
        LOGS.with(|logs| logs.borrow_mut().push((name.to_string(), log)));
    });
}

/// Times `iters` appends of `template` on log `name`, in chunks that fit in staging. With
/// `include_writes` the flusher's writes of each chunk are inside the timing (sustained
/// throughput); without, the writes happen between timed chunks (the append path's CPU cost).
fn time_appends(
    shard: &Shard,
    name: &'static str,
    template: &RecordBatch,
    iters: u64,
    include_writes: bool,
) -> Duration {
    const CHUNK: u64 = 2048;
    let template = template.clone();
    shard.run(move || async move {
        let log = stored_log(name);
        let mut elapsed = Duration::ZERO;
        let mut remaining = iters;
        while remaining > 0 {
            let count = remaining.min(CHUNK);
            remaining -= count;
            let batches = copies(&template, count as usize);
            let started = Instant::now();
            for batch in batches {
                black_box(log.append_staged(batch).await.expect("append"));
            }
            if include_writes {
                log.sync().await.expect("sync");
                elapsed += started.elapsed();
            } else {
                elapsed += started.elapsed();
                log.sync().await.expect("sync");
            }
            log.apply_retention(i64::MAX).await.expect("retention");
        }
        elapsed
    })
}

fn log_benches(c: &mut Criterion) {
    let shard = Shard::start();
    let never = LogConfig {
        flush_policy: FlushPolicy::Never,
        segment_bytes: 256 << 20,
        retention_bytes: Some(512 << 20),
        ..LogConfig::default()
    };
    open_log(&shard, "append", never.clone(), 64 << 20);

    let mut group = c.benchmark_group("log");
    group.measurement_time(Duration::from_secs(4));
    let one_kib = record_batch(1, 1024);
    let hundred = record_batch(100, 100);
    group.throughput(Throughput::Bytes(one_kib.len() as u64));
    group.bench_function("append_1KiB_batch", |b| {
        b.iter_custom(|iters| time_appends(&shard, "append", &one_kib, iters, false))
    });
    group.throughput(Throughput::Bytes(hundred.len() as u64));
    group.bench_function("append_100_record_batch", |b| {
        b.iter_custom(|iters| time_appends(&shard, "append", &hundred, iters, false))
    });
    group.throughput(Throughput::Bytes(one_kib.len() as u64));
    group.bench_function("segment_append_1KiB_written_no_sync", |b| {
        b.iter_custom(|iters| time_appends(&shard, "append", &one_kib, iters, true))
    });

    // Reads: 20,000 1 KiB batches; the hot log keeps them all in its MemTable, the cold one
    // keeps none (budget 0: each batch is evicted once written).
    for (name, budget_bytes) in [("read_hot", 256usize << 20), ("read_cold", 0usize)] {
        open_log(&shard, name, never.clone(), budget_bytes);
        let template = one_kib.clone();
        shard.run(move || async move {
            let log = stored_log(name);
            for batch in copies(&template, 20_000) {
                log.append_staged(batch).await.expect("append");
            }
            log.sync().await.expect("sync");
        });
    }
    for (name, label, max_bytes) in [
        ("read_hot", "read_hot_1KiB", 1usize),
        ("read_cold", "read_cold_1KiB", 1),
        ("read_cold", "segment_read_64KiB", 64 << 10),
    ] {
        group.throughput(Throughput::Bytes(max_bytes.max(one_kib.len()) as u64));
        group.bench_function(label, |b| {
            b.iter_custom(|iters| {
                shard.run(move || async move {
                    let log = stored_log(name);
                    let mut result = LogRead::default();
                    let mut offset = 0u64;
                    let started = Instant::now();
                    for _ in 0..iters {
                        offset = (offset + 7919) % 19_000;
                        log.read_into(offset, max_bytes, &mut result)
                            .await
                            .expect("read");
                        black_box(result.bytes);
                    }
                    started.elapsed()
                })
            })
        });
    }
    group.finish();

    // Durable appends: one appender, and 64 concurrent appenders sharing fdatasyncs.
    let mut group = c.benchmark_group("log_durable");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(5));
    let always = LogConfig {
        flush_policy: FlushPolicy::Always,
        segment_bytes: 256 << 20,
        retention_bytes: Some(512 << 20),
        ..LogConfig::default()
    };
    open_log(&shard, "durable", always, 64 << 20);
    for (appenders, template) in [
        (1usize, record_batch(1, 1024)),
        (64, record_batch(16, 1024)),
    ] {
        group.throughput(Throughput::Bytes(template.len() as u64));
        group.bench_function(
            format!("append_fdatasync_{appenders}_appenders_{}B", template.len()),
            |b| {
                b.iter_custom(|iters| {
                    let template = template.clone();
                    shard.run(move || async move {
                        let log = stored_log("durable");
                        let per_appender = (iters as usize).div_ceil(appenders);
                        let mut work = Vec::new();
                        for _ in 0..appenders {
                            work.push(copies(&template, per_appender));
                        }
                        let started = Instant::now();
                        let tasks: Vec<_> = work
                            .into_iter()
                            .map(|batches| {
                                let log = log.clone();
                                glommio::spawn_local(async move {
                                    for batch in batches {
                                        log.append(batch).await.expect("append");
                                    }
                                })
                            })
                            .collect();
                        for task in tasks {
                            task.await;
                        }
                        let elapsed = started.elapsed();
                        log.apply_retention(i64::MAX).await.expect("retention");
                        // Report per batch appended, whatever rounding added.
                        elapsed.mul_f64(iters as f64 / (per_appender * appenders) as f64)
                    })
                })
            },
        );
    }
    group.finish();
    let stats = shard.run(|| async { stored_log("durable").stats() });
    println!(
        "log_durable totals: {} appends, {} fdatasyncs ({:.1} appends per fdatasync)",
        stats.appends,
        stats.fdatasyncs,
        stats.appends as f64 / stats.fdatasyncs.max(1) as f64
    );
    let _keep: Rc<()> = Rc::new(());
}

criterion_group!(benches, index_benches, memtable_benches, log_benches);
criterion_main!(benches);
