//! The real broker against librdkafka (the `rdkafka` crate): every acks level and every
//! compression codec across partitions on every shard, metadata, admin operations, restarts.

mod broker_support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use broker_support::{tempdir, Broker};
use rdkafka::admin::{
    AdminClient, AdminOptions, AlterConfig, NewPartitions, NewTopic, ResourceSpecifier,
    TopicReplication,
};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use streambus::record::{BatchHeader, Compression};

const TIMEOUT: Duration = Duration::from_secs(30);

fn admin(broker: &Broker) -> AdminClient<DefaultClientContext> {
    ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap_servers())
        .create()
        .expect("admin client")
}

fn create_topic(broker: &Broker, name: &str, partitions: i32, configs: &[(&str, &str)]) {
    let admin = admin(broker);
    let mut topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
    for (key, value) in configs {
        topic = topic.set(key, value);
    }
    let results = futures_lite::future::block_on(admin.create_topics(
        [&topic],
        &AdminOptions::new().operation_timeout(Some(TIMEOUT)),
    ))
    .expect("create topics");
    for result in results {
        result.expect("topic created");
    }
}

fn producer(broker: &Broker, acks: &str, codec: &str) -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap_servers())
        .set("acks", acks)
        .set("compression.codec", codec)
        .set("linger.ms", "5")
        .set("message.timeout.ms", "30000")
        .create()
        .expect("producer")
}

/// Produces `count` keyed messages and returns (partition, key, value) of each delivered one.
fn produce(
    broker: &Broker,
    topic: &str,
    acks: &str,
    codec: &str,
    count: usize,
    tag: &str,
) -> Vec<(i32, String, String)> {
    let producer = producer(broker, acks, codec);
    let mut pending = Vec::with_capacity(count);
    for index in 0..count {
        let key = format!("{tag}-key-{index}");
        // Repetitive values so every codec really compresses.
        let value = format!("{tag}-value-{index}-{}", "abcdefgh".repeat(16));
        let delivery = producer
            .send_result(FutureRecord::to(topic).key(&key).payload(&value))
            .map_err(|(error, _)| error)
            .expect("enqueue");
        pending.push((key, value, delivery));
    }
    producer.flush(TIMEOUT).expect("flush");
    pending
        .into_iter()
        .map(|(key, value, delivery)| {
            let delivered = futures_lite::future::block_on(delivery)
                .expect("delivery report")
                .map_err(|(error, _)| error)
                .expect("delivered");
            (delivered.partition, key, value)
        })
        .collect()
}

fn consumer(broker: &Broker) -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap_servers())
        // librdkafka needs a group id even for assign(); no group API is used with it.
        .set("group.id", "streambus-test")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .create()
        .expect("consumer")
}

/// Reads every partition from the beginning until `expected` messages arrived; returns
/// (partition, offset, key, value) in arrival order.
fn consume(
    broker: &Broker,
    topic: &str,
    partitions: i32,
    expected: usize,
) -> Vec<(i32, i64, String, String)> {
    let consumer = consumer(broker);
    let mut assignment = TopicPartitionList::new();
    for partition in 0..partitions {
        assignment
            .add_partition_offset(topic, partition, Offset::Beginning)
            .expect("assign");
    }
    consumer.assign(&assignment).expect("assign");
    let mut messages = Vec::with_capacity(expected);
    let deadline = Instant::now() + Duration::from_secs(60);
    while messages.len() < expected {
        assert!(
            Instant::now() < deadline,
            "consumed {} of {expected} messages",
            messages.len()
        );
        let Some(result) = consumer.poll(Duration::from_millis(500)) else {
            continue;
        };
        let message = result.expect("consume");
        let text = |bytes: Option<&[u8]>| {
            String::from_utf8(bytes.unwrap_or_default().to_vec()).expect("utf-8")
        };
        messages.push((
            message.partition(),
            message.offset(),
            text(message.key()),
            text(message.payload()),
        ));
    }
    // Nothing more than expected arrives.
    if let Some(Ok(extra)) = consumer.poll(Duration::from_millis(300)) {
        panic!("unexpected extra message at offset {}", extra.offset());
    }
    messages
}

