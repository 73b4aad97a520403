//! DeleteGroups v0-v2: deletes groups without members and their committed offsets, durably.
//! A group with members gets NON_EMPTY_GROUP, one this shard does not coordinate
//! NOT_COORDINATOR, one it does not know GROUP_ID_NOT_FOUND.

use bytes::BytesMut;
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::{ApiKey, DeleteGroupsRequest, DeleteGroupsResponse};
use kafka_protocol::ResponseError;
use tracing::warn;

use crate::group::now_ms;
use crate::protocol::header::{decode_body, Request};
use crate::protocol::response::encode_response;
use crate::protocol::ProtocolError;
use crate::shard::ShardContext;

/// Answers DeleteGroups.
pub async fn handle(context: &ShardContext, request: &Request) -> Result<BytesMut, ProtocolError> {
    let body: DeleteGroupsRequest = decode_body(request)?;
    let store = &context.offsets;
    let mut results = Vec::with_capacity(body.groups_names.len());
    for group_id in &body.groups_names {
        let group = group_id.as_str();
        let error = if !store.coordinates(group) {
            Some(ResponseError::NotCoordinator)
        } else if context.groups.has_members(group) || context.consumer_groups.has_members(group) {
            Some(ResponseError::NonEmptyGroup)
        } else if !store.has_group(group)
            && !context.groups.knows(group)
            && !context.consumer_groups.knows(group)
        {
            Some(ResponseError::GroupIdNotFound)
        } else {
            match store.delete_group(group, now_ms()).await {
                // A member may have joined while the tombstones were written: it keeps the
                // group (with no offsets), as a group created after the delete would.
                Ok(()) => context
                    .groups
                    .remove_empty(group)
                    .and_then(|()| context.consumer_groups.remove_empty(group))
                    .err(),
                Err(error) => {
                    warn!(group, %error, "deleting a group's offsets failed");
                    Some(ResponseError::KafkaStorageError)
                }
            }
        };
        results.push(
            DeletableGroupResult::default()
                .with_group_id(group_id.clone())
                .with_error_code(error.map_or(0, |error| error.code())),
        );
    }
    encode_response(
        ApiKey::DeleteGroups,
        request.api_version,
        request.header.correlation_id,
        &DeleteGroupsResponse::default().with_results(results),
    )
}
