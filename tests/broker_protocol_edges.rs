//! The real broker against raw Kafka requests: version negotiation, bad frames, malformed
//! bodies, wrong shards, corrupt and oversized batches, long-polling fetches, and limits.

mod broker_support;

use std::time::{Duration, Instant};

use broker_support::{create_topic, tempdir, topic_name, Broker, RawConnection};
use bytes::Bytes;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use streambus::record::{Record, RecordBatchBuilder};

fn batch(records: usize, value_bytes: usize) -> Bytes {
    let mut builder = RecordBatchBuilder::with_capacity(records * (value_bytes + 32));
    let value = vec![7u8; value_bytes];
    for index in 0..records {
        let key = format!("key-{index}");
        builder.push(Record {
            key: Some(key.as_bytes()),
            value: Some(&value),
            headers: &[],
            timestamp_ms: 1_700_000_000_000 + index as i64,
        });
    }
    builder.build().into_bytes()
}

fn produce_request(topic: &str, partition: i32, records: Bytes, acks: i16) -> ProduceRequest {
    ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(topic_name(topic))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(partition)
                .with_records(Some(records))])])
}

fn produce(
    connection: &mut RawConnection,
    topic: &str,
    partition: i32,
    records: Bytes,
) -> (i16, i64) {
    let response: ProduceResponse = connection.call(
        ApiKey::Produce,
        9,
        &produce_request(topic, partition, records, -1),
    );
    let partition = &response.responses[0].partition_responses[0];
    (partition.error_code, partition.base_offset)
}

fn fetch_request(topic: &str, partition: i32, offset: i64, max_wait_ms: i32) -> FetchRequest {
    FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(max_wait_ms)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_topics(vec![FetchTopic::default()
            .with_topic(topic_name(topic))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(partition)
                .with_fetch_offset(offset)
                .with_partition_max_bytes(1 << 20)])])
}

/// The shard that leads `topic`'s partition 0, and the other one.
fn leader_and_other(connection: &mut RawConnection, topic: &str) -> (usize, usize) {
    let request = MetadataRequest::default().with_topics(Some(vec![
        metadata_request::MetadataRequestTopic::default().with_name(Some(topic_name(topic))),
    ]));
    let response: MetadataResponse = connection.call(ApiKey::Metadata, 12, &request);
    let leader = response.topics[0].partitions[0].leader_id.0 as usize;
    (leader, 1 - leader)
}

#[test]
fn api_versions_negotiation_including_unknown_versions() {
    let directory = tempdir();
    let broker = Broker::start(&directory.path().join("data"), 2, &[]);
    for version in 0..=3 {
        let mut connection = RawConnection::connect(broker.bootstrap);
        let response: ApiVersionsResponse = connection.call(
            ApiKey::ApiVersions,
            version,
            &ApiVersionsRequest::default()
                .with_client_software_name(StrBytes::from_static_str("raw"))
                .with_client_software_version(StrBytes::from_static_str("1")),
        );
        assert_eq!(response.error_code, 0);
        let produce: Vec<&ApiVersion> = response
            .api_keys
            .iter()
            .filter(|api| api.api_key == ApiKey::Produce as i16)
            .collect();
        assert_eq!((produce[0].min_version, produce[0].max_version), (3, 9));
        assert_eq!(response.api_keys.len(), 24, "v{version}");
        for committed in [
            ApiKey::InitProducerId,
            ApiKey::OffsetCommit,
            ApiKey::OffsetDelete,
            ApiKey::JoinGroup,
        ] {
            assert!(
                response
                    .api_keys
                    .iter()
                    .any(|api| api.api_key == committed as i16),
                "{committed:?} advertised"
            );
        }
        assert!(response
            .api_keys
            .iter()
            .all(|api| api.api_key != ApiKey::EndTxn as i16));
    }
    // KIP-511: a version the broker does not know gets a v0 answer with UNSUPPORTED_VERSION and
    // the table, so the client can retry.
    let mut connection = RawConnection::connect(broker.bootstrap);
    let correlation_id = connection.send(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());
    let _ = correlation_id;
    let mut frame = vec![];
    let header = RequestHeader::default()
        .with_request_api_key(ApiKey::ApiVersions as i16)
        .with_request_api_version(99)
        .with_correlation_id(77);
    let mut payload = bytes::BytesMut::new();
    kafka_protocol::protocol::Encodable::encode(&header, &mut payload, 1).unwrap();
    frame.extend_from_slice(&(payload.len() as i32).to_be_bytes());
    frame.extend_from_slice(&payload);
    let _: ApiVersionsResponse = connection.receive(ApiKey::ApiVersions, 3, correlation_id);
    connection.send_raw(&frame);
    let response: ApiVersionsResponse = connection.receive(ApiKey::ApiVersions, 0, 77);
    assert_eq!(
        response.error_code,
        ResponseError::UnsupportedVersion.code()
    );
    assert_eq!(response.api_keys.len(), 24);
}

