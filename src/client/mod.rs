//! The Rust client SDK: a Kafka client on glommio, with no librdkafka. It speaks to StreamBus
//! and to any Kafka-compatible broker.
//!
//! | piece | file |
//! | --- | --- |
//! | [`ClientConfig`], [`ProducerConfig`], [`ConsumerConfig`] | `config.rs` |
//! | [`ClientError`] | `error.rs` |
//! | one pipelined connection per broker, version negotiation | `connection.rs` |
//! | brokers, topics, leaders, connections | `cluster.rs` |
//! | murmur2 (Java-compatible) and sticky partitioners | `partitioner.rs` |
//! | [`Producer`]: batching, linger, acks, compression, retries, bounded in-flight, idempotence | `producer.rs` |
//! | the idempotent producer's id and per-partition sequences (KIP-98) | `idempotence.rs` |
//! | [`Consumer`]: assign, seek, pipelined fetches | `consumer.rs` |
//! | [`GroupConsumer`]: subscribe through a consumer group (classic protocol), eager or cooperative rebalances, auto-commit, rebalance callbacks | `group_consumer.rs` |
//! | [`Assignor`]: range and roundrobin; Kafka's subscription and assignment formats | `assignor.rs` |
//! | the cooperative-sticky assignor (KIP-429) | `cooperative_sticky.rs` |
//! | committed offsets: FindCoordinator, OffsetCommit, OffsetFetch | `group_offsets.rs` |
//! | [`Admin`]: create, grow, delete, describe, list offsets | `admin.rs` |
//!
//! Everything runs on the calling glommio executor and is `Rc`-based: one client per core.

pub mod admin;
pub mod assignor;
pub mod cluster;
pub mod config;
pub mod connection;
pub mod consumer;
pub mod cooperative_sticky;
pub mod error;
pub mod group_consumer;
pub mod group_offsets;
pub mod idempotence;
pub mod partitioner;
pub mod producer;

pub use admin::{Admin, NewTopic, OffsetSpec};
pub use assignor::Assignor;
pub use config::{Acks, ClientConfig, ConsumerConfig, ProducerConfig};
pub use consumer::{Consumer, ConsumerRecord};
pub use error::{ClientError, ClientResult};
pub use group_consumer::{GroupConfig, GroupConsumer};
pub use group_offsets::OffsetAndMetadata;
pub use producer::{DeliveryFuture, Producer, ProducerRecord, RecordMetadata};
