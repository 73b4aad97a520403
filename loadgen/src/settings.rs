//! Command line and run settings: flags over a scenario preset over defaults.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};
use serde::{Deserialize, Serialize};
use streambus::client::Acks;
use streambus::record::Compression;

/// A run preset; explicit flags override it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scenario {
    /// As fast as possible: 1 producer, no consumer, acks=all, 1 KiB, 1 MiB batches.
    Throughput,
    /// Fixed rate of 10,000 msgs/s, acks=all, linger 0, 1 KiB: send-to-ack latency.
    Latency,
    /// Fixed rate of 10,000 msgs/s with one consumer: end-to-end latency.
    E2e,
    /// Fixed rate of 20,000 msgs/s read by 4 consumers that each read every partition.
    Fanout,
}

/// Acks as typed on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
pub enum AcksFlag {
    /// acks=0
    #[value(name = "0")]
    #[serde(rename = "0")]
    Zero,
    /// acks=1
    #[value(name = "1")]
    #[serde(rename = "1")]
    One,
    /// acks=all
    #[value(name = "all")]
    #[serde(rename = "all")]
    All,
}

impl AcksFlag {
    /// The client's value.
    pub fn acks(self) -> Acks {
        match self {
            Self::Zero => Acks::None,
            Self::One => Acks::Leader,
            Self::All => Acks::All,
        }
    }
}

/// Compression as typed on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CompressionFlag {
    /// No compression.
    None,
    /// LZ4 frames.
    Lz4,
    /// zstd.
    Zstd,
}

impl CompressionFlag {
    /// The record codec.
    pub fn codec(self) -> Compression {
        match self {
            Self::None => Compression::None,
            Self::Lz4 => Compression::Lz4,
            Self::Zstd => Compression::Zstd,
        }
    }
}

/// Open-loop load generator for Kafka-compatible brokers (StreamBus, Kafka, Redpanda, ...).
#[derive(Debug, Parser)]
#[command(version, about, args_conflicts_with_subcommands = true)]
pub struct Flags {
    /// A second form: compare two runs' JSON reports.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Broker to bootstrap from
    #[arg(long, default_value = "127.0.0.1:9092")]
    pub bootstrap: String,
    /// Topic to produce to and consume from
    #[arg(long, default_value = "loadgen")]
    pub topic: String,
    /// Partitions; the topic is created with this many if it is missing
    #[arg(long, default_value_t = 6)]
    pub partitions: i32,
    /// Preset; explicit flags override it
    #[arg(long, value_enum)]
    pub scenario: Option<Scenario>,
    /// Producer actors
    #[arg(long)]
    pub producers: Option<usize>,
    /// Consumer actors (0: produce only)
    #[arg(long)]
    pub consumers: Option<usize>,
    /// Consume as members of this consumer group (subscribe, classic protocol, auto-commit)
    /// instead of assigning partitions; the group spreads the partitions over the consumers
    #[arg(long)]
    pub group: Option<String>,
    /// Bytes per message value (at least 8: the send timestamp)
    #[arg(long)]
    pub message_bytes: Option<usize>,
    /// Producer batch size in bytes
    #[arg(long)]
    pub batch_bytes: Option<usize>,
    /// Producer linger in ms
    #[arg(long)]
    pub linger_ms: Option<u64>,
    /// Acknowledgements: 0, 1 or all
    #[arg(long, value_enum)]
    pub acks: Option<AcksFlag>,
    /// Compression: none, lz4 or zstd
    #[arg(long, value_enum)]
    pub compression: Option<CompressionFlag>,
    /// Produce idempotently (KIP-98: producer id and sequences; needs --acks all). Off by
    /// default, so that runs stay comparable with earlier ones
    #[arg(long)]
    pub idempotent: bool,
    /// Total messages per second over all producers, open-loop; 0: as fast as possible
    #[arg(long)]
    pub rate: Option<u64>,
    /// Seconds to produce (after the warm-up)
    #[arg(long, conflicts_with = "messages")]
    pub duration: Option<u64>,
    /// Messages to produce in all (instead of a duration)
    #[arg(long)]
    pub messages: Option<u64>,
    /// Seconds of warm-up whose measurements are discarded
    #[arg(long)]
    pub warmup: Option<u64>,
    /// Cores to pin the actors to, e.g. 0,1 or 2-5 (round robin)
    #[arg(long)]
    pub cores: Option<String>,
    /// Write the report as JSON here
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Write a latency-percentile plot (SVG) here
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// Write HdrHistogram percentile distributions here (.hgrm; e2e goes to a sibling file)
    #[arg(long)]
    pub hgrm: Option<PathBuf>,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print two runs side by side, with ratios (second / first)
    Compare {
        /// The first run's JSON report
        first: PathBuf,
        /// The second run's JSON report
        second: PathBuf,
    },
}

