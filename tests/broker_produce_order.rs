//! A partition's batches are stored in the order each connection sent them, even when
//! produce requests are pipelined and the partition pushes back (a tiny `staged_bytes_max`):
//! librdkafka, our own client and the loadgen pipeline produce requests on one connection and
//! count on Kafka's rule that a connection's requests take effect in order.

mod broker_support;

use std::collections::HashMap;
use std::thread;

use broker_support::{stored_batches, tempdir, Broker, RawConnection};
use bytes::Bytes;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use streambus::record::{Record, RecordBatchBuilder};

const TOPIC: &str = "ordered";
const PARTITIONS: i32 = 4;
/// Connections, spread over both shards and both acks settings.
const CONNECTIONS: usize = 6;
/// Produce requests each connection pipelines.
const REQUESTS_PER_CONNECTION: usize = 1_500;
/// Each batch's value: four batches fill the 8 KiB staging limit.
const VALUE_BYTES: usize = 2_048;
/// Batch timestamps encode (connection, request): connection * STRIDE + request.
const TIMESTAMP_STRIDE: i64 = 1_000_000;
const TIMESTAMP_BASE: i64 = 1_700_000_000_000;

fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_string()))
}

fn batch(timestamp_ms: i64) -> Bytes {
    let value = vec![b'v'; VALUE_BYTES];
    let mut builder = RecordBatchBuilder::with_capacity(VALUE_BYTES + 64);
    builder.push(Record {
        key: Some(b"key"),
        value: Some(&value),
        headers: &[],
        timestamp_ms,
    });
    builder.build().into_bytes()
}

/// One request carrying a batch for each of `partitions`, in the order given.
fn produce_request(partitions: &[i32], acks: i16, timestamp_ms: i64) -> ProduceRequest {
    ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(topic_name(TOPIC))
            .with_partition_data(
                partitions
                    .iter()
                    .map(|&partition| {
                        PartitionProduceData::default()
                            .with_index(partition)
                            .with_records(Some(batch(timestamp_ms)))
                    })
                    .collect(),
            )])
}

#[test]
fn pipelined_produce_requests_keep_each_connections_order_under_backpressure() {
    let directory = tempdir();
    let config = directory.path().join("broker.toml");
    std::fs::write(
        &config,
        "[log]\nwrite_buffer_bytes = 8192\nstaged_bytes_max = 8192\n",
    )
    .unwrap();
    let broker = Broker::start(
        &directory.path().join("data"),
        2,
        &["--config", config.to_str().unwrap()],
    );
    let mut admin = RawConnection::connect(broker.bootstrap);
    let created: CreateTopicsResponse = admin.call(
        ApiKey::CreateTopics,
        7,
        &CreateTopicsRequest::default()
            .with_timeout_ms(30_000)
            .with_topics(vec![CreatableTopic::default()
                .with_name(topic_name(TOPIC))
                .with_num_partitions(PARTITIONS)
                .with_replication_factor(1)]),
    );
    assert_eq!(created.topics[0].error_code, 0);
    let metadata: MetadataResponse = admin.call(
        ApiKey::Metadata,
        12,
        &MetadataRequest::default().with_topics(Some(vec![
            metadata_request::MetadataRequestTopic::default().with_name(Some(topic_name(TOPIC))),
        ])),
    );
    let mut partitions_by_shard: HashMap<usize, Vec<i32>> = HashMap::new();
    for partition in &metadata.topics[0].partitions {
        partitions_by_shard
            .entry(partition.leader_id.0 as usize)
            .or_default()
            .push(partition.partition_index);
    }
    let shards: Vec<usize> = partitions_by_shard.keys().copied().collect();

    // Each connection pipelines every request at once from one thread while another thread
    // reads the responses, and records each partition's base offsets in send order.
    let mut workers = Vec::new();
    for connection_index in 0..CONNECTIONS {
        let shard = shards[connection_index % shards.len()];
        let partitions = partitions_by_shard[&shard].clone();
        let acks: i16 = if (connection_index / 2) % 2 == 0 {
            1
        } else {
            -1
        };
        let address = broker.shard_address(shard);
        workers.push(thread::spawn(move || {
            let mut sender = RawConnection::connect(address);
            let mut receiver = sender.try_clone();
            let reader = thread::spawn(move || {
                let mut base_offsets: HashMap<i32, Vec<i64>> = HashMap::new();
                for request_index in 0..REQUESTS_PER_CONNECTION {
                    let response: ProduceResponse =
                        receiver.receive(ApiKey::Produce, 9, request_index as i32 + 1);
                    for partition in &response.responses[0].partition_responses {
                        assert_eq!(partition.error_code, 0, "{partition:?}");
                        base_offsets
                            .entry(partition.index)
                            .or_default()
                            .push(partition.base_offset);
                    }
                }
                base_offsets
            });
            for request_index in 0..REQUESTS_PER_CONNECTION {
                let timestamp_ms = TIMESTAMP_BASE
                    + connection_index as i64 * TIMESTAMP_STRIDE
                    + request_index as i64;
                // Alternate the partition order inside requests too.
                let mut order = partitions.clone();
                if request_index % 2 == 1 {
                    order.reverse();
                }
                sender.send(
                    ApiKey::Produce,
                    9,
                    &produce_request(&order, acks, timestamp_ms),
                );
            }
            (connection_index, reader.join().expect("reader thread"))
        }));
    }
    for worker in workers {
        let (connection_index, base_offsets) = worker.join().expect("connection thread");
        for (partition, offsets) in base_offsets {
            assert_eq!(offsets.len(), REQUESTS_PER_CONNECTION);
            assert!(
                offsets.windows(2).all(|pair| pair[0] < pair[1]),
                "connection {connection_index} partition {partition}: offsets out of send order"
            );
        }
    }

    // What is stored agrees: per partition, each connection's batches in send order, all of
    // them, and nothing else.
    let mut stored_total = 0;
    for partition in 0..PARTITIONS {
        let shard = shards
            .iter()
            .copied()
            .find(|shard| partitions_by_shard[shard].contains(&partition))
            .expect("every partition has a leader");
        let mut leader = RawConnection::connect(broker.shard_address(shard));
        let headers = stored_batches(&mut leader, TOPIC, partition);
        let mut last_request: HashMap<i64, i64> = HashMap::new();
        for header in &headers {
            let relative = header.base_timestamp - TIMESTAMP_BASE;
            let (connection_index, request_index) =
                (relative / TIMESTAMP_STRIDE, relative % TIMESTAMP_STRIDE);
            if let Some(previous) = last_request.insert(connection_index, request_index) {
                assert!(
                    previous < request_index,
                    "partition {partition}: connection {connection_index}'s request \
                     {request_index} stored after its request {previous}"
                );
            }
        }
        stored_total += headers.len();
    }
    let connections_per_shard = CONNECTIONS / shards.len();
    let partitions_per_shard = PARTITIONS as usize / shards.len();
    assert_eq!(
        stored_total,
        shards.len() * connections_per_shard * partitions_per_shard * REQUESTS_PER_CONNECTION
    );
}
