//! The classic-group coordinator of one shard: the groups it coordinates, the requests that
//! reach them (JoinGroup, SyncGroup, Heartbeat, LeaveGroup, and the member checks of
//! OffsetCommit), the timers that bound sessions and rebalances, and the limits on what
//! members may make it hold.
//!
//! A group lives on exactly one shard and is only touched there, so its state is a `RefCell`
//! and no request takes a lock or crosses a core. JoinGroup and SyncGroup wait for the rest
//! of the group; they wait on a [`Waiter`](super::member::Waiter) the group answers.
//!
//! Membership is held in memory. Committed offsets are durable (the offsets store); after a
//! restart every member is unknown, gets UNKNOWN_MEMBER_ID, joins again, and resumes from
//! its group's committed offsets.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::{Rc, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::ResponseError;
use tracing::{debug, info, warn};

use super::classic_group::{ClassicGroup, GroupState, RebalanceTiming, TimerRequest};
use super::member::{waiter, ClassicMember, JoinOutcome, SyncOutcome};
use super::{empty_groups, now_ms, GroupSettings};

/// A JoinGroup, decoded.
#[derive(Debug, Clone)]
pub struct JoinRequest {
    /// The group.
    pub group_id: String,
    /// Empty for a new member.
    pub member_id: String,
    /// `group.instance.id` (v5+).
    pub instance_id: Option<String>,
    /// The request header's client id.
    pub client_id: String,
    /// Where the member connected from.
    pub client_host: String,
    /// The session the member asks for.
    pub session_timeout_ms: i32,
    /// How long it may take to rejoin (v0: the session timeout).
    pub rebalance_timeout_ms: i32,
    /// `consumer` for consumers.
    pub protocol_type: String,
    /// Its protocols, most preferred first.
    pub protocols: Vec<(String, Bytes)>,
    /// The version has MEMBER_ID_REQUIRED (v4+, KIP-394).
    pub member_id_required: bool,
}

/// A SyncGroup, decoded.
#[derive(Debug, Clone)]
pub struct SyncRequest {
    /// The group.
    pub group_id: String,
    /// The generation the member joined.
    pub generation_id: i32,
    /// The member.
    pub member_id: String,
    /// Its static instance id.
    pub instance_id: Option<String>,
    /// The protocol type it believes (v5+).
    pub protocol_type: Option<String>,
    /// The protocol it believes (v5+).
    pub protocol_name: Option<String>,
    /// The leader's assignments, by member id.
    pub assignments: Vec<(String, Bytes)>,
}

/// One member named in a LeaveGroup.
#[derive(Debug, Clone)]
pub struct LeavingMember {
    /// Its member id (may be empty for a static member named by instance).
    pub member_id: String,
    /// Its instance id.
    pub instance_id: Option<String>,
}

/// One member as DescribeGroups reports it.
#[derive(Debug, Clone)]
pub struct MemberSummary {
    /// Its id.
    pub member_id: String,
    /// Its instance id.
    pub instance_id: Option<String>,
    /// Its client id.
    pub client_id: String,
    /// Its host.
    pub client_host: String,
    /// Its metadata for the group's protocol (Stable groups only, as Kafka reports).
    pub metadata: Bytes,
    /// Its assignment (Stable groups only).
    pub assignment: Bytes,
}

/// A group as DescribeGroups reports it.
#[derive(Debug, Clone)]
pub struct GroupSummary {
    /// Its state.
    pub state: GroupState,
    /// Its protocol type.
    pub protocol_type: String,
    /// Its protocol (Stable groups only).
    pub protocol_name: String,
    /// Its members.
    pub members: Vec<MemberSummary>,
}

/// How offsets retention treats a group (KIP-211).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetentionHold {
    /// It has members: its offsets never expire.
    Active,
    /// It has been empty since this time (ms since the epoch); retention counts from here.
    EmptySince(i64),
    /// No membership is known for it: retention counts from the last commit.
    Unknown,
}

/// The least a session task sleeps between looks, so that it always yields to the executor.
const SESSION_CHECK_MIN: Duration = Duration::from_millis(10);

