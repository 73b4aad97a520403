//! OffsetDelete v0: removes committed offsets of a group (KIP-496), durably, with tombstones in
//! the offsets log. A group without any committed offset gets GROUP_ID_NOT_FOUND; no group has
//! members yet, so no partition is refused as subscribed (GROUP_SUBSCRIBED_TO_TOPIC).

use bytes::BytesMut;
use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::{ApiKey, OffsetDeleteRequest, OffsetDeleteResponse};
use kafka_protocol::ResponseError;
use tracing::warn;

use crate::group::now_ms;
use crate::protocol::header::{decode_body, Request};
use crate::protocol::response::encode_response;
use crate::protocol::ProtocolError;
use crate::shard::ShardContext;

/// Answers OffsetDelete.
pub async fn handle(context: &ShardContext, request: &Request) -> Result<BytesMut, ProtocolError> {
    let body: OffsetDeleteRequest = decode_body(request)?;
    let group = body.group_id.as_str();
    let store = &context.offsets;
    let group_error = if !store.coordinates(group) {
        Some(ResponseError::NotCoordinator)
    } else if !store.has_group(group) {
        Some(ResponseError::GroupIdNotFound)
    } else {
        let doomed: Vec<(String, i32)> = body
            .topics
            .iter()
            .flat_map(|topic| {
                topic
                    .partitions
                    .iter()
                    .map(|partition| (topic.name.to_string(), partition.partition_index))
            })
            .collect();
        match store.delete(group, &doomed, now_ms()).await {
            Ok(()) => None,
            Err(error) => {
                warn!(group, %error, "deleting committed offsets failed");
                Some(ResponseError::KafkaStorageError)
            }
        }
    };
    let response = match group_error {
        Some(error) => OffsetDeleteResponse::default().with_error_code(error.code()),
        None => OffsetDeleteResponse::default().with_topics(
            body.topics
                .iter()
                .map(|topic| {
                    OffsetDeleteResponseTopic::default()
                        .with_name(topic.name.clone())
                        .with_partitions(
                            topic
                                .partitions
                                .iter()
                                .map(|partition| {
                                    OffsetDeleteResponsePartition::default()
                                        .with_partition_index(partition.partition_index)
                                })
                                .collect(),
                        )
                })
                .collect(),
        ),
    };
    encode_response(
        ApiKey::OffsetDelete,
        request.api_version,
        request.header.correlation_id,
        &response,
    )
}
