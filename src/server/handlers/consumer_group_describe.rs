//! ConsumerGroupDescribe v0-v1 (KIP-848): a consumer-protocol group's state, epochs and
//! assignor, and each member's subscription, epoch, assignment and target assignment (with
//! topic names). A classic or unknown group is GROUP_ID_NOT_FOUND, as Kafka answers, and
//! admin clients then fall back to DescribeGroups. Another shard's group gets
//! NOT_COORDINATOR.

use std::collections::HashMap;

use bytes::BytesMut;
use kafka_protocol::messages::consumer_group_describe_response::{
    Assignment, DescribedGroup, Member, TopicPartitions,
};
use kafka_protocol::messages::{
    ApiKey, ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse,
};
use kafka_protocol::ResponseError;
use uuid::Uuid;

use crate::group;
use crate::protocol::header::{decode_body, Request};
use crate::protocol::response::encode_response;
use crate::protocol::ProtocolError;
use crate::shard::ShardContext;

use super::describe_groups::AUTHORIZED_OPERATIONS_OMITTED;
use super::str_bytes;

/// `member_type` (v1) of a member using the consumer protocol.
pub const MEMBER_TYPE_CONSUMER: i8 = 1;

/// Answers ConsumerGroupDescribe.
pub fn handle(context: &ShardContext, request: &Request) -> Result<BytesMut, ProtocolError> {
    let body: ConsumerGroupDescribeRequest = decode_body(request)?;
    let snapshot = context.metadata();
    let names: HashMap<u128, &str> = snapshot
        .topics
        .iter()
        .map(|(name, topic)| (topic.topic_id, name.as_str()))
        .collect();
    let assignment = |partitions: &group::TopicPartitions| {
        Assignment::default().with_topic_partitions(
            partitions
                .topics()
                .map(|(topic_id, indexes)| {
                    TopicPartitions::default()
                        .with_topic_id(Uuid::from_u128(topic_id))
                        .with_topic_name(
                            str_bytes(names.get(&topic_id).copied().unwrap_or_default()).into(),
                        )
                        .with_partitions(indexes.iter().copied().collect())
                })
                .collect(),
        )
    };
    let groups = body
        .group_ids
        .iter()
        .map(|group_id| {
            let group = group_id.as_str();
            let described = DescribedGroup::default()
                .with_group_id(group_id.clone())
                .with_authorized_operations(AUTHORIZED_OPERATIONS_OMITTED);
            if !context.offsets.coordinates(group) {
                return described.with_error_code(ResponseError::NotCoordinator.code());
            }
            let Some(summary) = context.consumer_groups.describe(group) else {
                let message = if context.groups.knows(group) {
                    format!("Group {group} is not a consumer group.")
                } else {
                    format!("Group {group} not found.")
                };
                return described
                    .with_error_code(ResponseError::GroupIdNotFound.code())
                    .with_error_message(Some(str_bytes(message)))
                    .with_group_state(str_bytes(group::GROUP_STATE_DEAD));
            };
            described
                .with_group_state(str_bytes(summary.state.name()))
                .with_group_epoch(summary.group_epoch)
                .with_assignment_epoch(summary.assignment_epoch)
                .with_assignor_name(str_bytes(summary.assignor_name))
                .with_members(
                    summary
                        .members
                        .iter()
                        .map(|member| {
                            Member::default()
                                .with_member_id(str_bytes(member.member_id.clone()))
                                .with_instance_id(member.instance_id.clone().map(str_bytes))
                                .with_rack_id(member.rack_id.clone().map(str_bytes))
                                .with_member_epoch(member.member_epoch)
                                .with_client_id(str_bytes(member.client_id.clone()))
                                .with_client_host(str_bytes(member.client_host.clone()))
                                .with_subscribed_topic_names(
                                    member
                                        .subscribed_topic_names
                                        .iter()
                                        .map(|name| str_bytes(name.clone()).into())
                                        .collect(),
                                )
                                .with_subscribed_topic_regex(
                                    member.subscribed_topic_regex.clone().map(str_bytes),
                                )
                                .with_assignment(assignment(&member.assignment))
                                .with_target_assignment(assignment(&member.target_assignment))
                                .with_member_type(MEMBER_TYPE_CONSUMER)
                        })
                        .collect(),
                )
        })
        .collect();
    encode_response(
        ApiKey::ConsumerGroupDescribe,
        request.api_version,
        request.header.correlation_id,
        &ConsumerGroupDescribeResponse::default().with_groups(groups),
    )
}