#[test]
fn bad_frames_and_unsupported_requests_close_only_their_connection() {
    let directory = tempdir();
    let config = directory.path().join("broker.toml");
    std::fs::write(
        &config,
        "max_request_bytes = 65536\n[log]\nmessage_max_bytes = 16384\n",
    )
    .unwrap();
    let broker = Broker::start(
        &directory.path().join("data"),
        2,
        &["--config", config.to_str().unwrap()],
    );
    // A frame above max_request_bytes: closed, with a log line, before the body is read.
    let mut connection = RawConnection::connect(broker.bootstrap);
    connection.send_raw(&(1_000_000i32).to_be_bytes());
    assert!(connection.is_closed_by_broker());
    // A negative size.
    let mut connection = RawConnection::connect(broker.bootstrap);
    connection.send_raw(&(-1i32).to_be_bytes());
    assert!(connection.is_closed_by_broker());
    // An API StreamBus does not implement (EndTxn), and Produce below v3.
    let mut connection = RawConnection::connect(broker.bootstrap);
    connection.send(ApiKey::EndTxn, 1, &EndTxnRequest::default());
    assert!(connection.is_closed_by_broker());
    let mut connection = RawConnection::connect(broker.bootstrap);
    let mut frame = Vec::new();
    let body = [0u8, 0, 0, 2, 0, 0, 0, 9, 0, 0];
    frame.extend_from_slice(&(body.len() as i32).to_be_bytes());
    frame.extend_from_slice(&body);
    connection.send_raw(&frame);
    assert!(connection.is_closed_by_broker());
    // A malformed body: a Metadata v12 header followed by garbage.
    let mut connection = RawConnection::connect(broker.bootstrap);
    let header = RequestHeader::default()
        .with_request_api_key(ApiKey::Metadata as i16)
        .with_request_api_version(12)
        .with_correlation_id(5);
    let mut payload = bytes::BytesMut::new();
    kafka_protocol::protocol::Encodable::encode(&header, &mut payload, 2).unwrap();
    payload.extend_from_slice(&[0xff; 40]);
    let mut frame = (payload.len() as i32).to_be_bytes().to_vec();
    frame.extend_from_slice(&payload);
    connection.send_raw(&frame);
    assert!(connection.is_closed_by_broker());
    // A frame that stops halfway, then the client goes away: nothing hangs.
    let mut connection = RawConnection::connect(broker.bootstrap);
    connection.send_raw(&(100i32).to_be_bytes());
    connection.send_raw(&[0; 10]);
    drop(connection);
    // The broker still serves everyone else, on both shards.
    for _ in 0..4 {
        let mut connection = RawConnection::connect(broker.bootstrap);
        connection.send(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());
        assert!(connection.read_frame().is_some(), "log:\n{}", broker.log());
    }
    let log = broker.log();
    assert!(log.contains("above max_request_bytes"), "{log}");
    assert!(log.contains("unsupported API key 26"), "{log}");
    assert!(log.contains("malformed request body"), "{log}");
    assert!(!log.contains("panicked"), "{log}");
}

