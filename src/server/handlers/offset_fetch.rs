//! OffsetFetch v1-v9: a group's committed offsets. No group can commit yet (OffsetCommit is
//! not implemented, nor advertised), so every partition asked for answers "no committed
//! offset" (-1), which is what Kafka answers for a group that never committed; the client then
//! starts from its `auto.offset.reset`. A group coordinated by another shard gets
//! NOT_COORDINATOR, as from Kafka.
//!
//! Why it exists before consumer groups: FindCoordinator names a coordinator so that clients
//! needing group APIs fail fast, and a librdkafka consumer that `assign()`s partitions without
//! an explicit offset then asks that coordinator for committed offsets. If the coordinator
//! lacks OffsetFetch, librdkafka 2.12-2.16 crash (a NULL dereference in
//! `rd_kafka_assignment_handle_OffsetFetch` on its local UNSUPPORTED_FEATURE error).

use bytes::BytesMut;
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{ApiKey, OffsetFetchRequest, OffsetFetchResponse};
use kafka_protocol::ResponseError;

use crate::cluster::coordinator_shard;
use crate::protocol::header::{decode_body, Request};
use crate::protocol::response::encode_response;
use crate::protocol::ProtocolError;
use crate::shard::ShardContext;

/// Several groups per request exist from this version.
pub const BATCHED_GROUPS_VERSION_MIN: i16 = 8;
/// Committed leader epochs exist from this version.
pub const LEADER_EPOCH_VERSION_MIN: i16 = 5;
/// A top-level error code exists from this version; before it, the partitions carry it.
pub const TOP_LEVEL_ERROR_VERSION_MIN: i16 = 2;

/// "No committed offset" (and no leader epoch), as Kafka answers it.
pub const OFFSET_NONE: i64 = -1;
/// "No leader epoch".
pub const LEADER_EPOCH_NONE: i32 = -1;

/// The error for a group asked of this shard: NOT_COORDINATOR unless this shard coordinates it.
fn group_error(context: &ShardContext, group_id: &str) -> Option<ResponseError> {
    (coordinator_shard(group_id, context.shard_count) != context.shard_id)
        .then_some(ResponseError::NotCoordinator)
}

/// Answers OffsetFetch.
pub fn handle(context: &ShardContext, request: &Request) -> Result<BytesMut, ProtocolError> {
    let body: OffsetFetchRequest = decode_body(request)?;
    let version = request.api_version;
    let response = if version >= BATCHED_GROUPS_VERSION_MIN {
        let groups = body
            .groups
            .iter()
            .map(|group| {
                let error = group_error(context, group.group_id.as_str());
                // Topics null asks for every partition with a committed offset: none.
                let topics = match (&group.topics, error) {
                    (Some(topics), None) => topics
                        .iter()
                        .map(|topic| {
                            OffsetFetchResponseTopics::default()
                                .with_name(topic.name.clone())
                                .with_partitions(
                                    topic
                                        .partition_indexes
                                        .iter()
                                        .map(|&partition| {
                                            OffsetFetchResponsePartitions::default()
                                                .with_partition_index(partition)
                                                .with_committed_offset(OFFSET_NONE)
                                                .with_committed_leader_epoch(LEADER_EPOCH_NONE)
                                                .with_metadata(Some(Default::default()))
                                        })
                                        .collect(),
                                )
                        })
                        .collect(),
                    _ => Vec::new(),
                };
                OffsetFetchResponseGroup::default()
                    .with_group_id(group.group_id.clone())
                    .with_topics(topics)
                    .with_error_code(error.map_or(0, |error| error.code()))
            })
            .collect();
        OffsetFetchResponse::default().with_groups(groups)
    } else {
        let error = group_error(context, body.group_id.as_str());
        let topics = body
            .topics
            .iter()
            .flatten()
            .map(|topic| {
                OffsetFetchResponseTopic::default()
                    .with_name(topic.name.clone())
                    .with_partitions(
                        topic
                            .partition_indexes
                            .iter()
                            .map(|&partition| {
                                let partition = OffsetFetchResponsePartition::default()
                                    .with_partition_index(partition)
                                    .with_committed_offset(OFFSET_NONE)
                                    .with_metadata(Some(Default::default()))
                                    // v1 has no top-level error: the partitions carry it.
                                    .with_error_code(error.map_or(0, |error| error.code()));
                                if version >= LEADER_EPOCH_VERSION_MIN {
                                    partition.with_committed_leader_epoch(LEADER_EPOCH_NONE)
                                } else {
                                    partition
                                }
                            })
                            .collect(),
                    )
            })
            .collect();
        let response = OffsetFetchResponse::default().with_topics(topics);
        if version >= TOP_LEVEL_ERROR_VERSION_MIN {
            response.with_error_code(error.map_or(0, |error| error.code()))
        } else {
            response
        }
    };
    encode_response(
        ApiKey::OffsetFetch,
        version,
        request.header.correlation_id,
        &response,
    )
}
