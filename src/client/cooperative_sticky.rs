//! The `cooperative-sticky` assignor of the classic protocol (KIP-429), as the leader member
//! computes it.
//!
//! Members name the partitions they hold (`owned_partitions`, consumer protocol v1+) and the
//! generation they held them in (v2+). The leader:
//! 1. decides who really owns each partition: the claim of the newest generation; two claims
//!    in that same generation cancel out (neither member can be trusted with it);
//! 2. computes a balanced, sticky target with the same algorithm as the broker's `uniform`
//!    assignor (KIP-848), which keeps as many owned partitions in place as the balance allows;
//! 3. withholds, for one generation, every partition that goes to a member other than its
//!    owner while someone else still claims it. Its claimant, seeing it missing, revokes it
//!    and rejoins; in the next generation nobody claims it and it is handed out. So a
//!    partition is never handed to a second member while the first may still consume it,
//!    and nothing else stops. (A stale claim, from an older generation than the owner's,
//!    does not take a partition from its owner: the owner has held it all along.)

use std::collections::{BTreeMap, BTreeSet};

use crate::group::{AssignorMember, ServerAssignor, TopicPartitions};

use super::assignor::MemberSubscription;

/// Each member's share: member id → topic → partitions.
pub type Shares = BTreeMap<String, BTreeMap<String, Vec<i32>>>;

/// Every member's partitions this generation. `partitions` maps topic → partition count;
/// topics missing from it get nothing.
pub fn assign(
    members: &BTreeMap<String, MemberSubscription>,
    partitions: &BTreeMap<String, i32>,
) -> Shares {
    // The broker's assignor speaks topic ids: a topic's rank in `partitions` is its id here.
    let topic_ids: BTreeMap<&str, u128> = partitions
        .keys()
        .enumerate()
        .map(|(rank, topic)| (topic.as_str(), rank as u128))
        .collect();
    let topic_names: Vec<&str> = partitions.keys().map(String::as_str).collect();
    let counts: BTreeMap<u128, i32> = partitions
        .iter()
        .map(|(topic, count)| (topic_ids[topic.as_str()], *count))
        .collect();

    let claimants = claimants(members, &topic_ids, &counts);
    let mut previous: BTreeMap<&str, TopicPartitions> = members
        .keys()
        .map(|member| (member.as_str(), TopicPartitions::new()))
        .collect();
    for (&(topic_id, partition), claims) in &claimants {
        if let Some(owner) = rightful_owner(claims) {
            if let Some(owned) = previous.get_mut(owner) {
                owned.insert(topic_id, partition);
            }
        }
    }
    let subscribed: BTreeMap<&str, BTreeSet<u128>> = members
        .iter()
        .map(|(member, subscription)| {
            let topics = subscription
                .topics
                .iter()
                .filter_map(|topic| topic_ids.get(topic.as_str()).copied())
                .collect();
            (member.as_str(), topics)
        })
        .collect();
    let assignor_members: Vec<AssignorMember<'_>> = members
        .keys()
        .map(|member| AssignorMember {
            member_id: member,
            topics: &subscribed[member.as_str()],
            previous: &previous[member.as_str()],
        })
        .collect();
    let target = ServerAssignor::Uniform.assign(&assignor_members, &counts);

    let mut shares: Shares = members
        .keys()
        .map(|member| (member.clone(), BTreeMap::new()))
        .collect();
    for (member, assignment) in &target {
        let share = shares.entry(member.clone()).or_default();
        for (topic_id, partition) in assignment.iter() {
            let withheld = claimants.get(&(topic_id, partition)).is_some_and(|claims| {
                rightful_owner(claims) != Some(member.as_str())
                    && claims.iter().any(|(claimant, _)| claimant != member)
            });
            if withheld {
                continue;
            }
            share
                .entry(topic_names[topic_id as usize].to_string())
                .or_default()
                .push(partition);
        }
    }
    shares
}

/// Who claims each existing partition, with the generation of the claim: only members that
/// still subscribe to its topic count as owners, but every claimant may still be consuming.
type Claims<'a> = BTreeMap<(u128, i32), Vec<(&'a str, i32)>>;

fn claimants<'a>(
    members: &'a BTreeMap<String, MemberSubscription>,
    topic_ids: &BTreeMap<&str, u128>,
    counts: &BTreeMap<u128, i32>,
) -> Claims<'a> {
    let mut claims: Claims<'a> = BTreeMap::new();
    for (member, subscription) in members {
        for (topic, partition) in &subscription.owned {
            let Some(&topic_id) = topic_ids.get(topic.as_str()) else {
                continue;
            };
            if *partition < 0 || *partition >= counts[&topic_id] {
                continue;
            }
            claims
                .entry((topic_id, *partition))
                .or_default()
                .push((member.as_str(), subscription.generation));
        }
    }
    claims
}

