//! DeleteTopics, by name (v1-v5) or by name or id (v6). The owning shards delete the data.

use bytes::BytesMut;
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{ApiKey, DeleteTopicsRequest, DeleteTopicsResponse, TopicName};
use kafka_protocol::ResponseError;
use uuid::Uuid;

use crate::protocol::header::{decode_body, Request};
use crate::protocol::response::encode_response;
use crate::protocol::ProtocolError;
use crate::shard::{ControlRequest, ShardContext};

use super::str_bytes;

/// Topics named by id exist from this version.
pub const TOPIC_ID_VERSION_MIN: i16 = 6;
/// Error messages exist from this version.
pub const ERROR_MESSAGE_VERSION_MIN: i16 = 5;

/// Answers DeleteTopics.
pub async fn handle(context: &ShardContext, request: &Request) -> Result<BytesMut, ProtocolError> {
    let body: DeleteTopicsRequest = decode_body(request)?;
    let version = request.api_version;
    let snapshot = context.metadata();
    // (name if known, id as asked) per topic, in request order.
    let asked: Vec<(Option<String>, Uuid)> = if request.api_version >= TOPIC_ID_VERSION_MIN {
        body.topics
            .iter()
            .map(|topic| match &topic.name {
                Some(name) => (Some(name.0.as_str().to_string()), Uuid::nil()),
                None => {
                    let wanted = topic.topic_id.as_u128();
                    let name = snapshot
                        .topics
                        .iter()
                        .find(|(_, metadata)| metadata.topic_id == wanted)
                        .map(|(name, _)| name.clone());
                    (name, topic.topic_id)
                }
            })
            .collect()
    } else {
        body.topic_names
            .iter()
            .map(|name| (Some(name.0.as_str().to_string()), Uuid::nil()))
            .collect()
    };
    let names: Vec<String> = asked.iter().filter_map(|(name, _)| name.clone()).collect();
    let ids: Vec<Uuid> = names
        .iter()
        .map(|name| {
            snapshot
                .topics
                .get(name)
                .map_or(Uuid::nil(), |topic| Uuid::from_u128(topic.topic_id))
        })
        .collect();
    let mut outcomes = context
        .control
        .call(ControlRequest::DeleteTopics { names })
        .await
        .into_iter()
        .zip(ids);
    let results = asked
        .into_iter()
        .map(|(name, asked_id)| match name {
            Some(name) => {
                let (outcome, id) = outcomes.next().unwrap_or_else(|| {
                    (
                        crate::shard::TopicOutcome {
                            name: name.clone(),
                            error_code: ResponseError::UnknownServerError.code(),
                            message: Some("no answer from the controller".into()),
                        },
                        Uuid::nil(),
                    )
                });
                // Topic ids exist from v6, error messages from v5.
                DeletableTopicResult::default()
                    .with_name(Some(TopicName(str_bytes(name))))
                    .with_topic_id(if version >= TOPIC_ID_VERSION_MIN {
                        id
                    } else {
                        Uuid::nil()
                    })
                    .with_error_code(outcome.error_code)
                    .with_error_message(
                        outcome
                            .message
                            .filter(|_| version >= ERROR_MESSAGE_VERSION_MIN)
                            .map(str_bytes),
                    )
            }
            None => DeletableTopicResult::default()
                .with_topic_id(asked_id)
                .with_error_code(ResponseError::UnknownTopicId.code())
                .with_error_message(Some(str_bytes("no topic has this id"))),
        })
        .collect();
    let response = DeleteTopicsResponse::default().with_responses(results);
    encode_response(
        ApiKey::DeleteTopics,
        request.api_version,
        request.header.correlation_id,
        &response,
    )
}
