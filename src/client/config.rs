//! Client settings, with Kafka's defaults where Kafka has one.

use std::time::Duration;

use crate::record::Compression;

/// Kafka's `request.timeout.ms` default.
pub const REQUEST_TIMEOUT_MS_DEFAULT: u64 = 30_000;

/// Connection settings shared by producer, consumer and admin.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// `host:port` addresses to bootstrap from.
    pub bootstrap: Vec<String>,
    /// Sent in every request header.
    pub client_id: String,
    /// How long a request may wait for its response.
    pub request_timeout_ms: u64,
}

impl ClientConfig {
    /// A config for `bootstrap` (comma-separated `host:port` list).
    pub fn new(bootstrap: &str) -> Self {
        Self {
            bootstrap: bootstrap
                .split(',')
                .map(str::trim)
                .filter(|address| !address.is_empty())
                .map(str::to_string)
                .collect(),
            client_id: "streambus-client".into(),
            request_timeout_ms: REQUEST_TIMEOUT_MS_DEFAULT,
        }
    }

    /// The request timeout.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }
}

pub use crate::protocol::acks::Acks;

/// Producer settings.
#[derive(Debug, Clone)]
pub struct ProducerConfig {
    /// Acknowledgements to ask for.
    pub acks: Acks,
    /// How long a batch waits for more records before it is sent (Kafka's `linger.ms`).
    pub linger_ms: u64,
    /// A batch is sent once its records reach this size (Kafka's `batch.size`).
    pub batch_bytes: usize,
    /// Codec for batches.
    pub compression: Compression,
    /// Produce requests in flight per broker connection.
    pub in_flight_per_broker_max: usize,
    /// Bytes of records buffered but not yet acknowledged; `send` waits above it (Kafka's
    /// `buffer.memory`).
    pub buffer_bytes_max: usize,
    /// Attempts for a batch that meets a retriable error, after the first.
    pub retries: u32,
    /// Wait between attempts.
    pub retry_backoff_ms: u64,
    /// `enable.idempotence`: the broker stores each batch once, in order, however often it is
    /// retried. `None` (the default) turns it on when `acks` is `All`, as the Java client
    /// does (KIP-679); `Some(true)` with other acks is refused.
    pub idempotence: Option<bool>,
}

impl Default for ProducerConfig {
    fn default() -> Self {
        Self {
            acks: Acks::All,
            linger_ms: 5,
            batch_bytes: 1 << 20,
            compression: Compression::None,
            in_flight_per_broker_max: 5,
            buffer_bytes_max: 64 << 20,
            retries: 10,
            retry_backoff_ms: 100,
            idempotence: None,
        }
    }
}

/// Consumer settings.
#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    /// How long the broker may hold a fetch waiting for `fetch_min_bytes`.
    pub fetch_max_wait_ms: i32,
    /// Bytes a fetch waits for.
    pub fetch_min_bytes: i32,
    /// Most bytes one fetch response carries.
    pub fetch_max_bytes: i32,
    /// Most bytes per partition in one fetch.
    pub partition_max_bytes: i32,
    /// Records buffered in the consumer before fetching pauses.
    pub buffered_records_max: usize,
    /// The group whose committed offsets `commit` and `committed` use (no membership: the
    /// consumer assigns its partitions).
    pub group_id: Option<String>,
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        Self {
            fetch_max_wait_ms: 500,
            fetch_min_bytes: 1,
            fetch_max_bytes: 50 << 20,
            partition_max_bytes: 8 << 20,
            buffered_records_max: 500_000,
            group_id: None,
        }
    }
}
