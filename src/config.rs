//! Broker settings: a TOML file, then command-line flags over it. Every default is a named
//! constant with its unit, and [`BrokerConfig::validate`] checks values and their relations at
//! load time, so a bad setting stops the broker with one clear line instead of failing later.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use thiserror::Error;

use crate::record::TimestampType;
use crate::storage::{
    FlushPolicy, LogConfig, ABORTED_TRANSACTIONS_MAX_DEFAULT, BATCH_BYTES_MAX_DEFAULT,
    FLUSH_INTERVAL_MS_DEFAULT, INDEX_INTERVAL_BYTES_DEFAULT, PRODUCERS_PER_PARTITION_MAX_DEFAULT,
    PRODUCER_ID_EXPIRATION_MS_DEFAULT, RECYCLED_SEGMENTS_MAX_DEFAULT, RETENTION_MS_DEFAULT,
    SEGMENT_BYTES_DEFAULT, SEGMENT_BYTES_MAX, SEGMENT_BYTES_MIN, SEGMENT_MS_DEFAULT,
    STAGED_BYTES_MAX_DEFAULT, WRITE_BUFFER_BYTES_DEFAULT,
};

/// Where data lives unless told otherwise.
pub const DATA_DIR_DEFAULT: &str = "./streambus-data";
/// The bootstrap listener unless told otherwise.
pub const LISTEN_DEFAULT: &str = "127.0.0.1:9092";
/// Kafka's `socket.request.max.bytes`: a larger frame closes the connection.
pub const MAX_REQUEST_BYTES_DEFAULT: usize = 100 << 20;
/// Smallest request limit accepted: a header and a small body must fit.
pub const MAX_REQUEST_BYTES_MIN: usize = 1024;
/// Connections one shard accepts at once; more are closed as they arrive.
pub const CONNECTIONS_PER_SHARD_MAX_DEFAULT: usize = 4096;
/// Requests of one connection being handled at once; the connection stops reading beyond it.
/// librdkafka sends at most 5 by default (`max.in.flight`), Java clients 5.
pub const IN_FLIGHT_REQUESTS_PER_CONNECTION_MAX_DEFAULT: usize = 32;
/// Bytes of recent batches each shard keeps in memory for tailing consumers.
pub const MEMTABLE_BUDGET_BYTES_PER_SHARD_DEFAULT: usize = 256 << 20;
/// glommio's registered I/O memory per shard: the DMA staging buffers come from it.
pub const IO_MEMORY_BYTES_PER_SHARD_DEFAULT: usize = 32 << 20;
/// Messages one control-plane channel between two shards holds before senders wait.
pub const MESH_QUEUE_DEPTH_DEFAULT: usize = 64;
/// Topics the cluster holds at most.
pub const TOPICS_MAX_DEFAULT: usize = 10_000;
/// Partitions the cluster holds at most, over all topics.
pub const PARTITIONS_MAX_DEFAULT: usize = 100_000;
/// Kafka's `num.partitions`: partitions of an auto-created topic.
pub const DEFAULT_PARTITIONS_DEFAULT: u32 = 1;
/// Kafka's `fetch.max.bytes`: the most one fetch response carries.
pub const FETCH_MAX_BYTES_DEFAULT: usize = 55 << 20;
/// The longest a fetch may wait for data, whatever `max_wait_ms` asks.
pub const FETCH_MAX_WAIT_MS_MAX: u64 = 60_000;
/// Kafka's `connections.max.idle.ms`: a connection with no request for this long is closed.
pub const CONNECTION_IDLE_MS_MAX_DEFAULT: u64 = 600_000;
/// Kafka's `log.retention.check.interval.ms`.
pub const RETENTION_CHECK_INTERVAL_MS_DEFAULT: u64 = 300_000;
/// The longest a control request (create, delete) waits for every shard to apply it.
pub const CONTROL_TIMEOUT_MS_DEFAULT: u64 = 30_000;
/// How long a shard with nothing to run keeps polling for I/O completions before it sleeps
/// (Seastar's `--idle-poll-time-us`, 200 µs there). Waking from sleep costs each completion an
/// interrupt and a context switch, and under `always` every group commit waits twice (write,
/// then fdatasync) with the shard idle. Measured on a 2-core VM, in the group-commit bench
/// (64 × 16 KiB): 1,000 µs of polling raised durable appends by 11–15%, 200 µs by nothing (a
/// write takes longer than that). In the broker bench, with the librdkafka client on the same
/// two cores, 200 µs lowered produce by 12%: polling takes the client's CPU time. Hence off by
/// default; a broker on a host of its own may gain from about 1,000 µs.
pub const IDLE_POLL_US_DEFAULT: u64 = 0;
/// Longest idle poll accepted: past this a shard is a busy loop.
pub const IDLE_POLL_US_MAX: u64 = 10_000;

