//! A classic group's state machine (JoinGroup / SyncGroup / Heartbeat / LeaveGroup), as Kafka
//! 4's classic group behaves: Empty → PreparingRebalance → CompletingRebalance → Stable, a
//! generation per completed join, a leader that assigns, and the protocol every member
//! supports.
//!
//! Everything here is synchronous: a transition answers the waiting requests it decides and
//! returns the timers it needs ([`TimerRequest`]), which the coordinator arms. Timers carry
//! the group's `epoch`, bumped on every rebalance transition, so a timer of an earlier
//! rebalance finds it stale and does nothing.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::ResponseError;

use super::member::{ClassicMember, JoinOutcome, JoinedMember, SyncOutcome};

/// The states of a classic group, named as Kafka reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupState {
    /// No members (committed offsets may remain).
    Empty,
    /// Waiting for every member to (re)join.
    PreparingRebalance,
    /// Joined: waiting for the leader's assignment.
    CompletingRebalance,
    /// Every member has its assignment.
    Stable,
}

impl GroupState {
    /// The name DescribeGroups and ListGroups report.
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
        }
    }
}

/// A timer a transition needs armed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimerRequest {
    /// Completes the join of rebalance `epoch` at the group's join deadline.
    Join { epoch: u64 },
    /// Removes the members that have not sent SyncGroup for `generation` after `timeout`.
    Sync { generation: i32, timeout: Duration },
}

/// A member-to-be: a member id handed out with MEMBER_ID_REQUIRED, not yet joined with.
#[derive(Debug, Clone, Copy)]
pub struct PendingMember {
    /// It is forgotten after this (its session timeout).
    pub deadline: Instant,
}

/// One classic group.
#[derive(Debug)]
pub struct ClassicGroup {
    /// Unique per group object on the shard, so that a timer of a deleted group never acts on
    /// a new one of the same name.
    pub incarnation: u64,
    state: GroupState,
    generation: i32,
    protocol_type: Option<String>,
    protocol_name: Option<String>,
    leader: Option<String>,
    members: HashMap<String, ClassicMember>,
    pending: HashMap<String, PendingMember>,
    /// Static members: instance id → member id.
    static_members: HashMap<String, String>,
    /// Bumped on every rebalance transition; timers compare it.
    epoch: u64,
    join_deadline: Instant,
    /// The initial delay (of an empty group's first rebalance) still allowed, if it is one.
    initial_delay_remaining: Option<Duration>,
    new_member_added: bool,
    next_join_order: u64,
    timing: RebalanceTiming,
    /// Bytes its members hold (ids, metadata, assignments), kept as they change.
    retained_bytes: usize,
    /// When the group last became empty (ms since the epoch): offsets retention counts from it.
    pub empty_since_ms: i64,
}

/// What the settings allow a rebalance.
#[derive(Debug, Clone, Copy)]
pub struct RebalanceTiming {
    /// `group_initial_rebalance_delay_ms`.
    pub initial_delay: Duration,
}

impl ClassicGroup {
    /// A new, empty group.
    pub fn new(incarnation: u64, now: Instant, now_ms: i64, timing: RebalanceTiming) -> Self {
        Self {
            incarnation,
            state: GroupState::Empty,
            generation: 0,
            protocol_type: None,
            protocol_name: None,
            leader: None,
            members: HashMap::new(),
            pending: HashMap::new(),
            static_members: HashMap::new(),
            epoch: 0,
            join_deadline: now,
            initial_delay_remaining: None,
            new_member_added: false,
            next_join_order: 0,
            timing,
            retained_bytes: 0,
            empty_since_ms: now_ms,
        }
    }

    /// Its state.
    pub fn state(&self) -> GroupState {
        self.state
    }

    /// Its generation.
    pub fn generation(&self) -> i32 {
        self.generation
    }

    /// Its protocol type (`consumer`), once it has had members.
    pub fn protocol_type(&self) -> Option<&str> {
        self.protocol_type.as_deref()
    }

