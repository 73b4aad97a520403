//! One handler per Kafka API. Each decodes its request body at the request's version, does the
//! work on this shard (or asks the controller), and encodes its response.

pub mod api_versions;
pub mod consumer_group_describe;
pub mod consumer_group_heartbeat;
pub mod create_partitions;
pub mod create_topics;
pub mod delete_groups;
pub mod delete_topics;
pub mod describe_cluster;
pub mod describe_configs;
pub mod describe_groups;
pub mod fetch;
pub mod find_coordinator;
pub mod heartbeat;
pub mod init_producer_id;
pub mod join_group;
pub mod leave_group;
pub mod list_groups;
pub mod list_offsets;
pub mod metadata;
pub mod offset_commit;
pub mod offset_delete;
pub mod offset_fetch;
pub mod produce;
pub mod sync_group;

use kafka_protocol::messages::BrokerId;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use crate::storage::{SequenceError, StorageError};

/// The Kafka error a storage error means to a client.
pub fn storage_error_code(error: &StorageError) -> ResponseError {
    match error {
        StorageError::BatchTooLarge { .. } => ResponseError::MessageTooLarge,
        StorageError::CorruptBatch { .. } | StorageError::ChecksumMismatch { .. } => {
            ResponseError::CorruptMessage
        }
        StorageError::OffsetOutOfRange { .. } => ResponseError::OffsetOutOfRange,
        // A closed log is being deleted or moved: the client refreshes metadata and retries.
        StorageError::Closed { .. } => ResponseError::NotLeaderOrFollower,
        StorageError::Sequence(error) => match error {
            SequenceError::InvalidProducerEpoch { .. } => ResponseError::InvalidProducerEpoch,
            SequenceError::OutOfOrderSequence { .. } => ResponseError::OutOfOrderSequenceNumber,
            SequenceError::UnknownProducerId { .. } => ResponseError::UnknownProducerId,
            SequenceError::InvalidSequence { .. } => ResponseError::InvalidRecord,
            SequenceError::InvalidTxnState { .. } => ResponseError::InvalidTxnState,
            // Not retriable by design: the producer's client fails the batch and says why.
            SequenceError::TooManyOpenTransactions { .. } => ResponseError::PolicyViolation,
        },
        _ => ResponseError::KafkaStorageError,
    }
}

/// Every shard as a Kafka broker: node id, advertised host, its own port.
pub fn shard_brokers(
    context: &crate::shard::ShardContext,
) -> impl Iterator<Item = (BrokerId, StrBytes, i32)> + '_ {
    (0..context.shard_count).map(|shard| {
        (
            BrokerId(shard as i32),
            str_bytes(context.advertised_host.clone()),
            i32::from(context.shard_port(shard)),
        )
    })
}

/// A `StrBytes` from a `String`.
pub fn str_bytes(value: impl Into<String>) -> StrBytes {
    StrBytes::from_string(value.into())
}
