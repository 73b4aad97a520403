//! The server-side assignors of the consumer protocol (KIP-848): the coordinator, not a
//! leader member, decides which member consumes which partition.
//!
//! - `uniform` (Kafka's default): every member gets the same number of partitions, give or
//!   take one, and keeps as many of the partitions it had as that allows, so a member joining
//!   or leaving moves as few partitions as possible. When members subscribe to different
//!   topics, each partition goes to the least-loaded member subscribed to its topic.
//! - `range`: for each topic, its subscribers (sorted by member id) get contiguous ranges of
//!   partitions, the first ones one more, so members of co-partitioned topics get the same
//!   partition numbers of each.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::topic_partitions::TopicPartitions;

/// The name of the uniform assignor.
pub const UNIFORM_ASSIGNOR: &str = "uniform";
/// The name of the range assignor.
pub const RANGE_ASSIGNOR: &str = "range";

/// A server-side assignor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ServerAssignor {
    /// Balanced and sticky.
    Uniform,
    /// Contiguous ranges per topic.
    Range,
}

impl ServerAssignor {
    /// The assignor called `name`, if the broker has it.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            UNIFORM_ASSIGNOR => Some(Self::Uniform),
            RANGE_ASSIGNOR => Some(Self::Range),
            _ => None,
        }
    }

    /// Its name, as members and ConsumerGroupDescribe name it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Uniform => UNIFORM_ASSIGNOR,
            Self::Range => RANGE_ASSIGNOR,
        }
    }

    /// The target assignment of every member. `topics` holds the partition count of every
    /// topic any member subscribes to; `members` each member's subscribed topics and its
    /// current target (what stickiness keeps).
    pub fn assign(
        self,
        members: &[AssignorMember<'_>],
        topics: &BTreeMap<u128, i32>,
    ) -> HashMap<String, TopicPartitions> {
        match self {
            Self::Uniform => assign_uniform(members, topics),
            Self::Range => assign_range(members, topics),
        }
    }
}

/// One member as an assignor sees it.
#[derive(Debug, Clone)]
pub struct AssignorMember<'a> {
    /// Its id.
    pub member_id: &'a str,
    /// The topic ids it subscribes to that exist.
    pub topics: &'a BTreeSet<u128>,
    /// Its target assignment so far.
    pub previous: &'a TopicPartitions,
}