#[test]
fn produce_errors_are_per_partition_and_exact() {
    let directory = tempdir();
    let config = directory.path().join("broker.toml");
    std::fs::write(&config, "[log]\nmessage_max_bytes = 65536\n").unwrap();
    let broker = Broker::start(
        &directory.path().join("data"),
        2,
        &["--config", config.to_str().unwrap()],
    );
    let mut bootstrap = RawConnection::connect(broker.bootstrap);
    create_topic(&mut bootstrap, "edges", 1);
    let (leader, other) = leader_and_other(&mut bootstrap, "edges");
    let mut on_leader = RawConnection::connect(broker.shard_address(leader));
    let mut on_other = RawConnection::connect(broker.shard_address(other));
    // The owning shard takes it; the other says NOT_LEADER_OR_FOLLOWER.
    assert_eq!(produce(&mut on_leader, "edges", 0, batch(10, 100)), (0, 0));
    assert_eq!(
        produce(&mut on_other, "edges", 0, batch(10, 100)).0,
        ResponseError::NotLeaderOrFollower.code()
    );
    // A flipped byte under the CRC.
    let mut corrupt = batch(5, 100).to_vec();
    let last = corrupt.len() - 1;
    corrupt[last] ^= 0x40;
    assert_eq!(
        produce(&mut on_leader, "edges", 0, Bytes::from(corrupt)).0,
        ResponseError::CorruptMessage.code()
    );
    // Garbage, and a truncated batch.
    assert_eq!(
        produce(
            &mut on_leader,
            "edges",
            0,
            Bytes::from_static(b"not a batch at all")
        )
        .0,
        ResponseError::CorruptMessage.code()
    );
    let truncated = batch(5, 100).slice(..80);
    assert_eq!(
        produce(&mut on_leader, "edges", 0, truncated).0,
        ResponseError::CorruptMessage.code()
    );
    // Above message_max_bytes.
    assert_eq!(
        produce(&mut on_leader, "edges", 0, batch(100, 1000)).0,
        ResponseError::MessageTooLarge.code()
    );
    // Unknown topic, unknown partition, illegal name.
    assert_eq!(
        produce(&mut on_leader, "missing", 0, batch(1, 10)).0,
        ResponseError::UnknownTopicOrPartition.code()
    );
    assert_eq!(
        produce(&mut on_leader, "edges", 7, batch(1, 10)).0,
        ResponseError::UnknownTopicOrPartition.code()
    );
    assert_eq!(
        produce(&mut on_leader, "bad/name", 0, batch(1, 10)).0,
        ResponseError::InvalidTopicException.code()
    );
    // Nothing refused was stored: the next batch gets offset 10.
    assert_eq!(produce(&mut on_leader, "edges", 0, batch(3, 100)), (0, 10));
    // acks=0: no response at all; the next request's response comes next.
    on_leader.send(
        ApiKey::Produce,
        9,
        &produce_request("edges", 0, batch(2, 10), 0),
    );
    let response: ListOffsetsResponse = on_leader.call(
        ApiKey::ListOffsets,
        6,
        &ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(vec![ListOffsetsTopic::default()
                .with_name(topic_name("edges"))
                .with_partitions(vec![ListOffsetsPartition::default()
                    .with_partition_index(0)
                    .with_timestamp(-1)])]),
    );
    // Latest is the offset after the last record: 10 + 3 + 2.
    assert_eq!(response.topics[0].partitions[0].offset, 15);
}

#[test]
fn fetch_long_polls_until_an_append_and_reports_bounds() {
    let directory = tempdir();
    let broker = Broker::start(&directory.path().join("data"), 2, &[]);
    let mut bootstrap = RawConnection::connect(broker.bootstrap);
    create_topic(&mut bootstrap, "poll", 1);
    let (leader, other) = leader_and_other(&mut bootstrap, "poll");
    let mut producer = RawConnection::connect(broker.shard_address(leader));
    let mut consumer = RawConnection::connect(broker.shard_address(leader));
    assert_eq!(produce(&mut producer, "poll", 0, batch(4, 50)), (0, 0));
    // Data there: answered at once.
    let response: FetchResponse =
        consumer.call(ApiKey::Fetch, 12, &fetch_request("poll", 0, 0, 10_000));
    let partition = &response.responses[0].partitions[0];
    assert_eq!(partition.error_code, 0);
    assert_eq!(partition.high_watermark, 4);
    assert_eq!(
        partition.records.as_ref().unwrap(),
        &batch_with_offset(batch(4, 50), 0)
    );
    // Nothing new: the fetch waits, and an append wakes it long before max_wait_ms.
    let started = Instant::now();
    let correlation_id = consumer.send(ApiKey::Fetch, 12, &fetch_request("poll", 0, 4, 20_000));
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(produce(&mut producer, "poll", 0, batch(2, 50)), (0, 4));
    let response: FetchResponse = consumer.receive(ApiKey::Fetch, 12, correlation_id);
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(250), "{waited:?}");
    assert!(waited < Duration::from_secs(5), "{waited:?}");
    let partition = &response.responses[0].partitions[0];
    assert_eq!(partition.high_watermark, 6);
    assert!(!partition.records.as_ref().unwrap().is_empty());
    // Nothing arrives: the fetch returns empty after max_wait_ms.
    let started = Instant::now();
    let response: FetchResponse =
        consumer.call(ApiKey::Fetch, 12, &fetch_request("poll", 0, 6, 500));
    assert!(started.elapsed() >= Duration::from_millis(450));
    assert!(response.responses[0].partitions[0]
        .records
        .as_ref()
        .unwrap()
        .is_empty());
    // Out of range, and the wrong shard.
    let response: FetchResponse =
        consumer.call(ApiKey::Fetch, 12, &fetch_request("poll", 0, 99, 500));
    let partition = &response.responses[0].partitions[0];
    assert_eq!(partition.error_code, ResponseError::OffsetOutOfRange.code());
    assert_eq!(
        (partition.high_watermark, partition.log_start_offset),
        (6, 0)
    );
    let mut wrong = RawConnection::connect(broker.shard_address(other));
    let response: FetchResponse = wrong.call(ApiKey::Fetch, 12, &fetch_request("poll", 0, 0, 500));
    assert_eq!(
        response.responses[0].partitions[0].error_code,
        ResponseError::NotLeaderOrFollower.code()
    );
}