/// From this OffsetCommit version a commit with a generation to an unknown group is
/// GROUP_ID_NOT_FOUND (ILLEGAL_GENERATION before).
pub const GROUP_ID_NOT_FOUND_COMMIT_VERSION_MIN: i16 = 9;

/// A join's synchronous start.
enum JoinStart {
    /// Answered at once.
    Answered(JoinOutcome),
    /// The member waits for the rebalance: its id, and where its answer comes.
    Waiting(String, super::member::Answer<JoinOutcome>),
}

/// What a join did inside its group, for the coordinator to finish outside the borrow.
struct JoinStep {
    result: JoinStart,
    /// Timers the transition needs.
    timers: Vec<TimerRequest>,
    /// A member (new, or a static member under its new id) whose session task to start.
    session: Option<String>,
    /// A member-to-be handed out with MEMBER_ID_REQUIRED, and how long it is kept.
    pending: Option<(String, Duration)>,
}

impl Default for JoinStep {
    fn default() -> Self {
        Self {
            result: JoinStart::Answered(JoinOutcome::default()),
            timers: Vec::new(),
            session: None,
            pending: None,
        }
    }
}

/// The classic groups one shard coordinates.
pub struct GroupCoordinator {
    settings: GroupSettings,
    groups: RefCell<HashMap<String, ClassicGroup>>,
    next_incarnation: Cell<u64>,
    /// Members over all groups, against `group_members_per_shard_max`.
    member_count: Cell<usize>,
    /// Bytes members hold, against `group_state_bytes_per_shard_max`.
    state_bytes: Cell<usize>,
    unloaded: Cell<bool>,
    myself: Weak<GroupCoordinator>,
}

impl GroupCoordinator {
    /// A coordinator with no groups.
    pub fn new(settings: GroupSettings) -> Rc<Self> {
        Rc::new_cyclic(|myself| Self {
            settings,
            groups: RefCell::new(HashMap::new()),
            next_incarnation: Cell::new(1),
            member_count: Cell::new(0),
            state_bytes: Cell::new(0),
            unloaded: Cell::new(false),
            myself: myself.clone(),
        })
    }

    fn timing(&self) -> RebalanceTiming {
        RebalanceTiming {
            initial_delay: Duration::from_millis(self.settings.group_initial_rebalance_delay_ms),
        }
    }

    /// Whether `group` has members (DeleteGroups answers NON_EMPTY_GROUP then).
    pub fn has_members(&self, group: &str) -> bool {
        self.groups
            .borrow()
            .get(group)
            .is_some_and(|group| group.member_count() > 0)
    }

    /// Whether the coordinator knows `group` (with members or Empty after them).
    pub fn knows(&self, group: &str) -> bool {
        self.groups.borrow().contains_key(group)
    }

    /// Forgets an empty group (DeleteGroups, or its offsets expired). Refuses a group with
    /// members.
    pub fn remove_empty(&self, group: &str) -> Result<(), ResponseError> {
        empty_groups::remove_empty(&mut self.groups.borrow_mut(), group)
    }

    /// How offsets retention treats `group`.
    pub fn retention_hold(&self, group: &str) -> RetentionHold {
        empty_groups::retention_hold(&self.groups.borrow(), group)
    }

    /// Forgets empty groups that have no committed offsets (`has_offsets` says which do), as
    /// Kafka's periodic cleanup does.
    pub fn forget_empty_groups(&self, has_offsets: impl Fn(&str) -> bool) {
        empty_groups::forget_empty(&mut self.groups.borrow_mut(), has_offsets);
    }

    /// Every group it knows, with its state and protocol type, sorted by name.
    pub fn list(&self) -> Vec<(String, GroupState, String)> {
        let mut listed: Vec<(String, GroupState, String)> = self
            .groups
            .borrow()
            .iter()
            .map(|(name, group)| {
                (
                    name.clone(),
                    group.state(),
                    group.protocol_type().unwrap_or_default().to_string(),
                )
            })
            .collect();
        listed.sort_unstable_by(|left, right| left.0.cmp(&right.0));
        listed
    }

