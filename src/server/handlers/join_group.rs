//! JoinGroup v0-v9: a member joins a classic group and waits until the rebalance completes
//! (or its rebalance timeout passes); the leader's answer lists every member with its
//! metadata. v4+ new members first get MEMBER_ID_REQUIRED with their id (KIP-394); older
//! versions get an id at once. Static members (v5+, `group.instance.id`) come back to their
//! place without a rebalance (KIP-345).

use std::net::SocketAddr;

use bytes::BytesMut;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::{ApiKey, JoinGroupRequest, JoinGroupResponse};
use kafka_protocol::ResponseError;

use crate::group::{JoinOutcome, JoinRequest};
use crate::protocol::header::{decode_body, Request};
use crate::protocol::response::encode_response;
use crate::protocol::ProtocolError;
use crate::shard::ShardContext;

use super::str_bytes;

/// From this version a new member is first answered MEMBER_ID_REQUIRED.
pub const MEMBER_ID_REQUIRED_VERSION_MIN: i16 = 4;
/// From this version the request has a rebalance timeout; before, the session timeout is it.
pub const REBALANCE_TIMEOUT_VERSION_MIN: i16 = 1;

/// From this version the protocol name may be null.
pub const NULLABLE_PROTOCOL_NAME_VERSION_MIN: i16 = 7;
/// From this version the leader can be told not to assign (KIP-814).
pub const SKIP_ASSIGNMENT_VERSION_MIN: i16 = 9;

/// Kafka writes a member's host with a leading slash (Java's `InetAddress.toString`).
pub fn client_host(peer: Option<SocketAddr>) -> String {
    peer.map_or_else(String::new, |peer| format!("/{}", peer.ip()))
}

/// Answers JoinGroup.
pub async fn handle(
    context: &ShardContext,
    request: &Request,
    peer: Option<SocketAddr>,
) -> Result<BytesMut, ProtocolError> {
    let body: JoinGroupRequest = decode_body(request)?;
    let group_id = body.group_id.to_string();
    let outcome = if group_id.is_empty() {
        JoinOutcome::refused(ResponseError::InvalidGroupId, &body.member_id)
    } else if !context.offsets.coordinates(&group_id) {
        JoinOutcome::refused(ResponseError::NotCoordinator, &body.member_id)
    } else if context.consumer_groups.has_members(&group_id) {
        // A consumer-protocol (KIP-848) group holds the name: the two protocols do not share
        // a group, as Kafka answers when it does not migrate between them.
        JoinOutcome::refused(ResponseError::InconsistentGroupProtocol, &body.member_id)
    } else {
        // An empty consumer-protocol group gives its name up to the classic group.
        let _ = context.consumer_groups.remove_empty(&group_id);
        let rebalance_timeout_ms = if request.api_version >= REBALANCE_TIMEOUT_VERSION_MIN {
            body.rebalance_timeout_ms
        } else {
            body.session_timeout_ms
        };
        context
            .groups
            .join(JoinRequest {
                group_id,
                member_id: body.member_id.to_string(),
                instance_id: body.group_instance_id.as_ref().map(|id| id.to_string()),
                client_id: request
                    .header
                    .client_id
                    .as_ref()
                    .map(|id| id.to_string())
                    .unwrap_or_default(),
                client_host: client_host(peer),
                session_timeout_ms: body.session_timeout_ms,
                rebalance_timeout_ms,
                protocol_type: body.protocol_type.to_string(),
                protocols: body
                    .protocols
                    .iter()
                    .map(|protocol| (protocol.name.to_string(), protocol.metadata.clone()))
                    .collect(),
                member_id_required: request.api_version >= MEMBER_ID_REQUIRED_VERSION_MIN,
            })
            .await
    };
    // Before v7 the protocol name is not nullable: Kafka answers "" where it has none.
    let protocol_name = if request.api_version < NULLABLE_PROTOCOL_NAME_VERSION_MIN {
        Some(outcome.protocol_name.unwrap_or_default())
    } else {
        outcome.protocol_name
    };
    let response = JoinGroupResponse::default()
        .with_error_code(outcome.error.map_or(0, |error| error.code()))
        .with_generation_id(outcome.generation_id)
        .with_protocol_type(outcome.protocol_type.map(str_bytes))
        .with_protocol_name(protocol_name.map(str_bytes))
        .with_leader(str_bytes(outcome.leader))
        // Older members are given the member list and assign as usual; their SyncGroup then
        // gets the assignment the group already has.
        .with_skip_assignment(
            outcome.skip_assignment && request.api_version >= SKIP_ASSIGNMENT_VERSION_MIN,
        )
        .with_member_id(str_bytes(outcome.member_id))
        .with_members(
            outcome
                .members
                .into_iter()
                .map(|member| {
                    JoinGroupResponseMember::default()
                        .with_member_id(str_bytes(member.member_id))
                        .with_group_instance_id(member.instance_id.map(str_bytes))
                        .with_metadata(member.metadata)
                })
                .collect(),
        );
    encode_response(
        ApiKey::JoinGroup,
        request.api_version,
        request.header.correlation_id,
        &response,
    )
}