/// The batch as the broker stores it: base offset stamped (it is outside the CRC).
fn batch_with_offset(batch: Bytes, base_offset: i64) -> Bytes {
    let mut bytes = batch.to_vec();
    bytes[..8].copy_from_slice(&base_offset.to_be_bytes());
    Bytes::from(bytes)
}

#[test]
fn connections_above_the_shard_limit_are_refused() {
    let directory = tempdir();
    let config = directory.path().join("broker.toml");
    std::fs::write(&config, "connections_per_shard_max = 2\n").unwrap();
    let broker = Broker::start(
        &directory.path().join("data"),
        1,
        &["--config", config.to_str().unwrap()],
    );
    let mut first = RawConnection::connect(broker.shard_address(0));
    let mut second = RawConnection::connect(broker.bootstrap);
    // Both are accepted and counted once they have answered.
    for connection in [&mut first, &mut second] {
        let response: ApiVersionsResponse =
            connection.call(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());
        assert_eq!(response.error_code, 0);
    }
    let mut third = RawConnection::connect(broker.shard_address(0));
    assert!(third.is_closed_by_broker());
    drop(first);
    // A slot is free again once a connection closes.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut fourth = RawConnection::connect(broker.shard_address(0));
        fourth.send(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());
        if fourth.read_frame().is_some() {
            break;
        }
        assert!(Instant::now() < deadline, "the freed slot was never reused");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(broker.log().contains("connections_per_shard_max"));
}

#[test]
fn bad_flags_and_unusable_data_directories_fail_with_one_line() {
    let directory = tempdir();
    let file = directory.path().join("a-file");
    std::fs::write(&file, "x").unwrap();
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_streambus"))
            .args(args)
            .output()
            .expect("run streambus")
    };
    for args in [
        vec!["--shards", "zero"],
        vec![
            "--data-dir",
            file.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ],
        vec!["--listen", "not-an-address"],
        vec!["--config", "/nonexistent/streambus.toml"],
    ] {
        let output = run(&args);
        assert!(!output.status.success(), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{args:?}: {stderr}");
        assert!(lines[0].starts_with("streambus: "), "{args:?}: {stderr}");
    }
    // Two brokers on one data directory: the second is refused.
    let data = directory.path().join("shared");
    let _first = Broker::start(&data, 1, &[]);
    let output = run(&[
        "--data-dir",
        data.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
    ]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("another broker is using it"));
}

/// A small deterministic generator, so a failing case can be replayed.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
}