    /// A group as DescribeGroups reports it.
    pub fn describe(&self, group: &str) -> Option<GroupSummary> {
        let groups = self.groups.borrow();
        let known = groups.get(group)?;
        let stable = known.state() == GroupState::Stable;
        let protocol = known.protocol_name().unwrap_or_default();
        let mut members: Vec<&ClassicMember> = known.members().collect();
        members.sort_unstable_by_key(|member| member.join_order);
        Some(GroupSummary {
            state: known.state(),
            protocol_type: known.protocol_type().unwrap_or_default().to_string(),
            protocol_name: if stable {
                protocol.to_string()
            } else {
                String::new()
            },
            members: members
                .into_iter()
                .map(|member| MemberSummary {
                    member_id: member.member_id.clone(),
                    instance_id: member.instance_id.clone(),
                    client_id: member.client_id.clone(),
                    client_host: member.client_host.clone(),
                    metadata: if stable {
                        member.metadata_for(protocol)
                    } else {
                        Bytes::new()
                    },
                    assignment: if stable {
                        member.assignment.clone()
                    } else {
                        Bytes::new()
                    },
                })
                .collect(),
        })
    }

    /// Answers every waiting JoinGroup and SyncGroup with NOT_COORDINATOR and refuses new
    /// group requests: the shard is stopping, and its clients go to find the coordinator again.
    pub fn unload(&self) {
        self.unloaded.set(true);
        for group in self.groups.borrow_mut().values_mut() {
            group.unload(ResponseError::NotCoordinator);
        }
    }

    /// Handles a JoinGroup (the caller has checked that this shard coordinates the group).
    pub async fn join(&self, request: JoinRequest) -> JoinOutcome {
        let (member_id, answer) = match self.start_join(request) {
            JoinStart::Answered(outcome) => return outcome,
            JoinStart::Waiting(member_id, answer) => (member_id, answer),
        };
        answer
            .await
            .unwrap_or_else(|| JoinOutcome::refused(ResponseError::UnknownMemberId, &member_id))
    }

    fn check_join(&self, request: &JoinRequest) -> Result<(), ResponseError> {
        let settings = &self.settings;
        if self.unloaded.get() {
            return Err(ResponseError::NotCoordinator);
        }
        let session = u64::try_from(request.session_timeout_ms).unwrap_or(0);
        if session < settings.group_min_session_timeout_ms
            || session > settings.group_max_session_timeout_ms
        {
            return Err(ResponseError::InvalidSessionTimeout);
        }
        if request.rebalance_timeout_ms <= 0 {
            return Err(ResponseError::InvalidRequest);
        }
        if request.protocol_type.is_empty() || request.protocols.is_empty() {
            return Err(ResponseError::InconsistentGroupProtocol);
        }
        if ClassicMember::metadata_bytes(&request.protocols)
            > settings.group_member_metadata_bytes_max
        {
            warn!(
                group = request.group_id,
                "JoinGroup refused: protocol metadata over group_member_metadata_bytes_max"
            );
            return Err(ResponseError::InvalidRequest);
        }
        Ok(())
    }

