//! Idempotent producers (KIP-98) against the real broker: InitProducerId, retries answered
//! from the log, gaps and stale epochs refused, and the producer state rebuilt after a clean
//! stop, a SIGKILL and segment rolls; then librdkafka with `enable.idempotence=true`, also
//! across a broker SIGKILL.

mod broker_support;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use broker_support::{
    create_topic, free_port_run, stored_batches, tempdir, topic_name, Broker, RawConnection,
};
use bytes::Bytes;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use rdkafka::config::ClientConfig as RdConfig;
use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer as _, ProducerContext};
use rdkafka::ClientContext;
use rdkafka::{Message, Offset, TopicPartitionList};
use streambus::record::{Record, RecordBatchBuilder};

const TOPIC: &str = "idempotent";
const PRODUCE_VERSION: i16 = 9;
const INIT_PRODUCER_ID_VERSION: i16 = 4;

/// A batch of `records` records from `producer_id` at `epoch`, starting at `sequence`.
fn batch(producer_id: i64, epoch: i16, sequence: i32, records: usize) -> Bytes {
    let mut builder =
        RecordBatchBuilder::with_capacity(1024).producer(producer_id, epoch, sequence);
    let value = vec![b'v'; 200];
    for _ in 0..records {
        builder.push(Record {
            key: None,
            value: Some(&value),
            headers: &[],
            // Now: an old timestamp would put the segments out of retention.
            timestamp_ms: streambus::storage::system_clock_ms(),
        });
    }
    builder.build().into_bytes()
}

/// Produces `records` to partition 0 with acks=-1: (error code, base offset).
fn produce(connection: &mut RawConnection, records: Bytes) -> (i16, i64) {
    let request = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(topic_name(TOPIC))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(records))])]);
    let response: ProduceResponse = connection.call(ApiKey::Produce, PRODUCE_VERSION, &request);
    let partition = &response.responses[0].partition_responses[0];
    (partition.error_code, partition.base_offset)
}

fn init_producer_id(connection: &mut RawConnection, transactional_id: Option<&str>) -> (i16, i64) {
    let request = InitProducerIdRequest::default()
        .with_transactional_id(
            transactional_id.map(|id| TransactionalId(StrBytes::from_string(id.into()))),
        )
        .with_transaction_timeout_ms(60_000)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    let response: InitProducerIdResponse =
        connection.call(ApiKey::InitProducerId, INIT_PRODUCER_ID_VERSION, &request);
    (response.error_code, response.producer_id.0)
}

fn code(error: ResponseError) -> i16 {
    error.code()
}

