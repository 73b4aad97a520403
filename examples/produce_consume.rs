//! Produce keyed records with the StreamBus client, then read them back.
//!
//! `cargo run --release` (the broker) in one terminal, then
//! `cargo run --example produce_consume -- 127.0.0.1:9092` in another.

use std::time::Duration;

use glommio::{LocalExecutorBuilder, Placement};
use streambus::client::{
    Acks, Admin, ClientConfig, Consumer, ConsumerConfig, NewTopic, OffsetSpec, Producer,
    ProducerConfig, ProducerRecord,
};
use streambus::record::Compression;

fn main() {
    let bootstrap = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9092".into());
    let handle = LocalExecutorBuilder::new(Placement::Unbound)
        .spawn(move || async move {
            let client = ClientConfig::new(&bootstrap);
            // Create the topic; "already exists" is fine on a second run.
            let admin = Admin::new(client.clone());
            if let Ok(results) = admin.create_topics(&[NewTopic::new("example", 3)]).await {
                for result in results {
                    if let Err(error) = result {
                        eprintln!("create topic: {error}");
                    }
                }
            }
            let producer = Producer::new(
                client.clone(),
                ProducerConfig {
                    acks: Acks::All,
                    compression: Compression::Lz4,
                    ..ProducerConfig::default()
                },
            )
            .expect("producer config");
            let mut deliveries = Vec::new();
            for index in 0..10 {
                let key = format!("user-{}", index % 3);
                let value = format!("event {index}");
                let record = ProducerRecord {
                    topic: "example",
                    key: Some(key.as_bytes()),
                    value: Some(value.as_bytes()),
                    ..ProducerRecord::default()
                };
                match producer.send(record).await {
                    Ok(delivery) => deliveries.push(delivery),
                    Err(error) => eprintln!("send: {error}"),
                }
            }
            producer.flush().await;
            for delivery in deliveries {
                match delivery.await {
                    Ok(metadata) => println!(
                        "delivered to partition {} offset {}",
                        metadata.partition, metadata.offset
                    ),
                    Err(error) => eprintln!("delivery failed: {error}"),
                }
            }
            let consumer = Consumer::new(client, ConsumerConfig::default());
            let assignment: Vec<(&str, i32, OffsetSpec)> = (0..3)
                .map(|partition| ("example", partition, OffsetSpec::Earliest))
                .collect();
            if let Err(error) = consumer.assign(&assignment).await {
                eprintln!("assign: {error}");
                return;
            }
            match consumer.poll(100, Duration::from_secs(2)).await {
                Ok(records) => {
                    for record in records {
                        println!(
                            "read {}-{}@{}: {:?} = {:?}",
                            record.topic,
                            record.partition,
                            record.offset,
                            record.key.as_deref().map(String::from_utf8_lossy),
                            record.value.as_deref().map(String::from_utf8_lossy)
                        );
                    }
                }
                Err(error) => eprintln!("poll: {error}"),
            }
        })
        .expect("start a glommio executor (is `ulimit -l` high enough?)");
    handle.join().expect("example");
}