#[test]
fn random_bodies_for_every_supported_request_never_take_a_shard_down() {
    let directory = tempdir();
    let broker = Broker::start(&directory.path().join("data"), 2, &[]);
    let mut setup = RawConnection::connect(broker.bootstrap);
    create_topic(&mut setup, "fuzzed", 2);
    let mut random = Lcg(0x5eed);
    for range in streambus::protocol::versions::SUPPORTED_APIS {
        for version in range.min_version..=range.max_version {
            for case in 0..6 {
                let api_key = range.api_key;
                let header = RequestHeader::default()
                    .with_request_api_key(api_key as i16)
                    .with_request_api_version(version)
                    .with_correlation_id(case);
                let mut payload = bytes::BytesMut::new();
                kafka_protocol::protocol::Encodable::encode(
                    &header,
                    &mut payload,
                    api_key.request_header_version(version),
                )
                .unwrap();
                // Lengths that hit every decoder's edges: empty, tiny, and a few hundred bytes;
                // bytes biased towards 0x00 and 0xff (nulls, -1 lengths, huge counts).
                let length = [0, 1, 3, 7, 64, 400][case as usize];
                for _ in 0..length {
                    let byte = match random.next() % 4 {
                        0 => 0x00,
                        1 => 0xff,
                        _ => random.next() as u8,
                    };
                    payload.extend_from_slice(&[byte]);
                }
                let mut frame = (payload.len() as i32).to_be_bytes().to_vec();
                frame.extend_from_slice(&payload);
                let mut connection = RawConnection::connect(broker.bootstrap);
                connection.send_raw(&frame);
                // Either an answer (some bodies decode) or a close; never a hang or a crash.
                let _ = connection.read_frame();
            }
        }
    }
    for _ in 0..4 {
        let mut connection = RawConnection::connect(broker.bootstrap);
        connection.send(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());
        assert!(connection.read_frame().is_some(), "log:\n{}", broker.log());
    }
    let log = broker.log();
    assert!(!log.contains("panicked"), "{log}");
}

#[test]
fn acks_all_answers_without_waiting_for_fsync_under_the_never_policy() {
    let directory = tempdir();
    let config = directory.path().join("broker.toml");
    std::fs::write(&config, "[log]\nflush_policy = \"never\"\n").unwrap();
    let broker = Broker::start(
        &directory.path().join("data"),
        1,
        &["--config", config.to_str().unwrap()],
    );
    let mut connection = RawConnection::connect(broker.bootstrap);
    create_topic(&mut connection, "lazy", 1);
    let started = Instant::now();
    for expected in 0..20 {
        assert_eq!(
            produce(&mut connection, "lazy", 0, batch(1, 10)),
            (0, expected)
        );
    }
    assert!(started.elapsed() < Duration::from_secs(5));
    // Readable at once: the high watermark is the log end offset under `never`.
    let response: FetchResponse =
        connection.call(ApiKey::Fetch, 12, &fetch_request("lazy", 0, 0, 100));
    assert_eq!(response.responses[0].partitions[0].high_watermark, 20);
}

#[test]
fn idle_connections_are_closed_but_long_polls_are_not_idle() {
    let directory = tempdir();
    let config = directory.path().join("broker.toml");
    std::fs::write(&config, "connection_idle_ms_max = 300\n").unwrap();
    let broker = Broker::start(
        &directory.path().join("data"),
        1,
        &["--config", config.to_str().unwrap()],
    );
    let mut connection = RawConnection::connect(broker.bootstrap);
    create_topic(&mut connection, "idle", 1);
    // A fetch that waits 1 s, longer than the idle limit: answered, not cut off.
    let started = Instant::now();
    let response: FetchResponse =
        connection.call(ApiKey::Fetch, 12, &fetch_request("idle", 0, 0, 1_000));
    assert!(started.elapsed() >= Duration::from_millis(900));
    assert_eq!(response.responses[0].partitions[0].error_code, 0);
    // Then nothing: the broker closes the connection after about 300 ms.
    let started = Instant::now();
    assert!(connection.is_closed_by_broker());
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(250) && waited < Duration::from_secs(5),
        "{waited:?}"
    );
}

#[test]
fn a_control_request_over_the_topic_limit_answers_every_topic() {
    let directory = tempdir();
    let broker = Broker::start(&directory.path().join("data"), 2, &[]);
    let mut connection = RawConnection::connect(broker.bootstrap);
    let topics: Vec<CreatableTopic> = (0..10_001)
        .map(|index| {
            CreatableTopic::default()
                .with_name(topic_name(&format!("many-{index}")))
                .with_num_partitions(1)
                .with_replication_factor(1)
        })
        .collect();
    let request = CreateTopicsRequest::default()
        .with_timeout_ms(30_000)
        .with_topics(topics);
    let response: CreateTopicsResponse = connection.call(ApiKey::CreateTopics, 7, &request);
    assert_eq!(response.topics.len(), 10_001);
    assert!(response
        .topics
        .iter()
        .all(|topic| topic.error_code == ResponseError::InvalidRequest.code()));
    // Nothing was created.
    let metadata: MetadataResponse = connection.call(
        ApiKey::Metadata,
        12,
        &MetadataRequest::default().with_topics(None),
    );
    assert!(metadata.topics.is_empty());
}