    /// The synchronous part of a join: an immediate answer, or the member id and where its
    /// answer will come.
    fn start_join(&self, request: JoinRequest) -> JoinStart {
        if let Err(error) = self.check_join(&request) {
            return JoinStart::Answered(JoinOutcome::refused(error, &request.member_id));
        }
        let now = Instant::now();
        let mut groups = self.groups.borrow_mut();
        if !groups.contains_key(&request.group_id) {
            if !request.member_id.is_empty() {
                return JoinStart::Answered(JoinOutcome::refused(
                    ResponseError::UnknownMemberId,
                    &request.member_id,
                ));
            }
            if groups.len() >= self.settings.groups_per_shard_max {
                warn!(
                    group = request.group_id,
                    "JoinGroup refused: the shard holds groups_per_shard_max groups"
                );
                return JoinStart::Answered(JoinOutcome::refused(
                    ResponseError::GroupMaxSizeReached,
                    &request.member_id,
                ));
            }
            let incarnation = self.next_incarnation.get();
            self.next_incarnation.set(incarnation + 1);
            groups.insert(
                request.group_id.clone(),
                ClassicGroup::new(incarnation, now, now_ms(), self.timing()),
            );
        }
        let Some(group) = groups.get_mut(&request.group_id) else {
            return JoinStart::Answered(JoinOutcome::refused(
                ResponseError::CoordinatorNotAvailable,
                &request.member_id,
            ));
        };
        let before = group.footprint();
        let group_id = request.group_id.clone();
        let step = self.join_group(group, request, now);
        let after = group.footprint();
        let incarnation = group.incarnation;
        if group.is_unused() {
            groups.remove(&group_id);
        }
        drop(groups);
        self.account(before, after);
        self.arm(&group_id, incarnation, step.timers);
        if let Some(member_id) = &step.session {
            self.arm_session(&group_id, incarnation, member_id);
        }
        if let Some((member_id, timeout)) = &step.pending {
            self.arm_pending(&group_id, incarnation, member_id, *timeout);
        }
        step.result
    }

    /// A join, inside its group.
    fn join_group(&self, group: &mut ClassicGroup, request: JoinRequest, now: Instant) -> JoinStep {
        let mut step = JoinStep::default();
        let refuse = |error, member_id: &str| JoinStep {
            result: JoinStart::Answered(JoinOutcome::refused(error, member_id)),
            ..JoinStep::default()
        };
        if !group.accepts_protocols(&request.protocol_type, &request.protocols) {
            return refuse(ResponseError::InconsistentGroupProtocol, &request.member_id);
        }
        let timeouts = (
            Duration::from_millis(request.session_timeout_ms as u64),
            Duration::from_millis(request.rebalance_timeout_ms as u64),
        );
        let new_bytes = ClassicMember::metadata_bytes(&request.protocols);
        let bytes_fit = |old_bytes: usize| {
            (self.state_bytes.get() + new_bytes).saturating_sub(old_bytes)
                <= self.settings.group_state_bytes_per_shard_max
        };
        if request.member_id.is_empty() {
            let member_id = new_member_id(
                request
                    .instance_id
                    .as_deref()
                    .unwrap_or(request.client_id.as_str()),
            );
            // A static member coming back under a new id takes its old place.
            let returning = request
                .instance_id
                .as_deref()
                .and_then(|instance| group.static_member(instance))
                .map(str::to_string);
            if let Some(old_member_id) = returning {
                let old_bytes = group
                    .member(&old_member_id)
                    .map_or(0, |member| ClassicMember::metadata_bytes(&member.protocols));
                if !bytes_fit(old_bytes) {
                    return refuse(ResponseError::GroupMaxSizeReached, &request.member_id);
                }
                let stable = group.replace_static_member(
                    &old_member_id,
                    &member_id,
                    (request.client_id.clone(), request.client_host.clone()),
                    request.protocols,
                    timeouts,
                    now,
                );
                info!(
                    group = request.group_id,
                    old_member_id, member_id, "static member rejoined"
                );
                step.session = Some(member_id.clone());
                if stable {
                    // KIP-345: no rebalance; the leader learns it need not assign (KIP-814).
                    step.result = JoinStart::Answered(group.current_join_outcome(&member_id, true));
                    return step;
                }
                let (join_waiter, answer) = waiter();
                step.timers = group.wait_for_join(&member_id, join_waiter, now);
                step.result = JoinStart::Waiting(member_id, answer);
                return step;
            }
            if group.size() >= self.settings.group_max_size {
                return refuse(ResponseError::GroupMaxSizeReached, &request.member_id);
            }
            if self.member_count.get() >= self.settings.group_members_per_shard_max {
                warn!(
                    group = request.group_id,
                    "JoinGroup refused: the shard holds group_members_per_shard_max members"
                );
                return refuse(ResponseError::GroupMaxSizeReached, &request.member_id);
            }
            if !bytes_fit(0) {
                warn!(
                    group = request.group_id,
                    "JoinGroup refused: the shard holds group_state_bytes_per_shard_max bytes of members"
                );
                return refuse(ResponseError::GroupMaxSizeReached, &request.member_id);
            }
            if request.member_id_required && request.instance_id.is_none() {
                // KIP-394: the member comes back with this id, so a JoinGroup whose answer
                // is lost cannot leave an orphan member behind.
                group.add_pending(member_id.clone(), now + timeouts.0);
                step.pending = Some((member_id.clone(), timeouts.0));
                step.result = JoinStart::Answered(JoinOutcome::refused(
                    ResponseError::MemberIdRequired,
                    &member_id,
                ));
                return step;
            }
            return Self::add_member(group, request, member_id, timeouts, now);
        }
        if group.is_pending(&request.member_id) {
            if !bytes_fit(0) {
                return refuse(ResponseError::GroupMaxSizeReached, &request.member_id);
            }
            let member_id = request.member_id.clone();
            return Self::add_member(group, request, member_id, timeouts, now);
        }
        if let Err(error) =
            group.validate_member(&request.member_id, request.instance_id.as_deref())
        {
            return refuse(error, &request.member_id);
        }
        let member_id = request.member_id.clone();
        let unchanged = group
            .member(&member_id)
            .is_some_and(|member| member.matches(&request.protocols));
        let is_leader = group.leader() == Some(member_id.as_str());
        match group.state() {
            GroupState::CompletingRebalance if unchanged => {
                // Its JoinGroup answer was lost: the same generation again.
                step.result = JoinStart::Answered(group.current_join_outcome(&member_id, false));
                return step;
            }
            GroupState::Stable if unchanged && !is_leader => {
                // A follower that rejoins unchanged gets the current generation, no rebalance.
                if let Some(member) = group.member_mut(&member_id) {
                    member.last_heartbeat = now;
                }
                step.result = JoinStart::Answered(group.current_join_outcome(&member_id, false));
                return step;
            }
            GroupState::Empty => return refuse(ResponseError::UnknownMemberId, &member_id),
            _ => {}
        }
        let old_bytes = group
            .member(&member_id)
            .map_or(0, |member| ClassicMember::metadata_bytes(&member.protocols));
        if !bytes_fit(old_bytes) {
            return refuse(ResponseError::GroupMaxSizeReached, &member_id);
        }
        let (join_waiter, answer) = waiter();
        step.timers =
            group.rejoin_member(&member_id, request.protocols, timeouts, join_waiter, now);
        step.result = JoinStart::Waiting(member_id, answer);
        step
    }