/// The distinct leaders (shards) of `topic`'s partitions, from Metadata.
fn leaders(reader: &BaseConsumer, topic: &str) -> BTreeSet<i32> {
    let metadata = reader
        .fetch_metadata(Some(topic), TIMEOUT)
        .expect("metadata");
    metadata.topics()[0]
        .partitions()
        .iter()
        .map(|partition| partition.leader())
        .collect()
}

/// The compression codecs of every batch stored under `data_dir` for `topic`.
fn stored_codecs(data_dir: &Path, topic: &str) -> BTreeSet<String> {
    let mut codecs = BTreeSet::new();
    for entry in std::fs::read_dir(data_dir.join("topics")).expect("topics directory") {
        let path = entry.expect("entry").path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        if !name.starts_with(&format!("{topic}-")) {
            continue;
        }
        for file in std::fs::read_dir(&path).expect("partition directory") {
            let file = file.expect("entry").path();
            if file.extension().and_then(|e| e.to_str()) != Some("log") {
                continue;
            }
            let bytes = std::fs::read(&file).expect("read segment");
            let mut position = 0;
            while let Ok(header) = BatchHeader::parse(&bytes[position..]) {
                if header.batch_length == 0 {
                    break;
                }
                codecs.insert(format!("{:?}", header.compression()));
                position += header.total_bytes();
            }
        }
    }
    codecs
}

#[test]
fn every_acks_level_and_codec_round_trips_across_all_shards() {
    let directory = tempdir();
    let broker = Broker::start(&directory.path().join("data"), 2, &[]);
    let topic = "round-trip";
    let partitions = 6;
    create_topic(&broker, topic, partitions, &[]);
    let mut produced = Vec::new();
    for acks in ["0", "1", "all"] {
        for codec in ["none", "gzip", "snappy", "lz4", "zstd"] {
            produced.extend(produce(
                &broker,
                topic,
                acks,
                codec,
                200,
                &format!("{acks}-{codec}"),
            ));
        }
    }
    let consumed = consume(&broker, topic, partitions, produced.len());
    // Every message came back once, on the partition it was delivered to.
    let produced_set: BTreeSet<(i32, String, String)> = produced.iter().cloned().collect();
    let consumed_set: BTreeSet<(i32, String, String)> = consumed
        .iter()
        .map(|(partition, _, key, value)| (*partition, key.clone(), value.clone()))
        .collect();
    assert_eq!(produced_set.len(), produced.len());
    assert_eq!(consumed_set, produced_set);
    // Offsets in every partition run 0, 1, 2, ... without gaps or repeats, and every
    // partition got data (the keys spread over all six, on both shards).
    let mut offsets: BTreeMap<i32, Vec<i64>> = BTreeMap::new();
    for (partition, offset, _, _) in &consumed {
        offsets.entry(*partition).or_default().push(*offset);
    }
    assert_eq!(offsets.len(), partitions as usize);
    for (partition, mut list) in offsets {
        list.sort_unstable();
        let expected: Vec<i64> = (0..list.len() as i64).collect();
        assert_eq!(list, expected, "partition {partition}");
    }
    // The batches are stored as the producer compressed them: all five codecs are on disk.
    let codecs = stored_codecs(&broker.data_dir, topic);
    for codec in Compression::ALL {
        assert!(
            codecs.contains(&format!("{codec:?}")),
            "{codec:?} missing from {codecs:?}"
        );
    }
}

