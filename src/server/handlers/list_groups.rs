//! ListGroups v0-v5: the groups this shard coordinates (an admin client asks every broker and
//! joins the answers). Today those are the groups with committed offsets and no members, in
//! state Empty, of type classic; the states (v4+) and types (v5+) filters apply, compared
//! without case as Kafka does.

use bytes::BytesMut;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{ApiKey, GroupId, ListGroupsRequest, ListGroupsResponse};

use crate::group::{GROUP_STATE_EMPTY, GROUP_TYPE_CLASSIC};
use crate::protocol::header::{decode_body, Request};
use crate::protocol::response::encode_response;
use crate::protocol::ProtocolError;
use crate::shard::ShardContext;

use super::str_bytes;

/// Answers ListGroups.
pub fn handle(context: &ShardContext, request: &Request) -> Result<BytesMut, ProtocolError> {
    let body: ListGroupsRequest = decode_body(request)?;
    let passes = |filter: &[kafka_protocol::protocol::StrBytes], value: &str| {
        filter.is_empty()
            || filter
                .iter()
                .any(|wanted| wanted.eq_ignore_ascii_case(value))
    };
    let groups = if passes(&body.states_filter, GROUP_STATE_EMPTY)
        && passes(&body.types_filter, GROUP_TYPE_CLASSIC)
    {
        context
            .offsets
            .groups()
            .into_iter()
            .map(|group| {
                ListedGroup::default()
                    .with_group_id(GroupId(str_bytes(group)))
                    .with_protocol_type(str_bytes(""))
                    .with_group_state(str_bytes(GROUP_STATE_EMPTY))
                    .with_group_type(str_bytes(GROUP_TYPE_CLASSIC))
            })
            .collect()
    } else {
        Vec::new()
    };
    encode_response(
        ApiKey::ListGroups,
        request.api_version,
        request.header.correlation_id,
        &ListGroupsResponse::default().with_groups(groups),
    )
}