    fn add_member(
        group: &mut ClassicGroup,
        request: JoinRequest,
        member_id: String,
        timeouts: (Duration, Duration),
        now: Instant,
    ) -> JoinStep {
        let (join_waiter, answer) = waiter();
        let member = ClassicMember {
            member_id: member_id.clone(),
            instance_id: request.instance_id,
            client_id: request.client_id,
            client_host: request.client_host,
            session_timeout: timeouts.0,
            rebalance_timeout: timeouts.1,
            protocol_type: request.protocol_type,
            protocols: request.protocols,
            assignment: Bytes::new(),
            join_order: 0,
            last_heartbeat: now,
            join_waiter: Some(join_waiter),
            sync_waiter: None,
            sync_pending: false,
        };
        debug!(group = request.group_id, member_id, "member joined");
        JoinStep {
            timers: group.add_member(member, now),
            session: Some(member_id.clone()),
            pending: None,
            result: JoinStart::Waiting(member_id, answer),
        }
    }

    /// Moves the shard's member count and bytes by what a group's transition changed.
    fn account(&self, before: (usize, usize), after: (usize, usize)) {
        self.member_count
            .set((self.member_count.get() + after.0).saturating_sub(before.0));
        self.state_bytes
            .set((self.state_bytes.get() + after.1).saturating_sub(before.1));
    }

