//! Durable append throughput under `flush_policy = always`: the group-commit curve.
//!
//! `cargo bench --bench group_commit` (with `ulimit -l unlimited`). For 1, 8 and 64 concurrent
//! appenders and 1 KiB and 16 KiB batches, each appender appends in a loop for a few seconds;
//! every append completes only once an fdatasync covers it. Prints bytes and appends per second,
//! fdatasyncs and appends per fdatasync, and append latency percentiles (HdrHistogram).
//! Each append builds its batch from a template first (the copy a network read would make and
//! the CRC check every append does), on the same core, as in the broker.
//!
//! `GROUP_COMMIT_SECONDS` sets the run length per point (default 3).
//!
//! As in the broker, retention runs at every roll (`retention_on_roll`): segments past
//! `retention_bytes` are deleted and, with `recycled_segments_max` > 0, their files are reused
//! by new segments. `GROUP_COMMIT_RECYCLED_MAX=0` measures new segment files only.

use std::cell::RefCell;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use glommio::{LocalExecutorBuilder, Placement};
use hdrhistogram::Histogram;
use streambus::record::{Record, RecordBatch, RecordBatchBuilder};
use streambus::storage::{FlushPolicy, LogConfig, MemTableBudget, PartitionLog};

/// Warm-up before measuring: long enough to write past `retention_bytes` once, so that the
/// measurement sees the steady state (segments deleted and their files reused).
const WARMUP_MS: u64 = 1500;

fn template(batch_bytes: usize) -> RecordBatch {
    let records = (batch_bytes / 1024).max(1);
    let value = vec![0x5au8; batch_bytes / records - 24];
    let mut builder = RecordBatchBuilder::with_capacity(batch_bytes);
    for index in 0..records {
        builder.push(Record {
            key: Some(&(index as u64).to_be_bytes()),
            value: Some(&value),
            headers: &[],
            timestamp_ms: 1_700_000_000_000,
        });
    }
    builder.build()
}

struct Point {
    shards: usize,
    appenders: usize,
    batch_bytes: usize,
    bytes_per_second: f64,
    appends_per_second: f64,
    fdatasyncs: u64,
    appends: u64,
    rolls: u64,
    segments_recycled: u64,
    /// Per flush cycle: microseconds in total, waiting for writes, waiting for fdatasync.
    cycle_us: f64,
    write_wait_us: f64,
    fdatasync_wait_us: f64,
    p50_us: u64,
    p99_us: u64,
    p999_us: u64,
}

/// One shard's share of a point: its counters and its latency histogram.
struct ShardRun {
    bytes: u64,
    appends: u64,
    fdatasyncs: u64,
    segments_recycled: u64,
    rolls: u64,
    flush_cycles: u64,
    write_wait_us: u64,
    fdatasync_wait_us: u64,
    seconds: f64,
    histogram: Histogram<u64>,
    batch_bytes: usize,
}

/// What one shard runs for one point of the curve.
#[derive(Clone, Copy)]
struct ShardSettings {
    shard: usize,
    appenders: usize,
    batch_bytes: usize,
    seconds: u64,
    write_buffer_bytes: usize,
    recycled_segments_max: usize,
}

