//! DescribeConfigs for topics (their overrides over the broker defaults) and for the broker
//! (the settings it runs with). Nothing can be altered yet, so broker configs are read-only.

use bytes::BytesMut;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult,
};
use kafka_protocol::messages::{ApiKey, DescribeConfigsRequest, DescribeConfigsResponse};
use kafka_protocol::ResponseError;

use crate::cluster::TOPIC_CONFIG_NAMES;
use crate::config::{BrokerConfig, FlushPolicyName};
use crate::protocol::header::{decode_body, Request};
use crate::protocol::response::encode_response;
use crate::protocol::ProtocolError;
use crate::shard::ShardContext;

use super::str_bytes;

/// Config types exist from this version.
pub const CONFIG_TYPE_VERSION_MIN: i16 = 3;

/// Kafka's resource type for topics.
pub const RESOURCE_TYPE_TOPIC: i8 = 2;
/// Kafka's resource type for brokers.
pub const RESOURCE_TYPE_BROKER: i8 = 4;

/// Kafka's `ConfigSource` values used here.
pub mod config_source {
    /// Set on the topic.
    pub const TOPIC: i8 = 1;
    /// From the broker's configuration file or flags.
    pub const STATIC_BROKER: i8 = 4;
}
/// Kafka's `ConfigSource` for a built-in default.
pub const CONFIG_SOURCE_DEFAULT: i8 = 5;

/// Kafka's `ConfigType` values used here.
mod config_type {
    pub const BOOLEAN: i8 = 1;
    pub const STRING: i8 = 2;
    pub const INT: i8 = 3;
    pub const LONG: i8 = 5;
    pub const LIST: i8 = 7;
}

fn topic_config_type(name: &str) -> i8 {
    match name {
        "cleanup.policy" => config_type::LIST,
        "message.timestamp.type" => config_type::STRING,
        "max.message.bytes" | "segment.bytes" => config_type::INT,
        _ => config_type::LONG,
    }
}

/// The broker settings DescribeConfigs reports, by Kafka name where Kafka has one.
fn broker_configs(config: &BrokerConfig, shard: u32) -> Vec<(&'static str, String, i8)> {
    let log = &config.log;
    let flush_policy = match log.flush_policy {
        FlushPolicyName::Always => "always",
        FlushPolicyName::Interval => "interval",
        FlushPolicyName::Never => "never",
    };
    vec![
        ("broker.id", shard.to_string(), config_type::INT),
        (
            "num.partitions",
            config.default_partitions.to_string(),
            config_type::INT,
        ),
        (
            "auto.create.topics.enable",
            config.auto_create_topics.to_string(),
            config_type::BOOLEAN,
        ),
        (
            "message.max.bytes",
            log.message_max_bytes.to_string(),
            config_type::INT,
        ),
        (
            "socket.request.max.bytes",
            config.max_request_bytes.to_string(),
            config_type::INT,
        ),
        (
            "fetch.max.bytes",
            config.fetch_max_bytes.to_string(),
            config_type::INT,
        ),
        (
            "log.segment.bytes",
            log.segment_bytes.to_string(),
            config_type::INT,
        ),
        ("log.roll.ms", log.segment_ms.to_string(), config_type::LONG),
        (
            "log.retention.ms",
            log.retention_ms.to_string(),
            config_type::LONG,
        ),
        (
            "log.retention.bytes",
            log.retention_bytes.to_string(),
            config_type::LONG,
        ),
        (
            "log.retention.check.interval.ms",
            config.retention_check_interval_ms.to_string(),
            config_type::LONG,
        ),
        (
            "log.index.interval.bytes",
            log.index_interval_bytes.to_string(),
            config_type::INT,
        ),
        (
            "log.message.timestamp.type",
            log.message_timestamp_type.clone(),
            config_type::STRING,
        ),
        (
            "streambus.flush.policy",
            flush_policy.to_string(),
            config_type::STRING,
        ),
        (
            "streambus.flush.interval.ms",
            log.flush_interval_ms.to_string(),
            config_type::LONG,
        ),
        (
            "streambus.connections.per.shard.max",
            config.connections_per_shard_max.to_string(),
            config_type::INT,
        ),
    ]
}

/// Answers DescribeConfigs.
pub fn handle(context: &ShardContext, request: &Request) -> Result<BytesMut, ProtocolError> {
    let body: DescribeConfigsRequest = decode_body(request)?;
    let snapshot = context.metadata();
    let wanted = |keys: &Option<Vec<kafka_protocol::protocol::StrBytes>>, name: &str| {
        keys.as_ref()
            .is_none_or(|keys| keys.iter().any(|key| key.as_str() == name))
    };
    let results = body
        .resources
        .iter()
        .map(|resource| {
            let name = resource.resource_name.as_str();
            let result = DescribeConfigsResult::default()
                .with_resource_type(resource.resource_type)
                .with_resource_name(resource.resource_name.clone());
            let error = |code: ResponseError, message: String| {
                result
                    .clone()
                    .with_error_code(code.code())
                    .with_error_message(Some(str_bytes(message)))
            };
            match resource.resource_type {
                RESOURCE_TYPE_TOPIC => {
                    let Some(topic) = snapshot.topics.get(name) else {
                        return error(
                            ResponseError::UnknownTopicOrPartition,
                            format!("topic {name:?} does not exist"),
                        );
                    };
                    let configs = TOPIC_CONFIG_NAMES
                        .iter()
                        .filter(|config| wanted(&resource.configuration_keys, config))
                        .map(|config| {
                            let overridden = topic.configs.overrides.contains_key(*config);
                            DescribeConfigsResourceResult::default()
                                .with_name(str_bytes(*config))
                                .with_value(
                                    topic
                                        .configs
                                        .value(config, &context.config.log)
                                        .map(str_bytes),
                                )
                                .with_read_only(false)
                                .with_config_source(if overridden {
                                    config_source::TOPIC
                                } else {
                                    config_source::STATIC_BROKER
                                })
                                .with_config_type(
                                    if request.api_version >= CONFIG_TYPE_VERSION_MIN {
                                        topic_config_type(config)
                                    } else {
                                        0
                                    },
                                )
                        })
                        .collect();
                    result.with_configs(configs)
                }
                RESOURCE_TYPE_BROKER => {
                    let shard = if name.is_empty() {
                        Some(context.shard_id)
                    } else {
                        name.parse::<u32>()
                            .ok()
                            .filter(|shard| *shard < context.shard_count)
                    };
                    let Some(shard) = shard else {
                        return error(
                            ResponseError::InvalidRequest,
                            format!("broker {name:?} does not exist"),
                        );
                    };
                    let configs = broker_configs(&context.config, shard)
                        .into_iter()
                        .filter(|(config, _, _)| wanted(&resource.configuration_keys, config))
                        .map(|(config, value, kind)| {
                            DescribeConfigsResourceResult::default()
                                .with_name(str_bytes(config))
                                .with_value(Some(str_bytes(value)))
                                .with_read_only(true)
                                .with_config_source(config_source::STATIC_BROKER)
                                .with_config_type(
                                    if request.api_version >= CONFIG_TYPE_VERSION_MIN {
                                        kind
                                    } else {
                                        0
                                    },
                                )
                        })
                        .collect();
                    result.with_configs(configs)
                }
                other => error(
                    ResponseError::InvalidRequest,
                    format!("resource type {other} is not supported"),
                ),
            }
        })
        .collect();
    let response = DescribeConfigsResponse::default().with_results(results);
    encode_response(
        ApiKey::DescribeConfigs,
        request.api_version,
        request.header.correlation_id,
        &response,
    )
}
