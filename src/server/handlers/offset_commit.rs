//! OffsetCommit v2-v9: a group stores the offsets it has consumed up to, on its coordinator
//! shard, durably (under `always`, after the fdatasync that covers the commit) before the
//! answer.
//!
//! Who may commit follows Kafka's classic-group rules ([`GroupCoordinator::validate_commit`]):
//! generation -1 with no member id (`assign()` consumers, admin tools) commits to a group
//! without members; a member commits with its member id and the current generation, and not
//! while the group waits for the leader's assignment (REBALANCE_IN_PROGRESS).
//!
//! A consumer-protocol (KIP-848) group follows its own rules
//! ([`ConsumerGroupCoordinator::validate_commit`]): a member commits at its member epoch
//! (STALE_MEMBER_EPOCH otherwise), with v9 or later.
//!
//! [`GroupCoordinator::validate_commit`]: crate::group::GroupCoordinator::validate_commit
//! [`ConsumerGroupCoordinator::validate_commit`]: crate::group::ConsumerGroupCoordinator::validate_commit

use bytes::BytesMut;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::{ApiKey, OffsetCommitRequest, OffsetCommitResponse};
use kafka_protocol::ResponseError;
use tracing::warn;

use crate::group::{now_ms, CommitRefusal, CommittedOffset};
use crate::protocol::header::{decode_body, Request};
use crate::protocol::response::encode_response;
use crate::protocol::ProtocolError;
use crate::shard::ShardContext;

/// One topic's answers: each partition and its error, `None` until the commit decides it.
type TopicAnswers = (String, Vec<(i32, Option<ResponseError>)>);

/// Answers OffsetCommit.
pub async fn handle(context: &ShardContext, request: &Request) -> Result<BytesMut, ProtocolError> {
    let body: OffsetCommitRequest = decode_body(request)?;
    let group = body.group_id.as_str();
    let store = &context.offsets;
    let group_error = if group.is_empty() {
        Some(ResponseError::InvalidGroupId)
    } else if !store.coordinates(group) {
        Some(ResponseError::NotCoordinator)
    } else if context.consumer_groups.knows(group) {
        context
            .consumer_groups
            .validate_commit(
                group,
                body.member_id.as_str(),
                body.generation_id_or_member_epoch,
                request.api_version,
            )
            .err()
    } else {
        context
            .groups
            .validate_commit(
                group,
                body.generation_id_or_member_epoch,
                (body.member_id.as_str(), body.group_instance_id.as_deref()),
                store.has_group(group),
                request.api_version,
            )
            .err()
    };
    let snapshot = context.metadata();
    let metadata_max = store.settings().offset_metadata_max_bytes;
    let now = now_ms();
    // Each partition's answer, in request order.
    let mut answers: Vec<TopicAnswers> = Vec::new();
    let mut accepted: Vec<(String, i32, CommittedOffset)> = Vec::new();
    for topic in &body.topics {
        let name = topic.name.0.as_str();
        let partitions_known = snapshot
            .topics
            .get(name)
            .map_or(0, |known| known.partition_shards.len());
        let mut partitions = Vec::with_capacity(topic.partitions.len());
        for partition in &topic.partitions {
            let index = partition.partition_index;
            let metadata = partition
                .committed_metadata
                .as_ref()
                .map(|text| text.to_string());
            let error = if let Some(error) = group_error {
                Some(error)
            } else if index < 0 || index as usize >= partitions_known {
                Some(ResponseError::UnknownTopicOrPartition)
            } else if metadata
                .as_ref()
                .is_some_and(|text| text.len() > metadata_max)
            {
                Some(ResponseError::OffsetMetadataTooLarge)
            } else {
                accepted.push((
                    name.to_string(),
                    index,
                    CommittedOffset {
                        offset: partition.committed_offset,
                        leader_epoch: partition.committed_leader_epoch,
                        metadata,
                        commit_timestamp_ms: now,
                    },
                ));
                None
            };
            partitions.push((index, error));
        }
        answers.push((name.to_string(), partitions));
    }
    let commit_error = if accepted.is_empty() {
        None
    } else {
        let new_partitions = accepted
            .iter()
            .filter(|(topic, partition, _)| !store.is_committed(group, topic, *partition))
            .count();
        match store.admit(group, new_partitions) {
            Err(refusal) => Some(refusal_error(group, refusal)),
            Ok(()) => match store.commit(group, accepted).await {
                Ok(()) => None,
                Err(error) => {
                    warn!(group, %error, "storing committed offsets failed");
                    Some(ResponseError::KafkaStorageError)
                }
            },
        }
    };
    let topics = answers
        .into_iter()
        .map(|(name, partitions)| {
            OffsetCommitResponseTopic::default()
                .with_name(crate::server::handlers::str_bytes(name).into())
                .with_partitions(
                    partitions
                        .into_iter()
                        .map(|(index, error)| {
                            let error = error.or(commit_error);
                            OffsetCommitResponsePartition::default()
                                .with_partition_index(index)
                                .with_error_code(error.map_or(0, |error| error.code()))
                        })
                        .collect(),
                )
        })
        .collect();
    let response = OffsetCommitResponse::default().with_topics(topics);
    encode_response(
        ApiKey::OffsetCommit,
        request.api_version,
        request.header.correlation_id,
        &response,
    )
}

fn refusal_error(group: &str, refusal: CommitRefusal) -> ResponseError {
    match refusal {
        CommitRefusal::NotCoordinator => ResponseError::NotCoordinator,
        CommitRefusal::TooManyGroups => {
            warn!(
                group,
                "commit refused: the shard holds groups_per_shard_max groups"
            );
            ResponseError::InvalidCommitOffsetSize
        }
        CommitRefusal::TooManyOffsets => {
            warn!(
                group,
                "commit refused: the group would exceed offsets_per_group_max"
            );
            ResponseError::InvalidCommitOffsetSize
        }
        CommitRefusal::TooManyOffsetsOnShard => {
            warn!(
                group,
                "commit refused: the shard would exceed offsets_per_shard_max"
            );
            ResponseError::InvalidCommitOffsetSize
        }
    }
}