async fn measure(root: PathBuf, settings: ShardSettings, start_together: Arc<Barrier>) -> ShardRun {
    let ShardSettings {
        shard,
        appenders,
        batch_bytes,
        seconds,
        write_buffer_bytes,
        recycled_segments_max,
    } = settings;
    let directory = root.join(format!("gc-{shard}-{appenders}-{batch_bytes}"));
    let config = LogConfig {
        flush_policy: FlushPolicy::Always,
        segment_bytes: 256 << 20,
        retention_bytes: Some(768 << 20),
        write_buffer_bytes,
        recycled_segments_max,
        retention_on_roll: true,
        ..LogConfig::default()
    };
    let log = PartitionLog::open(&directory, config, MemTableBudget::new(64 << 20))
        .await
        .expect("open");
    let template = template(batch_bytes);
    let histogram = Rc::new(RefCell::new(
        Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram"),
    ));
    start_together.wait();
    // Warm up for half a second, then measure.
    for (phase, duration) in [
        ("warmup", Duration::from_millis(WARMUP_MS)),
        ("measure", Duration::from_secs(seconds)),
    ] {
        histogram.borrow_mut().reset();
        let before = log.stats();
        let started = Instant::now();
        let deadline = started + duration;
        let mut tasks = Vec::new();
        for _ in 0..appenders {
            let log = log.clone();
            let template = template.clone();
            let histogram = histogram.clone();
            tasks.push(glommio::spawn_local(async move {
                // Bounded by the deadline.
                while Instant::now() < deadline {
                    let batch = RecordBatch::parse(BytesMut::from(template.as_bytes()))
                        .expect("valid batch");
                    let sent = Instant::now();
                    log.append(batch).await.expect("append");
                    let micros = sent.elapsed().as_micros() as u64;
                    let _ = histogram.borrow_mut().record(micros.max(1));
                }
            }));
        }
        for task in tasks {
            task.await;
        }
        let elapsed = started.elapsed().as_secs_f64();
        let after = log.stats();
        log.apply_retention(i64::MAX).await.expect("retention");
        if phase == "measure" {
            let histogram = histogram.borrow().clone();
            log.close().await.expect("close");
            let _ = std::fs::remove_dir_all(&directory);
            return ShardRun {
                bytes: after.bytes_appended - before.bytes_appended,
                appends: after.appends - before.appends,
                fdatasyncs: after.fdatasyncs - before.fdatasyncs,
                segments_recycled: after.segments_recycled - before.segments_recycled,
                flush_cycles: after.flush_cycles - before.flush_cycles,
                write_wait_us: after.write_wait_us - before.write_wait_us,
                fdatasync_wait_us: after.fdatasync_wait_us - before.fdatasync_wait_us,
                rolls: after.rolls - before.rolls,
                seconds: elapsed,
                histogram,
                batch_bytes: template.len(),
            };
        }
    }
    unreachable!("the measure phase returns")
}