/// Errors loading or checking the configuration.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The configuration file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The configuration file is not valid TOML for these settings.
    #[error("invalid config file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message, with the line.
        message: String,
    },
    /// A setting is out of range or inconsistent with another.
    #[error("invalid setting {name}: {reason}")]
    Invalid {
        /// The setting, as spelled in the file.
        name: &'static str,
        /// Why it was refused.
        reason: String,
    },
}

/// When appended data is made durable, as spelled in the config file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FlushPolicyName {
    /// fdatasync before acknowledging acks=-1 (group commit).
    Always,
    /// fdatasync every `flush_interval_ms`.
    Interval,
    /// fdatasync only when a segment is sealed or the broker stops.
    Never,
}

/// Defaults for every partition log; topics override some of them with their own configs.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogDefaults {
    /// `always`, `interval` or `never`.
    pub flush_policy: FlushPolicyName,
    /// fdatasync period under `interval`.
    pub flush_interval_ms: u64,
    /// Kafka's `log.segment.bytes`.
    pub segment_bytes: u64,
    /// Kafka's `log.roll.ms`.
    pub segment_ms: u64,
    /// Kafka's `log.retention.ms`; -1 keeps data forever.
    pub retention_ms: i64,
    /// Kafka's `log.retention.bytes`; -1 sets no limit.
    pub retention_bytes: i64,
    /// Kafka's `log.index.interval.bytes`.
    pub index_interval_bytes: u32,
    /// Kafka's `message.max.bytes`: the largest batch accepted.
    pub message_max_bytes: usize,
    /// Kafka's `log.message.timestamp.type`: `CreateTime` or `LogAppendTime`.
    pub message_timestamp_type: String,
    /// Segment files each partition keeps for reuse after retention deleted them (0: delete at
    /// once). New segments overwrite them, which makes durable appends cheaper.
    pub recycled_segments_max: usize,
    /// Bytes of one DMA staging buffer: the unit of a segment write.
    pub write_buffer_bytes: usize,
    /// Bytes a partition may hold staged but unwritten before appends wait (backpressure).
    pub staged_bytes_max: usize,
    /// Idempotent producers each partition keeps state for; when full, the least recently
    /// active is forgotten (its next batch then gets UNKNOWN_PRODUCER_ID).
    pub producers_per_partition_max: usize,
    /// Kafka's `producer.id.expiration.ms`: a producer idle this long is forgotten.
    pub producer_id_expiration_ms: u64,
    /// Aborted transactions each partition remembers for `read_committed` readers (the
    /// oldest is forgotten past it, with a warning).
    pub aborted_transactions_per_partition_max: usize,
}

impl Default for LogDefaults {
    fn default() -> Self {
        Self {
            flush_policy: FlushPolicyName::Always,
            flush_interval_ms: FLUSH_INTERVAL_MS_DEFAULT,
            segment_bytes: SEGMENT_BYTES_DEFAULT,
            segment_ms: SEGMENT_MS_DEFAULT,
            retention_ms: RETENTION_MS_DEFAULT as i64,
            retention_bytes: -1,
            index_interval_bytes: INDEX_INTERVAL_BYTES_DEFAULT,
            message_max_bytes: BATCH_BYTES_MAX_DEFAULT,
            message_timestamp_type: "CreateTime".into(),
            recycled_segments_max: RECYCLED_SEGMENTS_MAX_DEFAULT,
            write_buffer_bytes: WRITE_BUFFER_BYTES_DEFAULT,
            staged_bytes_max: STAGED_BYTES_MAX_DEFAULT,
            producers_per_partition_max: PRODUCERS_PER_PARTITION_MAX_DEFAULT,
            producer_id_expiration_ms: PRODUCER_ID_EXPIRATION_MS_DEFAULT,
            aborted_transactions_per_partition_max: ABORTED_TRANSACTIONS_MAX_DEFAULT,
        }
    }
}