    /// Handles a SyncGroup.
    pub async fn sync(&self, request: SyncRequest) -> SyncOutcome {
        let answer = {
            let mut groups = self.groups.borrow_mut();
            if self.unloaded.get() {
                return SyncOutcome::refused(ResponseError::NotCoordinator);
            }
            let Some(group) = groups.get_mut(&request.group_id) else {
                return SyncOutcome::refused(ResponseError::UnknownMemberId);
            };
            if let Err(error) =
                group.validate_member(&request.member_id, request.instance_id.as_deref())
            {
                return SyncOutcome::refused(error);
            }
            if request.generation_id != group.generation() {
                return SyncOutcome::refused(ResponseError::IllegalGeneration);
            }
            let type_differs = request
                .protocol_type
                .as_deref()
                .is_some_and(|wanted| Some(wanted) != group.protocol_type());
            let name_differs = request
                .protocol_name
                .as_deref()
                .is_some_and(|wanted| Some(wanted) != group.protocol_name());
            if type_differs || name_differs {
                return SyncOutcome::refused(ResponseError::InconsistentGroupProtocol);
            }
            let is_leader = group.leader() == Some(request.member_id.as_str());
            let assignments = if is_leader && group.state() == GroupState::CompletingRebalance {
                let too_large = request.assignments.iter().any(|(_, assignment)| {
                    assignment.len() > self.settings.group_member_metadata_bytes_max
                });
                let total: usize = request
                    .assignments
                    .iter()
                    .map(|(_, assignment)| assignment.len())
                    .sum();
                let held: usize = group.members().map(|member| member.assignment.len()).sum();
                if too_large
                    || (self.state_bytes.get() + total).saturating_sub(held)
                        > self.settings.group_state_bytes_per_shard_max
                {
                    warn!(
                        group = request.group_id,
                        "SyncGroup refused: the assignment is over group_member_metadata_bytes_max or the shard's group_state_bytes_per_shard_max"
                    );
                    return SyncOutcome::refused(ResponseError::InvalidRequest);
                }
                Some(request.assignments)
            } else {
                None
            };
            let (sync_waiter, answer) = waiter();
            let before = group.footprint();
            group.sync(&request.member_id, assignments, sync_waiter, Instant::now());
            self.account(before, group.footprint());
            answer
        };
        answer
            .await
            .unwrap_or_else(|| SyncOutcome::refused(ResponseError::UnknownMemberId))
    }

    /// Handles a Heartbeat.
    pub fn heartbeat(
        &self,
        group_id: &str,
        generation_id: i32,
        member_id: &str,
        instance_id: Option<&str>,
    ) -> Option<ResponseError> {
        if self.unloaded.get() {
            return Some(ResponseError::NotCoordinator);
        }
        let mut groups = self.groups.borrow_mut();
        let Some(group) = groups.get_mut(group_id) else {
            return Some(ResponseError::UnknownMemberId);
        };
        if group.state() == GroupState::Empty {
            return Some(ResponseError::UnknownMemberId);
        }
        if let Err(error) = group.validate_member(member_id, instance_id) {
            return Some(error);
        }
        if generation_id != group.generation() {
            return Some(ResponseError::IllegalGeneration);
        }
        if let Some(member) = group.member_mut(member_id) {
            member.last_heartbeat = Instant::now();
        }
        match group.state() {
            GroupState::PreparingRebalance => Some(ResponseError::RebalanceInProgress),
            _ => None,
        }
    }

