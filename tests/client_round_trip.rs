//! The Rust client SDK against the real broker: produce and consume with keys and codecs,
//! partitioner agreement with librdkafka, retries across a broker restart, errors surfaced.

mod broker_support;

use std::collections::BTreeMap;
use std::future::Future;
use std::time::{Duration, Instant};

use broker_support::{free_port_run, tempdir, Broker};

use glommio::{LocalExecutorBuilder, Placement};
use rdkafka::config::ClientConfig as RdConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};
use streambus::client::partitioner::partition_for_key;
use streambus::client::{
    Acks, Admin, ClientConfig, ClientError, Consumer, ConsumerConfig, NewTopic, OffsetAndMetadata,
    OffsetSpec, Producer, ProducerConfig, ProducerRecord,
};
use streambus::record::Compression;

fn run<F, Fut>(body: F)
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = ()> + 'static,
{
    LocalExecutorBuilder::new(Placement::Unbound)
        .io_memory(4 << 20)
        .spawn(body)
        .expect("executor")
        .join()
        .expect("test body panicked");
}

async fn create(bootstrap: &str, topic: &str, partitions: i32) {
    let admin = Admin::new(ClientConfig::new(bootstrap));
    let results = admin
        .create_topics(&[NewTopic::new(topic, partitions)])
        .await
        .expect("create topics");
    results.into_iter().for_each(|r| r.expect("created"));
}

/// Reads `expected` records from every partition of `topic`, from the beginning.
async fn consume_all(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    expected: usize,
) -> Vec<(i32, i64, Vec<u8>, Vec<u8>)> {
    let consumer = Consumer::new(ClientConfig::new(bootstrap), ConsumerConfig::default());
    let assignment: Vec<(&str, i32, OffsetSpec)> = (0..partitions)
        .map(|p| (topic, p, OffsetSpec::Earliest))
        .collect();
    consumer.assign(&assignment).await.expect("assign");
    let mut records = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while records.len() < expected {
        assert!(
            Instant::now() < deadline,
            "consumed {} of {expected}",
            records.len()
        );
        for record in consumer
            .poll(10_000, Duration::from_millis(500))
            .await
            .expect("poll")
        {
            records.push((
                record.partition,
                record.offset,
                record.key.map(|k| k.to_vec()).unwrap_or_default(),
                record.value.map(|v| v.to_vec()).unwrap_or_default(),
            ));
        }
    }
    assert!(consumer
        .poll(10, Duration::from_millis(200))
        .await
        .expect("poll")
        .is_empty());
    records
}

#[test]
fn produce_and_consume_with_keys_and_every_client_codec() {
    let directory = tempdir();
    let broker = Broker::start(&directory.path().join("data"), 2, &[]);
    let bootstrap = broker.bootstrap_servers();
    run(move || async move {
        create(&bootstrap, "sdk", 6).await;
        let mut sent = BTreeMap::new();
        for (round, (codec, acks)) in [
            (Compression::None, Acks::All),
            (Compression::Lz4, Acks::Leader),
            (Compression::Zstd, Acks::All),
            (Compression::Gzip, Acks::All),
        ]
        .into_iter()
        .enumerate()
        {
            let producer = Producer::new(
                ClientConfig::new(&bootstrap),
                ProducerConfig {
                    compression: codec,
                    acks,
                    batch_bytes: 16 << 10,
                    ..ProducerConfig::default()
                },
            )
            .expect("producer");
            let mut deliveries = Vec::new();
            for index in 0..2_000 {
                let key = format!("key-{round}-{index}");
                let value = format!("value-{round}-{index}-{}", "x".repeat(100));
                let delivery = producer
                    .send(ProducerRecord {
                        topic: "sdk",
                        key: Some(key.as_bytes()),
                        value: Some(value.as_bytes()),
                        ..ProducerRecord::default()
                    })
                    .await
                    .expect("send");
                deliveries.push((key, value, delivery));
            }
            producer.flush().await;
            for (key, value, delivery) in deliveries {
                let metadata = delivery.await.expect("delivered");
                assert_eq!(metadata.partition, partition_for_key(key.as_bytes(), 6));
                sent.insert(
                    (metadata.partition, metadata.offset),
                    (key.into_bytes(), value.into_bytes()),
                );
            }
        }
        let received = consume_all(&bootstrap, "sdk", 6, sent.len()).await;
        let received: BTreeMap<(i32, i64), (Vec<u8>, Vec<u8>)> = received
            .into_iter()
            .map(|(partition, offset, key, value)| ((partition, offset), (key, value)))
            .collect();
        assert_eq!(received, sent);
        // Offsets look-ups agree with what was written.
        let admin = Admin::new(ClientConfig::new(&bootstrap));
        let mut latest_sum = 0i64;
        for partition in 0..6 {
            latest_sum += admin
                .list_offset("sdk", partition, OffsetSpec::Latest)
                .await
                .expect("latest");
            assert_eq!(
                admin
                    .list_offset("sdk", partition, OffsetSpec::Earliest)
                    .await
                    .expect("earliest"),
                0
            );
        }
        assert_eq!(latest_sum as usize, sent.len());
        // Growing the topic (regression: an empty assignment list was taken as explicit).
        admin.create_partitions("sdk", 8).await.expect("grow");
        assert_eq!(
            admin
                .describe_topic("sdk")
                .await
                .expect("describe")
                .partitions
                .len(),
            8
        );
        assert!(admin.create_partitions("sdk", 8).await.is_err());
    });
}