#[test]
fn retries_are_answered_from_the_log_and_gaps_and_stale_epochs_are_refused() {
    let directory = tempdir();
    let broker = Broker::start(&directory.path().join("data"), 1, &[]);
    let mut connection = RawConnection::connect(broker.shard_address(0));
    create_topic(&mut connection, TOPIC, 1);

    let (error, producer_id) = init_producer_id(&mut connection, None);
    assert_eq!(error, 0);
    assert!(producer_id >= 0);
    let (error, other_id) = init_producer_id(&mut connection, None);
    assert_eq!(error, 0);
    assert_ne!(other_id, producer_id, "each InitProducerId gets a new id");
    assert_eq!(
        init_producer_id(&mut connection, Some("txn")),
        (code(ResponseError::UnsupportedVersion), -1),
        "transactions are refused, not left hanging"
    );

    assert_eq!(
        produce(&mut connection, batch(producer_id, 0, 0, 3)),
        (0, 0)
    );
    assert_eq!(
        produce(&mut connection, batch(producer_id, 0, 0, 3)),
        (0, 0),
        "a retry gets its original offset"
    );
    assert_eq!(
        produce(&mut connection, batch(producer_id, 0, 3, 2)),
        (0, 3)
    );
    assert_eq!(
        produce(&mut connection, batch(producer_id, 0, 0, 3)),
        (0, 0),
        "a retry of any of the last five batches is found"
    );
    assert_eq!(
        produce(&mut connection, batch(producer_id, 0, 9, 1)).0,
        code(ResponseError::OutOfOrderSequenceNumber),
        "a gap in the sequence"
    );
    assert_eq!(
        produce(&mut connection, batch(producer_id, 1, 0, 1)),
        (0, 5)
    );
    assert_eq!(
        produce(&mut connection, batch(producer_id, 0, 5, 1)).0,
        code(ResponseError::InvalidProducerEpoch),
        "a stale epoch"
    );
    assert_eq!(
        produce(&mut connection, batch(producer_id, 1, 7, 1)).0,
        code(ResponseError::OutOfOrderSequenceNumber)
    );
    assert_eq!(
        produce(&mut connection, batch(other_id + 1_000, 0, 4, 1)).0,
        code(ResponseError::UnknownProducerId),
        "a producer the partition does not know must start at 0"
    );
    let mut transactional = RecordBatchBuilder::default().producer(other_id, 0, 0);
    transactional.push(Record {
        key: None,
        value: Some(b"t"),
        headers: &[],
        timestamp_ms: 0,
    });
    let mut transactional = transactional.build().into_bytes().to_vec();
    // attributes bit 4: transactional (the CRC covers it: recompute).
    transactional[22] |= 0x10;
    let crc = crc32c::crc32c(&transactional[21..]);
    transactional[17..21].copy_from_slice(&crc.to_be_bytes());
    assert_eq!(
        produce(&mut connection, Bytes::from(transactional)).0,
        code(ResponseError::InvalidTxnState)
    );

    let stored: Vec<(u64, u64, i32)> = stored_batches(&mut connection, TOPIC, 0)
        .iter()
        .map(|header| {
            (
                header.base_offset,
                header.last_offset(),
                header.base_sequence,
            )
        })
        .collect();
    assert_eq!(
        stored,
        [(0, 2, 0), (3, 4, 3), (5, 5, 0)],
        "no duplicate and nothing refused in the log"
    );
}

/// Sends `batches` one-record batches from `producer_id`, from sequence `first`.
fn send_run(connection: &mut RawConnection, producer_id: i64, first: i32, batches: i32) {
    for sequence in first..first + batches {
        let (error, _) = produce(connection, batch(producer_id, 0, sequence, 1));
        assert_eq!(error, 0, "sequence {sequence}");
    }
}

/// After a restart the last batches are still recognised, the next sequence still follows,
/// and the log holds each batch once.
fn assert_state_survived(connection: &mut RawConnection, producer_id: i64, sent: i32) {
    for back in 1..=5 {
        let sequence = sent - back;
        assert_eq!(
            produce(connection, batch(producer_id, 0, sequence, 1)),
            (0, i64::from(sequence)),
            "the retry of sequence {sequence} after the restart"
        );
    }
    assert_eq!(
        produce(connection, batch(producer_id, 0, sent + 1, 1)).0,
        code(ResponseError::OutOfOrderSequenceNumber)
    );
    assert_eq!(stored_batches(connection, TOPIC, 0).len(), sent as usize);
}

#[test]
fn producer_state_survives_rolls_a_sigkill_and_a_clean_stop() {
    let directory = tempdir();
    let data = directory.path().join("data");
    let config = directory.path().join("broker.toml");
    // 8 KiB segments: each one-record batch is ~270 bytes, so rolls (and snapshots) come
    // every ~30 batches.
    std::fs::write(
        &config,
        "[log]\nsegment_bytes = 8192\nmessage_max_bytes = 4096\nrecycled_segments_max = 0\n",
    )
    .unwrap();
    let config = config.to_str().unwrap().to_string();
    let start = || Broker::start(&data, 1, &["--config", &config]);
    let mut broker = start();
    let mut connection = RawConnection::connect(broker.shard_address(0));
    create_topic(&mut connection, TOPIC, 1);
    let (_, producer_id) = init_producer_id(&mut connection, None);
    send_run(&mut connection, producer_id, 0, 100);
    let snapshots: Vec<_> = walk(&data)
        .into_iter()
        .filter(|path| path.ends_with("producer_state.snapshot"))
        .collect();
    assert_eq!(snapshots.len(), 1, "a roll wrote the partition's snapshot");

    broker.stop_with(libc::SIGKILL);
    let mut broker = start();
    let mut connection = RawConnection::connect(broker.shard_address(0));
    assert_state_survived(&mut connection, producer_id, 100);
    send_run(&mut connection, producer_id, 100, 10);

    broker.stop();
    let broker = start();
    let mut connection = RawConnection::connect(broker.shard_address(0));
    assert_state_survived(&mut connection, producer_id, 110);
    // A new id after the restarts is still one no producer had.
    let (_, after) = init_producer_id(&mut connection, None);
    assert_ne!(after, producer_id);
}