    /// Handles a LeaveGroup: one error per member named, or an error for the whole request.
    pub fn leave(
        &self,
        group_id: &str,
        leaving: &[LeavingMember],
    ) -> Result<Vec<Option<ResponseError>>, ResponseError> {
        if self.unloaded.get() {
            return Err(ResponseError::NotCoordinator);
        }
        let now = Instant::now();
        let mut groups = self.groups.borrow_mut();
        let Some(group) = groups.get_mut(group_id) else {
            return Ok(vec![Some(ResponseError::UnknownMemberId); leaving.len()]);
        };
        let incarnation = group.incarnation;
        let before = group.footprint();
        let mut timers = Vec::new();
        let mut errors = Vec::with_capacity(leaving.len());
        for member in leaving {
            let member_id = match member.instance_id.as_deref() {
                Some(instance) => match group.static_member(instance) {
                    None => {
                        errors.push(Some(ResponseError::UnknownMemberId));
                        continue;
                    }
                    Some(holder) if !member.member_id.is_empty() && holder != member.member_id => {
                        errors.push(Some(ResponseError::FencedInstanceId));
                        continue;
                    }
                    Some(holder) => holder.to_string(),
                },
                None => member.member_id.clone(),
            };
            if group.is_pending(&member_id) {
                timers.extend(group.forget_pending(&member_id, now));
                errors.push(None);
                continue;
            }
            if group.member(&member_id).is_none() {
                errors.push(Some(ResponseError::UnknownMemberId));
                continue;
            }
            info!(group = group_id, member_id, "member left the group");
            timers.extend(group.remove_member(&member_id, now));
            errors.push(None);
        }
        let after = group.footprint();
        drop(groups);
        self.account(before, after);
        self.arm(group_id, incarnation, timers);
        Ok(errors)
    }

    /// Checks the member fields of an OffsetCommit against the group (Kafka's classic-group
    /// rules): generation -1 with no member commits only to a group without members; a member
    /// must be known, with the current generation, and not in CompletingRebalance. A commit
    /// renews the member's session. A group known only by its committed offsets
    /// (`has_offsets`) is an Empty group; one not known at all, committed to with a
    /// generation, is GROUP_ID_NOT_FOUND from v9 and ILLEGAL_GENERATION before, as in Kafka 4.
    pub fn validate_commit(
        &self,
        group_id: &str,
        generation_id: i32,
        member: (&str, Option<&str>),
        has_offsets: bool,
        api_version: i16,
    ) -> Result<(), ResponseError> {
        let (member_id, instance_id) = member;
        if self.unloaded.get() {
            return Err(ResponseError::NotCoordinator);
        }
        let mut groups = self.groups.borrow_mut();
        let group = match groups.get_mut(group_id) {
            Some(group) => group,
            None if generation_id < 0 => return Ok(()),
            None if has_offsets => return Err(ResponseError::UnknownMemberId),
            None if api_version >= GROUP_ID_NOT_FOUND_COMMIT_VERSION_MIN => {
                return Err(ResponseError::GroupIdNotFound)
            }
            None => return Err(ResponseError::IllegalGeneration),
        };
        if generation_id < 0 && group.state() == GroupState::Empty {
            return Ok(());
        }
        if generation_id >= 0 || !member_id.is_empty() || instance_id.is_some() {
            group.validate_member(member_id, instance_id)?;
            if generation_id != group.generation() {
                return Err(ResponseError::IllegalGeneration);
            }
        } else if group.state() != GroupState::Empty {
            return Err(ResponseError::UnknownMemberId);
        }
        if group.state() == GroupState::CompletingRebalance {
            return Err(ResponseError::RebalanceInProgress);
        }
        if let Some(member) = group.member_mut(member_id) {
            member.last_heartbeat = Instant::now();
        }
        Ok(())
    }

    /// Arms the timers a transition asked for.
    fn arm(&self, group_id: &str, incarnation: u64, timers: Vec<TimerRequest>) {
        for timer in timers {
            let Some(coordinator) = self.myself.upgrade() else {
                return;
            };
            let group_id = group_id.to_string();
            match timer {
                TimerRequest::Join { epoch } => {
                    glommio::spawn_local(async move {
                        coordinator.join_timer(group_id, incarnation, epoch).await;
                    })
                    .detach();
                }
                TimerRequest::Sync {
                    generation,
                    timeout,
                } => {
                    glommio::spawn_local(async move {
                        glommio::timer::sleep(timeout).await;
                        coordinator.with_group(&group_id, incarnation, |group, now| {
                            group.sync_deadline_reached(generation, now)
                        });
                    })
                    .detach();
                }
            }
        }
    }

