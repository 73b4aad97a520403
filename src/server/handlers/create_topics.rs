//! CreateTopics: validated by the controller on shard 0, which answers once every shard has
//! opened its new partitions.

use bytes::BytesMut;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::{ApiKey, CreateTopicsRequest, CreateTopicsResponse};
use uuid::Uuid;

use crate::cluster::TOPIC_CONFIG_NAMES;
use crate::protocol::header::{decode_body, Request};
use crate::protocol::response::encode_response;
use crate::protocol::ProtocolError;
use crate::shard::{ControlRequest, NewTopic, ShardContext};

use super::describe_configs::{config_source, CONFIG_SOURCE_DEFAULT};
use super::str_bytes;

/// Topic ids in the response exist from this version.
pub const TOPIC_ID_VERSION_MIN: i16 = 7;
/// Partitions, replication factor and configs in the response exist from this version.
pub const TOPIC_DETAILS_VERSION_MIN: i16 = 5;

/// Answers CreateTopics.
pub async fn handle(context: &ShardContext, request: &Request) -> Result<BytesMut, ProtocolError> {
    let body: CreateTopicsRequest = decode_body(request)?;
    let topics: Vec<NewTopic> = body
        .topics
        .iter()
        .map(|topic| NewTopic {
            name: topic.name.0.as_str().to_string(),
            num_partitions: topic.num_partitions,
            replication_factor: topic.replication_factor,
            assignments: topic
                .assignments
                .iter()
                .map(|assignment| {
                    (
                        assignment.partition_index,
                        assignment.broker_ids.iter().map(|id| id.0).collect(),
                    )
                })
                .collect(),
            configs: topic
                .configs
                .iter()
                .map(|config| {
                    (
                        config.name.as_str().to_string(),
                        config
                            .value
                            .as_ref()
                            .map(|value| value.as_str().to_string()),
                    )
                })
                .collect(),
        })
        .collect();
    let requested: Vec<NewTopic> = topics.clone();
    let outcomes = context
        .control
        .call(ControlRequest::CreateTopics {
            topics,
            validate_only: body.validate_only,
        })
        .await;
    let snapshot = context.metadata();
    let defaults = &context.config.log;
    let results = outcomes
        .into_iter()
        .zip(body.topics.iter().zip(requested))
        .map(|(outcome, (wire, asked))| {
            let mut result = CreatableTopicResult::default()
                .with_name(wire.name.clone())
                .with_error_code(outcome.error_code)
                .with_error_message(outcome.message.map(str_bytes))
                .with_num_partitions(-1)
                .with_replication_factor(-1);
            if outcome.error_code != 0 {
                return result;
            }
            let created = snapshot.topics.get(&outcome.name);
            let partitions = match (created, body.validate_only) {
                (Some(topic), false) => topic.partition_shards.len() as i32,
                _ if asked.num_partitions > 0 => asked.num_partitions,
                _ if !asked.assignments.is_empty() => asked.assignments.len() as i32,
                _ => context.config.default_partitions as i32,
            };
            // Topic ids exist from v7; partitions, replication factor and configs from v5.
            if let (Some(topic), false, true) = (
                created,
                body.validate_only,
                request.api_version >= TOPIC_ID_VERSION_MIN,
            ) {
                result.topic_id = Uuid::from_u128(topic.topic_id);
            }
            if request.api_version < TOPIC_DETAILS_VERSION_MIN {
                return result;
            }
            let configs = TOPIC_CONFIG_NAMES
                .iter()
                .map(|name| {
                    let overridden = created.and_then(|topic| topic.configs.overrides.get(*name));
                    let value = created
                        .and_then(|topic| topic.configs.value(name, defaults))
                        .or_else(|| crate::cluster::TopicConfigs::default().value(name, defaults));
                    CreatableTopicConfigs::default()
                        .with_name(str_bytes(*name))
                        .with_value(value.map(str_bytes))
                        .with_read_only(false)
                        .with_config_source(if overridden.is_some() {
                            config_source::TOPIC
                        } else {
                            CONFIG_SOURCE_DEFAULT
                        })
                        .with_is_sensitive(false)
                })
                .collect();
            result.num_partitions = partitions;
            result.replication_factor = 1;
            result.configs = Some(configs);
            result
        })
        .collect();
    let response = CreateTopicsResponse::default().with_topics(results);
    encode_response(
        ApiKey::CreateTopics,
        request.api_version,
        request.header.correlation_id,
        &response,
    )
}