fn walk(directory: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(directory).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(walk(&path));
        } else {
            found.push(path);
        }
    }
    found
}

const PARTITIONS: i32 = 8;

/// Reads every partition of `topic` from the start: each partition's values, in offset order.
fn consume_all(bootstrap: &str, topic: &str, expected: usize) -> BTreeMap<i32, Vec<usize>> {
    let consumer: BaseConsumer = RdConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "idempotent-check")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut assignment = TopicPartitionList::new();
    for partition in 0..PARTITIONS {
        assignment
            .add_partition_offset(topic, partition, Offset::Beginning)
            .expect("partition");
    }
    consumer.assign(&assignment).expect("assign");
    let mut values: BTreeMap<i32, Vec<usize>> = BTreeMap::new();
    let mut count = 0;
    let started = Instant::now();
    // Past the expected count too, for a while: a duplicate would show up there.
    let mut quiet_since = None::<Instant>;
    while quiet_since.is_none_or(|since| since.elapsed() < Duration::from_secs(2)) {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "consumed {count} of {expected}"
        );
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(message)) => {
                let value = std::str::from_utf8(message.payload().expect("value"))
                    .expect("utf-8")
                    .parse()
                    .expect("number");
                values.entry(message.partition()).or_default().push(value);
                count += 1;
            }
            Some(Err(error)) => panic!("consume: {error}"),
            None => {}
        }
        if count >= expected && quiet_since.is_none() {
            quiet_since = Some(Instant::now());
        }
    }
    values
}

/// Every message once, and each partition in send order.
fn assert_once_in_order(values: &BTreeMap<i32, Vec<usize>>, messages: usize) {
    let mut all: Vec<usize> = values.values().flatten().copied().collect();
    assert_eq!(all.len(), messages, "no message twice, none lost");
    all.sort_unstable();
    all.dedup();
    assert_eq!(all.len(), messages, "every message once");
    for (partition, partition_values) in values {
        assert!(
            partition_values.windows(2).all(|pair| pair[0] < pair[1]),
            "partition {partition} is in send order"
        );
    }
}

/// Counts failed deliveries (the default context drops them).
#[derive(Default, Clone)]
struct Reports {
    failed: Arc<AtomicUsize>,
}

impl ClientContext for Reports {}

