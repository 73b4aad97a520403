//! The rules of cluster-metadata changes, as pure functions over a [`ClusterMetadata`]: topic
//! creation (names, partition counts, replication, explicit assignments, configs, limits),
//! auto-creation, partition growth and deletion. Each topic of a request gets an outcome with
//! the Kafka error a client expects. The controller (`shard::control`) applies these to a copy
//! of the current metadata, persists the result and publishes it; nothing here does I/O, so
//! the rules are unit-tested directly.

use std::collections::hash_map::RandomState;
use std::collections::BTreeSet;
use std::hash::{BuildHasher, Hasher};

use kafka_protocol::ResponseError;
use tracing::info;

use crate::config::BrokerConfig;

use super::{topic_name_problem, ClusterMetadata, TopicConfigs, TopicMetadata};

/// A topic to create.
#[derive(Debug, Clone)]
pub struct NewTopic {
    /// Its name.
    pub name: String,
    /// Partitions; -1 for the broker default.
    pub num_partitions: i32,
    /// Replicas per partition; only 1 (or -1, the default) is possible on one node.
    pub replication_factor: i16,
    /// Explicit placement: per partition index, the broker ids (shards) of its replicas.
    pub assignments: Vec<(i32, Vec<i32>)>,
    /// Config overrides; a `None` value means the default.
    pub configs: Vec<(String, Option<String>)>,
}

/// Partitions to add to a topic.
#[derive(Debug, Clone)]
pub struct PartitionGrowth {
    /// The topic.
    pub name: String,
    /// The new total partition count.
    pub count: i32,
    /// Explicit placement of the new partitions, one replica list each.
    pub assignments: Option<Vec<Vec<i32>>>,
}

/// The result for one topic of a control request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicOutcome {
    /// The topic.
    pub name: String,
    /// Kafka error code; 0 for success.
    pub error_code: i16,
    /// A human-readable reason for errors.
    pub message: Option<String>,
}

impl TopicOutcome {
    /// Success.
    pub fn ok(name: &str) -> Self {
        Self {
            name: name.to_string(),
            error_code: 0,
            message: None,
        }
    }

    /// A refusal with its Kafka error and reason.
    pub fn error(name: &str, error: ResponseError, message: impl Into<String>) -> Self {
        Self {
            name: name.to_string(),
            error_code: error.code(),
            message: Some(message.into()),
        }
    }
}

/// The controller's answer: one outcome per topic, in request order.
pub type ControlResponse = Vec<TopicOutcome>;

/// The broker settings the rules read.
#[derive(Debug, Clone, Copy)]
pub struct ChangeRules<'a> {
    /// Shards, advertised as brokers `0..shard_count`.
    pub shard_count: u32,
    /// Limits, defaults and the log defaults topic configs are checked against.
    pub config: &'a BrokerConfig,
}

