//! One consumer-protocol group (KIP-848): its epochs, its members, the target assignment the
//! server-side assignor computed, and each member's reconciliation towards it.
//!
//! The group epoch rises whenever what the assignment depends on changes: a member joins,
//! leaves or changes its subscription, or a subscribed topic appears, vanishes or grows. The
//! target assignment is then recomputed, and its epoch (the assignment epoch) becomes the
//! group epoch. Each member then moves towards its target on its own heartbeats, without
//! stopping the rest of the group:
//! 1. if it holds partitions its target no longer has, it is told to revoke them and stays at
//!    its epoch until it reports them gone (UnrevokedPartitions);
//! 2. then it moves to the assignment epoch and gets every partition of its target that no
//!    other member still holds; the rest follow as their holders release them
//!    (UnreleasedPartitions).
//!
//! So no partition is ever held by two members at once, and members that keep their
//! partitions keep consuming throughout.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Instant;

use kafka_protocol::ResponseError;
use tracing::warn;

use crate::cluster::ClusterMetadata;

use super::consumer_member::{ConsumerMember, ReconcileState};
use super::server_assignor::{AssignorMember, ServerAssignor};
use super::topic_partitions::TopicPartitions;

/// The state ConsumerGroupDescribe and ListGroups report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsumerGroupState {
    /// No members.
    Empty,
    /// The target assignment is behind the group epoch.
    Assigning,
    /// Some member has not reached its target.
    Reconciling,
    /// Every member holds its target.
    Stable,
}

impl ConsumerGroupState {
    /// Kafka's name for it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Empty => "Empty",
            Self::Assigning => "Assigning",
            Self::Reconciling => "Reconciling",
            Self::Stable => "Stable",
        }
    }
}

/// What one heartbeat changed for its member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reconciled {
    /// Its epoch after the heartbeat.
    pub member_epoch: i32,
    /// Whether its assignment or epoch changed (the answer then carries the assignment).
    pub changed: bool,
}

/// One consumer-protocol group.
#[derive(Debug)]
pub struct ConsumerGroup {
    /// Tells a group apart from an earlier one of the same name, for timers.
    pub incarnation: u64,
    group_epoch: i32,
    assignment_epoch: i32,
    members: HashMap<String, ConsumerMember>,
    target: HashMap<String, TopicPartitions>,
    /// The member holding each partition (assigned to it or still being revoked by it).
    holders: HashMap<(u128, i32), String>,
    /// The metadata version the subscriptions were last resolved against.
    resolved_version: Option<u64>,
    /// Subscription regexes whose matches the group has taken in. A new regex is matched at
    /// the refresh after the one that first sees it, as Kafka resolves regexes in the
    /// background: its member gets its named topics at once and the matched ones at a
    /// later heartbeat (librdkafka's suite expects that order).
    regexes_resolved: std::collections::HashSet<String>,
    /// A new regex waits to be matched: the next refresh resolves again.
    regex_pending: bool,
    /// Each member's subscribed topic ids, as last resolved.
    resolved: HashMap<String, BTreeSet<u128>>,
    /// Partition counts of the subscribed topics, as last resolved.
    topics: BTreeMap<u128, i32>,
    assignor: ServerAssignor,
    next_join_order: u64,
    /// When the group last became empty (ms since the epoch), for offsets retention.
    pub empty_since_ms: i64,
}

impl ConsumerGroup {
    /// A new, empty group.
    pub fn new(incarnation: u64, now_ms: i64) -> Self {
        Self {
            incarnation,
            group_epoch: 0,
            assignment_epoch: 0,
            members: HashMap::new(),
            target: HashMap::new(),
            holders: HashMap::new(),
            resolved_version: None,
            regexes_resolved: std::collections::HashSet::new(),
            regex_pending: false,
            resolved: HashMap::new(),
            topics: BTreeMap::new(),
            assignor: ServerAssignor::Uniform,
            next_join_order: 0,
            empty_since_ms: now_ms,
        }
    }