#[test]
fn keyed_partitions_agree_with_librdkafka_murmur2() {
    let directory = tempdir();
    let broker = Broker::start(&directory.path().join("data"), 2, &[]);
    let bootstrap = broker.bootstrap_servers();
    {
        let bootstrap = bootstrap.clone();
        run(move || async move { create(&bootstrap, "agree", 7).await });
    }
    let producer: FutureProducer = RdConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("partitioner", "murmur2_random")
        .create()
        .expect("rdkafka producer");
    for index in 0..300 {
        let key = format!("customer-{index}-{}", "k".repeat(index % 13));
        let delivered = futures_lite::future::block_on(producer.send(
            FutureRecord::to("agree").key(&key).payload("v"),
            Duration::from_secs(30),
        ))
        .map_err(|(error, _)| error)
        .expect("rdkafka delivery");
        assert_eq!(
            delivered.partition,
            partition_for_key(key.as_bytes(), 7),
            "{key}"
        );
    }
}

#[test]
fn sends_retry_across_a_broker_restart_and_errors_surface() {
    let directory = tempdir();
    let data = directory.path().join("data");
    let port = free_port_run();
    let listen = format!("127.0.0.1:{port}");
    let config = directory.path().join("broker.toml");
    std::fs::write(&config, "[log]\nmessage_max_bytes = 65536\n").unwrap();
    let config_arg = config.to_str().unwrap().to_string();
    // A fixed port, so the client's bootstrap address stays valid across the restart.
    let start =
        |data: &std::path::Path| Broker::start_on(data, 2, &listen, &["--config", &config_arg]);
    let mut broker = start(&data);
    let bootstrap = listen.clone();
    let (stop_sender, stop_receiver) = std::sync::mpsc::channel::<()>();
    let (restarted_sender, restarted_receiver) = std::sync::mpsc::channel::<()>();
    let client = std::thread::spawn({
        let bootstrap = bootstrap.clone();
        move || {
            run(move || async move {
                create(&bootstrap, "restart", 2).await;
                let producer = Producer::new(
                    ClientConfig::new(&bootstrap),
                    ProducerConfig {
                        retries: 100,
                        retry_backoff_ms: 100,
                        linger_ms: 1,
                        ..ProducerConfig::default()
                    },
                )
                .expect("producer");
                async fn send(
                    producer: &Producer,
                    index: usize,
                ) -> streambus::client::DeliveryFuture {
                    let key = format!("k{index}");
                    producer
                        .send(ProducerRecord {
                            topic: "restart",
                            key: Some(key.as_bytes()),
                            value: Some(b"v"),
                            ..ProducerRecord::default()
                        })
                        .await
                        .expect("send")
                }
                for index in 0..100 {
                    send(&producer, index)
                        .await
                        .await
                        .expect("before the restart");
                }
                // The broker goes away now; these wait and retry until it is back.
                stop_sender.send(()).expect("signal");
                let mut pending = Vec::new();
                for index in 100..200 {
                    pending.push(send(&producer, index).await);
                }
                restarted_receiver.recv().expect("restarted");
                for delivery in pending {
                    delivery.await.expect("delivered after the restart");
                }
                // Errors are surfaced, typed: a batch above the topic's limit.
                let big = vec![0u8; 100_000];
                let refused = producer
                    .send(ProducerRecord {
                        topic: "restart",
                        partition: Some(0),
                        value: Some(&big),
                        ..ProducerRecord::default()
                    })
                    .await
                    .expect("send")
                    .await;
                match refused {
                    Err(ClientError::Broker { error, .. }) => {
                        assert_eq!(error, kafka_protocol::ResponseError::MessageTooLarge)
                    }
                    other => panic!("expected MESSAGE_TOO_LARGE, got {other:?}"),
                }
                // A position past the end: OFFSET_OUT_OF_RANGE from poll.
                let consumer =
                    Consumer::new(ClientConfig::new(&bootstrap), ConsumerConfig::default());
                consumer
                    .assign(&[("restart", 0, OffsetSpec::Offset(1_000_000))])
                    .await
                    .expect("assign");
                let error = consumer
                    .poll(10, Duration::from_secs(5))
                    .await
                    .expect_err("out of range");
                assert!(error.to_string().contains("OffsetOutOfRange"), "{error}");
                // Replication factor 3 on one node.
                let admin = Admin::new(ClientConfig::new(&bootstrap));
                let mut topic = NewTopic::new("three", 1);
                topic.replication_factor = 3;
                let result = admin.create_topics(&[topic]).await.expect("create");
                assert!(matches!(
                    &result[0],
                    Err(ClientError::Broker {
                        error: kafka_protocol::ResponseError::InvalidReplicationFactor,
                        ..
                    })
                ));
                // Everything sent arrived, once.
                let records = consume_all(&bootstrap, "restart", 2, 200).await;
                assert_eq!(records.len(), 200);
            })
        }
    });
    stop_receiver.recv().expect("client ready");
    broker.stop();
    std::thread::sleep(Duration::from_millis(500));
    let _broker = start(&data);
    restarted_sender.send(()).expect("signal");
    client.join().expect("client thread");
}

