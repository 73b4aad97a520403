//! Metadata: one broker per shard at its own port, each partition led by the shard that owns
//! it, and auto-creation of missing topics when the broker and the client allow it.

use bytes::BytesMut;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{ApiKey, BrokerId, MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::ResponseError;
use uuid::Uuid;

use crate::cluster::{topic_name_problem, ClusterMetadata};
use crate::protocol::header::{decode_body, Request};
use crate::protocol::response::encode_response;
use crate::protocol::ProtocolError;
use crate::shard::{ControlRequest, ShardContext};

use super::describe_cluster::AUTHORIZED_OPERATIONS_OMITTED;
use super::{shard_brokers, str_bytes};

/// The allow_auto_topic_creation flag exists from this version; before it, auto-creation is allowed.
pub const ALLOW_AUTO_CREATE_VERSION_MIN: i16 = 4;
/// Leader epochs exist from this version.
pub const LEADER_EPOCH_VERSION_MIN: i16 = 7;
/// Topic ids exist from this version.
pub const TOPIC_ID_VERSION_MIN: i16 = 10;

/// Topics one Metadata request may name; more is refused as malformed.
pub const METADATA_REQUEST_TOPICS_MAX: usize = 100_000;

/// Answers Metadata.
pub async fn handle(context: &ShardContext, request: &Request) -> Result<BytesMut, ProtocolError> {
    let body: MetadataRequest = decode_body(request)?;
    let version = request.api_version;
    let snapshot = context.metadata();
    // v0: an empty list means every topic. v1+: null means every topic, empty means none.
    let requested: Option<Vec<String>> = match &body.topics {
        None => None,
        Some(topics) if topics.is_empty() && version == 0 => None,
        Some(topics) => {
            if topics.len() > METADATA_REQUEST_TOPICS_MAX {
                return Err(ProtocolError::Malformed {
                    what: "Metadata request",
                    reason: format!("{} topics named", topics.len()),
                });
            }
            Some(
                topics
                    .iter()
                    .map(|topic| match &topic.name {
                        Some(name) => name.0.as_str().to_string(),
                        None => name_by_id(&snapshot, topic.topic_id).unwrap_or_default(),
                    })
                    .collect(),
            )
        }
    };
    let allow_auto_create = context.config.auto_create_topics
        && (version < ALLOW_AUTO_CREATE_VERSION_MIN || body.allow_auto_topic_creation);
    let snapshot = match &requested {
        Some(names) if allow_auto_create => {
            let missing: Vec<String> = names
                .iter()
                .filter(|name| !snapshot.topics.contains_key(*name))
                .filter(|name| topic_name_problem(name).is_none())
                .cloned()
                .collect();
            if missing.is_empty() {
                snapshot
            } else {
                context
                    .control
                    .call(ControlRequest::AutoCreate { names: missing })
                    .await;
                context.metadata()
            }
        }
        _ => snapshot,
    };
    let brokers = shard_brokers(context)
        .map(|(node_id, host, port)| {
            MetadataResponseBroker::default()
                .with_node_id(node_id)
                .with_host(host)
                .with_port(port)
        })
        .collect();
    let names: Vec<String> = match requested {
        Some(names) => names,
        None => snapshot.topics.keys().cloned().collect(),
    };
    let topics = names
        .iter()
        .map(|name| describe_topic(&snapshot, name, version))
        .collect();
    let response = MetadataResponse::default()
        .with_brokers(brokers)
        .with_cluster_id(Some(str_bytes(snapshot.cluster_id.clone())))
        .with_controller_id(BrokerId(0))
        .with_topics(topics)
        .with_cluster_authorized_operations(AUTHORIZED_OPERATIONS_OMITTED);
    encode_response(
        ApiKey::Metadata,
        version,
        request.header.correlation_id,
        &response,
    )
}

fn name_by_id(snapshot: &ClusterMetadata, topic_id: Uuid) -> Option<String> {
    let wanted = topic_id.as_u128();
    snapshot
        .topics
        .iter()
        .find(|(_, topic)| topic.topic_id == wanted)
        .map(|(name, _)| name.clone())
}

fn describe_topic(snapshot: &ClusterMetadata, name: &str, version: i16) -> MetadataResponseTopic {
    let base = MetadataResponseTopic::default()
        .with_name(Some(TopicName(str_bytes(name))))
        .with_topic_authorized_operations(AUTHORIZED_OPERATIONS_OMITTED);
    if topic_name_problem(name).is_some() {
        return base.with_error_code(ResponseError::InvalidTopicException.code());
    }
    let Some(topic) = snapshot.topics.get(name) else {
        return base.with_error_code(ResponseError::UnknownTopicOrPartition.code());
    };
    let partitions = topic
        .partition_shards
        .iter()
        .enumerate()
        .map(|(index, &shard)| {
            let leader = BrokerId(shard as i32);
            MetadataResponsePartition::default()
                .with_partition_index(index as i32)
                .with_leader_id(leader)
                // Leader epochs exist from v7; every partition is in epoch 0.
                .with_leader_epoch(if version >= LEADER_EPOCH_VERSION_MIN {
                    0
                } else {
                    -1
                })
                .with_replica_nodes(vec![leader])
                .with_isr_nodes(vec![leader])
        })
        .collect();
    // Topic ids exist from v10.
    let topic_id = if version >= TOPIC_ID_VERSION_MIN {
        Uuid::from_u128(topic.topic_id)
    } else {
        Uuid::nil()
    };
    base.with_topic_id(topic_id).with_partitions(partitions)
}