    /// Its group epoch.
    pub fn group_epoch(&self) -> i32 {
        self.group_epoch
    }

    /// The epoch of its target assignment.
    pub fn assignment_epoch(&self) -> i32 {
        self.assignment_epoch
    }

    /// The assignor the target assignment was computed with.
    pub fn assignor(&self) -> ServerAssignor {
        self.assignor
    }

    /// Members, departed static ones included.
    pub fn member_count(&self) -> usize {
        self.members.len()
    }

    /// A member.
    pub fn member(&self, member_id: &str) -> Option<&ConsumerMember> {
        self.members.get(member_id)
    }

    /// A member, to update.
    pub fn member_mut(&mut self, member_id: &str) -> Option<&mut ConsumerMember> {
        self.members.get_mut(member_id)
    }

    /// Every member.
    pub fn members(&self) -> impl Iterator<Item = &ConsumerMember> {
        self.members.values()
    }

    /// The member's target assignment.
    pub fn target_of(&self, member_id: &str) -> TopicPartitions {
        self.target.get(member_id).cloned().unwrap_or_default()
    }

    /// The member using static instance `instance`.
    pub fn static_member(&self, instance: &str) -> Option<&ConsumerMember> {
        self.members
            .values()
            .find(|member| member.instance_id.as_deref() == Some(instance))
    }

    /// The group's state.
    pub fn state(&self) -> ConsumerGroupState {
        if self.members.is_empty() {
            ConsumerGroupState::Empty
        } else if self.group_epoch != self.assignment_epoch {
            ConsumerGroupState::Assigning
        } else if self.members.values().any(|member| {
            member.member_epoch != self.assignment_epoch || member.state != ReconcileState::Stable
        }) {
            ConsumerGroupState::Reconciling
        } else {
            ConsumerGroupState::Stable
        }
    }

    /// Bytes its members' subscriptions hold.
    pub fn footprint_bytes(&self) -> usize {
        self.members
            .values()
            .map(|member| member.member_id.len() + member.subscription.bytes())
            .sum()
    }

    /// Adds a member (its epoch 0, nothing assigned) and bumps the group epoch.
    pub fn add_member(&mut self, mut member: ConsumerMember) {
        member.join_order = self.next_join_order;
        self.next_join_order += 1;
        self.members.insert(member.member_id.clone(), member);
        self.bump_epoch();
    }

    /// A static member's instance comes back under `new_member_id`: it takes the departed
    /// member's place, epoch and partitions, and the group does not rebalance (KIP-345).
    pub fn replace_static_member(&mut self, old_member_id: &str, mut member: ConsumerMember) {
        let Some(old) = self.members.remove(old_member_id) else {
            return;
        };
        member.member_epoch = old.member_epoch;
        member.previous_member_epoch = old.previous_member_epoch;
        member.state = old.state;
        member.assigned = old.assigned;
        member.pending_revocation = old.pending_revocation;
        member.revocation_deadline = old.revocation_deadline;
        member.join_order = old.join_order;
        let subscription_changed = !member.subscription.same_as(&old.subscription);
        for (topic_id, partition) in member.held().collect::<Vec<_>>() {
            self.holders
                .insert((topic_id, partition), member.member_id.clone());
        }
        if let Some(target) = self.target.remove(old_member_id) {
            self.target.insert(member.member_id.clone(), target);
        }
        if let Some(resolved) = self.resolved.remove(old_member_id) {
            self.resolved.insert(member.member_id.clone(), resolved);
        }
        self.members.insert(member.member_id.clone(), member);
        if subscription_changed {
            self.bump_epoch();
        }
    }