impl ProducerContext for Reports {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((error, _)) = result {
            eprintln!("delivery failed: {error}");
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn idempotent_producer(bootstrap: &str) -> BaseProducer<Reports> {
    idempotent_producer_with(bootstrap, &[])
}

fn idempotent_producer_with(bootstrap: &str, settings: &[(&str, &str)]) -> BaseProducer<Reports> {
    let mut config = RdConfig::new();
    for (key, value) in settings {
        config.set(*key, *value);
    }
    config
        .set("bootstrap.servers", bootstrap)
        .set("enable.idempotence", "true")
        .set("linger.ms", "2")
        // Reconnect quickly after the broker restart (the default backoff grows to 10 s).
        .set("reconnect.backoff.max.ms", "500")
        .create_with_context(Reports::default())
        .expect("producer")
}

/// Sends `range` to `topic`, message `i` to partition `i % PARTITIONS`, counting sends in
/// `sent`, and waits for every delivery report: all must succeed, with no fatal error.
fn send_all(
    producer: &BaseProducer<Reports>,
    topic: &str,
    range: std::ops::Range<usize>,
    sent: &AtomicUsize,
) {
    for index in range {
        let value = index.to_string();
        let mut record = BaseRecord::<(), String>::to(topic)
            .payload(&value)
            .partition(index as i32 % PARTITIONS);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((_, returned)) => {
                    record = returned;
                    producer.poll(Duration::from_millis(10));
                }
            }
        }
        producer.poll(Duration::ZERO);
        sent.fetch_add(1, Ordering::Relaxed);
        // Paced (about 20k messages a second), so a broker crash or pause in the run finds
        // requests in flight.
        if index % 20 == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    producer.flush(Duration::from_secs(120)).expect("flush");
    assert_eq!(
        producer.context().failed.load(Ordering::Relaxed),
        0,
        "failed deliveries"
    );
    assert_eq!(
        producer.client().fatal_error(),
        None,
        "an idempotence fatal error"
    );
}

fn create_with_rdkafka(broker: &Broker, topic: &str) {
    let mut connection = RawConnection::connect(broker.shard_address(0));
    create_topic(&mut connection, topic, PARTITIONS);
}

#[test]
fn librdkafka_idempotent_producer_delivers_each_message_once_in_order() {
    let directory = tempdir();
    let broker = Broker::start(&directory.path().join("data"), 2, &[]);
    let bootstrap = broker.bootstrap_servers();
    create_with_rdkafka(&broker, "rd-idempotent");
    let producer = idempotent_producer(&bootstrap);
    send_all(&producer, "rd-idempotent", 0..20_000, &AtomicUsize::new(0));
    drop(producer);
    let values = consume_all(&bootstrap, "rd-idempotent", 20_000);
    assert_once_in_order(&values, 20_000);
}

#[test]
fn librdkafka_idempotent_producer_carries_on_across_a_broker_sigkill() {
    let directory = tempdir();
    let data = directory.path().join("data");
    let port = free_port_run();
    let listen = format!("127.0.0.1:{port}");
    let mut broker = Broker::start_on(&data, 2, &listen, &[]);
    create_with_rdkafka(&broker, "rd-crash");
    let sent = Arc::new(AtomicUsize::new(0));
    let producing = std::thread::spawn({
        let (listen, sent) = (listen.clone(), sent.clone());
        move || {
            let producer = idempotent_producer(&listen);
            send_all(&producer, "rd-crash", 0..30_000, &sent);
        }
    });
    let started = Instant::now();
    while sent.load(Ordering::Relaxed) < 10_000 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "producer stuck"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    // In the middle of the run: batches are in flight, some stored but not acknowledged.
    broker.stop_with(libc::SIGKILL);
    let broker = Broker::start_on(&data, 2, &listen, &[]);
    producing.join().expect("every delivery succeeded");
    let values = consume_all(&broker.bootstrap_servers(), "rd-crash", 30_000);
    assert_once_in_order(&values, 30_000);
}

#[test]
fn librdkafka_idempotent_producer_recovers_from_request_timeouts() {
    let directory = tempdir();
    let broker = Broker::start(&directory.path().join("data"), 2, &[]);
    let bootstrap = broker.bootstrap_servers();
    create_with_rdkafka(&broker, "rd-timeout");
    let sent = Arc::new(AtomicUsize::new(0));
    let producing = std::thread::spawn({
        let (bootstrap, sent) = (bootstrap.clone(), sent.clone());
        move || {
            let producer = idempotent_producer_with(&bootstrap, &[("request.timeout.ms", "1000")]);
            send_all(&producer, "rd-timeout", 0..20_000, &sent);
        }
    });
    let started = Instant::now();
    while sent.load(Ordering::Relaxed) < 5_000 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "producer stuck"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    // The broker stops reading for three request timeouts: librdkafka times out what is in
    // flight and must recover (KIP-360) with every message delivered once, in order, and no
    // fatal error.
    broker.signal(libc::SIGSTOP);
    std::thread::sleep(Duration::from_secs(3));
    broker.signal(libc::SIGCONT);
    producing.join().expect("every delivery succeeded");
    let values = consume_all(&bootstrap, "rd-timeout", 20_000);
    assert_once_in_order(&values, 20_000);
}