    /// The current generation's protocol.
    pub fn protocol_name(&self) -> Option<&str> {
        self.protocol_name.as_deref()
    }

    /// The leader's member id.
    pub fn leader(&self) -> Option<&str> {
        self.leader.as_deref()
    }

    /// The rebalance epoch timers compare.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// When the current join may complete at the latest.
    pub fn join_deadline(&self) -> Instant {
        self.join_deadline
    }

    /// Its members.
    pub fn members(&self) -> impl Iterator<Item = &ClassicMember> {
        self.members.values()
    }

    /// A member.
    pub fn member(&self, member_id: &str) -> Option<&ClassicMember> {
        self.members.get(member_id)
    }

    /// A member, to renew its session.
    pub fn member_mut(&mut self, member_id: &str) -> Option<&mut ClassicMember> {
        self.members.get_mut(member_id)
    }

    /// Members plus members-to-be: what `group_max_size` counts.
    pub fn size(&self) -> usize {
        self.members.len() + self.pending.len()
    }

    /// Members only.
    pub fn member_count(&self) -> usize {
        self.members.len()
    }

    /// Members and members-to-be, and the bytes they hold: what the shard's limits count.
    pub fn footprint(&self) -> (usize, usize) {
        debug_assert_eq!(
            self.retained_bytes,
            self.members
                .values()
                .map(ClassicMember::retained_bytes)
                .sum::<usize>()
        );
        let pending_bytes: usize = self.pending.keys().map(String::len).sum();
        (self.size(), self.retained_bytes + pending_bytes)
    }

    /// Never had a member nor handed out a member id: a join refused at once leaves such a
    /// group, which is not kept.
    pub fn is_unused(&self) -> bool {
        self.state == GroupState::Empty && self.size() == 0 && self.generation == 0
    }

    fn forget(&mut self, member: &ClassicMember) {
        self.retained_bytes = self.retained_bytes.saturating_sub(member.retained_bytes());
    }

    /// Whether `member_id` was handed out with MEMBER_ID_REQUIRED and not joined with yet.
    pub fn is_pending(&self, member_id: &str) -> bool {
        self.pending.contains_key(member_id)
    }

    /// The member id a static instance holds.
    pub fn static_member(&self, instance_id: &str) -> Option<&str> {
        self.static_members.get(instance_id).map(String::as_str)
    }

    /// Checks a request's member against the group: UNKNOWN_MEMBER_ID for a member it does not
    /// have, FENCED_INSTANCE_ID when the instance id now belongs to another member id.
    pub fn validate_member(
        &self,
        member_id: &str,
        instance_id: Option<&str>,
    ) -> Result<(), ResponseError> {
        if let Some(instance) = instance_id {
            match self.static_members.get(instance) {
                Some(holder) if holder != member_id => return Err(ResponseError::FencedInstanceId),
                None if self.members.contains_key(member_id) => {
                    return Err(ResponseError::FencedInstanceId)
                }
                _ => {}
            }
        }
        if self.members.contains_key(member_id) {
            Ok(())
        } else {
            Err(ResponseError::UnknownMemberId)
        }
    }

    /// Whether a member joining with `protocol_type` and `protocols` fits the group: the same
    /// type, and at least one protocol every member supports.
    pub fn accepts_protocols(&self, protocol_type: &str, protocols: &[(String, Bytes)]) -> bool {
        if protocol_type.is_empty() || protocols.is_empty() {
            return false;
        }
        if self.members.is_empty() {
            return true;
        }
        self.protocol_type.as_deref() == Some(protocol_type)
            && protocols.iter().any(|(name, _)| {
                self.members
                    .values()
                    .all(|member| member.supports(name.as_str()))
            })
    }

    /// Hands out a member id to come back with (MEMBER_ID_REQUIRED).
    pub fn add_pending(&mut self, member_id: String, deadline: Instant) {
        self.pending.insert(member_id, PendingMember { deadline });
    }