    /// Removes a member, releasing what it holds; the group epoch rises so the others take
    /// over its partitions.
    pub fn remove_member(&mut self, member_id: &str, now_ms: i64) -> Option<ConsumerMember> {
        let member = self.members.remove(member_id)?;
        for partition in member.held() {
            if self.holders.get(&partition).map(String::as_str) == Some(member_id) {
                self.holders.remove(&partition);
            }
        }
        self.target.remove(member_id);
        self.resolved.remove(member_id);
        // A regex no member uses any more is forgotten: used again, it is matched anew.
        if let Some(regex) = &member.subscription.regex_source {
            if !self
                .members
                .values()
                .any(|other| other.subscription.regex_source.as_ref() == Some(regex))
            {
                self.regexes_resolved.remove(regex);
            }
        }
        if self.members.is_empty() {
            self.empty_since_ms = now_ms;
        }
        self.bump_epoch();
        Some(member)
    }

    /// The group epoch rises: what the assignment depends on changed.
    pub fn bump_epoch(&mut self) {
        self.group_epoch = self.group_epoch.saturating_add(1);
    }

    /// Resolves every member's subscription against `metadata` (when it changed) and, if the
    /// group epoch moved past the target assignment, computes a new one. `partitions_max`
    /// bounds the partitions the group is assigned.
    pub fn refresh_assignment(
        &mut self,
        metadata: &ClusterMetadata,
        preferred: Option<ServerAssignor>,
        partitions_max: usize,
    ) {
        // Resolved again when the metadata changed, or when members or subscriptions did (they
        // bumped the group epoch).
        if self.resolved_version != Some(metadata.version)
            || self.group_epoch != self.assignment_epoch
            || self.regex_pending
        {
            // Regexes seen at the last resolution are matched from now on; new ones wait for
            // the next.
            let in_use: std::collections::HashSet<String> = self
                .members
                .values()
                .filter_map(|member| member.subscription.regex_source.clone())
                .collect();
            self.regexes_resolved.retain(|regex| in_use.contains(regex));
            let pending: Vec<String> = in_use
                .into_iter()
                .filter(|regex| !self.regexes_resolved.contains(regex))
                .collect();
            let (resolved, topics) = self.resolve(metadata, partitions_max);
            self.regex_pending = !pending.is_empty();
            self.regexes_resolved.extend(pending);
            if resolved != self.resolved || topics != self.topics {
                self.resolved = resolved;
                self.topics = topics;
                if self.group_epoch == self.assignment_epoch {
                    self.bump_epoch();
                }
            }
            self.resolved_version = Some(metadata.version);
        }
        if self.group_epoch == self.assignment_epoch {
            return;
        }
        self.assignor = preferred.unwrap_or_else(|| self.preferred_assignor());
        let empty = BTreeSet::new();
        let none = TopicPartitions::new();
        let mut members: Vec<AssignorMember<'_>> = self
            .members
            .values()
            // A departed static member keeps its share until its instance returns.
            .map(|member| AssignorMember {
                member_id: &member.member_id,
                topics: self.resolved.get(&member.member_id).unwrap_or(&empty),
                previous: self.target.get(&member.member_id).unwrap_or(&none),
            })
            .collect();
        // Stickiness favours earlier members; a stable order keeps assignments stable.
        members.sort_unstable_by_key(|member| member.member_id);
        self.target = self.assignor.assign(&members, &self.topics);
        self.assignment_epoch = self.group_epoch;
    }

    /// The assignor most members asked for; `uniform` if none did (Kafka's default).
    fn preferred_assignor(&self) -> ServerAssignor {
        let mut votes: BTreeMap<ServerAssignor, usize> = BTreeMap::new();
        for member in self.members.values() {
            if let Some(assignor) = member.server_assignor {
                *votes.entry(assignor).or_default() += 1;
            }
        }
        votes
            .into_iter()
            .max_by_key(|(assignor, count)| (*count, std::cmp::Reverse(*assignor)))
            .map_or(ServerAssignor::Uniform, |(assignor, _)| assignor)
    }

