//! ListOffsets: earliest (-2), latest (-1) and by timestamp. Latest is the high watermark,
//! the offset after the last readable record; a timestamp later than every record answers
//! offset -1, as Kafka does. With `isolation_level` 1 (`read_committed`, v2+) the last stable
//! offset takes the high watermark's place, so a transactional reader never lists an offset
//! inside an open transaction.

use bytes::BytesMut;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ApiKey, ListOffsetsRequest, ListOffsetsResponse};
use kafka_protocol::ResponseError;

use crate::protocol::header::{decode_body, Request};
use crate::protocol::response::encode_response;
use crate::protocol::ProtocolError;
use crate::shard::{PartitionLookup, ShardContext};

use super::storage_error_code;

/// Leader epochs exist from this version.
pub const LEADER_EPOCH_VERSION_MIN: i16 = 4;

/// Kafka's "latest" timestamp.
pub const LATEST_TIMESTAMP: i64 = -1;
/// Kafka's "earliest" timestamp.
pub const EARLIEST_TIMESTAMP: i64 = -2;

/// Answers ListOffsets.
pub async fn handle(context: &ShardContext, request: &Request) -> Result<BytesMut, ProtocolError> {
    let body: ListOffsetsRequest = decode_body(request)?;
    let read_committed = body.isolation_level == super::fetch::READ_COMMITTED;
    let mut topics = Vec::with_capacity(body.topics.len());
    for topic in &body.topics {
        let name = topic.name.0.as_str();
        let mut partitions = Vec::with_capacity(topic.partitions.len());
        for partition in &topic.partitions {
            let base = ListOffsetsPartitionResponse::default()
                .with_partition_index(partition.partition_index)
                .with_timestamp(-1)
                .with_offset(-1)
                // The leader epoch exists from v4; every partition is in epoch 0.
                .with_leader_epoch(if request.api_version >= LEADER_EPOCH_VERSION_MIN {
                    0
                } else {
                    -1
                });
            let log = match context.lookup(name, partition.partition_index) {
                PartitionLookup::Local(log) => log,
                PartitionLookup::Elsewhere => {
                    partitions
                        .push(base.with_error_code(ResponseError::NotLeaderOrFollower.code()));
                    continue;
                }
                PartitionLookup::Unknown => {
                    partitions
                        .push(base.with_error_code(ResponseError::UnknownTopicOrPartition.code()));
                    continue;
                }
            };
            let readable_end = if read_committed {
                log.last_stable_offset()
            } else {
                log.high_watermark()
            };
            let answer = match partition.timestamp {
                LATEST_TIMESTAMP => base.with_offset(readable_end as i64),
                EARLIEST_TIMESTAMP => base.with_offset(log.log_start_offset() as i64),
                timestamp if timestamp < 0 => {
                    base.with_error_code(ResponseError::UnsupportedVersion.code())
                }
                timestamp => match log.offset_for_timestamp(timestamp).await {
                    Ok(Some(found)) if found.offset < readable_end => base
                        .with_offset(found.offset as i64)
                        .with_timestamp(found.timestamp),
                    Ok(_) => base,
                    Err(error) => base.with_error_code(storage_error_code(&error).code()),
                },
            };
            partitions.push(answer);
        }
        topics.push(
            ListOffsetsTopicResponse::default()
                .with_name(topic.name.clone())
                .with_partitions(partitions),
        );
    }
    let response = ListOffsetsResponse::default().with_topics(topics);
    encode_response(
        ApiKey::ListOffsets,
        request.api_version,
        request.header.correlation_id,
        &response,
    )
}
