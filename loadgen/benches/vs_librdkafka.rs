//! StreamBus measured two ways in one sitting: with `streambus-loadgen` and with a librdkafka
//! producer (the `rdkafka` crate), same settings: 1 KiB messages, 6 partitions, acks=all,
//! linger 5 ms, 1 MiB batches, one producer. First as fast as possible, then open-loop at 50%
//! of the loadgen's maximum rate, both latencies counted from the intended send time.
//!
//! `ulimit -l unlimited; cargo bench -p streambus-loadgen --bench vs_librdkafka`
//! Environment: `VS_SECONDS` (default 5) per run.

use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::ClientContext;
use serde_json::Value;
use streambus::config::BrokerConfig;

const PARTITIONS: &str = "6";
const MESSAGE_BYTES: usize = 1024;

struct Figures {
    msgs_per_s: f64,
    mb_per_s: f64,
    p50_us: u64,
    p99_us: u64,
    p999_us: u64,
    max_us: u64,
}

fn loadgen(
    bootstrap: &str,
    topic: &str,
    seconds: u64,
    rate: u64,
    json: &std::path::Path,
) -> Figures {
    let output = Command::new(env!("CARGO_BIN_EXE_streambus-loadgen"))
        .args([
            "--bootstrap",
            bootstrap,
            "--topic",
            topic,
            "--partitions",
            PARTITIONS,
        ])
        .args([
            "--acks",
            "all",
            "--message-bytes",
            "1024",
            "--linger-ms",
            "5",
        ])
        .args([
            "--batch-bytes",
            "1048576",
            "--producers",
            "1",
            "--consumers",
            "0",
        ])
        .args([
            "--rate",
            &rate.to_string(),
            "--duration",
            &seconds.to_string(),
        ])
        .arg("--json")
        .arg(json)
        .output()
        .expect("run streambus-loadgen");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(json).expect("json")).expect("parse");
    let latency = &report["produce"]["latency_us"];
    Figures {
        msgs_per_s: report["produce"]["msgs_per_s"].as_f64().unwrap_or(0.0),
        mb_per_s: report["produce"]["mb_per_s"].as_f64().unwrap_or(0.0),
        p50_us: latency["p50"].as_u64().unwrap_or(0),
        p99_us: latency["p99"].as_u64().unwrap_or(0),
        p999_us: latency["p999"].as_u64().unwrap_or(0),
        max_us: latency["max"].as_u64().unwrap_or(0),
    }
}

/// Records each delivery's latency from its intended send time.
struct Latencies {
    histogram: Mutex<Histogram<u64>>,
    failed: std::sync::atomic::AtomicU64,
    origin: Instant,
}

impl ClientContext for Latencies {}

impl ProducerContext for Latencies {
    type DeliveryOpaque = Box<u64>;
    fn delivery(&self, result: &DeliveryResult<'_>, intended_ns: Box<u64>) {
        if result.is_err() {
            self.failed
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return;
        }
        let now_ns = self.origin.elapsed().as_nanos() as u64;
        let micros = (now_ns.saturating_sub(*intended_ns) / 1000).max(1);
        if let Ok(mut histogram) = self.histogram.lock() {
            let _ = histogram.record(micros);
        }
    }
}

fn librdkafka(bootstrap: &str, topic: &str, seconds: u64, rate: u64) -> Figures {
    let context = Latencies {
        histogram: Mutex::new(Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("histogram")),
        failed: 0.into(),
        origin: Instant::now(),
    };
    let producer: BaseProducer<Latencies> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("batch.size", "1048576")
        .set("queue.buffering.max.kbytes", "65536")
        .create_with_context(context)
        .expect("producer");
    let payload = vec![b'x'; MESSAGE_BYTES];
    let origin = producer.context().origin;
    let start = Instant::now();
    let end = start + Duration::from_secs(seconds);
    let interval = (rate > 0).then(|| Duration::from_secs_f64(1.0 / rate as f64));
    let mut next = start;
    let mut sent = 0u64;
    loop {
        let intended = match interval {
            Some(interval) => {
                if next >= end {
                    break;
                }
                // Serve delivery reports while waiting, so their times are read promptly.
                while Instant::now() < next {
                    producer.poll(next.saturating_duration_since(Instant::now()));
                }
                let intended = next;
                next += interval;
                intended
            }
            None => {
                let now = Instant::now();
                if now >= end {
                    break;
                }
                now
            }
        };
        let mut opaque = Box::new(intended.duration_since(origin).as_nanos() as u64);
        loop {
            let record = BaseRecord::with_opaque_to(topic, opaque).payload(&payload[..]);
            match producer.send::<(), _>(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), record)) => {
                    opaque = record.delivery_opaque;
                    producer.poll(Duration::from_millis(1));
                }
                Err((error, _)) => panic!("produce: {error}"),
            }
        }
        sent += 1;
        producer.poll(Duration::ZERO);
    }
    producer.flush(Duration::from_secs(60)).expect("flush");
    let elapsed = start.elapsed().as_secs_f64();
    let histogram = producer
        .context()
        .histogram
        .lock()
        .expect("histogram")
        .clone();
    assert_eq!(
        producer
            .context()
            .failed
            .load(std::sync::atomic::Ordering::Relaxed),
        0
    );
    Figures {
        msgs_per_s: sent as f64 / elapsed,
        mb_per_s: (sent as usize * MESSAGE_BYTES) as f64 / 1e6 / elapsed,
        p50_us: histogram.value_at_quantile(0.5),
        p99_us: histogram.value_at_quantile(0.99),
        p999_us: histogram.value_at_quantile(0.999),
        max_us: histogram.max(),
    }
}

fn row(scenario: &str, client: &str, figures: &Figures) {
    println!(
        "| {scenario} | {client} | {:.0} | {:.0} | {} | {} | {} | {} |",
        figures.mb_per_s,
        figures.msgs_per_s,
        figures.p50_us,
        figures.p99_us,
        figures.p999_us,
        figures.max_us
    );
}

fn main() {
    if !std::env::args().any(|arg| arg == "--bench") {
        return;
    }
    let seconds: u64 = std::env::var("VS_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let directory = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("directory");
    let broker = streambus::broker::start(BrokerConfig {
        data_dir: directory.path().join("data"),
        listen: "127.0.0.1:0".parse().expect("address"),
        shards: 2,
        ..BrokerConfig::default()
    })
    .expect("broker");
    let bootstrap = broker.bootstrap.to_string();
    let json = directory.path().join("run.json");
    let loadgen_max = loadgen(&bootstrap, "vs-loadgen-max", seconds, 0, &json);
    let librdkafka_max = librdkafka(&bootstrap, "vs-loadgen-max", seconds, 0);
    let half = (loadgen_max.msgs_per_s / 2.0) as u64;
    let loadgen_half = loadgen(&bootstrap, "vs-loadgen-half", seconds, half, &json);
    let librdkafka_half = librdkafka(&bootstrap, "vs-loadgen-half", seconds, half);
    println!("| scenario | client | MB/s | msgs/s | p50 µs | p99 µs | p99.9 µs | max µs |");
    println!("| --- | --- | --- | --- | --- | --- | --- | --- |");
    row("max rate", "streambus-loadgen", &loadgen_max);
    row("max rate", "librdkafka", &librdkafka_max);
    row(
        &format!("{half} msgs/s (50%)"),
        "streambus-loadgen",
        &loadgen_half,
    );
    row(
        &format!("{half} msgs/s (50%)"),
        "librdkafka",
        &librdkafka_half,
    );
    broker.stop();
    broker.join().expect("broker stops");
}