fn main() {
    let seconds: u64 = std::env::var("GROUP_COMMIT_SECONDS")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(3);
    // `cargo bench` passes `--bench`; nothing else is accepted.
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench-data");
    let _ = std::fs::create_dir_all(&root);
    // `GROUP_COMMIT_POINTS=64x16384,8x1024` picks points; the default is the whole curve.
    let selected: Vec<(usize, usize)> = match std::env::var("GROUP_COMMIT_POINTS") {
        Ok(list) => list
            .split(',')
            .filter_map(|point| {
                let (appenders, bytes) = point.split_once('x')?;
                Some((appenders.parse().ok()?, bytes.parse().ok()?))
            })
            .collect(),
        Err(_) => [1024usize, 16 * 1024]
            .iter()
            .flat_map(|&bytes| [1usize, 8, 64].map(|appenders| (appenders, bytes)))
            .collect(),
    };
    // `GROUP_COMMIT_BUFFERS=262144,1048576` compares staging chunk sizes in one run.
    let buffer_sizes: Vec<usize> = std::env::var("GROUP_COMMIT_BUFFERS")
        .ok()
        .map(|list| {
            list.split(',')
                .filter_map(|size| size.parse().ok())
                .collect()
        })
        .unwrap_or_else(|| vec![streambus::storage::WRITE_BUFFER_BYTES_DEFAULT]);
    // `GROUP_COMMIT_SHARDS=2` runs one shard (executor, pinned core, partition log) per core,
    // with the appenders split evenly, as a broker would.
    let shards: usize = std::env::var("GROUP_COMMIT_SHARDS")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(1);
    // `GROUP_COMMIT_IDLE_POLL_US` polls for completions that long before sleeping, as the
    // broker's `idle_poll_us` does.
    let idle_poll_us: u64 = std::env::var("GROUP_COMMIT_IDLE_POLL_US")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(streambus::config::IDLE_POLL_US_DEFAULT);
    let recycled_segments_max: usize = std::env::var("GROUP_COMMIT_RECYCLED_MAX")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(streambus::storage::RECYCLED_SEGMENTS_MAX_DEFAULT);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut points = Vec::new();
    for &(appenders, batch_bytes) in &selected {
        for &write_buffer_bytes in &buffer_sizes {
            let start_together = Arc::new(Barrier::new(shards));
            let handles: Vec<_> = (0..shards)
                .map(|shard| {
                    let root = root.clone();
                    let start_together = start_together.clone();
                    let core = if shards == 1 {
                        cores - 1
                    } else {
                        shard % cores
                    };
                    LocalExecutorBuilder::new(Placement::Fixed(core))
                        .spin_before_park(Duration::from_micros(idle_poll_us))
                        .io_memory(64 << 20)
                        .spawn(move || async move {
                            let settings = ShardSettings {
                                shard,
                                appenders: (appenders / shards).max(1),
                                batch_bytes,
                                seconds,
                                write_buffer_bytes,
                                recycled_segments_max,
                            };
                            measure(root, settings, start_together).await
                        })
                        .expect("start executor (ulimit -l unlimited?)")
                })
                .collect();
            let runs: Vec<ShardRun> = handles
                .into_iter()
                .map(|handle| handle.join().expect("shard run"))
                .collect();
            let mut histogram = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("h");
            for run in &runs {
                histogram.add(&run.histogram).expect("merge histograms");
            }
            let seconds = runs.iter().map(|run| run.seconds).fold(0.0, f64::max);
            let appends: u64 = runs.iter().map(|run| run.appends).sum();
            let cycles = runs.iter().map(|run| run.flush_cycles).sum::<u64>().max(1);
            points.push((
                write_buffer_bytes,
                Point {
                    shards,
                    appenders,
                    batch_bytes: runs.first().map_or(0, |run| run.batch_bytes),
                    bytes_per_second: runs.iter().map(|run| run.bytes).sum::<u64>() as f64
                        / seconds,
                    appends_per_second: appends as f64 / seconds,
                    fdatasyncs: runs.iter().map(|run| run.fdatasyncs).sum(),
                    appends,
                    rolls: runs.iter().map(|run| run.rolls).sum(),
                    segments_recycled: runs.iter().map(|run| run.segments_recycled).sum(),
                    cycle_us: seconds * 1e6 * shards as f64 / cycles as f64,
                    write_wait_us: runs.iter().map(|run| run.write_wait_us).sum::<u64>() as f64
                        / cycles as f64,
                    fdatasync_wait_us: runs.iter().map(|run| run.fdatasync_wait_us).sum::<u64>()
                        as f64
                        / cycles as f64,
                    p50_us: histogram.value_at_quantile(0.50),
                    p99_us: histogram.value_at_quantile(0.99),
                    p999_us: histogram.value_at_quantile(0.999),
                },
            ));
        }
    }
    println!(
        "{:>6} {:>9} {:>8} {:>9} {:>10} {:>11} {:>11} {:>12} {:>8} {:>8} {:>8} {:>15} {:>22}",
        "shards",
        "appenders",
        "batch_B",
        "chunk_B",
        "MiB/s",
        "appends/s",
        "fdatasyncs",
        "appends/sync",
        "p50_us",
        "p99_us",
        "p999_us",
        "rolls/recycled",
        "cycle/write/sync_us"
    );
    for (write_buffer_bytes, point) in points {
        println!(
            "{:>6} {:>9} {:>8} {:>9} {:>10.1} {:>11.0} {:>11} {:>12.1} {:>8} {:>8} {:>8} {:>15} {:>22}",
            point.shards,
            point.appenders,
            point.batch_bytes,
            write_buffer_bytes,
            point.bytes_per_second / (1024.0 * 1024.0),
            point.appends_per_second,
            point.fdatasyncs,
            point.appends as f64 / point.fdatasyncs.max(1) as f64,
            point.p50_us,
            point.p99_us,
            point.p999_us,
            format!("{}/{}", point.rolls, point.segments_recycled),
            format!(
                "{:.0}/{:.0}/{:.0}",
                point.cycle_us, point.write_wait_us, point.fdatasync_wait_us
            )
        );
    }
}