impl ChangeRules<'_> {
    /// CreateTopics: each topic created in `next` or refused with its reason; a name given
    /// twice in one request is refused for both.
    pub fn create_topics(
        &self,
        next: &mut ClusterMetadata,
        topics: &[NewTopic],
    ) -> ControlResponse {
        let mut seen = BTreeSet::new();
        let duplicates: BTreeSet<&str> = topics
            .iter()
            .filter(|topic| !seen.insert(topic.name.as_str()))
            .map(|topic| topic.name.as_str())
            .collect();
        topics
            .iter()
            .map(|topic| {
                if duplicates.contains(topic.name.as_str()) {
                    return TopicOutcome::error(
                        &topic.name,
                        ResponseError::InvalidRequest,
                        "the topic appears more than once in the request",
                    );
                }
                match self.create_topic(next, topic) {
                    Ok(()) => TopicOutcome::ok(&topic.name),
                    Err(outcome) => outcome,
                }
            })
            .collect()
    }

    fn create_topic(
        &self,
        next: &mut ClusterMetadata,
        topic: &NewTopic,
    ) -> Result<(), TopicOutcome> {
        let name = topic.name.as_str();
        let fail = |error, message: String| TopicOutcome::error(name, error, message);
        if let Some(problem) = topic_name_problem(name) {
            return Err(fail(ResponseError::InvalidTopicException, problem));
        }
        if next.topics.contains_key(name) {
            return Err(fail(
                ResponseError::TopicAlreadyExists,
                format!("topic {name:?} already exists"),
            ));
        }
        let shard_count = self.shard_count;
        let placement =
            if topic.assignments.is_empty() {
                if !matches!(topic.replication_factor, 1 | -1) {
                    return Err(fail(
                        ResponseError::InvalidReplicationFactor,
                        format!(
                        "replication factor {} needs as many nodes, and this StreamBus cluster \
                         is one node: its {shard_count} brokers are the node's shards (cores), \
                         which share its disk; use replication factor 1 or -1",
                        topic.replication_factor
                    ),
                    ));
                }
                let partitions = match topic.num_partitions {
                    -1 => self.config.default_partitions as i32,
                    count if count >= 1 => count,
                    count => {
                        return Err(fail(
                            ResponseError::InvalidPartitions,
                            format!("{count} partitions: a topic needs at least one"),
                        ))
                    }
                };
                if let Some(problem) = self.check_limits(next, 1, partitions as usize) {
                    return Err(fail(ResponseError::PolicyViolation, problem));
                }
                next.place(partitions as usize)
            } else {
                if topic.num_partitions != -1 || topic.replication_factor != -1 {
                    return Err(fail(
                        ResponseError::InvalidRequest,
                        "with explicit assignments, partitions and replication factor must be -1"
                            .into(),
                    ));
                }
                let mut assignments = topic.assignments.clone();
                assignments.sort_by_key(|(partition, _)| *partition);
                let mut placement = Vec::with_capacity(assignments.len());
                for (expected, (partition, replicas)) in assignments.iter().enumerate() {
                    if *partition != expected as i32 {
                        return Err(fail(
                            ResponseError::InvalidReplicaAssignment,
                            "assigned partitions must be numbered 0, 1, 2, ... without gaps".into(),
                        ));
                    }
                    placement.push(single_replica(replicas, shard_count).map_err(|message| {
                        fail(ResponseError::InvalidReplicaAssignment, message)
                    })?);
                }
                if let Some(problem) = self.check_limits(next, 1, placement.len()) {
                    return Err(fail(ResponseError::PolicyViolation, problem));
                }
                placement
            };
        let mut configs = TopicConfigs::default();
        for (config_name, value) in &topic.configs {
            configs
                .set(config_name, value.as_deref())
                .map_err(|error| fail(ResponseError::InvalidConfig, error.to_string()))?;
        }
        if let Err(error) = configs.log_config(&self.config.log).validate() {
            return Err(fail(ResponseError::InvalidConfig, error.to_string()));
        }
        next.topics.insert(
            name.to_string(),
            TopicMetadata {
                topic_id: new_topic_id(),
                partition_shards: placement,
                configs,
            },
        );
        Ok(())
    }

    /// Metadata's auto-creation: missing topics with the default partition count; existing
    /// ones succeed as they are.
    pub fn auto_create(&self, next: &mut ClusterMetadata, names: &[String]) -> ControlResponse {
        names
            .iter()
            .map(|name| {
                if next.topics.contains_key(name) {
                    return TopicOutcome::ok(name);
                }
                let topic = NewTopic {
                    name: name.clone(),
                    num_partitions: -1,
                    replication_factor: -1,
                    assignments: Vec::new(),
                    configs: Vec::new(),
                };
                match self.create_topic(next, &topic) {
                    Ok(()) => {
                        info!(topic = %name, "topic auto-created");
                        TopicOutcome::ok(name)
                    }
                    Err(outcome) => outcome,
                }
            })
            .collect()
    }

    /// CreatePartitions: each topic grown to its new count, placed on the least loaded shards
    /// or as assigned, or refused with its reason.
    pub fn create_partitions(
        &self,
        next: &mut ClusterMetadata,
        topics: &[PartitionGrowth],
    ) -> ControlResponse {
        topics
            .iter()
            .map(|growth| {
                let name = growth.name.as_str();
                let Some(current) = next.topics.get(name).map(|t| t.partition_shards.len()) else {
                    return TopicOutcome::error(
                        name,
                        ResponseError::UnknownTopicOrPartition,
                        format!("topic {name:?} does not exist"),
                    );
                };
                let wanted = usize::try_from(growth.count).unwrap_or(0);
                if wanted <= current {
                    return TopicOutcome::error(
                        name,
                        ResponseError::InvalidPartitions,
                        format!(
                            "topic has {current} partitions; the new count {} must be larger",
                            growth.count
                        ),
                    );
                }
                let added = wanted - current;
                if let Some(problem) = self.check_limits(next, 0, added) {
                    return TopicOutcome::error(name, ResponseError::PolicyViolation, problem);
                }
                let placement = match &growth.assignments {
                    None => next.place(added),
                    Some(assignments) if assignments.len() == added => {
                        let placed: Result<Vec<u32>, String> = assignments
                            .iter()
                            .map(|replicas| single_replica(replicas, self.shard_count))
                            .collect();
                        match placed {
                            Ok(placed) => placed,
                            Err(message) => {
                                return TopicOutcome::error(
                                    name,
                                    ResponseError::InvalidReplicaAssignment,
                                    message,
                                )
                            }
                        }
                    }
                    Some(assignments) => {
                        return TopicOutcome::error(
                            name,
                            ResponseError::InvalidReplicaAssignment,
                            format!(
                                "{} assignments given for {added} new partitions",
                                assignments.len()
                            ),
                        )
                    }
                };
                if let Some(topic) = next.topics.get_mut(name) {
                    topic.partition_shards.extend(placement);
                }
                TopicOutcome::ok(name)
            })
            .collect()
    }

    /// Whether adding `added_topics` topics and `added_partitions` partitions stays within
    /// `topics_max` and `partitions_max`. Growing a topic adds no topic: it is not refused
    /// because the cluster holds its limit of topics.
    fn check_limits(
        &self,
        next: &ClusterMetadata,
        added_topics: usize,
        added_partitions: usize,
    ) -> Option<String> {
        let config = &self.config;
        if next.topics.len() + added_topics > config.topics_max {
            return Some(format!(
                "the cluster holds its limit of {} topics",
                config.topics_max
            ));
        }
        if next.partition_count() + added_partitions > config.partitions_max {
            return Some(format!(
                "{added_partitions} more partitions would exceed the limit of {}",
                config.partitions_max
            ));
        }
        None
    }
}