fn assign_range(
    members: &[AssignorMember<'_>],
    topics: &BTreeMap<u128, i32>,
) -> HashMap<String, TopicPartitions> {
    let mut sorted: Vec<&AssignorMember<'_>> = members.iter().collect();
    sorted.sort_unstable_by_key(|member| member.member_id);
    let mut result: HashMap<String, TopicPartitions> = members
        .iter()
        .map(|member| (member.member_id.to_string(), TopicPartitions::new()))
        .collect();
    for (&topic_id, &partition_count) in topics {
        let subscribers: Vec<&str> = sorted
            .iter()
            .filter(|member| member.topics.contains(&topic_id))
            .map(|member| member.member_id)
            .collect();
        if subscribers.is_empty() || partition_count <= 0 {
            continue;
        }
        let count = subscribers.len() as i32;
        let (each, extra) = (partition_count / count, partition_count % count);
        let mut next = 0;
        for (index, member_id) in subscribers.iter().enumerate() {
            let take = each + i32::from((index as i32) < extra);
            let assignment = result.entry((*member_id).to_string()).or_default();
            for partition in next..next + take {
                assignment.insert(topic_id, partition);
            }
            next += take;
        }
        debug_assert_eq!(next, partition_count);
    }
    result
}

fn assign_uniform(
    members: &[AssignorMember<'_>],
    topics: &BTreeMap<u128, i32>,
) -> HashMap<String, TopicPartitions> {
    if members.is_empty() {
        return HashMap::new();
    }
    let homogeneous = members
        .windows(2)
        .all(|pair| pair[0].topics == pair[1].topics);
    if homogeneous {
        assign_uniform_homogeneous(members, topics)
    } else {
        assign_uniform_heterogeneous(members, topics)
    }
}

/// What each member keeps of its previous target: partitions that still exist, of topics
/// it still subscribes to, not kept by a member before it.
fn kept_partitions(
    members: &[AssignorMember<'_>],
    topics: &BTreeMap<u128, i32>,
) -> Vec<Vec<(u128, i32)>> {
    let mut taken = TopicPartitions::new();
    members
        .iter()
        .map(|member| {
            member
                .previous
                .iter()
                .filter(|(topic_id, partition)| {
                    member.topics.contains(topic_id)
                        && topics
                            .get(topic_id)
                            .is_some_and(|count| partition < count && *partition >= 0)
                })
                .filter(|(topic_id, partition)| taken.insert(*topic_id, *partition))
                .collect()
        })
        .collect()
}

/// Same subscriptions: exact balance (each member gets ⌊P/N⌋ or one more), and each keeps as
/// much of its previous target as its share allows.
fn assign_uniform_homogeneous(
    members: &[AssignorMember<'_>],
    topics: &BTreeMap<u128, i32>,
) -> HashMap<String, TopicPartitions> {
    let subscribed = members[0].topics;
    let total: usize = topics
        .iter()
        .filter(|(topic_id, _)| subscribed.contains(topic_id))
        .map(|(_, count)| (*count).max(0) as usize)
        .sum();
    let mut kept = kept_partitions(members, topics);
    // The members that held the most get the shares with one more, so fewer partitions move.
    let mut order: Vec<usize> = (0..members.len()).collect();
    order.sort_by(|left, right| {
        kept[*right]
            .len()
            .cmp(&kept[*left].len())
            .then_with(|| members[*left].member_id.cmp(members[*right].member_id))
    });
    let (each, extra) = (total / members.len(), total % members.len());
    let mut share = vec![0; members.len()];
    for (rank, index) in order.iter().enumerate() {
        share[*index] = each + usize::from(rank < extra);
    }
    let mut assigned = TopicPartitions::new();
    for (index, partitions) in kept.iter_mut().enumerate() {
        partitions.truncate(share[index]);
        for (topic_id, partition) in partitions.iter() {
            assigned.insert(*topic_id, *partition);
        }
    }
    let mut free = topics
        .iter()
        .filter(|(topic_id, _)| subscribed.contains(topic_id))
        .flat_map(|(topic_id, count)| (0..*count).map(move |partition| (*topic_id, partition)))
        .filter(|(topic_id, partition)| !assigned.contains(*topic_id, *partition));
    for index in order {
        while kept[index].len() < share[index] {
            let Some(partition) = free.next() else {
                break;
            };
            kept[index].push(partition);
        }
    }
    debug_assert!(free.next().is_none(), "every partition has a member");
    members
        .iter()
        .zip(kept)
        .map(|(member, partitions)| {
            let mut assignment = TopicPartitions::new();
            for (topic_id, partition) in partitions {
                assignment.insert(topic_id, partition);
            }
            (member.member_id.to_string(), assignment)
        })
        .collect()
}

/// Different subscriptions: members keep what they had, then each free partition goes to the
/// least-loaded member subscribed to its topic. Balanced within each topic's subscribers as
/// they come, not globally optimal.
fn assign_uniform_heterogeneous(
    members: &[AssignorMember<'_>],
    topics: &BTreeMap<u128, i32>,
) -> HashMap<String, TopicPartitions> {
    let kept = kept_partitions(members, topics);
    let mut load: Vec<usize> = kept.iter().map(Vec::len).collect();
    let mut result: Vec<TopicPartitions> = kept
        .iter()
        .map(|partitions| {
            let mut assignment = TopicPartitions::new();
            for (topic_id, partition) in partitions {
                assignment.insert(*topic_id, *partition);
            }
            assignment
        })
        .collect();
    let mut assigned = TopicPartitions::new();
    for (topic_id, partition) in kept.iter().flatten() {
        assigned.insert(*topic_id, *partition);
    }
    for (&topic_id, &partition_count) in topics {
        // Subscribers ordered by load, then id, so the least loaded is first.
        let mut subscribers: BTreeSet<(usize, &str, usize)> = members
            .iter()
            .enumerate()
            .filter(|(_, member)| member.topics.contains(&topic_id))
            .map(|(index, member)| (load[index], member.member_id, index))
            .collect();
        if subscribers.is_empty() {
            continue;
        }
        for partition in 0..partition_count {
            if assigned.contains(topic_id, partition) {
                continue;
            }
            let Some((count, member_id, index)) = subscribers.pop_first() else {
                break;
            };
            result[index].insert(topic_id, partition);
            load[index] = count + 1;
            subscribers.insert((count + 1, member_id, index));
        }
    }
    members
        .iter()
        .zip(result)
        .map(|(member, assignment)| (member.member_id.to_string(), assignment))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members<'a>(
        ids: &'a [&'a str],
        topics: &'a BTreeSet<u128>,
        previous: &'a [TopicPartitions],
    ) -> Vec<AssignorMember<'a>> {
        ids.iter()
            .zip(previous)
            .map(|(member_id, previous)| AssignorMember {
                member_id,
                topics,
                previous,
            })
            .collect()
    }

    fn every_partition_once(
        result: &HashMap<String, TopicPartitions>,
        topics: &BTreeMap<u128, i32>,
    ) {
        let mut seen = TopicPartitions::new();
        for assignment in result.values() {
            for (topic_id, partition) in assignment.iter() {
                assert!(
                    seen.insert(topic_id, partition),
                    "{topic_id}/{partition} twice"
                );
            }
        }
        let expected: usize = topics.values().map(|count| *count as usize).sum();
        assert_eq!(seen.len(), expected);
    }

    #[test]
    fn uniform_balances_and_sticks() {
        let topics = BTreeMap::from([(1u128, 6), (2u128, 1)]);
        let subscribed = BTreeSet::from([1u128, 2]);
        let none = vec![TopicPartitions::new(); 3];
        let first =
            ServerAssignor::Uniform.assign(&members(&["a", "b", "c"], &subscribed, &none), &topics);
        every_partition_once(&first, &topics);
        let mut sizes: Vec<usize> = first.values().map(TopicPartitions::len).collect();
        sizes.sort_unstable();
        assert_eq!(sizes, vec![2, 2, 3]);
        // A fourth member joins: the others keep what their share allows.
        let previous = vec![
            first["a"].clone(),
            first["b"].clone(),
            first["c"].clone(),
            TopicPartitions::new(),
        ];
        let second = ServerAssignor::Uniform.assign(
            &members(&["a", "b", "c", "d"], &subscribed, &previous),
            &topics,
        );
        every_partition_once(&second, &topics);
        let moved: usize = ["a", "b", "c"]
            .iter()
            .map(|id| first[*id].difference(&second[*id]).len())
            .sum();
        assert_eq!(second["d"].len(), 1);
        assert_eq!(moved, 1, "only the new member's share moves");
    }

    #[test]
    fn uniform_with_different_subscriptions_only_assigns_subscribed_topics() {
        let topics = BTreeMap::from([(1u128, 4), (2u128, 2)]);
        let both = BTreeSet::from([1u128, 2]);
        let only_one = BTreeSet::from([1u128]);
        let empty = TopicPartitions::new();
        let members = vec![
            AssignorMember {
                member_id: "a",
                topics: &only_one,
                previous: &empty,
            },
            AssignorMember {
                member_id: "b",
                topics: &both,
                previous: &empty,
            },
        ];
        let result = ServerAssignor::Uniform.assign(&members, &topics);
        every_partition_once(&result, &topics);
        assert!(result["a"].iter().all(|(topic_id, _)| topic_id == 1));
        assert_eq!(result["a"].len() + result["b"].len(), 6);
        assert!(result["a"].len() >= 2);
    }

    #[test]
    fn range_gives_contiguous_ranges_per_topic() {
        let topics = BTreeMap::from([(7u128, 5), (8u128, 5)]);
        let subscribed = BTreeSet::from([7u128, 8]);
        let none = vec![TopicPartitions::new(); 2];
        let result =
            ServerAssignor::Range.assign(&members(&["m2", "m1"], &subscribed, &none), &topics);
        every_partition_once(&result, &topics);
        assert_eq!(
            result["m1"],
            TopicPartitions::from_pairs([(7, vec![0, 1, 2]), (8, vec![0, 1, 2])])
        );
        assert_eq!(
            result["m2"],
            TopicPartitions::from_pairs([(7, vec![3, 4]), (8, vec![3, 4])])
        );
    }

    #[test]
    fn names_round_trip() {
        for assignor in [ServerAssignor::Uniform, ServerAssignor::Range] {
            assert_eq!(ServerAssignor::from_name(assignor.name()), Some(assignor));
        }
        assert_eq!(ServerAssignor::from_name("sticky"), None);
    }
}
