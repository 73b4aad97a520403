//! ConsumerGroupHeartbeat v0-v1 (KIP-848): the consumer protocol's one request. A member joins
//! (epoch 0), heartbeats, reports what it owns, changes its subscription, and leaves (-1, or
//! -2 for a static member), and the answer carries its epoch and, when it changed, the
//! assignment the coordinator's server-side assignor gave it. v1 lets the client choose its
//! member id and subscribe by regex.
//!
//! A group id held by a classic group with members is GROUP_ID_NOT_FOUND ("not a consumer
//! group"), as Kafka answers; an empty classic group gives its name up.

use bytes::BytesMut;
use kafka_protocol::messages::consumer_group_heartbeat_response::{Assignment, TopicPartitions};
use kafka_protocol::messages::{
    ApiKey, ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use uuid::Uuid;

use crate::group::{self, ConsumerHeartbeat, HeartbeatRefusal};
use crate::protocol::header::{decode_body, Request};
use crate::protocol::response::encode_response;
use crate::protocol::ProtocolError;
use crate::shard::ShardContext;

use super::join_group::client_host;
use super::str_bytes;

/// Answers ConsumerGroupHeartbeat.
pub fn handle(
    context: &ShardContext,
    request: &Request,
    peer: Option<std::net::SocketAddr>,
) -> Result<BytesMut, ProtocolError> {
    let body: ConsumerGroupHeartbeatRequest = decode_body(request)?;
    let group_id = body.group_id.to_string();
    let result = if !group_id.is_empty() && !context.offsets.coordinates(&group_id) {
        Err(HeartbeatRefusal {
            error: ResponseError::NotCoordinator,
            message: None,
        })
    } else if context.groups.has_members(&group_id) {
        Err(HeartbeatRefusal {
            error: ResponseError::GroupIdNotFound,
            message: Some(format!("Group {group_id} is not a consumer group.")),
        })
    } else {
        let _ = context.groups.remove_empty(&group_id);
        let heartbeat = ConsumerHeartbeat {
            api_version: request.api_version,
            group_id,
            member_id: body.member_id.to_string(),
            member_epoch: body.member_epoch,
            instance_id: body.instance_id.as_ref().map(StrBytes::to_string),
            rack_id: body.rack_id.as_ref().map(StrBytes::to_string),
            rebalance_timeout_ms: body.rebalance_timeout_ms,
            subscribed_topic_names: body
                .subscribed_topic_names
                .as_ref()
                .map(|names| names.iter().map(|name| name.to_string()).collect()),
            subscribed_topic_regex: body
                .subscribed_topic_regex
                .as_ref()
                .map(StrBytes::to_string),
            server_assignor: body.server_assignor.as_ref().map(StrBytes::to_string),
            topic_partitions: body.topic_partitions.as_ref().map(|owned| {
                group::TopicPartitions::from_pairs(
                    owned
                        .iter()
                        .map(|topic| (topic.topic_id.as_u128(), topic.partitions.clone())),
                )
            }),
            client_id: request
                .header
                .client_id
                .as_ref()
                .map(|id| id.to_string())
                .unwrap_or_default(),
            client_host: client_host(peer),
        };
        context
            .consumer_groups
            .heartbeat(heartbeat, &context.metadata())
    };
    let response = match result {
        Ok(answer) => ConsumerGroupHeartbeatResponse::default()
            .with_member_id(Some(str_bytes(answer.member_id)))
            .with_member_epoch(answer.member_epoch)
            .with_heartbeat_interval_ms(answer.heartbeat_interval_ms)
            .with_assignment(answer.assignment.map(|assignment| {
                Assignment::default().with_topic_partitions(
                    assignment
                        .topics()
                        .map(|(topic_id, partitions)| {
                            TopicPartitions::default()
                                .with_topic_id(Uuid::from_u128(topic_id))
                                .with_partitions(partitions.iter().copied().collect())
                        })
                        .collect(),
                )
            })),
        Err(refusal) => ConsumerGroupHeartbeatResponse::default()
            .with_error_code(refusal.error.code())
            .with_error_message(refusal.message.map(str_bytes))
            .with_member_epoch(-1),
    };
    encode_response(
        ApiKey::ConsumerGroupHeartbeat,
        request.api_version,
        request.header.correlation_id,
        &response,
    )
}
