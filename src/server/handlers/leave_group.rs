//! LeaveGroup v0-v5: members leave at once instead of waiting out their sessions, and the
//! group rebalances. v0-v2 name one member and answer with one error; v3+ name several
//! (KIP-345: a static member by instance id) and answer per member.

use bytes::BytesMut;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::{ApiKey, LeaveGroupRequest, LeaveGroupResponse};
use kafka_protocol::ResponseError;

use crate::group::LeavingMember;
use crate::protocol::header::{decode_body, Request};
use crate::protocol::response::encode_response;
use crate::protocol::ProtocolError;
use crate::shard::ShardContext;

/// From this version a request names a list of members.
pub const BATCHED_MEMBERS_VERSION_MIN: i16 = 3;
/// Members one LeaveGroup may name: a whole group at its largest default size.
pub const LEAVING_MEMBERS_MAX: usize = crate::group::GROUP_MAX_SIZE_DEFAULT;

/// Answers LeaveGroup.
pub fn handle(context: &ShardContext, request: &Request) -> Result<BytesMut, ProtocolError> {
    let body: LeaveGroupRequest = decode_body(request)?;
    let group = body.group_id.as_str();
    let batched = request.api_version >= BATCHED_MEMBERS_VERSION_MIN;
    let leaving: Vec<LeavingMember> = if batched {
        body.members
            .iter()
            .map(|member| LeavingMember {
                member_id: member.member_id.to_string(),
                instance_id: member.group_instance_id.as_ref().map(|id| id.to_string()),
            })
            .collect()
    } else {
        vec![LeavingMember {
            member_id: body.member_id.to_string(),
            instance_id: None,
        }]
    };
    let outcome = if group.is_empty() {
        Err(ResponseError::InvalidGroupId)
    } else if !context.offsets.coordinates(group) {
        Err(ResponseError::NotCoordinator)
    } else if leaving.len() > LEAVING_MEMBERS_MAX {
        Err(ResponseError::InvalidRequest)
    } else {
        context.groups.leave(group, &leaving)
    };
    let code = |error: Option<ResponseError>| error.map_or(0, |error| error.code());
    let response = match outcome {
        Err(error) => LeaveGroupResponse::default().with_error_code(error.code()),
        Ok(errors) if !batched => {
            LeaveGroupResponse::default().with_error_code(code(errors.first().copied().flatten()))
        }
        Ok(errors) => LeaveGroupResponse::default().with_members(
            body.members
                .iter()
                .zip(errors)
                .map(|(member, error)| {
                    MemberResponse::default()
                        .with_member_id(member.member_id.clone())
                        .with_group_instance_id(member.group_instance_id.clone())
                        .with_error_code(code(error))
                })
                .collect(),
        ),
    };
    encode_response(
        ApiKey::LeaveGroup,
        request.api_version,
        request.header.correlation_id,
        &response,
    )
}