    /// Each member's topic ids, and the partition counts of every subscribed topic, capped at
    /// `partitions_max` partitions in all (topics past the cap are left out, with a warning).
    fn resolve(
        &self,
        metadata: &ClusterMetadata,
        partitions_max: usize,
    ) -> (HashMap<String, BTreeSet<u128>>, BTreeMap<u128, i32>) {
        let mut resolved = HashMap::with_capacity(self.members.len());
        let mut topics = BTreeMap::new();
        let mut partitions = 0usize;
        let counts: HashMap<u128, usize> = metadata
            .topics
            .values()
            .map(|topic| (topic.topic_id, topic.partition_shards.len()))
            .collect();
        // Members usually share a subscription: each distinct one is matched once.
        let mut by_subscription: HashMap<(Vec<String>, Option<String>), BTreeSet<u128>> =
            HashMap::new();
        for member in self.members.values() {
            let key = (
                member.subscription.topic_names.clone(),
                member.subscription.regex_source.clone(),
            );
            let ids = by_subscription
                .entry(key)
                .or_insert_with(|| {
                    let mut ids = BTreeSet::new();
                    for name in &member.subscription.topic_names {
                        if let Some(topic) = metadata.topics.get(name) {
                            ids.insert(topic.topic_id);
                        }
                    }
                    let matched_now = member
                        .subscription
                        .regex_source
                        .as_ref()
                        .is_some_and(|source| self.regexes_resolved.contains(source));
                    if let Some(regex) = member.subscription.regex.as_ref().filter(|_| matched_now)
                    {
                        for (name, topic) in &metadata.topics {
                            if regex.is_match(name) {
                                ids.insert(topic.topic_id);
                            }
                        }
                    }
                    ids
                })
                .clone();
            let mut kept = BTreeSet::new();
            for id in ids {
                let Some(&count) = counts.get(&id) else {
                    continue;
                };
                if let std::collections::btree_map::Entry::Vacant(entry) = topics.entry(id) {
                    if partitions + count > partitions_max {
                        warn!(
                            topic_id = %uuid::Uuid::from_u128(id),
                            "consumer group subscription over consumer_group_partitions_max: topic left unassigned"
                        );
                        continue;
                    }
                    partitions += count;
                    entry.insert(count as i32);
                }
                kept.insert(id);
            }
            resolved.insert(member.member_id.clone(), kept);
        }
        (resolved, topics)
    }

    /// Checks a heartbeat's epoch against the member's (Kafka's rule): a newer epoch is
    /// fenced; an older one only if it is the previous epoch and the member owns no more
    /// than it is assigned (the answer that moved it on was lost).
    pub fn check_epoch(
        &self,
        member_id: &str,
        member_epoch: i32,
        owned: Option<&TopicPartitions>,
    ) -> Result<(), ResponseError> {
        let Some(member) = self.members.get(member_id) else {
            return Err(ResponseError::UnknownMemberId);
        };
        if member_epoch > member.member_epoch {
            return Err(ResponseError::FencedMemberEpoch);
        }
        if member_epoch < member.member_epoch {
            let lost_answer = member_epoch == member.previous_member_epoch
                && owned.is_some_and(|owned| owned.is_subset(&member.assigned));
            if !lost_answer {
                return Err(ResponseError::FencedMemberEpoch);
            }
        }
        Ok(())
    }