    /// Forgets a member-to-be whose time ran out, if it is still pending at `now`. Returns the
    /// timers the removal needs (a join it was holding back may now complete).
    pub fn expire_pending(&mut self, member_id: &str, now: Instant) -> Vec<TimerRequest> {
        match self.pending.get(member_id) {
            Some(pending) if pending.deadline <= now => {
                self.pending.remove(member_id);
                self.maybe_complete_join(now)
            }
            _ => Vec::new(),
        }
    }

    /// Forgets a member-to-be that left before joining.
    pub fn forget_pending(&mut self, member_id: &str, now: Instant) -> Vec<TimerRequest> {
        if self.pending.remove(member_id).is_some() {
            self.maybe_complete_join(now)
        } else {
            Vec::new()
        }
    }

    /// Adds a member, waiting in its JoinGroup, and starts (or joins) a rebalance.
    pub fn add_member(&mut self, mut member: ClassicMember, now: Instant) -> Vec<TimerRequest> {
        self.pending.remove(&member.member_id);
        member.join_order = self.next_join_order;
        self.next_join_order += 1;
        member.last_heartbeat = now;
        if let Some(instance) = &member.instance_id {
            self.static_members
                .insert(instance.clone(), member.member_id.clone());
        }
        if self.members.is_empty() {
            self.protocol_type = Some(member.protocol_type.clone());
        }
        self.retained_bytes += member.retained_bytes();
        self.members.insert(member.member_id.clone(), member);
        self.new_member_added = true;
        self.rebalance_or_complete(now)
    }

    /// An existing member joins again with (possibly new) protocols and waits in JoinGroup.
    pub fn rejoin_member(
        &mut self,
        member_id: &str,
        protocols: Vec<(String, Bytes)>,
        timeouts: (Duration, Duration),
        waiter: super::member::Waiter<JoinOutcome>,
        now: Instant,
    ) -> Vec<TimerRequest> {
        let Some(member) = self.members.get_mut(member_id) else {
            waiter.answer(JoinOutcome::refused(
                ResponseError::UnknownMemberId,
                member_id,
            ));
            return Vec::new();
        };
        self.retained_bytes = self.retained_bytes + ClassicMember::metadata_bytes(&protocols)
            - ClassicMember::metadata_bytes(&member.protocols);
        member.protocols = protocols;
        (member.session_timeout, member.rebalance_timeout) = timeouts;
        member.last_heartbeat = now;
        if let Some(previous) = member.join_waiter.replace(waiter) {
            // The member sent a second JoinGroup while its first still waits: only the newest
            // one is answered with the generation, as in Kafka.
            previous.answer(JoinOutcome::refused(
                ResponseError::RebalanceInProgress,
                member_id,
            ));
        }
        self.rebalance_or_complete(now)
    }

    fn rebalance_or_complete(&mut self, now: Instant) -> Vec<TimerRequest> {
        match self.state {
            GroupState::PreparingRebalance => self.maybe_complete_join(now),
            _ => self.prepare_rebalance(now),
        }
    }

    /// The answer a member gets for the current generation without a rebalance: a follower
    /// that rejoins unchanged, or a JoinGroup repeated during CompletingRebalance.
    pub fn current_join_outcome(&self, member_id: &str, skip_assignment: bool) -> JoinOutcome {
        let is_leader = self.leader.as_deref() == Some(member_id);
        JoinOutcome {
            error: None,
            generation_id: self.generation,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol_name.clone(),
            leader: self.leader.clone().unwrap_or_default(),
            member_id: member_id.to_string(),
            members: if is_leader {
                self.joined_members()
            } else {
                Vec::new()
            },
            skip_assignment: is_leader && skip_assignment,
        }
    }

    fn joined_members(&self) -> Vec<JoinedMember> {
        let protocol = self.protocol_name.as_deref().unwrap_or_default();
        let mut members: Vec<&ClassicMember> = self.members.values().collect();
        members.sort_unstable_by_key(|member| member.join_order);
        members
            .into_iter()
            .map(|member| JoinedMember {
                member_id: member.member_id.clone(),
                instance_id: member.instance_id.clone(),
                metadata: member.metadata_for(protocol),
            })
            .collect()
    }