#[test]
fn consumer_assign_by_time_and_latest_and_seek() {
    let directory = tempdir();
    let broker = Broker::start(&directory.path().join("data"), 1, &[]);
    let bootstrap = broker.bootstrap_servers();
    run(move || async move {
        create(&bootstrap, "seek", 1).await;
        let producer = Producer::new(ClientConfig::new(&bootstrap), ProducerConfig::default())
            .expect("producer");
        let base_ms = 1_700_000_000_000i64;
        let mut deliveries = Vec::new();
        for index in 0..50i64 {
            let value = format!("v{index}");
            deliveries.push(
                producer
                    .send(ProducerRecord {
                        topic: "seek",
                        partition: Some(0),
                        value: Some(value.as_bytes()),
                        timestamp_ms: Some(base_ms + index * 1_000),
                        ..ProducerRecord::default()
                    })
                    .await
                    .expect("send"),
            );
        }
        producer.flush().await;
        for delivery in deliveries {
            delivery.await.expect("delivered");
        }
        let consumer = Consumer::new(ClientConfig::new(&bootstrap), ConsumerConfig::default());
        // By time: the first record at or after base + 20.5 s is offset 21.
        consumer
            .assign(&[("seek", 0, OffsetSpec::Timestamp(base_ms + 20_500))])
            .await
            .expect("assign");
        assert_eq!(consumer.position("seek", 0), Some(21));
        let records = consumer
            .poll(5, Duration::from_secs(5))
            .await
            .expect("poll");
        assert_eq!(records.first().map(|r| r.offset), Some(21));
        assert_eq!(
            records.first().map(|r| r.timestamp_ms),
            Some(base_ms + 21_000)
        );
        // Seek back: what was buffered from the old position is dropped.
        consumer.seek("seek", 0, 3);
        let mut offsets = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        while offsets.len() < 47 && Instant::now() < deadline {
            offsets.extend(
                consumer
                    .poll(100, Duration::from_millis(500))
                    .await
                    .expect("poll")
                    .iter()
                    .map(|r| r.offset),
            );
        }
        assert_eq!(offsets, (3..50).collect::<Vec<i64>>());
        // Latest: nothing until something new arrives, then exactly that.
        let tail = Consumer::new(ClientConfig::new(&bootstrap), ConsumerConfig::default());
        tail.assign(&[("seek", 0, OffsetSpec::Latest)])
            .await
            .expect("assign");
        assert_eq!(tail.position("seek", 0), Some(50));
        assert!(tail
            .poll(10, Duration::from_millis(300))
            .await
            .expect("poll")
            .is_empty());
        producer
            .send(ProducerRecord {
                topic: "seek",
                partition: Some(0),
                value: Some(b"new"),
                ..ProducerRecord::default()
            })
            .await
            .expect("send")
            .await
            .expect("delivered");
        let records = tail.poll(10, Duration::from_secs(5)).await.expect("poll");
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].offset, 50);
        assert_eq!(records[0].value.as_deref(), Some(&b"new"[..]));
    });
}

