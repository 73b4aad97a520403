//! Cluster metadata: topics, their partitions, which shard owns each partition, and each topic's
//! config overrides.
//!
//! Shard 0 owns the one mutable copy. Every change produces a new immutable [`ClusterMetadata`]
//! with a higher `version`, which shard 0 persists ([`store`]) and then pushes to every shard
//! over the control mesh. Other shards only ever read snapshots.

pub mod changes;
pub mod coordinator_placement;
pub mod store;
pub mod topic_config;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use coordinator_placement::{coordinator_shard, offsets_partition, OFFSETS_PARTITIONS};
pub use topic_config::{TopicConfigError, TopicConfigs, TOPIC_CONFIG_NAMES};

/// Kafka's longest topic name.
pub const TOPIC_NAME_BYTES_MAX: usize = 249;

/// One topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicMetadata {
    /// A UUID, new for each creation, so a topic deleted and created again is a different topic.
    pub topic_id: u128,
    /// The owning shard of each partition, by partition index.
    pub partition_shards: Vec<u32>,
    /// Config overrides given at creation.
    pub configs: TopicConfigs,
}

/// A snapshot of the cluster's metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterMetadata {
    /// Increases with every change.
    pub version: u64,
    /// Kafka's cluster id, made once and kept.
    pub cluster_id: String,
    /// The shard count the placement was made for.
    pub shard_count: u32,
    /// Topics by name.
    pub topics: BTreeMap<String, TopicMetadata>,
}

impl ClusterMetadata {
    /// Whether topic `name` still exists as the topic `topic_id` (not deleted, nor deleted and
    /// created again).
    pub fn has_topic(&self, name: &str, topic_id: u128) -> bool {
        self.topics
            .get(name)
            .is_some_and(|topic| topic.topic_id == topic_id)
    }

    /// Empty metadata for a new data directory.
    pub fn new(cluster_id: String, shard_count: u32) -> Self {
        Self {
            version: 0,
            cluster_id,
            shard_count,
            topics: BTreeMap::new(),
        }
    }

    /// Partitions over all topics.
    pub fn partition_count(&self) -> usize {
        self.topics
            .values()
            .map(|topic| topic.partition_shards.len())
            .sum()
    }

    /// The shard owning a partition, if the topic and partition exist.
    pub fn owner(&self, topic: &str, partition: i32) -> Option<u32> {
        let topic = self.topics.get(topic)?;
        let index = usize::try_from(partition).ok()?;
        topic.partition_shards.get(index).copied()
    }

    /// Partitions each shard owns now.
    pub fn partitions_per_shard(&self) -> Vec<usize> {
        let mut counts = vec![0; self.shard_count as usize];
        for topic in self.topics.values() {
            for &shard in &topic.partition_shards {
                if let Some(count) = counts.get_mut(shard as usize) {
                    *count += 1;
                }
            }
        }
        counts
    }

    /// Picks owners for `count` new partitions: each goes to the shard with the fewest
    /// partitions so far (lowest id on ties), so topics spread evenly across cores.
    pub fn place(&self, count: usize) -> Vec<u32> {
        let mut counts = self.partitions_per_shard();
        (0..count)
            .map(|_| {
                let (shard, _) = counts
                    .iter()
                    .enumerate()
                    .min_by_key(|(shard, count)| (**count, *shard))
                    .unwrap_or((0, &0));
                if let Some(count) = counts.get_mut(shard) {
                    *count += 1;
                }
                shard as u32
            })
            .collect()
    }

    /// Moves partitions owned by shards that no longer exist to the least loaded shards, for
    /// a restart with fewer shards. Returns what moved: (topic, partition, from, to).
    pub fn rebalance_to(&mut self, shard_count: u32) -> Vec<(String, usize, u32, u32)> {
        let mut moved = Vec::new();
        self.shard_count = shard_count;
        let orphans: Vec<(String, usize, u32)> = self
            .topics
            .iter()
            .flat_map(|(name, topic)| {
                topic
                    .partition_shards
                    .iter()
                    .enumerate()
                    .filter(|(_, &shard)| shard >= shard_count)
                    .map(|(partition, &shard)| (name.clone(), partition, shard))
                    .collect::<Vec<_>>()
            })
            .collect();
        for (name, partition, from) in orphans {
            let to = self.place(1).first().copied().unwrap_or(0);
            if let Some(slot) = self
                .topics
                .get_mut(&name)
                .and_then(|topic| topic.partition_shards.get_mut(partition))
            {
                *slot = to;
                moved.push((name, partition, from, to));
            }
        }
        if !moved.is_empty() {
            self.version += 1;
        }
        moved
    }
}

/// Why a topic name is refused, or `None` if it is legal (Kafka's rules: 1 to 249 characters
/// of ASCII letters, digits, `.`, `_` and `-`, and not `.` or `..`).
pub fn topic_name_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("topic name is empty".into());
    }
    if name.len() > TOPIC_NAME_BYTES_MAX {
        return Some(format!(
            "topic name is {} characters, above {TOPIC_NAME_BYTES_MAX}",
            name.len()
        ));
    }
    if name == "." || name == ".." {
        return Some(format!("topic name {name:?} is not allowed"));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Some(format!(
            "topic name {name:?} holds {bad:?}; only ASCII letters, digits, '.', '_' and '-' are allowed"
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic(shards: Vec<u32>) -> TopicMetadata {
        TopicMetadata {
            topic_id: 1,
            partition_shards: shards,
            configs: TopicConfigs::default(),
        }
    }

    #[test]
    fn placement_fills_the_emptiest_shard_first() {
        let mut metadata = ClusterMetadata::new("c".into(), 3);
        assert_eq!(metadata.place(7), vec![0, 1, 2, 0, 1, 2, 0]);
        metadata.topics.insert("a".into(), topic(vec![0, 0, 1]));
        assert_eq!(metadata.place(3), vec![2, 1, 2]);
    }

    #[test]
    fn fewer_shards_move_orphans_and_bump_the_version() {
        let mut metadata = ClusterMetadata::new("c".into(), 4);
        metadata.topics.insert("a".into(), topic(vec![0, 1, 2, 3]));
        let moved = metadata.rebalance_to(2);
        assert_eq!(moved.len(), 2);
        assert_eq!(metadata.partitions_per_shard(), vec![2, 2]);
        assert_eq!(metadata.version, 1);
        assert!(metadata.rebalance_to(2).is_empty());
    }

    #[test]
    fn topic_names_follow_kafka_rules() {
        assert!(topic_name_problem("orders.v1_eu-west").is_none());
        assert!(topic_name_problem("").is_some());
        assert!(topic_name_problem("..").is_some());
        assert!(topic_name_problem("a/b").is_some());
        assert!(topic_name_problem(&"x".repeat(250)).is_some());
        assert_eq!(metadata_owner_of_missing(), None);
    }

    fn metadata_owner_of_missing() -> Option<u32> {
        let mut metadata = ClusterMetadata::new("c".into(), 1);
        metadata.topics.insert("a".into(), topic(vec![0]));
        assert_eq!(metadata.owner("a", 0), Some(0));
        metadata.owner("a", -1).or(metadata.owner("a", 1))
    }
}
