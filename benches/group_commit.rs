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

use std::cell::RefCell;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use glommio::{LocalExecutorBuilder, Placement};
use hdrhistogram::Histogram;
use streambus::record::{Record, RecordBatch, RecordBatchBuilder};
use streambus::storage::{FlushPolicy, LogConfig, MemTableBudget, PartitionLog};

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
    appenders: usize,
    batch_bytes: usize,
    bytes_per_second: f64,
    appends_per_second: f64,
    fdatasyncs: u64,
    appends: u64,
    p50_us: u64,
    p99_us: u64,
    p999_us: u64,
}

async fn measure(
    root: PathBuf,
    appenders: usize,
    batch_bytes: usize,
    seconds: u64,
    write_buffer_bytes: usize,
) -> Point {
    let directory = root.join(format!("gc-{appenders}-{batch_bytes}"));
    let config = LogConfig {
        flush_policy: FlushPolicy::Always,
        segment_bytes: 256 << 20,
        retention_bytes: Some(768 << 20),
        write_buffer_bytes,
        ..LogConfig::default()
    };
    let log = PartitionLog::open(&directory, config, MemTableBudget::new(64 << 20))
        .await
        .expect("open");
    let template = template(batch_bytes);
    let histogram = Rc::new(RefCell::new(
        Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram"),
    ));
    // Warm up for half a second, then measure.
    for (phase, duration) in [
        ("warmup", Duration::from_millis(500)),
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
            let (p50_us, p99_us, p999_us) = {
                let histogram = histogram.borrow();
                (
                    histogram.value_at_quantile(0.50),
                    histogram.value_at_quantile(0.99),
                    histogram.value_at_quantile(0.999),
                )
            };
            let appends = after.appends - before.appends;
            log.close().await.expect("close");
            let _ = std::fs::remove_dir_all(&directory);
            return Point {
                appenders,
                batch_bytes: template.len(),
                bytes_per_second: (after.bytes_appended - before.bytes_appended) as f64 / elapsed,
                appends_per_second: appends as f64 / elapsed,
                fdatasyncs: after.fdatasyncs - before.fdatasyncs,
                appends,
                p50_us,
                p99_us,
                p999_us,
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
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let points = LocalExecutorBuilder::new(Placement::Fixed(cores - 1))
        .io_memory(64 << 20)
        .spawn(move || async move {
            let mut points = Vec::new();
            for &(appenders, batch_bytes) in &selected {
                for &write_buffer_bytes in &buffer_sizes {
                    let point = measure(
                        root.clone(),
                        appenders,
                        batch_bytes,
                        seconds,
                        write_buffer_bytes,
                    )
                    .await;
                    points.push((write_buffer_bytes, point));
                }
            }
            points
        })
        .expect("start executor (ulimit -l unlimited?)")
        .join()
        .expect("run");
    println!(
        "{:>9} {:>8} {:>9} {:>10} {:>11} {:>11} {:>12} {:>8} {:>8} {:>8}",
        "appenders",
        "batch_B",
        "chunk_B",
        "MiB/s",
        "appends/s",
        "fdatasyncs",
        "appends/sync",
        "p50_us",
        "p99_us",
        "p999_us"
    );
    for (write_buffer_bytes, point) in points {
        println!(
            "{:>9} {:>8} {:>9} {:>10.1} {:>11.0} {:>11} {:>12.1} {:>8} {:>8} {:>8}",
            point.appenders,
            point.batch_bytes,
            write_buffer_bytes,
            point.bytes_per_second / (1024.0 * 1024.0),
            point.appends_per_second,
            point.fdatasyncs,
            point.appends as f64 / point.fdatasyncs.max(1) as f64,
            point.p50_us,
            point.p99_us,
            point.p999_us
        );
    }
}