    /// A static member comes back under a new member id (KIP-345): the old id is fenced and
    /// the member keeps its place and assignment. Returns whether the group is Stable and
    /// keeps its protocol, so that the member is answered at once without a rebalance.
    pub fn replace_static_member(
        &mut self,
        old_member_id: &str,
        new_member_id: &str,
        client: (String, String),
        protocols: Vec<(String, Bytes)>,
        timeouts: (Duration, Duration),
        now: Instant,
    ) -> bool {
        let Some(mut member) = self.members.remove(old_member_id) else {
            return false;
        };
        self.forget(&member);
        member.refuse_waiters(ResponseError::FencedInstanceId);
        member.member_id = new_member_id.to_string();
        (member.client_id, member.client_host) = client;
        member.protocols = protocols;
        (member.session_timeout, member.rebalance_timeout) = timeouts;
        member.last_heartbeat = now;
        if let Some(instance) = &member.instance_id {
            self.static_members
                .insert(instance.clone(), new_member_id.to_string());
        }
        if self.leader.as_deref() == Some(old_member_id) {
            self.leader = Some(new_member_id.to_string());
        }
        self.retained_bytes += member.retained_bytes();
        self.members.insert(new_member_id.to_string(), member);
        self.state == GroupState::Stable
            && self
                .protocol_name
                .as_deref()
                .is_some_and(|protocol| self.select_protocol().as_deref() == Some(protocol))
    }

    /// Sets a member waiting in JoinGroup (after [`Self::replace_static_member`] decided a
    /// rebalance is needed).
    pub fn wait_for_join(
        &mut self,
        member_id: &str,
        waiter: super::member::Waiter<JoinOutcome>,
        now: Instant,
    ) -> Vec<TimerRequest> {
        let protocols = self
            .members
            .get(member_id)
            .map(|member| member.protocols.clone())
            .unwrap_or_default();
        let timeouts = self
            .members
            .get(member_id)
            .map(|member| (member.session_timeout, member.rebalance_timeout))
            .unwrap_or_default();
        self.rejoin_member(member_id, protocols, timeouts, waiter, now)
    }

    /// Removes a member (LeaveGroup, an expired session, a rebalance it did not rejoin) and
    /// rebalances the rest.
    pub fn remove_member(&mut self, member_id: &str, now: Instant) -> Vec<TimerRequest> {
        let Some(mut member) = self.members.remove(member_id) else {
            return Vec::new();
        };
        self.forget(&member);
        member.refuse_waiters(ResponseError::UnknownMemberId);
        if let Some(instance) = &member.instance_id {
            if self.static_members.get(instance).map(String::as_str) == Some(member_id) {
                self.static_members.remove(instance);
            }
        }
        if self.leader.as_deref() == Some(member_id) {
            self.leader = None;
        }
        match self.state {
            GroupState::Stable | GroupState::CompletingRebalance => self.prepare_rebalance(now),
            GroupState::PreparingRebalance => self.maybe_complete_join(now),
            GroupState::Empty => Vec::new(),
        }
    }

    /// Starts a rebalance: every member must join again before the join deadline.
    pub fn prepare_rebalance(&mut self, now: Instant) -> Vec<TimerRequest> {
        if self.state == GroupState::CompletingRebalance {
            // The assignment the leader is computing is for members that are changing: every
            // member waiting for it rejoins instead.
            for member in self.members.values_mut() {
                if let Some(waiter) = member.sync_waiter.take() {
                    waiter.answer(SyncOutcome::refused(ResponseError::RebalanceInProgress));
                }
            }
        }
        for member in self.members.values_mut() {
            self.retained_bytes = self.retained_bytes.saturating_sub(member.assignment.len());
            member.assignment = Bytes::new();
        }
        let rebalance_timeout = self.rebalance_timeout();
        match self.state {
            GroupState::Empty if !self.timing.initial_delay.is_zero() => {
                let delay = self.timing.initial_delay.min(rebalance_timeout);
                self.join_deadline = now + delay;
                self.initial_delay_remaining = Some(rebalance_timeout.saturating_sub(delay));
            }
            _ => {
                self.join_deadline = now + rebalance_timeout;
                self.initial_delay_remaining = None;
            }
        }
        self.new_member_added = false;
        self.state = GroupState::PreparingRebalance;
        self.epoch += 1;
        let mut timers = vec![TimerRequest::Join { epoch: self.epoch }];
        timers.extend(self.maybe_complete_join(now));
        timers
    }

