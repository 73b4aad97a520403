//! Durable produce and fetch throughput of the real broker, driven by librdkafka (the `rdkafka`
//! crate): 1 KiB messages, 6 partitions, acks=all, flush policy `always`. A benchmark, not a
//! test: it prints figures and checks only that every message arrived.
//!
//! `cargo bench --bench broker_produce`; environment:
//! - `BROKER_BENCH_MESSAGES` (default 1,000,000), `BROKER_BENCH_MESSAGE_BYTES` (1024)
//! - `BROKER_BENCH_RUNS` (3; the median is reported), `BROKER_BENCH_SHARDS` (2)
//! - `BROKER_BENCH_DIR` (a data directory parent; default under the target directory)
//! - `BROKER_BENCH_BINARY` (another `streambus` binary to measure, e.g. an older build for a
//!   before/after comparison in one sitting)
//! - `BROKER_BENCH_IDEMPOTENCE`: `off` (default), `on` (`enable.idempotence=true`), or `both`:
//!   each run then produces once without and once with idempotence, alternating, and each
//!   setting gets its own median (the cost of idempotence, measured in one sitting)

#[path = "support/broker_process.rs"]
mod broker_process;

use std::time::{Duration, Instant};

use broker_process::{env_or, BrokerProcess};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::{ClientContext, Offset, TopicPartitionList};

const PARTITIONS: i32 = 6;

/// Counts delivery reports.
struct Deliveries {
    delivered: std::sync::atomic::AtomicUsize,
    failed: std::sync::atomic::AtomicUsize,
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        let counter = if result.is_ok() {
            &self.delivered
        } else {
            &self.failed
        };
        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}

struct Figures {
    produce_seconds: f64,
    fetch_seconds: f64,
}

fn run_once(
    bootstrap: &str,
    topic: &str,
    messages: usize,
    message_bytes: usize,
    idempotent: bool,
) -> Figures {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("admin");
    let created = futures_lite::future::block_on(admin.create_topics(
        [&NewTopic::new(
            topic,
            PARTITIONS,
            TopicReplication::Fixed(1),
        )],
        &AdminOptions::new(),
    ))
    .expect("create topic");
    created[0].as_ref().expect("topic created");
    let producer: BaseProducer<Deliveries> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("batch.size", "1000000")
        .set("queue.buffering.max.kbytes", "1048576")
        .set("queue.buffering.max.messages", "1000000")
        .set("compression.codec", "none")
        .set(
            "enable.idempotence",
            if idempotent { "true" } else { "false" },
        )
        .create_with_context(Deliveries {
            delivered: 0.into(),
            failed: 0.into(),
        })
        .expect("producer");
    let payload = vec![b'x'; message_bytes];
    let started = Instant::now();
    for index in 0..messages {
        let key = (index as u64).to_be_bytes();
        let mut record = BaseRecord::to(topic).key(&key[..]).payload(&payload[..]);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), returned)) => {
                    record = returned;
                    producer.poll(Duration::from_millis(1));
                }
                Err((error, _)) => panic!("produce: {error}"),
            }
        }
        producer.poll(Duration::ZERO);
    }
    producer.flush(Duration::from_secs(300)).expect("flush");
    let produce_seconds = started.elapsed().as_secs_f64();
    let context = producer.context();
    assert_eq!(context.failed.load(std::sync::atomic::Ordering::Relaxed), 0);
    assert_eq!(
        context.delivered.load(std::sync::atomic::Ordering::Relaxed),
        messages
    );
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "bench")
        .set("enable.auto.commit", "false")
        .set("fetch.max.bytes", "52428800")
        .set("max.partition.fetch.bytes", "10485760")
        .set("queued.max.messages.kbytes", "1048576")
        .create()
        .expect("consumer");
    let mut assignment = TopicPartitionList::new();
    for partition in 0..PARTITIONS {
        assignment
            .add_partition_offset(topic, partition, Offset::Beginning)
            .expect("assign");
    }
    consumer.assign(&assignment).expect("assign");
    let started = Instant::now();
    let mut received = 0;
    while received < messages {
        if let Some(message) = consumer.poll(Duration::from_millis(100)) {
            message.expect("consume");
            received += 1;
        }
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "fetch stalled"
        );
    }
    Figures {
        produce_seconds,
        fetch_seconds: started.elapsed().as_secs_f64(),
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() {
    // `cargo bench` passes `--bench`; a filter-only invocation (cargo test) skips the run.
    if !std::env::args().any(|arg| arg == "--bench") {
        return;
    }
    let messages = env_or("BROKER_BENCH_MESSAGES", 1_000_000);
    let message_bytes = env_or("BROKER_BENCH_MESSAGE_BYTES", 1024);
    let runs = env_or("BROKER_BENCH_RUNS", 3).max(1);
    let shards = env_or("BROKER_BENCH_SHARDS", 2);
    let broker = BrokerProcess::start(shards);
    let bootstrap = broker.bootstrap.clone();
    println!(
        "broker_produce: {messages} x {message_bytes} B, {PARTITIONS} partitions, acks=all, flush always, {shards} shards, {runs} runs"
    );
    let settings: &[bool] = match std::env::var("BROKER_BENCH_IDEMPOTENCE").as_deref() {
        Ok("on") => &[true],
        Ok("both") => &[false, true],
        _ => &[false],
    };
    let bytes = (messages * message_bytes) as f64;
    let mut produce: Vec<Vec<f64>> = vec![Vec::new(); settings.len()];
    let mut fetch: Vec<Vec<f64>> = vec![Vec::new(); settings.len()];
    for run in 0..runs {
        for (setting, &idempotent) in settings.iter().enumerate() {
            let topic = format!("bench-{run}-{setting}");
            let figures = run_once(&bootstrap, &topic, messages, message_bytes, idempotent);
            println!(
                "  run {run} (idempotence {}): produce {:.0} MB/s {:.0} msgs/s; fetch {:.0} MB/s {:.0} msgs/s",
                if idempotent { "on" } else { "off" },
                bytes / figures.produce_seconds / 1e6,
                messages as f64 / figures.produce_seconds,
                bytes / figures.fetch_seconds / 1e6,
                messages as f64 / figures.fetch_seconds,
            );
            produce[setting].push(figures.produce_seconds);
            fetch[setting].push(figures.fetch_seconds);
        }
    }
    for (setting, &idempotent) in settings.iter().enumerate() {
        let produce = median(produce[setting].clone());
        let fetch = median(fetch[setting].clone());
        println!(
            "median (idempotence {}): produce {:.0} MB/s ({:.0} msgs/s), fetch {:.0} MB/s ({:.0} msgs/s)",
            if idempotent { "on" } else { "off" },
            bytes / produce / 1e6,
            messages as f64 / produce,
            bytes / fetch / 1e6,
            messages as f64 / fetch
        );
    }
    let runs = runs * settings.len();
    // The broker's own CPU time over every run (produce and fetch): the cost per GB, which
    // stays comparable when the client, sharing the cores, is the bottleneck.
    if let Some(cpu_seconds) = broker.cpu_seconds() {
        let gigabytes = bytes * runs as f64 / 1e9;
        println!(
            "broker CPU: {cpu_seconds:.1} s for {gigabytes:.1} GB produced, each also fetched once ({:.2} s/GB)",
            cpu_seconds / gigabytes
        );
    }
    broker.stop();
}
