//! SyncGroup v0-v5: the leader hands in the generation's assignment and every member waits
//! for its own. A follower's SyncGroup waits for the leader's; in a Stable group it gets its
//! assignment at once.

use bytes::BytesMut;
use kafka_protocol::messages::{ApiKey, SyncGroupRequest, SyncGroupResponse};
use kafka_protocol::ResponseError;

use crate::group::{SyncOutcome, SyncRequest};
use crate::protocol::header::{decode_body, Request};
use crate::protocol::response::encode_response;
use crate::protocol::ProtocolError;
use crate::shard::ShardContext;

use super::str_bytes;

/// Answers SyncGroup.
pub async fn handle(context: &ShardContext, request: &Request) -> Result<BytesMut, ProtocolError> {
    let body: SyncGroupRequest = decode_body(request)?;
    let group_id = body.group_id.to_string();
    let outcome = if group_id.is_empty() {
        SyncOutcome::refused(ResponseError::InvalidGroupId)
    } else if !context.offsets.coordinates(&group_id) {
        SyncOutcome::refused(ResponseError::NotCoordinator)
    } else {
        context
            .groups
            .sync(SyncRequest {
                group_id,
                generation_id: body.generation_id,
                member_id: body.member_id.to_string(),
                instance_id: body.group_instance_id.as_ref().map(|id| id.to_string()),
                protocol_type: body.protocol_type.as_ref().map(|name| name.to_string()),
                protocol_name: body.protocol_name.as_ref().map(|name| name.to_string()),
                assignments: body
                    .assignments
                    .iter()
                    .map(|assignment| {
                        (
                            assignment.member_id.to_string(),
                            assignment.assignment.clone(),
                        )
                    })
                    .collect(),
            })
            .await
    };
    let response = SyncGroupResponse::default()
        .with_error_code(outcome.error.map_or(0, |error| error.code()))
        .with_protocol_type(outcome.protocol_type.map(str_bytes))
        .with_protocol_name(outcome.protocol_name.map(str_bytes))
        .with_assignment(outcome.assignment);
    encode_response(
        ApiKey::SyncGroup,
        request.api_version,
        request.header.correlation_id,
        &response,
    )
}