impl LogDefaults {
    /// The flush policy as the storage engine takes it.
    pub fn flush_policy(&self) -> FlushPolicy {
        match self.flush_policy {
            FlushPolicyName::Always => FlushPolicy::Always,
            FlushPolicyName::Interval => FlushPolicy::Interval {
                interval_ms: self.flush_interval_ms,
            },
            FlushPolicyName::Never => FlushPolicy::Never,
        }
    }

    /// The timestamp type, parsed.
    pub fn timestamp_type(&self) -> Option<TimestampType> {
        parse_timestamp_type(&self.message_timestamp_type)
    }

    /// A log config with these defaults, before any topic overrides.
    pub fn log_config(&self) -> LogConfig {
        LogConfig {
            segment_bytes: self.segment_bytes,
            segment_ms: self.segment_ms,
            index_interval_bytes: self.index_interval_bytes,
            retention_ms: u64::try_from(self.retention_ms).ok(),
            retention_bytes: u64::try_from(self.retention_bytes).ok(),
            flush_policy: self.flush_policy(),
            batch_bytes_max: self.message_max_bytes,
            timestamp_type: self.timestamp_type().unwrap_or(TimestampType::CreateTime),
            recycled_segments_max: self.recycled_segments_max,
            write_buffer_bytes: self.write_buffer_bytes,
            staged_bytes_max: self.staged_bytes_max,
            producers_max: self.producers_per_partition_max,
            producer_id_expiration_ms: self.producer_id_expiration_ms,
            aborted_transactions_max: self.aborted_transactions_per_partition_max,
            // The periodic pass runs every few minutes; a busy partition rolls far more often,
            // and each roll should find a recycled file.
            retention_on_roll: true,
        }
    }
}

/// Parses Kafka's spelling of a timestamp type.
pub fn parse_timestamp_type(name: &str) -> Option<TimestampType> {
    match name {
        "CreateTime" => Some(TimestampType::CreateTime),
        "LogAppendTime" => Some(TimestampType::LogAppendTime),
        _ => None,
    }
}

/// Everything the broker is configured with.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BrokerConfig {
    /// Directory holding the cluster metadata and every partition's segments.
    pub data_dir: PathBuf,
    /// The bootstrap listener. Port 0 picks a free port; each shard's own port follows it.
    pub listen: SocketAddr,
    /// Shards (executors, one pinned per core). 0 means one per core.
    pub shards: usize,
    /// The host clients are told to connect to. Defaults to the listen address, or this
    /// machine's host name when listening on every interface.
    pub advertised_host: Option<String>,
    /// Whether Metadata for a missing topic creates it (Kafka's `auto.create.topics.enable`).
    pub auto_create_topics: bool,
    /// Partitions of an auto-created topic, and of a created one that asks for -1.
    pub default_partitions: u32,
    /// Frames above this close the connection.
    pub max_request_bytes: usize,
    /// Connections one shard holds at once.
    pub connections_per_shard_max: usize,
    /// Requests of one connection handled at once.
    pub in_flight_requests_per_connection_max: usize,
    /// A connection with nothing in flight and no request for this long is closed.
    pub connection_idle_ms_max: u64,
    /// Bytes of recent batches each shard keeps in memory.
    pub memtable_budget_bytes_per_shard: usize,
    /// glommio I/O memory per shard.
    pub io_memory_bytes_per_shard: usize,
    /// Depth of each control-plane channel between shards.
    pub mesh_queue_depth: usize,
    /// Topics the cluster holds at most.
    pub topics_max: usize,
    /// Partitions the cluster holds at most.
    pub partitions_max: usize,
    /// The most one fetch response carries.
    pub fetch_max_bytes: usize,
    /// Period of the retention pass on each shard.
    pub retention_check_interval_ms: u64,
    /// The longest a control request waits for every shard to apply it.
    pub control_timeout_ms: u64,
    /// Whether shards are pinned to cores.
    pub pin_cores: bool,
    /// Microseconds an idle shard polls for I/O completions before it sleeps (0: sleep at once).
    pub idle_poll_us: u64,
    /// Defaults for partition logs.
    pub log: LogDefaults,
    /// Group coordination: committed offsets.
    pub groups: crate::group::GroupSettings,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from(DATA_DIR_DEFAULT),
            listen: LISTEN_DEFAULT
                .parse()
                .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 9092))),
            shards: 0,
            advertised_host: None,
            auto_create_topics: true,
            default_partitions: DEFAULT_PARTITIONS_DEFAULT,
            max_request_bytes: MAX_REQUEST_BYTES_DEFAULT,
            connections_per_shard_max: CONNECTIONS_PER_SHARD_MAX_DEFAULT,
            in_flight_requests_per_connection_max: IN_FLIGHT_REQUESTS_PER_CONNECTION_MAX_DEFAULT,
            connection_idle_ms_max: CONNECTION_IDLE_MS_MAX_DEFAULT,
            memtable_budget_bytes_per_shard: MEMTABLE_BUDGET_BYTES_PER_SHARD_DEFAULT,
            io_memory_bytes_per_shard: IO_MEMORY_BYTES_PER_SHARD_DEFAULT,
            mesh_queue_depth: MESH_QUEUE_DEPTH_DEFAULT,
            topics_max: TOPICS_MAX_DEFAULT,
            partitions_max: PARTITIONS_MAX_DEFAULT,
            fetch_max_bytes: FETCH_MAX_BYTES_DEFAULT,
            retention_check_interval_ms: RETENTION_CHECK_INTERVAL_MS_DEFAULT,
            control_timeout_ms: CONTROL_TIMEOUT_MS_DEFAULT,
            pin_cores: true,
            idle_poll_us: IDLE_POLL_US_DEFAULT,
            log: LogDefaults::default(),
            groups: crate::group::GroupSettings::default(),
        }
    }
}

