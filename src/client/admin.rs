//! Admin operations: create, grow and delete topics, describe them, list offsets.

use std::rc::Rc;

use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{
    ApiKey, BrokerId, CreatePartitionsRequest, CreatePartitionsResponse, CreateTopicsRequest,
    CreateTopicsResponse, DeleteTopicsRequest, DeleteTopicsResponse, ListOffsetsRequest,
    ListOffsetsResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use super::cluster::{Cluster, TopicInfo};
use super::config::ClientConfig;
use super::error::{ClientError, ClientResult};

/// Where to start reading, or which offset to look up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetSpec {
    /// The log start offset.
    Earliest,
    /// The high watermark: the offset the next record will get.
    Latest,
    /// The first offset with a timestamp at or after this (ms); `Latest` if none.
    Timestamp(i64),
    /// This offset.
    Offset(i64),
}

/// A topic to create.
#[derive(Debug, Clone)]
pub struct NewTopic {
    /// The name.
    pub name: String,
    /// Partitions; -1 for the broker default.
    pub partitions: i32,
    /// Replicas per partition; -1 for the broker default.
    pub replication_factor: i16,
    /// Config overrides, by Kafka name.
    pub configs: Vec<(String, String)>,
}

impl NewTopic {
    /// A topic with `partitions` partitions and the broker's replication factor.
    pub fn new(name: &str, partitions: i32) -> Self {
        Self {
            name: name.to_string(),
            partitions,
            replication_factor: -1,
            configs: Vec::new(),
        }
    }
}

pub(super) fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_string()))
}

/// Admin operations against one cluster.
pub struct Admin {
    cluster: Rc<Cluster>,
}

impl Admin {
    /// An admin client for the cluster `client` points at.
    pub fn new(client: ClientConfig) -> Self {
        Self {
            cluster: Cluster::new(Rc::new(client)),
        }
    }

    /// The cluster view.
    pub fn cluster(&self) -> &Rc<Cluster> {
        &self.cluster
    }

    /// Creates topics; one result per topic, in order.
    pub async fn create_topics(&self, topics: &[NewTopic]) -> ClientResult<Vec<ClientResult<()>>> {
        let request = CreateTopicsRequest::default()
            .with_timeout_ms(self.cluster.config().request_timeout_ms as i32)
            .with_topics(
                topics
                    .iter()
                    .map(|topic| {
                        CreatableTopic::default()
                            .with_name(topic_name(&topic.name))
                            .with_num_partitions(topic.partitions)
                            .with_replication_factor(topic.replication_factor)
                            .with_configs(
                                topic
                                    .configs
                                    .iter()
                                    .map(|(name, value)| {
                                        CreatableTopicConfig::default()
                                            .with_name(StrBytes::from_string(name.clone()))
                                            .with_value(Some(StrBytes::from_string(value.clone())))
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            );
        let connection = self.cluster.any_connection().await?;
        let (_, response): (i16, CreateTopicsResponse) =
            connection.call(ApiKey::CreateTopics, &request).await?;
        Ok(response
            .topics
            .iter()
            .map(|result| {
                ClientError::check(
                    format!("create topic {}", result.name.0.as_str()),
                    result.error_code,
                    result.error_message.as_deref(),
                )
            })
            .collect())
    }

    /// Deletes topics by name; one result per topic, in order.
    pub async fn delete_topics(&self, names: &[&str]) -> ClientResult<Vec<ClientResult<()>>> {
        let connection = self.cluster.any_connection().await?;
        let version = connection.version(ApiKey::DeleteTopics)?;
        let mut request = DeleteTopicsRequest::default()
            .with_timeout_ms(self.cluster.config().request_timeout_ms as i32);
        if version >= 6 {
            request.topics = names
                .iter()
                .map(|name| DeleteTopicState::default().with_name(Some(topic_name(name))))
                .collect();
        } else {
            request.topic_names = names.iter().map(|name| topic_name(name)).collect();
        }
        let response: DeleteTopicsResponse = connection
            .call_at(ApiKey::DeleteTopics, version, &request)
            .await?;
        for name in names {
            self.cluster.invalidate(name);
        }
        Ok(response
            .responses
            .iter()
            .map(|result| {
                let name = result.name.as_ref().map_or("?", |n| n.0.as_str());
                ClientError::check(
                    format!("delete topic {name}"),
                    result.error_code,
                    result.error_message.as_deref(),
                )
            })
            .collect())
    }

    /// Grows a topic to `count` partitions.
    pub async fn create_partitions(&self, topic: &str, count: i32) -> ClientResult<()> {
        let request = CreatePartitionsRequest::default()
            .with_timeout_ms(self.cluster.config().request_timeout_ms as i32)
            .with_topics(vec![CreatePartitionsTopic::default()
                .with_name(topic_name(topic))
                .with_count(count)
                .with_assignments(None)]);
        let connection = self.cluster.any_connection().await?;
        let (_, response): (i16, CreatePartitionsResponse) =
            connection.call(ApiKey::CreatePartitions, &request).await?;
        self.cluster.invalidate(topic);
        match response.results.first() {
            Some(result) => ClientError::check(
                format!("create partitions of {topic}"),
                result.error_code,
                result.error_message.as_deref(),
            ),
            None => Err(connection.protocol_error("CreatePartitions response without the topic")),
        }
    }

    /// The partitions and leaders of a topic, fresh from the broker.
    pub async fn describe_topic(&self, topic: &str) -> ClientResult<TopicInfo> {
        self.cluster.invalidate(topic);
        self.cluster.topic(topic, false).await
    }

    /// An offset of one partition.
    pub async fn list_offset(
        &self,
        topic: &str,
        partition: i32,
        spec: OffsetSpec,
    ) -> ClientResult<i64> {
        list_offset(&self.cluster, topic, partition, spec).await
    }
}

/// Looks up an offset of one partition at its leader.
pub async fn list_offset(
    cluster: &Cluster,
    topic: &str,
    partition: i32,
    spec: OffsetSpec,
) -> ClientResult<i64> {
    let timestamp = match spec {
        OffsetSpec::Offset(offset) => return Ok(offset),
        OffsetSpec::Latest => -1,
        OffsetSpec::Earliest => -2,
        OffsetSpec::Timestamp(timestamp) => timestamp,
    };
    let connection = cluster.leader_connection(topic, partition).await?;
    let request = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(topic_name(topic))
            .with_partitions(vec![ListOffsetsPartition::default()
                .with_partition_index(partition)
                .with_timestamp(timestamp)])]);
    let (_, response): (i16, ListOffsetsResponse) =
        connection.call(ApiKey::ListOffsets, &request).await?;
    let answer = response
        .topics
        .first()
        .and_then(|topic| topic.partitions.first())
        .ok_or_else(|| connection.protocol_error("ListOffsets response without the partition"))?;
    if let Some(error) = ClientError::from_code(
        format!("list offsets of {topic}-{partition}"),
        answer.error_code,
        None,
    ) {
        return Err(error);
    }
    if answer.offset < 0 && matches!(spec, OffsetSpec::Timestamp(_)) {
        // Past every record: start at the end.
        return Box::pin(list_offset(cluster, topic, partition, OffsetSpec::Latest)).await;
    }
    Ok(answer.offset)
}
