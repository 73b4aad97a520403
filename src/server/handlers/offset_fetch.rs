//! OffsetFetch v1-v9: a group's committed offsets, from the coordinator shard's offset store
//! (see `group::OffsetStore`). A partition without a commit answers offset -1, as Kafka
//! does, and the client then starts from its `auto.offset.reset`. Topics null (v2+) asks for
//! every partition the group has committed. A group coordinated by another shard gets
//! NOT_COORDINATOR. `require_stable` (v7+) needs no wait: there are no transactional commits.
//!
//! librdkafka 2.12-2.16 crash if a named coordinator lacks OffsetFetch (a NULL dereference in
//! `rd_kafka_assignment_handle_OffsetFetch`), so it must stay answered at every version.

use bytes::BytesMut;
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{ApiKey, OffsetFetchRequest, OffsetFetchResponse};
use kafka_protocol::ResponseError;

use crate::group::{CommittedOffset, GroupOffsets};
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
    (!context.offsets.coordinates(group_id)).then_some(ResponseError::NotCoordinator)
}

/// What one partition answers: its commit, or "none".
fn committed_parts(committed: Option<&CommittedOffset>) -> (i64, i32, String) {
    committed.map_or(
        (OFFSET_NONE, LEADER_EPOCH_NONE, String::new()),
        |committed| {
            (
                committed.offset,
                committed.leader_epoch,
                committed.metadata.clone().unwrap_or_default(),
            )
        },
    )
}

/// The partitions to answer for a group: those asked, or with topics null every committed one.
fn asked_partitions(
    offsets: &GroupOffsets,
    asked: Option<Vec<(String, Vec<i32>)>>,
) -> Vec<(String, Vec<i32>)> {
    match asked {
        Some(asked) => asked,
        None => {
            let mut topics: Vec<(String, Vec<i32>)> = Vec::new();
            for (topic, partition) in offsets.keys() {
                match topics.last_mut() {
                    Some((name, partitions)) if name == topic => partitions.push(*partition),
                    _ => topics.push((topic.clone(), vec![*partition])),
                }
            }
            topics
        }
    }
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
                let group_id = group.group_id.as_str();
                // v9+: a consumer-protocol member fetches at its epoch (KIP-848).
                let error = group_error(context, group_id).or_else(|| {
                    context
                        .consumer_groups
                        .validate_fetch(
                            group_id,
                            group.member_id.as_deref().unwrap_or_default(),
                            group.member_epoch,
                        )
                        .err()
                });
                let topics = if error.is_some() {
                    Vec::new()
                } else {
                    let offsets = context.offsets.group_offsets(group_id);
                    let asked = group.topics.as_ref().map(|topics| {
                        topics
                            .iter()
                            .map(|topic| (topic.name.to_string(), topic.partition_indexes.clone()))
                            .collect()
                    });
                    asked_partitions(&offsets, asked)
                        .into_iter()
                        .map(|(name, partitions)| {
                            let answered = partitions
                                .into_iter()
                                .map(|partition| {
                                    let (offset, epoch, metadata) =
                                        committed_parts(offsets.get(&(name.clone(), partition)));
                                    OffsetFetchResponsePartitions::default()
                                        .with_partition_index(partition)
                                        .with_committed_offset(offset)
                                        .with_committed_leader_epoch(epoch)
                                        .with_metadata(Some(super::str_bytes(metadata)))
                                })
                                .collect();
                            OffsetFetchResponseTopics::default()
                                .with_name(super::str_bytes(name).into())
                                .with_partitions(answered)
                        })
                        .collect()
                };
                OffsetFetchResponseGroup::default()
                    .with_group_id(group.group_id.clone())
                    .with_topics(topics)
                    .with_error_code(error.map_or(0, |error| error.code()))
            })
            .collect();
        OffsetFetchResponse::default().with_groups(groups)
    } else {
        let group_id = body.group_id.as_str();
        let error = group_error(context, group_id);
        let offsets = if error.is_some() {
            GroupOffsets::default()
        } else {
            context.offsets.group_offsets(group_id)
        };
        let asked = body.topics.as_ref().map(|topics| {
            topics
                .iter()
                .map(|topic| (topic.name.to_string(), topic.partition_indexes.clone()))
                .collect()
        });
        let asked = if error.is_some() && asked.is_none() {
            Vec::new()
        } else {
            asked_partitions(&offsets, asked)
        };
        let topics = asked
            .into_iter()
            .map(|(name, partitions)| {
                OffsetFetchResponseTopic::default()
                    .with_name(super::str_bytes(name.clone()).into())
                    .with_partitions(
                        partitions
                            .into_iter()
                            .map(|partition| {
                                let (offset, epoch, metadata) =
                                    committed_parts(offsets.get(&(name.clone(), partition)));
                                let partition = OffsetFetchResponsePartition::default()
                                    .with_partition_index(partition)
                                    .with_committed_offset(offset)
                                    .with_metadata(Some(super::str_bytes(metadata)))
                                    // v1 has no top-level error: the partitions carry it.
                                    .with_error_code(error.map_or(0, |error| error.code()));
                                if version >= LEADER_EPOCH_VERSION_MIN {
                                    partition.with_committed_leader_epoch(epoch)
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