    /// Moves a member towards its target, given what it reports it owns.
    pub fn reconcile(
        &mut self,
        member_id: &str,
        owned: Option<&TopicPartitions>,
        now: Instant,
    ) -> Option<Reconciled> {
        let target = self.target.get(member_id).cloned().unwrap_or_default();
        let assignment_epoch = self.assignment_epoch;
        let member = self.members.get_mut(member_id)?;
        let before = (member.member_epoch, member.assigned.clone());
        if member.state == ReconcileState::UnrevokedPartitions {
            let revoked = owned.is_some_and(|owned| !owned.overlaps(&member.pending_revocation));
            if !revoked {
                return Some(Reconciled {
                    member_epoch: member.member_epoch,
                    changed: false,
                });
            }
            for partition in member.pending_revocation.iter() {
                if self.holders.get(&partition).map(String::as_str) == Some(member_id) {
                    self.holders.remove(&partition);
                }
            }
            member.pending_revocation = TopicPartitions::new();
            member.revocation_deadline = None;
            member.state = ReconcileState::Stable;
        }
        if member.member_epoch != assignment_epoch
            || member.state == ReconcileState::UnreleasedPartitions
        {
            let revoking = member.assigned.difference(&target);
            if !revoking.is_empty() {
                member.assigned = member.assigned.intersection(&target);
                member.pending_revocation = revoking;
                member.state = ReconcileState::UnrevokedPartitions;
                member.revocation_deadline = Some(now + member.rebalance_timeout);
            } else {
                for (topic_id, partition) in target.difference(&member.assigned).iter() {
                    let holder = self
                        .holders
                        .entry((topic_id, partition))
                        .or_insert_with(|| member_id.to_string());
                    if holder == member_id {
                        member.assigned.insert(topic_id, partition);
                    }
                }
                if member.member_epoch != assignment_epoch {
                    member.previous_member_epoch = member.member_epoch;
                    member.member_epoch = assignment_epoch;
                }
                member.state = if member.assigned == target {
                    ReconcileState::Stable
                } else {
                    ReconcileState::UnreleasedPartitions
                };
            }
        }
        debug_assert!(member.held().all(|partition| self
            .holders
            .get(&partition)
            .map(String::as_str)
            == Some(member_id)));
        let changed = before.0 != member.member_epoch || before.1 != member.assigned;
        Some(Reconciled {
            member_epoch: member.member_epoch,
            changed,
        })
    }

    /// Checks an OffsetCommit's member and epoch (Kafka's consumer-group rule): with no
    /// member (epoch < 0) only an empty group takes commits; a member must be known, and
    /// commit at its own epoch (STALE_MEMBER_EPOCH otherwise).
    pub fn validate_commit(&self, member_id: &str, member_epoch: i32) -> Result<(), ResponseError> {
        if member_epoch < 0 && self.members.is_empty() {
            return Ok(());
        }
        let Some(member) = self.members.get(member_id) else {
            return Err(ResponseError::UnknownMemberId);
        };
        if member_epoch != member.member_epoch {
            return Err(ResponseError::StaleMemberEpoch);
        }
        Ok(())
    }

    /// Checks an OffsetFetch's member and epoch: a fetch without an epoch (admin tools,
    /// classic clients) always reads; a member's must match its epoch.
    pub fn validate_fetch(&self, member_id: &str, member_epoch: i32) -> Result<(), ResponseError> {
        if member_epoch < 0 {
            return Ok(());
        }
        let Some(member) = self.members.get(member_id) else {
            return Err(ResponseError::UnknownMemberId);
        };
        if member_epoch != member.member_epoch {
            return Err(ResponseError::StaleMemberEpoch);
        }
        Ok(())
    }
}

impl super::empty_groups::Membership for ConsumerGroup {
    fn member_count(&self) -> usize {
        ConsumerGroup::member_count(self)
    }

