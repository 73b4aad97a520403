//! A set of topic partitions by topic id, as KIP-848 assignments name them, with the set
//! operations reconciliation needs.

use std::collections::{BTreeMap, BTreeSet};

/// Partitions by topic id. Kept sorted, so two equal sets compare equal and an assignment
/// is sent in a stable order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TopicPartitions {
    by_topic: BTreeMap<u128, BTreeSet<i32>>,
}

impl TopicPartitions {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// A set from `(topic id, partitions)` pairs.
    pub fn from_pairs(pairs: impl IntoIterator<Item = (u128, Vec<i32>)>) -> Self {
        let mut set = Self::new();
        for (topic_id, partitions) in pairs {
            for partition in partitions {
                set.insert(topic_id, partition);
            }
        }
        set
    }

    /// Adds one partition.
    pub fn insert(&mut self, topic_id: u128, partition: i32) -> bool {
        self.by_topic.entry(topic_id).or_default().insert(partition)
    }

    /// Removes one partition.
    pub fn remove(&mut self, topic_id: u128, partition: i32) -> bool {
        let Some(partitions) = self.by_topic.get_mut(&topic_id) else {
            return false;
        };
        let removed = partitions.remove(&partition);
        if partitions.is_empty() {
            self.by_topic.remove(&topic_id);
        }
        removed
    }

    /// Whether it holds the partition.
    pub fn contains(&self, topic_id: u128, partition: i32) -> bool {
        self.by_topic
            .get(&topic_id)
            .is_some_and(|partitions| partitions.contains(&partition))
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.by_topic.is_empty()
    }

    /// Partitions it holds.
    pub fn len(&self) -> usize {
        self.by_topic.values().map(BTreeSet::len).sum()
    }

    /// Every partition, in order.
    pub fn iter(&self) -> impl Iterator<Item = (u128, i32)> + '_ {
        self.by_topic.iter().flat_map(|(topic_id, partitions)| {
            partitions
                .iter()
                .map(move |partition| (*topic_id, *partition))
        })
    }

    /// Topics with their partitions, in order.
    pub fn topics(&self) -> impl Iterator<Item = (u128, &BTreeSet<i32>)> + '_ {
        self.by_topic
            .iter()
            .map(|(topic_id, partitions)| (*topic_id, partitions))
    }

    /// The partitions of `self` that `other` does not hold.
    pub fn difference(&self, other: &TopicPartitions) -> TopicPartitions {
        let mut result = TopicPartitions::new();
        for (topic_id, partition) in self.iter() {
            if !other.contains(topic_id, partition) {
                result.insert(topic_id, partition);
            }
        }
        result
    }

    /// The partitions both hold.
    pub fn intersection(&self, other: &TopicPartitions) -> TopicPartitions {
        let mut result = TopicPartitions::new();
        for (topic_id, partition) in self.iter() {
            if other.contains(topic_id, partition) {
                result.insert(topic_id, partition);
            }
        }
        result
    }

    /// Whether every partition of `self` is in `other`.
    pub fn is_subset(&self, other: &TopicPartitions) -> bool {
        self.iter()
            .all(|(topic_id, partition)| other.contains(topic_id, partition))
    }

    /// Whether the two share a partition.
    pub fn overlaps(&self, other: &TopicPartitions) -> bool {
        self.iter()
            .any(|(topic_id, partition)| other.contains(topic_id, partition))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_operations() {
        let left = TopicPartitions::from_pairs([(1, vec![0, 1, 2]), (2, vec![0])]);
        let right = TopicPartitions::from_pairs([(1, vec![1]), (3, vec![5])]);
        assert_eq!(
            left.difference(&right),
            TopicPartitions::from_pairs([(1, vec![0, 2]), (2, vec![0])])
        );
        assert_eq!(
            left.intersection(&right),
            TopicPartitions::from_pairs([(1, vec![1])])
        );
        assert!(left.overlaps(&right));
        assert!(!right.is_subset(&left));
        assert!(left.intersection(&right).is_subset(&left));
        assert_eq!(left.len(), 4);
        let mut emptied = right.clone();
        assert!(emptied.remove(1, 1));
        assert!(emptied.remove(3, 5));
        assert!(!emptied.remove(3, 5));
        assert!(emptied.is_empty());
        assert_eq!(emptied, TopicPartitions::new());
    }
}