/// The settings a run uses, resolved.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunSettings {
    /// Broker.
    pub bootstrap: String,
    /// Topic.
    pub topic: String,
    /// Partitions.
    pub partitions: i32,
    /// Preset used, if any.
    pub scenario: Option<Scenario>,
    /// Producer actors.
    pub producers: usize,
    /// Consumer actors.
    pub consumers: usize,
    /// Whether every consumer reads every partition (fanout) rather than a share.
    pub consumers_read_all: bool,
    /// The consumer group the consumers join, if they join one.
    #[serde(default)]
    pub group: Option<String>,
    /// Message value size.
    pub message_bytes: usize,
    /// Batch size.
    pub batch_bytes: usize,
    /// Linger.
    pub linger_ms: u64,
    /// Acks.
    pub acks: AcksFlag,
    /// Codec.
    pub compression: CompressionFlag,
    /// Idempotent producers.
    #[serde(default)]
    pub idempotent: bool,
    /// Target rate, msgs/s over all producers; 0 for unlimited.
    pub rate: u64,
    /// Seconds to produce, when no message count is given.
    pub duration_s: Option<u64>,
    /// Messages to produce, when given.
    pub messages: Option<u64>,
    /// Warm-up seconds.
    pub warmup_s: u64,
    /// Cores to pin to.
    pub cores: Vec<usize>,
}

/// The smallest message: it carries its send timestamp.
pub const MESSAGE_BYTES_MIN: usize = 8;

impl RunSettings {
    /// Resolves flags over the scenario preset over defaults, and checks them.
    pub fn resolve(flags: &Flags) -> Result<Self, String> {
        // (producers, consumers, read_all, message, batch, linger, acks, rate)
        let preset = match flags.scenario {
            None | Some(Scenario::Throughput) => (1, 0, false, 1024, 1 << 20, 5, AcksFlag::All, 0),
            Some(Scenario::Latency) => (1, 0, false, 1024, 16 << 10, 0, AcksFlag::All, 10_000),
            Some(Scenario::E2e) => (1, 1, false, 1024, 16 << 10, 1, AcksFlag::All, 10_000),
            Some(Scenario::Fanout) => (1, 4, true, 1024, 64 << 10, 1, AcksFlag::All, 20_000),
        };
        let settings = Self {
            bootstrap: flags.bootstrap.clone(),
            topic: flags.topic.clone(),
            partitions: flags.partitions,
            scenario: flags.scenario,
            producers: flags.producers.unwrap_or(preset.0),
            consumers: flags.consumers.unwrap_or(preset.1),
            consumers_read_all: preset.2 && flags.group.is_none(),
            group: flags.group.clone(),
            message_bytes: flags.message_bytes.unwrap_or(preset.3),
            batch_bytes: flags.batch_bytes.unwrap_or(preset.4),
            linger_ms: flags.linger_ms.unwrap_or(preset.5),
            acks: flags.acks.unwrap_or(preset.6),
            compression: flags.compression.unwrap_or(CompressionFlag::None),
            idempotent: flags.idempotent,
            rate: flags.rate.unwrap_or(preset.7),
            duration_s: match (flags.duration, flags.messages) {
                (Some(duration), _) => Some(duration),
                (None, Some(_)) => None,
                (None, None) => Some(10),
            },
            messages: flags.messages,
            warmup_s: flags.warmup.unwrap_or(0),
            cores: match &flags.cores {
                Some(list) => parse_cores(list)?,
                None => Vec::new(),
            },
        };
        if settings.producers == 0 {
            return Err("--producers must be at least 1".into());
        }
        if settings.partitions < 1 {
            return Err("--partitions must be at least 1".into());
        }
        if settings.message_bytes < MESSAGE_BYTES_MIN {
            return Err(format!(
                "--message-bytes must be at least {MESSAGE_BYTES_MIN} (the timestamp)"
            ));
        }
        if settings.idempotent && settings.acks != AcksFlag::All {
            return Err("--idempotent needs --acks all".into());
        }
        if settings.batch_bytes == 0 {
            return Err("--batch-bytes must be positive".into());
        }
        if settings.consumers > 0 && settings.acks == AcksFlag::Zero {
            // Consumers count what producers sent; acks=0 gives them nothing to count against.
            return Err("--consumers needs --acks 1 or all".into());
        }
        Ok(settings)
    }
}

/// Parses `0,2,4-6` into core ids.
pub fn parse_cores(list: &str) -> Result<Vec<usize>, String> {
    let mut cores = Vec::new();
    for part in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let bad = || format!("--cores: cannot read {part:?}");
        match part.split_once('-') {
            Some((low, high)) => {
                let low: usize = low.parse().map_err(|_| bad())?;
                let high: usize = high.parse().map_err(|_| bad())?;
                if low > high {
                    return Err(bad());
                }
                cores.extend(low..=high);
            }
            None => cores.push(part.parse().map_err(|_| bad())?),
        }
    }
    Ok(cores)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cores_lists_and_presets() {
        assert_eq!(parse_cores("0,2-4, 7").unwrap(), vec![0, 2, 3, 4, 7]);
        assert!(parse_cores("3-1").is_err());
        let flags = Flags::parse_from(["x", "--scenario", "e2e", "--rate", "500"]);
        let settings = RunSettings::resolve(&flags).unwrap();
        assert_eq!((settings.consumers, settings.rate), (1, 500));
        let flags = Flags::parse_from(["x", "--acks", "0", "--consumers", "1"]);
        assert!(RunSettings::resolve(&flags).is_err());
    }
}