    fn empty_since_ms(&self) -> i64 {
        self.empty_since_ms
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::cluster::{TopicConfigs, TopicMetadata};
    use crate::group::consumer_member::Subscription;

    const TOPIC: u128 = 7;

    fn metadata(partitions: usize) -> ClusterMetadata {
        let mut metadata = ClusterMetadata::new("cluster".into(), 1);
        metadata.topics.insert(
            "t".into(),
            TopicMetadata {
                topic_id: TOPIC,
                partition_shards: vec![0; partitions],
                configs: TopicConfigs::default(),
            },
        );
        metadata
    }

    fn member(id: &str) -> ConsumerMember {
        ConsumerMember {
            member_id: id.into(),
            instance_id: None,
            rack_id: None,
            client_id: String::new(),
            client_host: String::new(),
            member_epoch: 0,
            previous_member_epoch: 0,
            state: ReconcileState::Stable,
            assigned: TopicPartitions::new(),
            pending_revocation: TopicPartitions::new(),
            subscription: Subscription {
                topic_names: vec!["t".into()],
                regex_source: None,
                regex: None,
            },
            server_assignor: None,
            rebalance_timeout: Duration::from_secs(30),
            last_heartbeat: Instant::now(),
            revocation_deadline: None,
            departed: false,
            join_order: 0,
        }
    }

    fn partitions(group: &ConsumerGroup, id: &str) -> Vec<i32> {
        group
            .member(id)
            .expect("member")
            .assigned
            .iter()
            .map(|(_, partition)| partition)
            .collect()
    }

    /// No partition is ever assigned to two members, whatever order heartbeats come in.
    fn assert_exclusive(group: &ConsumerGroup) {
        let mut seen = TopicPartitions::new();
        for member in group.members() {
            for (topic, partition) in member.held() {
                assert!(seen.insert(topic, partition), "{partition} held twice");
            }
        }
    }

    #[test]
    fn a_partition_changes_hands_only_after_revocation() {
        let metadata = metadata(4);
        let now = Instant::now();
        let mut group = ConsumerGroup::new(1, 0);
        group.add_member(member("a"));
        group.refresh_assignment(&metadata, None, 100);
        let first = group
            .reconcile("a", Some(&TopicPartitions::new()), now)
            .unwrap();
        assert_eq!(first.member_epoch, 1);
        assert_eq!(partitions(&group, "a"), vec![0, 1, 2, 3]);

        group.add_member(member("b"));
        group.refresh_assignment(&metadata, None, 100);
        assert_eq!(group.state(), ConsumerGroupState::Reconciling);
        let b = group
            .reconcile("b", Some(&TopicPartitions::new()), now)
            .unwrap();
        assert_eq!(b.member_epoch, 2);
        assert!(partitions(&group, "b").is_empty(), "a still holds them");
        assert_exclusive(&group);

        // a is told to revoke and stays at epoch 1.
        let a = group.reconcile("a", None, now).unwrap();
        assert!(a.changed);
        assert_eq!(a.member_epoch, 1);
        assert_eq!(
            group.member("a").unwrap().state,
            ReconcileState::UnrevokedPartitions
        );
        assert_exclusive(&group);
        // A stale heartbeat of b gets nothing yet.
        group.reconcile("b", None, now).unwrap();
        assert!(partitions(&group, "b").is_empty());
        // a reports it still owns everything: nothing moves.
        let all = TopicPartitions::from_pairs([(TOPIC, vec![0, 1, 2, 3])]);
        assert!(!group.reconcile("a", Some(&all), now).unwrap().changed);
        // a reports the revocation: it moves to epoch 2, and b gets the rest.
        let kept = group.member("a").unwrap().assigned.clone();
        assert_eq!(
            group.reconcile("a", Some(&kept), now).unwrap().member_epoch,
            2
        );
        let b = group.reconcile("b", None, now).unwrap();
        assert!(b.changed);
        assert_eq!(partitions(&group, "b").len(), 2);
        assert_exclusive(&group);
        assert_eq!(group.state(), ConsumerGroupState::Stable);
    }

    #[test]
    fn epochs_are_checked_as_kafka_does() {
        let metadata = metadata(2);
        let now = Instant::now();
        let mut group = ConsumerGroup::new(1, 0);
        group.add_member(member("a"));
        group.refresh_assignment(&metadata, None, 100);
        group.reconcile("a", Some(&TopicPartitions::new()), now);
        assert_eq!(group.check_epoch("a", 1, None), Ok(()));
        assert_eq!(
            group.check_epoch("a", 2, None),
            Err(ResponseError::FencedMemberEpoch)
        );
        assert_eq!(
            group.check_epoch("nobody", 1, None),
            Err(ResponseError::UnknownMemberId)
        );
        // The previous epoch passes only with owned partitions inside the assignment (the
        // answer that moved the member on was lost).
        let owned = group.member("a").unwrap().assigned.clone();
        assert_eq!(group.check_epoch("a", 0, Some(&owned)), Ok(()));
        assert_eq!(
            group.check_epoch("a", 0, None),
            Err(ResponseError::FencedMemberEpoch)
        );
        assert_eq!(group.validate_commit("a", 1), Ok(()));
        assert_eq!(
            group.validate_commit("a", 0),
            Err(ResponseError::StaleMemberEpoch)
        );
    }

    #[test]
    fn a_subscription_change_moves_the_member_to_its_new_topics() {
        let mut metadata = metadata(2);
        metadata.topics.insert(
            "u".into(),
            TopicMetadata {
                topic_id: TOPIC + 1,
                partition_shards: vec![0; 3],
                configs: TopicConfigs::default(),
            },
        );
        let now = Instant::now();
        let mut group = ConsumerGroup::new(1, 0);
        group.add_member(member("a"));
        group.refresh_assignment(&metadata, None, 100);
        group.reconcile("a", Some(&TopicPartitions::new()), now);
        assert_eq!(partitions(&group, "a"), vec![0, 1]);
        // Same metadata, new subscription: the target follows it.
        group.member_mut("a").unwrap().subscription.topic_names = vec!["u".into()];
        group.bump_epoch();
        group.refresh_assignment(&metadata, None, 100);
        assert_eq!(
            group.target_of("a"),
            TopicPartitions::from_pairs([(TOPIC + 1, vec![0, 1, 2])])
        );
        group.reconcile("a", None, now);
        let owned = group.member("a").unwrap().assigned.clone();
        assert!(owned.is_empty(), "the old topic is revoked first");
        group.reconcile("a", Some(&owned), now);
        assert_eq!(
            group.member("a").unwrap().assigned,
            TopicPartitions::from_pairs([(TOPIC + 1, vec![0, 1, 2])])
        );
    }

    #[test]
    fn a_removed_member_releases_its_partitions_and_new_topics_bump_the_epoch() {
        let mut metadata = metadata(2);
        let now = Instant::now();
        let mut group = ConsumerGroup::new(1, 0);
        group.add_member(member("a"));
        group.add_member(member("b"));
        group.refresh_assignment(&metadata, None, 100);
        group.reconcile("a", Some(&TopicPartitions::new()), now);
        group.reconcile("b", Some(&TopicPartitions::new()), now);
        assert_eq!(
            partitions(&group, "a").len() + partitions(&group, "b").len(),
            2
        );
        group.remove_member("b", 5);
        group.refresh_assignment(&metadata, None, 100);
        group.reconcile("a", None, now);
        assert_eq!(partitions(&group, "a"), vec![0, 1]);
        let epoch = group.group_epoch();
        // The topic grows: the group epoch rises and the new partition is assigned.
        metadata.version += 1;
        metadata
            .topics
            .get_mut("t")
            .unwrap()
            .partition_shards
            .push(0);
        group.refresh_assignment(&metadata, None, 100);
        assert_eq!(group.group_epoch(), epoch + 1);
        group.reconcile("a", None, now);
        assert_eq!(partitions(&group, "a"), vec![0, 1, 2]);
        // The partitions cap leaves topics out instead of growing without bound.
        metadata.version += 1;
        group.refresh_assignment(&metadata, None, 2);
        group.reconcile("a", None, now);
        assert!(partitions(&group, "a").len() <= 2);
        group.remove_member("a", 9);
        assert_eq!(group.state(), ConsumerGroupState::Empty);
        assert_eq!(group.empty_since_ms, 9);
    }
}