/// DeleteTopics by name: each topic removed from `next`, or UNKNOWN_TOPIC_OR_PARTITION.
pub fn delete_topics(next: &mut ClusterMetadata, names: &[String]) -> ControlResponse {
    names
        .iter()
        .map(|name| {
            if next.topics.remove(name).is_some() {
                info!(topic = %name, "topic deleted");
                TopicOutcome::ok(name)
            } else {
                TopicOutcome::error(
                    name,
                    ResponseError::UnknownTopicOrPartition,
                    format!("topic {name:?} does not exist"),
                )
            }
        })
        .collect()
}

/// The one shard a replica list names.
fn single_replica(replicas: &[i32], shard_count: u32) -> Result<u32, String> {
    match replicas {
        [broker] if (0..shard_count as i32).contains(broker) => Ok(*broker as u32),
        [broker] => Err(format!(
            "broker {broker} does not exist; brokers are 0..{}",
            shard_count.saturating_sub(1)
        )),
        _ => Err(format!(
            "{} replicas {replicas:?} given, but brokers 0..{} are the shards (cores) of one \
             StreamBus node, which keeps one replica per partition: assign one broker each",
            replicas.len(),
            shard_count.saturating_sub(1)
        )),
    }
}

fn random_u64() -> u64 {
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_nanos()),
    );
    hasher.finish()
}