    /// Every member awaits the join, and no member-to-be is outstanding: the join completes
    /// now rather than at its deadline (never during an initial delay, which waits on purpose).
    fn maybe_complete_join(&mut self, now: Instant) -> Vec<TimerRequest> {
        let all_joined = self
            .members
            .values()
            .all(|member| member.join_waiter.is_some());
        if self.state == GroupState::PreparingRebalance
            && self.initial_delay_remaining.is_none()
            && all_joined
            && self.pending.is_empty()
        {
            self.complete_join(now)
        } else {
            Vec::new()
        }
    }

    /// The join timer of `epoch` fired at `now`.
    pub fn join_deadline_reached(&mut self, epoch: u64, now: Instant) -> Vec<TimerRequest> {
        if epoch != self.epoch || self.state != GroupState::PreparingRebalance {
            return Vec::new();
        }
        if now < self.join_deadline {
            return vec![TimerRequest::Join { epoch }];
        }
        if let Some(remaining) = self.initial_delay_remaining {
            if self.new_member_added && !remaining.is_zero() {
                // Members are still arriving: wait once more, within the rebalance timeout.
                let delay = self.timing.initial_delay.min(remaining);
                self.initial_delay_remaining = Some(remaining - delay);
                self.join_deadline = now + delay;
                self.new_member_added = false;
                return vec![TimerRequest::Join { epoch }];
            }
        }
        self.complete_join(now)
    }

    /// Ends the join: members that did not rejoin are removed, the generation advances, a
    /// protocol and a leader are chosen, and every joined member is answered.
    fn complete_join(&mut self, now: Instant) -> Vec<TimerRequest> {
        let absent: Vec<String> = self
            .members
            .values()
            .filter(|member| member.join_waiter.is_none())
            .map(|member| member.member_id.clone())
            .collect();
        for member_id in absent {
            if let Some(mut member) = self.members.remove(&member_id) {
                self.forget(&member);
                member.refuse_waiters(ResponseError::UnknownMemberId);
                if let Some(instance) = &member.instance_id {
                    self.static_members.remove(instance);
                }
            }
        }
        self.initial_delay_remaining = None;
        self.generation = self.generation.wrapping_add(1).max(1);
        self.epoch += 1;
        if self.members.is_empty() {
            self.state = GroupState::Empty;
            self.protocol_name = None;
            self.leader = None;
            self.empty_since_ms = super::now_ms();
            return Vec::new();
        }
        self.protocol_name = self.select_protocol();
        if self
            .leader
            .as_ref()
            .is_none_or(|leader| !self.members.contains_key(leader))
        {
            self.leader = self
                .members
                .values()
                .min_by_key(|member| member.join_order)
                .map(|member| member.member_id.clone());
        }
        self.state = GroupState::CompletingRebalance;
        let leader_view = self.joined_members();
        let base = self.current_join_outcome("", false);
        for member in self.members.values_mut() {
            member.sync_pending = true;
            member.last_heartbeat = now;
            if let Some(waiter) = member.join_waiter.take() {
                let is_leader = self.leader.as_deref() == Some(member.member_id.as_str());
                waiter.answer(JoinOutcome {
                    member_id: member.member_id.clone(),
                    members: if is_leader {
                        leader_view.clone()
                    } else {
                        Vec::new()
                    },
                    ..base.clone()
                });
            }
        }
        vec![TimerRequest::Sync {
            generation: self.generation,
            timeout: self.rebalance_timeout(),
        }]
    }