#[test]
fn consumer_commits_positions_and_a_new_consumer_resumes_from_them() {
    let directory = tempdir();
    let broker = Broker::start(&directory.path().join("data"), 2, &[]);
    let bootstrap = broker.bootstrap_servers();
    run(move || async move {
        create(&bootstrap, "resume-sdk", 2).await;
        let producer = Producer::new(ClientConfig::new(&bootstrap), ProducerConfig::default())
            .expect("producer");
        let mut deliveries = Vec::new();
        for index in 0..40i32 {
            let value = format!("v{index}");
            deliveries.push(
                producer
                    .send(ProducerRecord {
                        topic: "resume-sdk",
                        partition: Some(index % 2),
                        value: Some(value.as_bytes()),
                        ..ProducerRecord::default()
                    })
                    .await
                    .expect("send"),
            );
        }
        producer.flush().await;
        for delivery in deliveries {
            delivery.await.expect("delivered");
        }
        let config = || ConsumerConfig {
            group_id: Some("sdk-group".into()),
            ..ConsumerConfig::default()
        };
        let first = Consumer::new(ClientConfig::new(&bootstrap), config());
        assert_eq!(
            first
                .committed(&[("resume-sdk", 0), ("resume-sdk", 1)])
                .await
                .expect("committed"),
            [None, None],
            "nothing committed yet"
        );
        first
            .assign(&[
                ("resume-sdk", 0, OffsetSpec::Earliest),
                ("resume-sdk", 1, OffsetSpec::Earliest),
            ])
            .await
            .expect("assign");
        let mut consumed = 0;
        let deadline = Instant::now() + Duration::from_secs(10);
        while consumed < 14 && Instant::now() < deadline {
            consumed += first
                .poll(14 - consumed, Duration::from_millis(500))
                .await
                .expect("poll")
                .len();
        }
        assert_eq!(consumed, 14);
        first.commit_positions().await.expect("commit positions");
        let positions = [
            first.consumed_position("resume-sdk", 0).expect("assigned"),
            first.consumed_position("resume-sdk", 1).expect("assigned"),
        ];
        assert_eq!(positions.iter().sum::<i64>(), 14);
        first
            .commit(&[(
                "resume-sdk",
                1,
                OffsetAndMetadata {
                    offset: positions[1],
                    metadata: Some("sdk-checkpoint".into()),
                },
            )])
            .await
            .expect("commit with metadata");
        drop(first);

        let second = Consumer::new(ClientConfig::new(&bootstrap), config());
        let committed = second
            .committed(&[("resume-sdk", 0), ("resume-sdk", 1)])
            .await
            .expect("committed");
        assert_eq!(committed[0].as_ref().map(|c| c.offset), Some(positions[0]));
        assert_eq!(
            committed[1],
            Some(OffsetAndMetadata {
                offset: positions[1],
                metadata: Some("sdk-checkpoint".into())
            })
        );
        second
            .assign(&[
                ("resume-sdk", 0, OffsetSpec::Offset(positions[0])),
                ("resume-sdk", 1, OffsetSpec::Offset(positions[1])),
            ])
            .await
            .expect("assign");
        let mut rest = 0;
        let deadline = Instant::now() + Duration::from_secs(10);
        while rest < 26 && Instant::now() < deadline {
            rest += second
                .poll(100, Duration::from_millis(500))
                .await
                .expect("poll")
                .len();
        }
        assert_eq!(rest, 26, "exactly what was not committed is read again");

        // Without a group id, committed offsets are a configuration error, not a hang.
        let groupless = Consumer::new(ClientConfig::new(&bootstrap), ConsumerConfig::default());
        assert!(matches!(
            groupless.committed(&[("resume-sdk", 0)]).await,
            Err(ClientError::InvalidConfig(_))
        ));
    });
}

