//! DescribeGroups v0-v6: a group's state, protocol type and protocol, and its members (with
//! their metadata and assignments once Stable, as Kafka reports). A group known only by its
//! committed offsets is Empty. A group this shard coordinates but does not know is Dead, and
//! from v6 also GROUP_ID_NOT_FOUND, as Kafka 4 answers. Another shard's group gets
//! NOT_COORDINATOR. Consumer lag follows from OffsetFetch and ListOffsets.

use bytes::BytesMut;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::{ApiKey, DescribeGroupsRequest, DescribeGroupsResponse};
use kafka_protocol::ResponseError;

use crate::group::{GroupState, GROUP_STATE_DEAD};
use crate::protocol::header::{decode_body, Request};
use crate::protocol::response::encode_response;
use crate::protocol::ProtocolError;
use crate::shard::ShardContext;

use super::str_bytes;

/// From this version an unknown group is an error, not only a Dead state.
pub const GROUP_ID_NOT_FOUND_VERSION_MIN: i16 = 6;
/// Authorized operations when the client did not ask for them (Kafka's INT32_MIN).
pub const AUTHORIZED_OPERATIONS_OMITTED: i32 = i32::MIN;

/// Answers DescribeGroups.
pub fn handle(context: &ShardContext, request: &Request) -> Result<BytesMut, ProtocolError> {
    let body: DescribeGroupsRequest = decode_body(request)?;
    let store = &context.offsets;
    let groups = body
        .groups
        .iter()
        .map(|group_id| {
            let group = group_id.as_str();
            let described = DescribedGroup::default()
                .with_group_id(group_id.clone())
                .with_protocol_type(str_bytes(""))
                .with_protocol_data(str_bytes(""))
                .with_authorized_operations(AUTHORIZED_OPERATIONS_OMITTED);
            if !store.coordinates(group) {
                return described
                    .with_error_code(ResponseError::NotCoordinator.code())
                    .with_group_state(str_bytes(GROUP_STATE_DEAD));
            }
            if let Some(summary) = context.groups.describe(group) {
                return described
                    .with_group_state(str_bytes(summary.state.name()))
                    .with_protocol_type(str_bytes(summary.protocol_type))
                    .with_protocol_data(str_bytes(summary.protocol_name))
                    .with_members(
                        summary
                            .members
                            .into_iter()
                            .map(|member| {
                                DescribedGroupMember::default()
                                    .with_member_id(str_bytes(member.member_id))
                                    .with_group_instance_id(member.instance_id.map(str_bytes))
                                    .with_client_id(str_bytes(member.client_id))
                                    .with_client_host(str_bytes(member.client_host))
                                    .with_member_metadata(member.metadata)
                                    .with_member_assignment(member.assignment)
                            })
                            .collect(),
                    );
            }
            if context.consumer_groups.knows(group) {
                // A consumer-protocol group is described by ConsumerGroupDescribe, as Kafka 4
                // answers.
                let described = described.with_group_state(str_bytes(GROUP_STATE_DEAD));
                return if request.api_version >= GROUP_ID_NOT_FOUND_VERSION_MIN {
                    described
                        .with_error_code(ResponseError::GroupIdNotFound.code())
                        .with_error_message(Some(str_bytes(format!(
                            "Group {group} is not a classic group."
                        ))))
                } else {
                    described
                };
            }
            if store.has_group(group) {
                described.with_group_state(str_bytes(GroupState::Empty.name()))
            } else if request.api_version >= GROUP_ID_NOT_FOUND_VERSION_MIN {
                described
                    .with_error_code(ResponseError::GroupIdNotFound.code())
                    .with_error_message(Some(str_bytes(format!("Group {group} not found."))))
                    .with_group_state(str_bytes(GROUP_STATE_DEAD))
            } else {
                described.with_group_state(str_bytes(GROUP_STATE_DEAD))
            }
        })
        .collect();
    encode_response(
        ApiKey::DescribeGroups,
        request.api_version,
        request.header.correlation_id,
        &DescribeGroupsResponse::default().with_groups(groups),
    )
}