    /// The protocol for the next generation: among those every member supports, the one most
    /// members prefer most (ties go to the leader's, then the first member's, preference).
    pub fn select_protocol(&self) -> Option<String> {
        let mut members: Vec<&ClassicMember> = self.members.values().collect();
        members.sort_unstable_by_key(|member| member.join_order);
        let first = members.first()?;
        let candidates: Vec<&str> = first
            .protocols
            .iter()
            .map(|(name, _)| name.as_str())
            .filter(|name| members.iter().all(|member| member.supports(name)))
            .collect();
        let mut votes: Vec<(usize, &str)> = candidates.iter().map(|name| (0, *name)).collect();
        for member in &members {
            if let Some((name, _)) = member
                .protocols
                .iter()
                .find(|(name, _)| candidates.contains(&name.as_str()))
            {
                if let Some(entry) = votes.iter_mut().find(|(_, known)| *known == name) {
                    entry.0 += 1;
                }
            }
        }
        // `max_by_key` keeps the last maximum: reverse so the first candidate wins a tie.
        votes
            .into_iter()
            .rev()
            .max_by_key(|(count, _)| *count)
            .map(|(_, name)| name.to_string())
    }

    /// The longest rebalance timeout of the members: how long a rebalance waits.
    fn rebalance_timeout(&self) -> Duration {
        self.members
            .values()
            .map(|member| member.rebalance_timeout)
            .max()
            .unwrap_or_default()
    }

    /// A member's SyncGroup in CompletingRebalance or Stable. The leader's assignments end
    /// CompletingRebalance: every waiting member is answered with its own.
    pub fn sync(
        &mut self,
        member_id: &str,
        assignments: Option<Vec<(String, Bytes)>>,
        waiter: super::member::Waiter<SyncOutcome>,
        now: Instant,
    ) {
        let is_leader = self.leader.as_deref() == Some(member_id);
        let Some(member) = self.members.get_mut(member_id) else {
            waiter.answer(SyncOutcome::refused(ResponseError::UnknownMemberId));
            return;
        };
        member.sync_pending = false;
        member.last_heartbeat = now;
        match self.state {
            GroupState::Stable => {
                let assignment = member.assignment.clone();
                waiter.answer(self.sync_outcome(assignment));
            }
            GroupState::CompletingRebalance => {
                member.sync_waiter = Some(waiter);
                if is_leader {
                    let mut assigned: HashMap<String, Bytes> =
                        assignments.unwrap_or_default().into_iter().collect();
                    let base = self.sync_outcome(Bytes::new());
                    for member in self.members.values_mut() {
                        let assignment = assigned.remove(&member.member_id).unwrap_or_default();
                        self.retained_bytes =
                            self.retained_bytes + assignment.len() - member.assignment.len();
                        member.assignment = assignment;
                        // Its wait for the leader was no silence of its own.
                        member.last_heartbeat = now;
                        if let Some(waiter) = member.sync_waiter.take() {
                            waiter.answer(SyncOutcome {
                                assignment: member.assignment.clone(),
                                ..base.clone()
                            });
                        }
                    }
                    self.state = GroupState::Stable;
                }
            }
            GroupState::PreparingRebalance => {
                waiter.answer(SyncOutcome::refused(ResponseError::RebalanceInProgress))
            }
            GroupState::Empty => {
                waiter.answer(SyncOutcome::refused(ResponseError::UnknownMemberId))
            }
        }
    }

    fn sync_outcome(&self, assignment: Bytes) -> SyncOutcome {
        SyncOutcome {
            error: None,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol_name.clone(),
            assignment,
        }
    }

    /// The sync timer of `generation` fired: members that never sent SyncGroup for it are
    /// removed (Kafka's pending-sync expiry), which rebalances the rest.
    pub fn sync_deadline_reached(&mut self, generation: i32, now: Instant) -> Vec<TimerRequest> {
        if generation != self.generation
            || !matches!(
                self.state,
                GroupState::CompletingRebalance | GroupState::Stable
            )
        {
            return Vec::new();
        }
        let late: Vec<String> = self
            .members
            .values()
            .filter(|member| member.sync_pending)
            .map(|member| member.member_id.clone())
            .collect();
        let mut timers = Vec::new();
        for member_id in late {
            timers.extend(self.remove_member(&member_id, now));
        }
        timers
    }

