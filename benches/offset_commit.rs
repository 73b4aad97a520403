//! Coordinator cost: OffsetCommit requests per second that the broker sustains, and commit
//! latency, under the `always` flush policy (each commit answered after its fdatasync). Each
//! committer is one group committing 6 partitions in a loop, through the Rust SDK, all on one
//! pinned glommio executor so the client is cheap. A benchmark, not a test.
//!
//! `cargo bench --bench offset_commit`; environment:
//! - `OFFSET_BENCH_COMMITTERS` (default `1,16,64`), `OFFSET_BENCH_SECONDS` (5)
//! - `BROKER_BENCH_SHARDS` (2), `BROKER_BENCH_BINARY`, `BROKER_BENCH_DIR` (as broker_produce)

#[path = "support/broker_process.rs"]
mod broker_process;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use broker_process::{env_or, BrokerProcess};
use glommio::{LocalExecutorBuilder, Placement};
use hdrhistogram::Histogram;
use streambus::client::{
    Admin, ClientConfig, Consumer, ConsumerConfig, NewTopic, OffsetAndMetadata,
};

const TOPIC: &str = "offset-bench";
const PARTITIONS: i32 = 6;

fn main() {
    if !std::env::args().any(|arg| arg == "--bench") {
        return;
    }
    let committers: Vec<usize> = std::env::var("OFFSET_BENCH_COMMITTERS")
        .unwrap_or_else(|_| "1,16,64".into())
        .split(',')
        .filter_map(|count| count.trim().parse().ok())
        .collect();
    let seconds = env_or("OFFSET_BENCH_SECONDS", 5) as u64;
    let shards = env_or("BROKER_BENCH_SHARDS", 2);
    let broker = BrokerProcess::start(shards);
    let bootstrap = broker.bootstrap.clone();
    println!("offset_commit: {PARTITIONS} partitions per commit, flush always, {shards} shards, {seconds} s per point");
    for count in committers {
        let bootstrap = bootstrap.clone();
        let cpu_before = broker.cpu_seconds().unwrap_or(0.0);
        let (commits, histogram) = LocalExecutorBuilder::new(Placement::Unbound)
            .io_memory(4 << 20)
            .spawn(move || async move { run_point(&bootstrap, count, seconds).await })
            .expect("executor")
            .join()
            .expect("bench executor");
        let cpu = broker.cpu_seconds().unwrap_or(0.0) - cpu_before;
        let quantile = |q: f64| histogram.value_at_quantile(q) as f64 / 1000.0;
        println!(
            "  {count:>3} committers: {:>7.0} commits/s; latency p50 {:.2} ms p99 {:.2} ms p99.9 {:.2} ms max {:.2} ms; broker CPU {:.1} µs/commit",
            commits as f64 / seconds as f64,
            quantile(0.5),
            quantile(0.99),
            quantile(0.999),
            histogram.max() as f64 / 1000.0,
            cpu * 1e6 / commits.max(1) as f64,
        );
    }
    broker.stop();
}

async fn run_point(bootstrap: &str, count: usize, seconds: u64) -> (u64, Histogram<u64>) {
    let admin = Admin::new(ClientConfig::new(bootstrap));
    // Created once; later points find it there.
    let _ = admin
        .create_topics(&[NewTopic::new(TOPIC, PARTITIONS)])
        .await;
    let histogram = Rc::new(RefCell::new(
        Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram"),
    ));
    let commits = Rc::new(RefCell::new(0u64));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for committer in 0..count {
        let histogram = histogram.clone();
        let commits = commits.clone();
        let bootstrap = bootstrap.to_string();
        tasks.push(glommio::spawn_local(async move {
            let consumer = Consumer::new(
                ClientConfig::new(&bootstrap),
                ConsumerConfig {
                    group_id: Some(format!("bench-group-{committer}")),
                    ..ConsumerConfig::default()
                },
            );
            let mut offset = 0i64;
            while Instant::now() < deadline {
                let offsets: Vec<(&str, i32, OffsetAndMetadata)> = (0..PARTITIONS)
                    .map(|partition| {
                        (
                            TOPIC,
                            partition,
                            OffsetAndMetadata {
                                offset,
                                metadata: None,
                            },
                        )
                    })
                    .collect();
                let started = Instant::now();
                consumer.commit(&offsets).await.expect("commit");
                let micros = started.elapsed().as_micros() as u64;
                let _ = histogram.borrow_mut().record(micros.max(1));
                *commits.borrow_mut() += 1;
                offset += 1;
            }
        }));
    }
    for task in tasks {
        task.await;
    }
    let commits = *commits.borrow();
    let histogram = histogram.borrow().clone();
    (commits, histogram)
}