#[test]
fn the_default_producer_is_idempotent_and_keeps_sequences_across_request_timeouts() {
    let directory = tempdir();
    let broker = Broker::start(&directory.path().join("data"), 1, &[]);
    let bootstrap = broker.bootstrap_servers();
    let (paused_sender, paused_receiver) = std::sync::mpsc::channel::<()>();
    let (resumed_sender, resumed_receiver) = std::sync::mpsc::channel::<()>();
    let client = std::thread::spawn({
        let bootstrap = bootstrap.clone();
        move || {
            run(move || async move {
                create(&bootstrap, "sdk-idempotent", 2).await;
                let mut client = ClientConfig::new(&bootstrap);
                // Requests time out while the broker is paused: the producer sends them
                // again, under the same sequences, until it answers.
                client.request_timeout_ms = 500;
                let producer = Producer::new(
                    client,
                    ProducerConfig {
                        retries: 100,
                        retry_backoff_ms: 100,
                        linger_ms: 1,
                        ..ProducerConfig::default()
                    },
                )
                .expect("producer");
                assert!(producer.is_idempotent(), "on by default with acks=all");
                let mut deliveries = Vec::new();
                for index in 0..2_000 {
                    let value = index.to_string();
                    deliveries.push(
                        producer
                            .send(ProducerRecord {
                                topic: "sdk-idempotent",
                                partition: Some(index % 2),
                                value: Some(value.as_bytes()),
                                ..ProducerRecord::default()
                            })
                            .await
                            .expect("send"),
                    );
                    if index == 1_000 {
                        // The broker is paused for 2 s from here: the next batches go out to
                        // it, time out after 500 ms and are sent again.
                        paused_sender.send(()).expect("signal");
                        glommio::timer::sleep(Duration::from_millis(100)).await;
                    }
                }
                while resumed_receiver.try_recv().is_err() {
                    glommio::timer::sleep(Duration::from_millis(10)).await;
                }
                for delivery in deliveries {
                    delivery.await.expect("delivered");
                }
                // An idempotent producer needs acks=all.
                let refused = Producer::new(
                    ClientConfig::new(&bootstrap),
                    ProducerConfig {
                        acks: Acks::Leader,
                        idempotence: Some(true),
                        ..ProducerConfig::default()
                    },
                );
                assert!(matches!(refused, Err(ClientError::InvalidConfig(_))));
            });
        }
    });
    paused_receiver.recv().expect("paused");
    broker.signal(libc::SIGSTOP);
    std::thread::sleep(Duration::from_millis(2_000));
    broker.signal(libc::SIGCONT);
    resumed_sender.send(()).expect("resume");
    client.join().expect("client");
    let mut connection = broker_support::RawConnection::connect(broker.shard_address(0));
    for partition in 0..2 {
        let batches = broker_support::stored_batches(&mut connection, "sdk-idempotent", partition);
        let records: u64 = batches
            .iter()
            .map(|batch| u64::from(batch.record_count))
            .sum();
        assert_eq!(records, 1_000, "partition {partition}: every record once");
        let mut expected = (-1, 0);
        for batch in &batches {
            assert!(batch.producer_id >= 0, "stamped with a producer id");
            if batch.producer_id != expected.0 {
                // A new producer id (after an abandoned identity) starts at sequence 0.
                expected = (batch.producer_id, 0);
            }
            assert_eq!(
                batch.base_sequence, expected.1,
                "partition {partition} in sequence"
            );
            expected.1 += batch.record_count as i32;
        }
    }
}
