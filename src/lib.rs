//! StreamBus: a thread-per-core streaming message broker that speaks the Kafka protocol.
//!
//! # Module map
//!
//! - [`record`]: Kafka RecordBatch v2, the unit StreamBus stores. A zero-copy, validating view
//!   ([`record::RecordBatch`]), a header decoder for scans ([`record::BatchHeader`]), a record
//!   iterator, and a builder that encodes records into a batch.
//! - [`storage`]: the per-partition log. Segments written with O_DIRECT through glommio, sparse
//!   offset and time indexes, a MemTable (ring of recent batches) for the hot tail under a per-shard byte
//!   budget, group commit with the `always` / `interval` / `never` flush policies, retention, and
//!   crash recovery.
//!
//! The broker (Kafka wire protocol, shards, listeners), the client SDK and the load generator
//! build on these two modules; see the project issues and `README.md` for what has landed.
#![deny(clippy::unwrap_used, clippy::expect_used)]
#![warn(missing_docs)]

pub mod record;
pub mod storage;