    /// Answers every waiting request with `error` and forgets the members (the shard stops).
    pub fn unload(&mut self, error: ResponseError) {
        for member in self.members.values_mut() {
            member.refuse_waiters(error);
        }
    }
}

impl super::empty_groups::Membership for ClassicGroup {
    fn member_count(&self) -> usize {
        ClassicGroup::member_count(self)
    }

    fn empty_since_ms(&self) -> i64 {
        self.empty_since_ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::group::member::waiter;

    fn member(id: &str, protocols: &[&str]) -> ClassicMember {
        ClassicMember {
            member_id: id.to_string(),
            instance_id: None,
            client_id: "test".into(),
            client_host: "/127.0.0.1".into(),
            session_timeout: Duration::from_secs(10),
            rebalance_timeout: Duration::from_secs(30),
            protocol_type: "consumer".into(),
            protocols: protocols
                .iter()
                .map(|name| (name.to_string(), Bytes::from(format!("{id}:{name}"))))
                .collect(),
            assignment: Bytes::new(),
            join_order: 0,
            last_heartbeat: Instant::now(),
            join_waiter: None,
            sync_waiter: None,
            sync_pending: false,
        }
    }

    fn joining(
        id: &str,
        protocols: &[&str],
    ) -> (ClassicMember, super::super::member::Answer<JoinOutcome>) {
        let (waiter, answer) = waiter();
        let mut member = member(id, protocols);
        member.join_waiter = Some(waiter);
        (member, answer)
    }

    const NO_DELAY: RebalanceTiming = RebalanceTiming {
        initial_delay: Duration::ZERO,
    };

    #[test]
    fn protocol_is_the_most_preferred_one_all_support() {
        let now = Instant::now();
        let mut group = ClassicGroup::new(1, now, 0, NO_DELAY);
        group.add_member(member("a", &["range", "roundrobin"]), now);
        group.add_member(member("b", &["roundrobin", "range"]), now);
        group.add_member(member("c", &["roundrobin", "sticky"]), now);
        assert_eq!(group.select_protocol().as_deref(), Some("roundrobin"));
        assert!(group.accepts_protocols("consumer", &[("roundrobin".into(), Bytes::new())]));
        assert!(!group.accepts_protocols("consumer", &[("range".into(), Bytes::new())]));
        assert!(!group.accepts_protocols("connect", &[("roundrobin".into(), Bytes::new())]));
    }

    #[test]
    fn a_join_completes_when_every_member_has_joined_and_the_leader_assigns() {
        let now = Instant::now();
        let mut group = ClassicGroup::new(1, now, 0, NO_DELAY);
        let (a, mut a_answer) = joining("a", &["range"]);
        let timers = group.add_member(a, now);
        // Alone and without an initial delay: completes at once.
        assert_eq!(group.state(), GroupState::CompletingRebalance);
        assert!(timers
            .iter()
            .any(|timer| matches!(timer, TimerRequest::Sync { generation: 1, .. })));
        let outcome = a_answer.try_take().flatten().expect("answered");
        assert_eq!(outcome.generation_id, 1);
        assert_eq!(outcome.leader, "a");
        assert_eq!(outcome.members.len(), 1);
        let (sync, mut sync_answer) = waiter();
        group.sync(
            "a",
            Some(vec![("a".into(), Bytes::from_static(b"p0"))]),
            sync,
            now,
        );
        assert_eq!(group.state(), GroupState::Stable);
        assert_eq!(
            sync_answer.try_take().flatten().expect("synced").assignment,
            Bytes::from_static(b"p0")
        );

        // A second member starts a rebalance; the first must rejoin before it completes.
        let (b, mut b_answer) = joining("b", &["range"]);
        group.add_member(b, now);
        assert_eq!(group.state(), GroupState::PreparingRebalance);
        assert!(b_answer.try_take().is_none());
        let (rejoin, mut rejoin_answer) = waiter();
        group.rejoin_member(
            "a",
            member("a", &["range"]).protocols,
            (Duration::from_secs(10), Duration::from_secs(30)),
            rejoin,
            now,
        );
        assert_eq!(group.state(), GroupState::CompletingRebalance);
        let leader = rejoin_answer.try_take().flatten().expect("leader answered");
        let follower = b_answer.try_take().flatten().expect("follower answered");
        assert_eq!(leader.generation_id, 2);
        assert_eq!(leader.leader, "a");
        assert_eq!(leader.members.len(), 2);
        assert!(follower.members.is_empty());
        // The follower's SyncGroup waits for the leader's.
        let (follower_sync, mut follower_sync_answer) = waiter();
        group.sync("b", None, follower_sync, now);
        assert!(follower_sync_answer.try_take().is_none());
        let (leader_sync, _leader_sync_answer) = waiter();
        group.sync(
            "a",
            Some(vec![
                ("a".into(), Bytes::from_static(b"p0")),
                ("b".into(), Bytes::from_static(b"p1")),
            ]),
            leader_sync,
            now,
        );
        assert_eq!(
            follower_sync_answer
                .try_take()
                .flatten()
                .expect("assigned")
                .assignment,
            Bytes::from_static(b"p1")
        );
    }

    #[test]
    fn members_that_do_not_rejoin_are_removed_at_the_deadline() {
        let now = Instant::now();
        let mut group = ClassicGroup::new(1, now, 0, NO_DELAY);
        let (a, _a_answer) = joining("a", &["range"]);
        group.add_member(a, now);
        let (sync, _sync_answer) = waiter();
        group.sync("a", Some(Vec::new()), sync, now);
        let (b, mut b_answer) = joining("b", &["range"]);
        group.add_member(b, now);
        let epoch = group.epoch();
        assert!(
            group.join_deadline_reached(epoch, now).len() == 1,
            "too early"
        );
        let later = now + Duration::from_secs(31);
        group.join_deadline_reached(epoch, later);
        assert_eq!(group.member_count(), 1);
        let outcome = b_answer.try_take().flatten().expect("answered");
        assert_eq!(outcome.leader, "b");
        assert_eq!(outcome.generation_id, 2);
    }

    #[test]
    fn the_last_member_leaving_empties_the_group() {
        let now = Instant::now();
        let mut group = ClassicGroup::new(1, now, 0, NO_DELAY);
        let (a, _a_answer) = joining("a", &["range"]);
        group.add_member(a, now);
        group.remove_member("a", now);
        assert_eq!(group.state(), GroupState::Empty);
        assert_eq!(group.generation(), 2);
    }

    #[test]
    fn a_static_member_coming_back_keeps_its_assignment_and_fences_the_old_id() {
        let now = Instant::now();
        let mut group = ClassicGroup::new(1, now, 0, NO_DELAY);
        let (mut a, _a_answer) = joining("a-1", &["range"]);
        a.instance_id = Some("host-a".into());
        group.add_member(a, now);
        let (sync, _sync_answer) = waiter();
        group.sync(
            "a-1",
            Some(vec![("a-1".into(), Bytes::from_static(b"p0"))]),
            sync,
            now,
        );
        let stable = group.replace_static_member(
            "a-1",
            "a-2",
            ("test".into(), "/127.0.0.1".into()),
            member("a", &["range"]).protocols,
            (Duration::from_secs(10), Duration::from_secs(30)),
            now,
        );
        assert!(stable, "no rebalance needed");
        assert_eq!(group.state(), GroupState::Stable);
        assert_eq!(group.static_member("host-a"), Some("a-2"));
        assert_eq!(
            group.member("a-2").expect("kept").assignment,
            Bytes::from_static(b"p0")
        );
        assert_eq!(
            group.validate_member("a-1", Some("host-a")),
            Err(ResponseError::FencedInstanceId)
        );
        assert_eq!(group.validate_member("a-2", Some("host-a")), Ok(()));
        assert_eq!(group.leader(), Some("a-2"));
    }
}