#[test]
fn replicas_over_the_shard_brokers_of_one_node_are_refused_with_the_reason() {
    // Two shards are advertised as brokers 0 and 1, but they are one node: a second replica
    // would share the first one's disk. Kafka refuses a replication factor above its node
    // count; so does StreamBus, saying why, rather than accept a copy it does not keep.
    let directory = tempdir();
    let broker = Broker::start(&directory.path().join("data"), 2, &[]);
    let mut connection = RawConnection::connect(broker.bootstrap);
    let request = CreateTopicsRequest::default()
        .with_timeout_ms(30_000)
        .with_topics(vec![
            CreatableTopic::default()
                .with_name(topic_name("two-copies"))
                .with_num_partitions(2)
                .with_replication_factor(2),
            CreatableTopic::default()
                .with_name(topic_name("assigned-twice"))
                .with_num_partitions(-1)
                .with_replication_factor(-1)
                .with_assignments(vec![
                    create_topics_request::CreatableReplicaAssignment::default()
                        .with_partition_index(0)
                        .with_broker_ids(vec![BrokerId(0), BrokerId(1)]),
                ]),
            CreatableTopic::default()
                .with_name(topic_name("assigned-once"))
                .with_num_partitions(-1)
                .with_replication_factor(-1)
                .with_assignments(vec![
                    create_topics_request::CreatableReplicaAssignment::default()
                        .with_partition_index(0)
                        .with_broker_ids(vec![BrokerId(1)]),
                    create_topics_request::CreatableReplicaAssignment::default()
                        .with_partition_index(1)
                        .with_broker_ids(vec![BrokerId(0)]),
                ]),
        ]);
    let response: CreateTopicsResponse = connection.call(ApiKey::CreateTopics, 7, &request);
    let outcome = |name: &str| {
        let topic = response
            .topics
            .iter()
            .find(|topic| topic.name.0.as_str() == name)
            .expect("every topic answered");
        (
            topic.error_code,
            topic
                .error_message
                .as_ref()
                .map(|message| message.to_string())
                .unwrap_or_default(),
        )
    };
    let (code, message) = outcome("two-copies");
    assert_eq!(code, ResponseError::InvalidReplicationFactor.code());
    assert!(message.contains("one node"), "{message}");
    let (code, message) = outcome("assigned-twice");
    assert_eq!(code, ResponseError::InvalidReplicaAssignment.code());
    assert!(message.contains("shards (cores) of one"), "{message}");
    // One replica per partition, on any shard broker, is placed as asked.
    assert_eq!(outcome("assigned-once").0, 0);
    let metadata: MetadataResponse = connection.call(
        ApiKey::Metadata,
        12,
        &MetadataRequest::default()
            .with_topics(Some(vec![metadata_request::MetadataRequestTopic::default(
            )
            .with_name(Some(topic_name("assigned-once")))])),
    );
    let mut leaders: Vec<(i32, i32)> = metadata.topics[0]
        .partitions
        .iter()
        .map(|partition| (partition.partition_index, partition.leader_id.0))
        .collect();
    leaders.sort();
    assert_eq!(leaders, vec![(0, 1), (1, 0)]);
}

