//! CreatePartitions: grows a topic; new partitions go to the least loaded shards unless the
//! request assigns them.

use bytes::BytesMut;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{ApiKey, CreatePartitionsRequest, CreatePartitionsResponse};

use crate::protocol::header::{decode_body, Request};
use crate::protocol::response::encode_response;
use crate::protocol::ProtocolError;
use crate::shard::control::PartitionGrowth;
use crate::shard::{ControlRequest, ShardContext};

use super::str_bytes;

/// Answers CreatePartitions.
pub async fn handle(context: &ShardContext, request: &Request) -> Result<BytesMut, ProtocolError> {
    let body: CreatePartitionsRequest = decode_body(request)?;
    let topics =
        body.topics
            .iter()
            .map(|topic| PartitionGrowth {
                name: topic.name.0.as_str().to_string(),
                count: topic.count,
                // An empty list is treated like null: place the new partitions automatically.
                assignments: topic.assignments.as_ref().filter(|a| !a.is_empty()).map(
                    |assignments| {
                        assignments
                            .iter()
                            .map(|assignment| assignment.broker_ids.iter().map(|id| id.0).collect())
                            .collect()
                    },
                ),
            })
            .collect();
    let outcomes = context
        .control
        .call(ControlRequest::CreatePartitions {
            topics,
            validate_only: body.validate_only,
        })
        .await;
    let results = outcomes
        .into_iter()
        .zip(&body.topics)
        .map(|(outcome, topic)| {
            CreatePartitionsTopicResult::default()
                .with_name(topic.name.clone())
                .with_error_code(outcome.error_code)
                .with_error_message(outcome.message.map(str_bytes))
        })
        .collect();
    let response = CreatePartitionsResponse::default().with_results(results);
    encode_response(
        ApiKey::CreatePartitions,
        request.api_version,
        request.header.correlation_id,
        &response,
    )
}
