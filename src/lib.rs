//! StreamBus: a thread-per-core streaming message broker that speaks the Kafka protocol.
//!
//! # Module map
//!
//! - [`record`]: Kafka RecordBatch v2, the unit StreamBus stores. A zero-copy, validating view
//!   ([`record::RecordBatch`]), a header decoder for scans ([`record::BatchHeader`]), a record
//!   iterator, a builder that encodes records into a batch, and record compression.
//! - [`storage`]: the per-partition log. Segments written with O_DIRECT through glommio, sparse
//!   offset and time indexes, a MemTable (ring of recent batches) for the hot tail under a per-shard byte
//!   budget, group commit with the `always` / `interval` / `never` flush policies, retention, and
//!   crash recovery; the partition log itself is split by concept under `storage/log/`, and
//!   reaches files only through the I/O seam [`storage::io`] (glommio DMA, or an in-memory
//!   file system with fault injection and power-loss simulation for tests).
//! - [`config`]: broker settings (TOML file, then flags), defaults as named constants, checked
//!   at load.
//! - [`cluster`]: cluster metadata (topics, partition placement, topic configs), its
//!   persistence, the Kafka rules of changes to it as pure functions (`cluster::changes`), and
//!   where group and transaction coordinators live.
//! - [`group`]: group coordination on the coordinator shard; today committed offsets
//!   (OffsetCommit, OffsetFetch, OffsetDelete) kept in an internal partition log per offsets
//!   partition, loaded before the shard answers, rewritten to its live commits, expired.
//! - [`protocol`]: Kafka framing, request headers, the supported API table, response encoding.
//!   Message bodies come from the `kafka-protocol` crate.
//! - [`shard`]: what one core's shard owns (its partitions, the metadata snapshot it serves),
//!   the generic mesh between shards, and the control plane (`shard::control`: messages, the
//!   client that forwards to shard 0, the controller, the receive loop).
//! - [`server`]: listeners, connections, dispatch, and one handler per Kafka API.
//! - [`broker`]: start-up and shutdown, above `shard` and `server`: data directory, sockets,
//!   one pinned executor per shard, readiness, signals, the drain.
//!
//! A request's path: `server::connection` reads a frame, `server::dispatch` picks the
//! handler in `server/handlers/` by API key, the handler asks the shard's `ShardContext`
//! for the partition's `storage::PartitionLog` (produce: `append_staged`, then
//! `wait_acknowledged`; fetch: `read_into` and the long-poll) or sends a control request to
//! shard 0 (`shard::control`), and `server::connection` writes the answers in request order.
//! - [`blocking`]: synchronous file-system calls moved off the shard threads.
//! - [`wake`]: a de-duplicated list of waiting tasks, shared by the shard and the client.
//! - [`net`]: a glommio `TcpStream` split into read and write halves (server and client).
//! - [`client`]: the Rust client SDK (producer, consumer, admin) on glommio; `loadgen/` and the
//!   tests use it, and it works against any Kafka-compatible broker.
//!
//! See `../shared/DESIGN.md` and `README.md` for the architecture and what has landed.
#![deny(clippy::unwrap_used, clippy::expect_used)]
#![warn(missing_docs)]

pub mod blocking;
pub mod broker;
pub mod client;
pub mod cluster;
pub mod config;
pub mod group;
pub mod net;
pub mod producer;
pub mod protocol;
pub mod record;
pub mod server;
pub mod shard;
pub mod storage;
pub mod wake;