#[test]
fn find_coordinator_names_the_shard_crc32c_of_the_key_picks_at_every_version() {
    let directory = tempdir();
    let broker = Broker::start(&directory.path().join("data"), 2, &[]);
    let mut connection = RawConnection::connect(broker.bootstrap);
    let expected = |key: &str| streambus::cluster::coordinator_shard(key, 2);
    for version in 0..=3 {
        for (key_type, key) in [(0i8, "orders-readers"), (0, "g"), (1, "txn-1")] {
            if version == 0 && key_type != 0 {
                continue; // v0 knows groups only
            }
            let request = FindCoordinatorRequest::default()
                .with_key(kafka_protocol::protocol::StrBytes::from_static_str(key))
                .with_key_type(key_type);
            let response: FindCoordinatorResponse =
                connection.call(ApiKey::FindCoordinator, version, &request);
            assert_eq!(response.error_code, 0, "v{version} {key}");
            let shard = expected(key);
            assert_eq!(response.node_id.0, shard as i32, "v{version} {key}");
            assert_eq!(response.port, i32::from(broker.shard_ports[shard as usize]));
            assert_eq!(response.host.as_str(), "127.0.0.1");
        }
    }
    // v4: batched keys; an unknown key type is refused per key.
    let keys: Vec<_> = ["a", "b", "c", "d"]
        .iter()
        .map(|key| kafka_protocol::protocol::StrBytes::from_static_str(key))
        .collect();
    let response: FindCoordinatorResponse = connection.call(
        ApiKey::FindCoordinator,
        4,
        &FindCoordinatorRequest::default().with_coordinator_keys(keys.clone()),
    );
    assert_eq!(response.coordinators.len(), 4);
    for coordinator in &response.coordinators {
        assert_eq!(coordinator.error_code, 0);
        assert_eq!(
            coordinator.node_id.0,
            expected(coordinator.key.as_str()) as i32
        );
    }
    let response: FindCoordinatorResponse = connection.call(
        ApiKey::FindCoordinator,
        4,
        &FindCoordinatorRequest::default()
            .with_key_type(7)
            .with_coordinator_keys(keys),
    );
    assert!(response
        .coordinators
        .iter()
        .all(|coordinator| coordinator.error_code == ResponseError::InvalidRequest.code()));
}

#[test]
fn offset_fetch_answers_no_committed_offset_on_the_coordinator_and_not_coordinator_elsewhere() {
    let directory = tempdir();
    let broker = Broker::start(&directory.path().join("data"), 2, &[]);
    let group = "fetching-group";
    let coordinator = streambus::cluster::coordinator_shard(group, 2) as usize;
    let mut on_coordinator = RawConnection::connect(broker.shard_address(coordinator));
    let mut elsewhere = RawConnection::connect(broker.shard_address(1 - coordinator));
    let group_id = GroupId(kafka_protocol::protocol::StrBytes::from_static_str(group));
    let topics = vec![offset_fetch_request::OffsetFetchRequestTopic::default()
        .with_name(topic_name("any-topic"))
        .with_partition_indexes(vec![0, 3])];
    for version in 1..=7 {
        let request = OffsetFetchRequest::default()
            .with_group_id(group_id.clone())
            .with_topics(Some(topics.clone()));
        let response: OffsetFetchResponse =
            on_coordinator.call(ApiKey::OffsetFetch, version, &request);
        let partitions = &response.topics[0].partitions;
        assert_eq!(partitions.len(), 2, "v{version}");
        assert!(partitions
            .iter()
            .all(|partition| partition.committed_offset == -1 && partition.error_code == 0));
        assert_eq!(response.error_code, 0);
        let response: OffsetFetchResponse = elsewhere.call(ApiKey::OffsetFetch, version, &request);
        let not_coordinator = ResponseError::NotCoordinator.code();
        if version >= 2 {
            assert_eq!(response.error_code, not_coordinator, "v{version}");
        } else {
            assert!(response.topics[0]
                .partitions
                .iter()
                .all(|partition| partition.error_code == not_coordinator));
        }
        // Every committed partition of the group (topics null, v2+): there are none.
        if version >= 2 {
            let request = OffsetFetchRequest::default()
                .with_group_id(group_id.clone())
                .with_topics(None);
            let response: OffsetFetchResponse =
                on_coordinator.call(ApiKey::OffsetFetch, version, &request);
            assert!(response.topics.is_empty());
        }
    }
    for version in 8..=9 {
        let request = OffsetFetchRequest::default().with_groups(vec![
            offset_fetch_request::OffsetFetchRequestGroup::default()
                .with_group_id(group_id.clone())
                .with_topics(Some(vec![
                    offset_fetch_request::OffsetFetchRequestTopics::default()
                        .with_name(topic_name("any-topic"))
                        .with_partition_indexes(vec![1]),
                ])),
        ]);
        let response: OffsetFetchResponse =
            on_coordinator.call(ApiKey::OffsetFetch, version, &request);
        assert_eq!(response.groups[0].error_code, 0);
        let partition = &response.groups[0].topics[0].partitions[0];
        assert_eq!(
            (partition.partition_index, partition.committed_offset),
            (1, -1)
        );
        let response: OffsetFetchResponse = elsewhere.call(ApiKey::OffsetFetch, version, &request);
        assert_eq!(
            response.groups[0].error_code,
            ResponseError::NotCoordinator.code()
        );
    }
}