impl BrokerConfig {
    /// Reads a TOML file; settings it leaves out keep their defaults.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        toml::from_str(&text).map_err(|error| ConfigError::Parse {
            path: path.to_path_buf(),
            message: error.to_string().trim().replace('\n', " "),
        })
    }

    /// The number of shards to run: the setting, or one per core.
    pub fn shard_count(&self) -> usize {
        if self.shards > 0 {
            self.shards
        } else {
            std::thread::available_parallelism().map_or(1, |cores| cores.get())
        }
    }

    /// The host Metadata advertises.
    pub fn advertised_host(&self) -> String {
        if let Some(host) = &self.advertised_host {
            return host.clone();
        }
        if !self.listen.ip().is_unspecified() {
            return self.listen.ip().to_string();
        }
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|name| name.trim().to_string())
            .ok()
            .filter(|name| !name.is_empty())
            .unwrap_or_else(|| "localhost".into())
    }

    /// Checks every value and the relations between them.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid =
            |name: &'static str, reason: String| Err(ConfigError::Invalid { name, reason });
        if self.shard_count() > 1024 {
            return invalid("shards", format!("{} is above 1024", self.shard_count()));
        }
        if u32::from(self.listen.port()) + 1 + self.shard_count() as u32 > u32::from(u16::MAX) {
            return invalid(
                "listen",
                format!(
                    "port {} leaves no room for {} shard ports after it",
                    self.listen.port(),
                    self.shard_count()
                ),
            );
        }
        if self.max_request_bytes < MAX_REQUEST_BYTES_MIN
            || self.max_request_bytes > i32::MAX as usize
        {
            return invalid(
                "max_request_bytes",
                format!(
                    "{} is outside {MAX_REQUEST_BYTES_MIN}..={}",
                    self.max_request_bytes,
                    i32::MAX
                ),
            );
        }
        let positive = [
            ("connections_per_shard_max", self.connections_per_shard_max),
            (
                "in_flight_requests_per_connection_max",
                self.in_flight_requests_per_connection_max,
            ),
            ("mesh_queue_depth", self.mesh_queue_depth),
            ("topics_max", self.topics_max),
            ("partitions_max", self.partitions_max),
            ("fetch_max_bytes", self.fetch_max_bytes),
            ("default_partitions", self.default_partitions as usize),
            (
                "retention_check_interval_ms",
                self.retention_check_interval_ms as usize,
            ),
            ("control_timeout_ms", self.control_timeout_ms as usize),
            (
                "connection_idle_ms_max",
                self.connection_idle_ms_max as usize,
            ),
        ];
        for (name, value) in positive {
            if value == 0 {
                return invalid(name, "must be positive".into());
            }
        }
        for (name, value) in self.groups.positive_settings() {
            if value == 0 {
                return invalid(name, "must be positive".into());
            }
        }
        if self.groups.group_max_session_timeout_ms < self.groups.group_min_session_timeout_ms {
            return invalid(
                "groups.group_max_session_timeout_ms",
                format!(
                    "{} is below groups.group_min_session_timeout_ms ({})",
                    self.groups.group_max_session_timeout_ms,
                    self.groups.group_min_session_timeout_ms
                ),
            );
        }
        if self.groups.consumer_group_heartbeat_interval_ms
            >= self.groups.consumer_group_session_timeout_ms
        {
            // Kafka's rule: a member told to heartbeat less often than its session lasts
            // would be expired between heartbeats.
            return invalid(
                "groups.consumer_group_heartbeat_interval_ms",
                format!(
                    "{} is not below groups.consumer_group_session_timeout_ms ({})",
                    self.groups.consumer_group_heartbeat_interval_ms,
                    self.groups.consumer_group_session_timeout_ms
                ),
            );
        }
        if self.io_memory_bytes_per_shard < (1 << 20) {
            return invalid(
                "io_memory_bytes_per_shard",
                format!("{} is below 1 MiB", self.io_memory_bytes_per_shard),
            );
        }
        if self.log.timestamp_type().is_none() {
            return invalid(
                "log.message_timestamp_type",
                format!(
                    "{:?} is neither CreateTime nor LogAppendTime",
                    self.log.message_timestamp_type
                ),
            );
        }
        if !(SEGMENT_BYTES_MIN..=SEGMENT_BYTES_MAX).contains(&self.log.segment_bytes) {
            return invalid(
                "log.segment_bytes",
                format!(
                    "{} is outside {SEGMENT_BYTES_MIN}..={SEGMENT_BYTES_MAX}",
                    self.log.segment_bytes
                ),
            );
        }
        if self.log.message_max_bytes > self.max_request_bytes {
            return invalid(
                "log.message_max_bytes",
                format!(
                    "{} exceeds max_request_bytes {}",
                    self.log.message_max_bytes, self.max_request_bytes
                ),
            );
        }
        if self.idle_poll_us > IDLE_POLL_US_MAX {
            return invalid(
                "idle_poll_us",
                format!("{} is above {IDLE_POLL_US_MAX}", self.idle_poll_us),
            );
        }
        if self.log.retention_ms < -1 || self.log.retention_bytes < -1 {
            return invalid("log.retention_ms", "must be -1 or more".into());
        }
        self.log
            .log_config()
            .validate()
            .map_err(|error| ConfigError::Invalid {
                name: "log",
                reason: error.to_string(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        BrokerConfig::default().validate().unwrap();
    }

    #[test]
    fn file_overrides_defaults_and_refuses_unknown_keys() {
        let config: BrokerConfig = toml::from_str(
            "shards = 3\nmax_request_bytes = 2048\n[log]\nflush_policy = \"never\"\n",
        )
        .unwrap();
        assert_eq!(config.shards, 3);
        assert_eq!(config.max_request_bytes, 2048);
        assert_eq!(config.log.flush_policy(), FlushPolicy::Never);
        assert_eq!(config.data_dir, PathBuf::from(DATA_DIR_DEFAULT));
        let error = toml::from_str::<BrokerConfig>("shard = 3\n").unwrap_err();
        assert!(error.to_string().contains("unknown field"), "{error}");
    }

    #[test]
    fn relations_are_checked() {
        let mut config = BrokerConfig {
            max_request_bytes: 10,
            ..BrokerConfig::default()
        };
        assert!(matches!(
            config.validate(),
            Err(ConfigError::Invalid {
                name: "max_request_bytes",
                ..
            })
        ));
        config.max_request_bytes = 4096;
        assert!(matches!(
            config.validate(),
            Err(ConfigError::Invalid {
                name: "log.message_max_bytes",
                ..
            })
        ));
        config.log.message_max_bytes = 4096;
        config.log.message_timestamp_type = "Sometime".into();
        assert!(config.validate().is_err());
        config.log.message_timestamp_type = "CreateTime".into();
        config.log.recycled_segments_max = 1000;
        assert!(
            matches!(config.validate(), Err(ConfigError::Invalid { name: "log", reason }) if reason.contains("recycled_segments_max"))
        );
        config.log.recycled_segments_max = 0;
        assert!(config.validate().is_ok());
        config.idle_poll_us = IDLE_POLL_US_MAX + 1;
        assert!(matches!(
            config.validate(),
            Err(ConfigError::Invalid {
                name: "idle_poll_us",
                ..
            })
        ));
    }
}
