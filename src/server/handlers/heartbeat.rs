//! Heartbeat v0-v4: a member renews its session; REBALANCE_IN_PROGRESS tells it to rejoin.

use bytes::BytesMut;
use kafka_protocol::messages::{ApiKey, HeartbeatRequest, HeartbeatResponse};
use kafka_protocol::ResponseError;

use crate::protocol::header::{decode_body, Request};
use crate::protocol::response::encode_response;
use crate::protocol::ProtocolError;
use crate::shard::ShardContext;

/// Answers Heartbeat.
pub fn handle(context: &ShardContext, request: &Request) -> Result<BytesMut, ProtocolError> {
    let body: HeartbeatRequest = decode_body(request)?;
    let group = body.group_id.as_str();
    let error = if group.is_empty() {
        Some(ResponseError::InvalidGroupId)
    } else if !context.offsets.coordinates(group) {
        Some(ResponseError::NotCoordinator)
    } else {
        context.groups.heartbeat(
            group,
            body.generation_id,
            body.member_id.as_str(),
            body.group_instance_id.as_deref(),
        )
    };
    encode_response(
        ApiKey::Heartbeat,
        request.api_version,
        request.header.correlation_id,
        &HeartbeatResponse::default().with_error_code(error.map_or(0, |error| error.code())),
    )
}
