//! ListGroups v0-v5: the groups this shard coordinates (an admin client asks every broker and
//! joins the answers): those with members or recently emptied, in their state, and those known
//! only by committed offsets, Empty. Classic groups are of type classic, consumer-protocol
//! (KIP-848) groups of type consumer, in their states (Empty, Assigning, Reconciling, Stable).
//! The states (v4+) and types (v5+) filters apply, compared without case as Kafka does.

use std::collections::BTreeMap;

use bytes::BytesMut;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{ApiKey, GroupId, ListGroupsRequest, ListGroupsResponse};

use crate::group::{GroupState, GROUP_TYPE_CLASSIC, GROUP_TYPE_CONSUMER};
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
    // Name → (state, protocol type); membership wins over offsets for a group in both.
    let mut known: BTreeMap<String, (GroupState, String)> = context
        .offsets
        .groups()
        .into_iter()
        .map(|group| (group, (GroupState::Empty, String::new())))
        .collect();
    for (group, state, protocol_type) in context.groups.list() {
        known.insert(group, (state, protocol_type));
    }
    // Name → (state, protocol type, group type).
    let mut listed: BTreeMap<String, (&'static str, String, &'static str)> = known
        .into_iter()
        .map(|(group, (state, protocol_type))| {
            (group, (state.name(), protocol_type, GROUP_TYPE_CLASSIC))
        })
        .collect();
    for (group, state) in context.consumer_groups.list() {
        listed.insert(
            group,
            (
                state.name(),
                GROUP_TYPE_CONSUMER.to_string(),
                GROUP_TYPE_CONSUMER,
            ),
        );
    }
    let groups = listed
        .into_iter()
        .filter(|(_, (state, _, group_type))| {
            passes(&body.states_filter, state) && passes(&body.types_filter, group_type)
        })
        .map(|(group, (state, protocol_type, group_type))| {
            ListedGroup::default()
                .with_group_id(GroupId(str_bytes(group)))
                .with_protocol_type(str_bytes(protocol_type))
                .with_group_state(str_bytes(state))
                .with_group_type(str_bytes(group_type))
        })
        .collect();
    encode_response(
        ApiKey::ListGroups,
        request.api_version,
        request.header.correlation_id,
        &ListGroupsResponse::default().with_groups(groups),
    )
}