    /// Runs `transition` on the group if it is still the same incarnation, then arms what it
    /// asks for and accounts for the members it removed.
    fn with_group(
        &self,
        group_id: &str,
        incarnation: u64,
        transition: impl FnOnce(&mut ClassicGroup, Instant) -> Vec<TimerRequest>,
    ) {
        let (timers, before, after) = {
            let mut groups = self.groups.borrow_mut();
            match groups.get_mut(group_id) {
                Some(group) if group.incarnation == incarnation => {
                    let before = group.footprint();
                    let timers = transition(group, Instant::now());
                    (timers, before, group.footprint())
                }
                _ => return,
            }
        };
        self.account(before, after);
        self.arm(group_id, incarnation, timers);
    }

    async fn join_timer(&self, group_id: String, incarnation: u64, epoch: u64) {
        let deadline = {
            let groups = self.groups.borrow();
            match groups.get(&group_id) {
                Some(group) if group.incarnation == incarnation && group.epoch() == epoch => {
                    group.join_deadline()
                }
                _ => return,
            }
        };
        glommio::timer::sleep(deadline.saturating_duration_since(Instant::now())).await;
        self.with_group(&group_id, incarnation, |group, now| {
            group.join_deadline_reached(epoch, now)
        });
    }

    fn arm_pending(&self, group_id: &str, incarnation: u64, member_id: &str, timeout: Duration) {
        let Some(coordinator) = self.myself.upgrade() else {
            return;
        };
        let group_id = group_id.to_string();
        let member_id = member_id.to_string();
        glommio::spawn_local(async move {
            glommio::timer::sleep(timeout).await;
            coordinator.with_group(&group_id, incarnation, |group, now| {
                group.expire_pending(&member_id, now)
            });
        })
        .detach();
    }

    /// One task per member: it sleeps until the member's session would end, and removes the
    /// member if no heartbeat renewed it meanwhile. It ends with the member.
    fn arm_session(&self, group_id: &str, incarnation: u64, member_id: &str) {
        let Some(coordinator) = self.myself.upgrade() else {
            return;
        };
        let group_id = group_id.to_string();
        let member_id = member_id.to_string();
        glommio::spawn_local(async move {
            loop {
                let wake_at = {
                    let groups = coordinator.groups.borrow();
                    let Some(group) = groups
                        .get(&group_id)
                        .filter(|group| group.incarnation == incarnation)
                    else {
                        return;
                    };
                    // Gone, or a static member replaced under a new id (which has a task of
                    // its own): this task ends.
                    let Some(member) = group.member(&member_id) else {
                        return;
                    };
                    // A member waiting in JoinGroup or SyncGroup cannot heartbeat: its session
                    // is looked at again one session after now.
                    let from = if member.join_waiter.is_some() || member.sync_waiter.is_some() {
                        Instant::now()
                    } else {
                        member.last_heartbeat
                    };
                    (from + member.session_timeout).max(Instant::now() + SESSION_CHECK_MIN)
                };
                glommio::timer::sleep(wake_at.saturating_duration_since(Instant::now())).await;
                let now = Instant::now();
                let expired = coordinator
                    .groups
                    .borrow()
                    .get(&group_id)
                    .filter(|group| group.incarnation == incarnation)
                    .and_then(|group| group.member(&member_id))
                    .map(|member| member.session_expired(now));
                match expired {
                    None => return,
                    Some(false) => continue,
                    Some(true) => {
                        info!(group = group_id, member_id, "member session expired");
                        coordinator.with_group(&group_id, incarnation, |group, now| {
                            group.remove_member(&member_id, now)
                        });
                        return;
                    }
                }
            }
        })
        .detach();
    }
}

/// A member id as Kafka makes one: the client id (or instance id) and a random UUID.
fn new_member_id(prefix: &str) -> String {
    format!(
        "{prefix}-{}",
        uuid::Uuid::from_u128(fastrand::u128(..)).hyphenated()
    )
}