/// A random topic id (never 0 or 1, which Kafka reserves).
pub fn new_topic_id() -> u128 {
    // Kafka reserves the all-zero id and id 1 (metadata topic); neither can come out of two
    // random halves in practice, but make sure.
    (u128::from(random_u64()) << 64 | u128::from(random_u64())).max(2)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic(name: &str, partitions: i32, replication: i16) -> NewTopic {
        NewTopic {
            name: name.into(),
            num_partitions: partitions,
            replication_factor: replication,
            assignments: Vec::new(),
            configs: Vec::new(),
        }
    }

    fn assigned(name: &str, assignments: Vec<(i32, Vec<i32>)>) -> NewTopic {
        NewTopic {
            assignments,
            ..topic(name, -1, -1)
        }
    }

    /// The rules of a two-shard broker with `config`.
    fn two_shards(config: &BrokerConfig) -> ChangeRules<'_> {
        ChangeRules {
            shard_count: 2,
            config,
        }
    }

    fn code(outcome: &TopicOutcome) -> Option<ResponseError> {
        (outcome.error_code != 0).then(|| ResponseError::try_from_code(outcome.error_code))?
    }

    #[test]
    fn topics_are_created_with_defaults_and_placed_on_the_emptiest_shards() {
        let config = BrokerConfig {
            default_partitions: 3,
            ..BrokerConfig::default()
        };
        let rules = two_shards(&config);
        let mut next = ClusterMetadata::new("c".into(), 2);
        let outcomes = rules.create_topics(
            &mut next,
            &[
                topic("a", -1, -1),
                topic("b", 4, 1),
                topic("bad/name", 1, 1),
            ],
        );
        assert_eq!(
            outcomes.iter().map(code).collect::<Vec<_>>(),
            vec![None, None, Some(ResponseError::InvalidTopicException)]
        );
        assert_eq!(next.topics["a"].partition_shards, vec![0, 1, 0]);
        assert_eq!(next.topics["b"].partition_shards, vec![1, 0, 1, 0]);
        // The same name again, and twice in one request.
        let outcomes = rules.create_topics(&mut next, &[topic("a", 1, 1)]);
        assert_eq!(code(&outcomes[0]), Some(ResponseError::TopicAlreadyExists));
        let outcomes = rules.create_topics(&mut next, &[topic("c", 1, 1), topic("c", 1, 1)]);
        assert!(outcomes
            .iter()
            .all(|outcome| code(outcome) == Some(ResponseError::InvalidRequest)));
        assert!(!next.topics.contains_key("c"));
        // Auto-creation leaves existing topics as they are.
        let outcomes = rules.auto_create(&mut next, &["a".into(), "d".into()]);
        assert!(outcomes.iter().all(|outcome| outcome.error_code == 0));
        assert_eq!(next.topics["a"].partition_shards.len(), 3);
        assert_eq!(next.topics["d"].partition_shards.len(), 3);
    }

    #[test]
    fn replication_and_assignments_are_checked_against_one_node() {
        let config = BrokerConfig::default();
        let rules = two_shards(&config);
        let mut next = ClusterMetadata::new("c".into(), 2);
        let outcomes = rules.create_topics(
            &mut next,
            &[
                topic("two", 1, 2),
                topic("zero", 0, 1),
                assigned("twice", vec![(0, vec![0, 1])]),
                assigned("gap", vec![(0, vec![0]), (2, vec![1])]),
                assigned("nobody", vec![(0, vec![7])]),
                assigned("placed", vec![(1, vec![0]), (0, vec![1])]),
                NewTopic {
                    num_partitions: 2,
                    ..assigned("both", vec![(0, vec![0])])
                },
            ],
        );
        let codes: Vec<_> = outcomes.iter().map(code).collect();
        assert_eq!(
            codes,
            vec![
                Some(ResponseError::InvalidReplicationFactor),
                Some(ResponseError::InvalidPartitions),
                Some(ResponseError::InvalidReplicaAssignment),
                Some(ResponseError::InvalidReplicaAssignment),
                Some(ResponseError::InvalidReplicaAssignment),
                None,
                Some(ResponseError::InvalidRequest),
            ]
        );
        assert!(outcomes[0]
            .message
            .as_deref()
            .unwrap_or("")
            .contains("one node"));
        assert_eq!(next.topics["placed"].partition_shards, vec![1, 0]);
    }

    #[test]
    fn limits_configs_growth_and_deletion() {
        let config = BrokerConfig {
            topics_max: 2,
            partitions_max: 6,
            ..BrokerConfig::default()
        };
        let rules = two_shards(&config);
        let mut next = ClusterMetadata::new("c".into(), 2);
        let bad_config = NewTopic {
            configs: vec![("retention.ms".into(), Some("soon".into()))],
            ..topic("configured", 1, 1)
        };
        let outcomes = rules.create_topics(
            &mut next,
            &[
                bad_config,
                topic("a", 4, 1),
                topic("b", 3, 1),
                topic("c", 1, 1),
            ],
        );
        let codes: Vec<_> = outcomes.iter().map(code).collect();
        assert_eq!(
            codes,
            vec![
                Some(ResponseError::InvalidConfig),
                None,
                // 4 + 3 partitions exceed partitions_max 6.
                Some(ResponseError::PolicyViolation),
                None,
            ]
        );
        // topics_max 2 reached.
        let outcomes = rules.create_topics(&mut next, &[topic("d", 1, 1)]);
        assert_eq!(code(&outcomes[0]), Some(ResponseError::PolicyViolation));
        // Growth: larger only, within limits, assignments one per new partition; growing a
        // topic is allowed although the cluster holds topics_max topics.
        let grow = |name: &str, count: i32, assignments: Option<Vec<Vec<i32>>>| PartitionGrowth {
            name: name.into(),
            count,
            assignments,
        };
        let outcomes = rules.create_partitions(
            &mut next,
            &[
                grow("a", 3, None),
                grow("a", 9, None),
                grow("c", 2, Some(vec![vec![1], vec![0]])),
                grow("c", 2, Some(vec![vec![1]])),
                grow("missing", 2, None),
            ],
        );
        let codes: Vec<_> = outcomes.iter().map(code).collect();
        assert_eq!(
            codes,
            vec![
                Some(ResponseError::InvalidPartitions),
                Some(ResponseError::PolicyViolation),
                Some(ResponseError::InvalidReplicaAssignment),
                None,
                Some(ResponseError::UnknownTopicOrPartition),
            ]
        );
        assert_eq!(next.topics["c"].partition_shards, vec![0, 1]);
        let outcomes = delete_topics(&mut next, &["a".into(), "a".into()]);
        assert_eq!(code(&outcomes[0]), None);
        assert_eq!(
            code(&outcomes[1]),
            Some(ResponseError::UnknownTopicOrPartition)
        );
    }

    #[test]
    fn topic_ids_avoid_the_reserved_values() {
        let ids: BTreeSet<u128> = (0..100).map(|_| new_topic_id()).collect();
        assert_eq!(ids.len(), 100);
        assert!(ids.iter().all(|&id| id >= 2));
    }
}