#[test]
fn metadata_lists_one_broker_per_shard_and_spreads_leaders() {
    let directory = tempdir();
    // No --shards: one shard per core (this test expects the 2-core CI machine or more).
    let broker = Broker::start(&directory.path().join("data"), 0, &[]);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    assert_eq!(broker.shard_ports.len(), cores);
    if cores != 2 {
        return;
    }
    create_topic(&broker, "spread", 6, &[]);
    let consumer = consumer(&broker);
    let metadata = consumer
        .fetch_metadata(Some("spread"), TIMEOUT)
        .expect("metadata");
    let brokers: BTreeMap<i32, i32> = metadata
        .brokers()
        .iter()
        .map(|b| (b.id(), b.port()))
        .collect();
    assert_eq!(
        brokers,
        BTreeMap::from([
            (0, broker.shard_ports[0] as i32),
            (1, broker.shard_ports[1] as i32)
        ])
    );
    let topic = &metadata.topics()[0];
    assert_eq!(topic.partitions().len(), 6);
    let mut leaders: BTreeMap<i32, usize> = BTreeMap::new();
    for partition in topic.partitions() {
        *leaders.entry(partition.leader()).or_default() += 1;
        assert_eq!(partition.replicas(), &[partition.leader()]);
    }
    assert_eq!(leaders, BTreeMap::from([(0, 3), (1, 3)]));
    // Auto-creation: a producer asking for a missing topic creates it with the default
    // partition count (librdkafka consumers do not ask for auto-creation).
    let producer = producer(&broker, "1", "none");
    let metadata = producer
        .client()
        .fetch_metadata(Some("auto-created"), TIMEOUT)
        .expect("metadata");
    assert_eq!(metadata.topics()[0].error(), None);
    assert_eq!(metadata.topics()[0].partitions().len(), 1);
}

#[test]
fn topics_and_acknowledged_messages_survive_restarts_clean_and_killed() {
    let directory = tempdir();
    let data_dir = directory.path().join("data");
    let mut broker = Broker::start(&data_dir, 2, &[]);
    create_topic(&broker, "durable", 4, &[("retention.ms", "86400000")]);
    let mut produced = produce(&broker, "durable", "all", "lz4", 500, "first");
    broker.stop();
    let broker = Broker::start(&data_dir, 2, &[]);
    produced.extend(produce(&broker, "durable", "all", "none", 500, "second"));
    // A crash: every acknowledged (acks=all, flush always) message must survive it.
    let mut broker = broker;
    let status = broker.stop_with(libc::SIGKILL);
    assert!(!status.success());
    let broker = Broker::start(&data_dir, 2, &[]);
    let consumed = consume(&broker, "durable", 4, produced.len());
    let produced_set: BTreeSet<(i32, String, String)> = produced.into_iter().collect();
    let consumed_set: BTreeSet<(i32, String, String)> = consumed
        .into_iter()
        .map(|(partition, _, key, value)| (partition, key, value))
        .collect();
    assert_eq!(consumed_set, produced_set);
    // The topic config survived too.
    let admin = admin(&broker);
    let configs = futures_lite::future::block_on(
        admin.describe_configs([&ResourceSpecifier::Topic("durable")], &AdminOptions::new()),
    )
    .expect("describe configs");
    let resource = configs[0].as_ref().expect("topic configs");
    let retention = resource.get("retention.ms").expect("retention.ms");
    assert_eq!(retention.value.as_deref(), Some("86400000"));
    assert!(!retention.is_default);
}