/// The claim of the newest generation, unless two members claim it in that generation.
fn rightful_owner<'a>(claims: &[(&'a str, i32)]) -> Option<&'a str> {
    let newest = claims.iter().map(|(_, generation)| *generation).max()?;
    let mut in_newest = claims
        .iter()
        .filter(|(_, generation)| *generation == newest);
    let (owner, _) = in_newest.next()?;
    in_newest.next().is_none().then_some(*owner)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(topics: &[&str], owned: &[(&str, i32)], generation: i32) -> MemberSubscription {
        MemberSubscription {
            topics: topics.iter().map(|topic| topic.to_string()).collect(),
            owned: owned
                .iter()
                .map(|(topic, partition)| (topic.to_string(), *partition))
                .collect(),
            generation,
        }
    }

    fn count(shares: &Shares, member: &str) -> usize {
        shares[member].values().map(Vec::len).sum()
    }

    #[test]
    fn a_first_generation_is_balanced_and_whole() {
        let members = BTreeMap::from([
            ("a".to_string(), member(&["t"], &[], -1)),
            ("b".to_string(), member(&["t"], &[], -1)),
            ("c".to_string(), member(&["t"], &[], -1)),
        ]);
        let shares = assign(&members, &BTreeMap::from([("t".to_string(), 7)]));
        let mut all: Vec<i32> = shares
            .values()
            .flat_map(|share| share["t"].clone())
            .collect();
        all.sort_unstable();
        assert_eq!(all, (0..7).collect::<Vec<_>>());
        for id in ["a", "b", "c"] {
            assert!((2..=3).contains(&count(&shares, id)));
        }
    }

    #[test]
    fn a_joining_member_gets_only_unclaimed_partitions_until_the_owner_lets_go() {
        let owned: Vec<(&str, i32)> = (0..6).map(|partition| ("t", partition)).collect();
        let members = BTreeMap::from([
            ("a".to_string(), member(&["t"], &owned, 3)),
            ("b".to_string(), member(&["t"], &[], -1)),
        ]);
        let partitions = BTreeMap::from([("t".to_string(), 6)]);
        let shares = assign(&members, &partitions);
        // a keeps three of its six; the three it loses are withheld from b for a generation.
        assert_eq!(count(&shares, "a"), 3);
        assert_eq!(count(&shares, "b"), 0);
        let kept: Vec<(&str, i32)> = shares["a"]["t"].iter().map(|p| ("t", *p)).collect();
        // Next generation: a revoked the rest; b gets them, a keeps its three.
        let members = BTreeMap::from([
            ("a".to_string(), member(&["t"], &kept, 4)),
            ("b".to_string(), member(&["t"], &[], -1)),
        ]);
        let shares = assign(&members, &partitions);
        assert_eq!(
            shares["a"]["t"],
            kept.iter().map(|(_, p)| *p).collect::<Vec<_>>()
        );
        assert_eq!(count(&shares, "b"), 3);
    }

    #[test]
    fn the_newest_generation_wins_and_a_tie_is_withheld_from_both() {
        let members = BTreeMap::from([
            ("a".to_string(), member(&["t"], &[("t", 0), ("t", 1)], 5)),
            ("b".to_string(), member(&["t"], &[("t", 0)], 4)),
            ("c".to_string(), member(&["t"], &[("t", 1)], 5)),
        ]);
        let shares = assign(&members, &BTreeMap::from([("t".to_string(), 3)]));
        // t-0: a's claim is newer, a keeps it (b, the stale claimant, gets nothing of it).
        assert_eq!(shares["a"].get("t"), Some(&vec![0]));
        // t-1: a and c claim it in generation 5: nobody gets it this generation.
        assert!(shares.values().all(|share| share
            .get("t")
            .is_none_or(|partitions| !partitions.contains(&1))));
        // t-2 is free and goes to a member that holds nothing it could keep.
        assert_eq!(
            count(&shares, "a") + count(&shares, "b") + count(&shares, "c"),
            2
        );
    }

    #[test]
    fn partitions_of_a_dropped_topic_are_not_kept() {
        let members = BTreeMap::from([
            ("a".to_string(), member(&["u"], &[("t", 0), ("u", 0)], 2)),
            ("b".to_string(), member(&["u"], &[], -1)),
        ]);
        let shares = assign(
            &members,
            &BTreeMap::from([("t".to_string(), 1), ("u".to_string(), 2)]),
        );
        assert_eq!(shares["a"].get("u"), Some(&vec![0]));
        assert!(!shares["a"].contains_key("t"));
        assert_eq!(shares["b"].get("u"), Some(&vec![1]));
    }
}
