//! What the client knows of the cluster: brokers, topics, partition leaders, and one
//! connection per broker (per shard, on StreamBus), made on first use and remade after a
//! failure.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{ApiKey, MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::config::ClientConfig;
use super::connection::Connection;
use super::error::{ClientError, ClientResult};

/// A partition as metadata describes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionInfo {
    /// The leader's node id, or -1.
    pub leader: i32,
    /// The partition's error code in the last metadata.
    pub error_code: i16,
}

/// A topic as metadata describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicInfo {
    /// Partitions by index.
    pub partitions: Vec<PartitionInfo>,
}

/// Brokers, topics and connections.
pub struct Cluster {
    config: Rc<ClientConfig>,
    brokers: RefCell<HashMap<i32, String>>,
    topics: RefCell<HashMap<String, TopicInfo>>,
    connections: RefCell<HashMap<i32, Connection>>,
    bootstrap: RefCell<Option<Connection>>,
}

impl Cluster {
    /// A cluster reached through `config.bootstrap`; nothing is connected yet.
    pub fn new(config: Rc<ClientConfig>) -> Rc<Self> {
        Rc::new(Self {
            config,
            brokers: RefCell::new(HashMap::new()),
            topics: RefCell::new(HashMap::new()),
            connections: RefCell::new(HashMap::new()),
            bootstrap: RefCell::new(None),
        })
    }

    /// The client's configuration.
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    async fn bootstrap_connection(&self) -> ClientResult<Connection> {
        if let Some(connection) = self.bootstrap.borrow().as_ref().filter(|c| !c.is_failed()) {
            return Ok(connection.clone());
        }
        // Any broker already known will do; else the bootstrap addresses, in order.
        let known: Vec<String> = self.brokers.borrow().values().cloned().collect();
        let mut last_error = ClientError::InvalidConfig("no bootstrap address".into());
        for address in self.config.bootstrap.iter().chain(known.iter()) {
            match Connection::connect(
                address,
                &self.config.client_id,
                self.config.request_timeout(),
            )
            .await
            {
                Ok(connection) => {
                    *self.bootstrap.borrow_mut() = Some(connection.clone());
                    return Ok(connection);
                }
                Err(error) => last_error = error,
            }
        }
        Err(last_error)
    }

    /// A connection to any broker, for requests any broker answers.
    pub async fn any_connection(&self) -> ClientResult<Connection> {
        self.bootstrap_connection().await
    }

    /// The connection to broker `node` at `host:port` (an address a broker gave, such as a
    /// coordinator's), made if needed; the address is remembered for the node if metadata has
    /// none yet.
    pub async fn connection_at(
        &self,
        node: i32,
        host: &str,
        port: i32,
    ) -> ClientResult<Connection> {
        self.brokers
            .borrow_mut()
            .entry(node)
            .or_insert_with(|| format!("{host}:{port}"));
        self.connection(node).await
    }

    /// The connection to broker `node`, made if needed.
    pub async fn connection(&self, node: i32) -> ClientResult<Connection> {
        if let Some(connection) = self
            .connections
            .borrow()
            .get(&node)
            .filter(|c| !c.is_failed())
        {
            return Ok(connection.clone());
        }
        let address =
            self.brokers
                .borrow()
                .get(&node)
                .cloned()
                .ok_or_else(|| ClientError::Connect {
                    address: format!("node {node}"),
                    reason: "not in the cluster metadata".into(),
                })?;
        let connection = Connection::connect(
            &address,
            &self.config.client_id,
            self.config.request_timeout(),
        )
        .await?;
        self.connections
            .borrow_mut()
            .insert(node, connection.clone());
        Ok(connection)
    }

    /// Refreshes metadata for `topics` (all topics when `None`), creating missing ones when
    /// the broker allows it and `allow_auto_create` is set.
    pub async fn refresh(
        &self,
        topics: Option<&[String]>,
        allow_auto_create: bool,
    ) -> ClientResult<()> {
        let connection = self.bootstrap_connection().await?;
        let request = MetadataRequest::default()
            .with_topics(topics.map(|names| {
                names
                    .iter()
                    .map(|name| {
                        MetadataRequestTopic::default()
                            .with_name(Some(TopicName(StrBytes::from_string(name.clone()))))
                    })
                    .collect()
            }))
            .with_allow_auto_topic_creation(allow_auto_create);
        let result: ClientResult<(i16, MetadataResponse)> =
            connection.call(ApiKey::Metadata, &request).await;
        let (_, response) = match result {
            Ok(answer) => answer,
            Err(error) => {
                *self.bootstrap.borrow_mut() = None;
                return Err(error);
            }
        };
        {
            let mut brokers = self.brokers.borrow_mut();
            for broker in &response.brokers {
                brokers.insert(
                    broker.node_id.0,
                    format!("{}:{}", broker.host.as_str(), broker.port),
                );
            }
        }
        let mut known = self.topics.borrow_mut();
        for topic in response.topics {
            let Some(name) = topic.name else { continue };
            let name = name.0.as_str().to_string();
            if topic.error_code != 0 {
                known.remove(&name);
                continue;
            }
            let mut partitions = vec![
                PartitionInfo {
                    leader: -1,
                    error_code: 0
                };
                topic.partitions.len()
            ];
            for partition in topic.partitions {
                if let Some(slot) = usize::try_from(partition.partition_index)
                    .ok()
                    .and_then(|index| partitions.get_mut(index))
                {
                    *slot = PartitionInfo {
                        leader: partition.leader_id.0,
                        error_code: partition.error_code,
                    };
                }
            }
            known.insert(name, TopicInfo { partitions });
        }
        Ok(())
    }

    /// What is known of `topic`, refreshing metadata once if nothing is.
    pub async fn topic(&self, topic: &str, allow_auto_create: bool) -> ClientResult<TopicInfo> {
        if let Some(info) = self.topics.borrow().get(topic) {
            return Ok(info.clone());
        }
        self.refresh(Some(&[topic.to_string()]), allow_auto_create)
            .await?;
        self.topics
            .borrow()
            .get(topic)
            .cloned()
            .ok_or_else(|| ClientError::UnknownPartition {
                topic: topic.to_string(),
                partition: -1,
            })
    }

    /// The partition count of a topic already known, without any I/O.
    pub fn partition_count_cached(&self, topic: &str) -> Option<usize> {
        self.topics
            .borrow()
            .get(topic)
            .map(|info| info.partitions.len())
    }

    /// The leader of a partition, from cached metadata.
    pub fn leader_cached(&self, topic: &str, partition: i32) -> Option<i32> {
        let index = usize::try_from(partition).ok()?;
        self.topics
            .borrow()
            .get(topic)
            .and_then(|info| info.partitions.get(index))
            .map(|partition| partition.leader)
            .filter(|leader| *leader >= 0)
    }

    /// The connection to a partition's leader, refreshing metadata if the leader is unknown.
    pub async fn leader_connection(&self, topic: &str, partition: i32) -> ClientResult<Connection> {
        let leader = match self.leader_cached(topic, partition) {
            Some(leader) => leader,
            None => {
                self.refresh(Some(&[topic.to_string()]), false).await?;
                self.leader_cached(topic, partition).ok_or_else(|| {
                    ClientError::UnknownPartition {
                        topic: topic.to_string(),
                        partition,
                    }
                })?
            }
        };
        self.connection(leader).await
    }

    /// Forgets what is known of `topic`, so the next use refreshes it.
    pub fn invalidate(&self, topic: &str) {
        self.topics.borrow_mut().remove(topic);
    }
}