#[test]
fn admin_operations_validate_create_grow_describe_and_delete() {
    let directory = tempdir();
    let broker = Broker::start(&directory.path().join("data"), 2, &[]);
    let admin = admin(&broker);
    let options = AdminOptions::new().operation_timeout(Some(TIMEOUT));
    let run = |topics: Vec<NewTopic>| {
        futures_lite::future::block_on(admin.create_topics(topics.iter(), &options))
            .expect("create topics")
    };
    let refused = run(vec![
        NewTopic::new("three-replicas", 3, TopicReplication::Fixed(3)),
        NewTopic::new("bad-config", 1, TopicReplication::Fixed(1)).set("retention.ms", "soon"),
        NewTopic::new("compacted", 1, TopicReplication::Fixed(1)).set("cleanup.policy", "compact"),
        NewTopic::new("bad/name", 1, TopicReplication::Fixed(1)),
    ]);
    let codes: Vec<RDKafkaErrorCode> = refused
        .into_iter()
        .map(|result| result.expect_err("refused").1)
        .collect();
    assert_eq!(
        codes,
        vec![
            RDKafkaErrorCode::InvalidReplicationFactor,
            RDKafkaErrorCode::InvalidConfig,
            RDKafkaErrorCode::InvalidConfig,
            RDKafkaErrorCode::InvalidTopic,
        ]
    );
    let created = run(vec![NewTopic::new("grow", 2, TopicReplication::Fixed(1))
        .set("retention.bytes", "1073741824")
        .set("segment.bytes", "1048576")]);
    created[0].as_ref().expect("created");
    let again = run(vec![NewTopic::new("grow", 2, TopicReplication::Fixed(1))]);
    assert_eq!(
        again[0].as_ref().expect_err("exists").1,
        RDKafkaErrorCode::TopicAlreadyExists
    );
    // Grow to 5 partitions; shrinking is refused.
    let grown = futures_lite::future::block_on(
        admin.create_partitions([&NewPartitions::new("grow", 5)], &options),
    )
    .expect("create partitions");
    grown[0].as_ref().expect("grown");
    let shrunk = futures_lite::future::block_on(
        admin.create_partitions([&NewPartitions::new("grow", 3)], &options),
    )
    .expect("create partitions");
    assert_eq!(
        shrunk[0].as_ref().expect_err("shrink").1,
        RDKafkaErrorCode::InvalidPartitions
    );
    let consumer = consumer(&broker);
    let metadata = consumer
        .fetch_metadata(Some("grow"), TIMEOUT)
        .expect("metadata");
    assert_eq!(metadata.topics()[0].partitions().len(), 5);
    // Produce to the new partitions too, and read it all back.
    let produced = produce(&broker, "grow", "all", "zstd", 300, "grow");
    let spread: BTreeSet<i32> = produced
        .iter()
        .map(|(partition, _, _)| *partition)
        .collect();
    assert!(spread.len() > 2, "keys landed on {spread:?}");
    assert_eq!(consume(&broker, "grow", 5, 300).len(), 300);
    // Topic and broker configs.
    let described = futures_lite::future::block_on(admin.describe_configs(
        [
            &ResourceSpecifier::Topic("grow"),
            &ResourceSpecifier::Broker(1),
        ],
        &options,
    ))
    .expect("describe configs");
    let topic = described[0].as_ref().expect("topic configs");
    assert_eq!(
        topic
            .get("retention.bytes")
            .and_then(|c| c.value.as_deref()),
        Some("1073741824")
    );
    assert_eq!(
        topic.get("segment.bytes").and_then(|c| c.value.as_deref()),
        Some("1048576")
    );
    assert_eq!(
        topic.get("cleanup.policy").and_then(|c| c.value.as_deref()),
        Some("delete")
    );
    let broker_configs = described[1].as_ref().expect("broker configs");
    assert_eq!(
        broker_configs
            .get("broker.id")
            .and_then(|c| c.value.as_deref()),
        Some("1")
    );
    assert!(broker_configs.get("message.max.bytes").is_some());
    // Altering is not implemented: the API is not advertised, so the client refuses cleanly.
    let altered = futures_lite::future::block_on(admin.alter_configs(
        [&AlterConfig::new(ResourceSpecifier::Topic("grow")).set("retention.ms", "1")],
        &options,
    ));
    assert!(altered.is_err() || altered.as_ref().is_ok_and(|r| r[0].is_err()));
    // Delete: the topic is gone from metadata and its data from disk.
    let deleted = futures_lite::future::block_on(admin.delete_topics(&["grow"], &options))
        .expect("delete topics");
    deleted[0].as_ref().expect("deleted");
    let leftovers: Vec<_> = std::fs::read_dir(broker.data_dir.join("topics"))
        .expect("topics directory")
        .filter_map(|entry| entry.ok())
        .filter(|entry| entry.file_name().to_string_lossy().starts_with("grow-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    let missing = futures_lite::future::block_on(admin.delete_topics(&["grow"], &options))
        .expect("delete topics");
    assert_eq!(
        missing[0].as_ref().expect_err("missing").1,
        RDKafkaErrorCode::UnknownTopicOrPartition
    );
}

#[test]
fn offsets_by_time_earliest_and_latest() {
    let directory = tempdir();
    let broker = Broker::start(&directory.path().join("data"), 2, &[]);
    create_topic(&broker, "times", 1, &[]);
    let producer = producer(&broker, "all", "none");
    let base_ms = 1_700_000_000_000i64;
    for index in 0..100i64 {
        let record = FutureRecord::to("times")
            .partition(0)
            .key("k")
            .payload("v")
            .timestamp(base_ms + index * 1000);
        futures_lite::future::block_on(producer.send(record, TIMEOUT)).expect("sent");
    }
    let consumer = consumer(&broker);
    let (low, high) = consumer
        .fetch_watermarks("times", 0, TIMEOUT)
        .expect("watermarks");
    assert_eq!((low, high), (0, 100));
    let mut query = TopicPartitionList::new();
    query
        .add_partition_offset("times", 0, Offset::Offset(base_ms + 41_500))
        .expect("query");
    let found = consumer
        .offsets_for_times(query, TIMEOUT)
        .expect("offsets for times");
    assert_eq!(found.elements()[0].offset(), Offset::Offset(42));
    let mut query = TopicPartitionList::new();
    query
        .add_partition_offset("times", 0, Offset::Offset(base_ms + 1_000_000))
        .expect("query");
    let found = consumer
        .offsets_for_times(query, TIMEOUT)
        .expect("offsets for times");
    // Later than every record: Kafka answers -1, which librdkafka shows as End.
    assert_eq!(found.elements()[0].offset(), Offset::End);
}

#[test]
fn a_changed_shard_count_moves_orphaned_partitions_and_keeps_their_data() {
    let directory = tempdir();
    let data_dir = directory.path().join("data");
    let mut broker = Broker::start(&data_dir, 2, &[]);
    create_topic(&broker, "moved", 4, &[]);
    let produced = produce(&broker, "moved", "all", "none", 400, "before");
    broker.stop();
    // One shard now: the partitions shard 1 owned move to shard 0, logged, with their data.
    let mut broker = Broker::start(&data_dir, 1, &[]);
    let reader = consumer(&broker);
    assert_eq!(leaders(&reader, "moved"), BTreeSet::from([0]));
    drop(reader);
    assert_eq!(
        consume(&broker, "moved", 4, produced.len()).len(),
        produced.len()
    );
    assert!(
        broker.log().contains("partition moved to another shard"),
        "{}",
        broker.log()
    );
    broker.stop();
    // Back to two shards: nothing moves silently; new partitions go to the emptier shard.
    let broker = Broker::start(&data_dir, 2, &[]);
    let reader = consumer(&broker);
    assert_eq!(leaders(&reader, "moved"), BTreeSet::from([0]));
    create_topic(&broker, "fresh", 2, &[]);
    assert_eq!(leaders(&reader, "fresh"), BTreeSet::from([1]));
    assert_eq!(
        consume(&broker, "moved", 4, produced.len()).len(),
        produced.len()
    );
}

#[test]
fn retention_at_every_roll_recycles_segment_files_and_a_crash_keeps_the_retained_tail() {
    let directory = tempdir();
    let data_dir = directory.path().join("data");
    let mut broker = Broker::start(&data_dir, 1, &[]);
    // 1 MiB segments (librdkafka's batches reach 1 MB) and 2 MiB of retention: 40,000
    // messages of about 170 bytes roll several segments, and retention (applied at every roll)
    // deletes, parks and recycles them.
    create_topic(
        &broker,
        "recycled",
        1,
        &[("segment.bytes", "1048576"), ("retention.bytes", "2097152")],
    );
    let produced = produce(&broker, "recycled", "all", "none", 40_000, "recycled");
    let partition_dir = data_dir.join("topics").join("recycled-0");
    let names: Vec<String> = std::fs::read_dir(&partition_dir)
        .expect("partition directory")
        .filter_map(|entry| entry.ok())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names
            .iter()
            .any(|name| name.ends_with(".recyclable") || name.ends_with(".recycled")),
        "retention parked or reused a segment file: {names:?}"
    );
    let segments = names.iter().filter(|name| name.ends_with(".log")).count();
    assert!(
        segments <= 5,
        "retention held the partition near retention.bytes at every roll: {segments} segments"
    );

    // A crash, then every message from the log start offset on must be there, in order.
    let status = broker.stop_with(libc::SIGKILL);
    assert!(!status.success());
    let broker = Broker::start(&data_dir, 1, &[]);
    let consumer = consumer(&broker);
    let (low, high) = consumer
        .fetch_watermarks("recycled", 0, TIMEOUT)
        .expect("watermarks");
    assert_eq!(
        high,
        produced.len() as i64,
        "every acknowledged message survived"
    );
    assert!(low > 0, "retention deleted the oldest segments");
    let consumed = consume(&broker, "recycled", 1, (high - low) as usize);
    let expected: Vec<(String, String)> = produced[low as usize..]
        .iter()
        .map(|(_, key, value)| (key.clone(), value.clone()))
        .collect();
    let got: Vec<(String, String)> = consumed
        .into_iter()
        .map(|(_, _, key, value)| (key, value))
        .collect();
    assert_eq!(got, expected);
    let log = broker.log();
    assert!(
        !log.contains("torn or corrupt"),
        "a recycled segment's stale tail is not reported as damage:\n{log}"
    );
}

#[test]
fn consumers_with_a_group_id_work_at_librdkafka_defaults() {
    // A client with a group id talks to the group's coordinator shard (FindCoordinator): a
    // subscribe()ing consumer joins, an assign()ing one commits without joining, and neither
    // waits or crashes at librdkafka's default settings.
    let directory = tempdir();
    let broker = Broker::start(&directory.path().join("data"), 2, &[]);
    create_topic(&broker, "groupless", 2, &[]);
    produce(&broker, "groupless", "1", "none", 10, "groupless");

    // All-topics metadata (librdkafka's Metadata v12 with stray bytes) is answered.
    let listing = consumer(&broker);
    let metadata = listing.fetch_metadata(None, TIMEOUT).expect("all topics");
    assert!(metadata.topics().iter().any(|t| t.name() == "groupless"));

    // subscribe() at librdkafka's defaults but for the reset point (auto-commit, eager
    // assignors): it joins and reads everything there is.
    let subscriber: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap_servers())
        .set("group.id", "needs-a-group")
        .set("auto.offset.reset", "earliest")
        .create()
        .expect("consumer");
    subscriber.subscribe(&["groupless"]).expect("subscribe");
    let started = Instant::now();
    let mut consumed = 0;
    while consumed < 10 {
        assert!(
            started.elapsed() < TIMEOUT,
            "subscribe() consumed {consumed} of 10"
        );
        match subscriber.poll(Duration::from_millis(100)) {
            Some(Ok(_)) => consumed += 1,
            Some(Err(error)) => panic!("subscribe(): {error}"),
            None => {}
        }
    }
    assert_eq!(subscriber.assignment().expect("assignment").count(), 2);
    drop(subscriber);

    // assign() without an offset and with the default enable.auto.commit=true: there are no
    // committed offsets, so consumption starts at auto.offset.reset (librdkafka crashed when
    // the coordinator lacked OffsetFetch); a commit is stored, and closing (which commits)
    // returns at once.
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn({
        let bootstrap = broker.bootstrap_servers();
        move || {
            let assigned: BaseConsumer = ClientConfig::new()
                .set("bootstrap.servers", &bootstrap)
                .set("group.id", "auto-committer")
                .set("auto.offset.reset", "earliest")
                .create()
                .expect("consumer");
            let mut assignment = TopicPartitionList::new();
            for partition in 0..2 {
                assignment
                    .add_partition_offset("groupless", partition, Offset::Stored)
                    .expect("assign");
            }
            assigned.assign(&assignment).expect("assign");
            let mut consumed = 0;
            while consumed < 10 {
                if let Some(Ok(_)) = assigned.poll(Duration::from_millis(200)) {
                    consumed += 1;
                }
            }
            assigned
                .commit_consumer_state(rdkafka::consumer::CommitMode::Sync)
                .expect("an assign() consumer's commit is stored");
            let closing = Instant::now();
            drop(assigned); // rd_kafka_consumer_close (a final commit), then destroy
            let _ = done.send(closing.elapsed());
        }
    });
    // A hung close leaves its thread behind; the test fails rather than waits.
    let close_took = finished
        .recv_timeout(Duration::from_secs(30))
        .expect("consume and close within 30 s");
    assert!(
        close_took < Duration::from_secs(10),
        "close took {close_took:?}"
    );
}
