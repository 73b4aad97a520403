//! The consumer-protocol (KIP-848) coordinator of one shard: the groups it coordinates, their
//! ConsumerGroupHeartbeats, the sessions and revocation deadlines that remove members, the
//! member checks of OffsetCommit and OffsetFetch, and the limits on what members may make it
//! hold.
//!
//! Like the classic coordinator it lives on one shard and is touched only there: a
//! `RefCell`, no lock, no cross-core hop. A heartbeat is answered at once; nothing waits.
//! Membership is held in memory: after a restart a member's heartbeat gets UNKNOWN_MEMBER_ID,
//! it rejoins with epoch 0, and it resumes from its group's committed offsets.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::{Rc, Weak};
use std::time::{Duration, Instant};

use kafka_protocol::ResponseError;
use regex::RegexBuilder;
use tracing::{info, warn};

use crate::cluster::ClusterMetadata;

use super::consumer_group::{ConsumerGroup, ConsumerGroupState};
use super::consumer_member::{ConsumerMember, ReconcileState, Subscription};
use super::coordinator::RetentionHold;
use super::server_assignor::ServerAssignor;
use super::topic_partitions::TopicPartitions;
use super::{empty_groups, now_ms, GroupSettings};

/// The member epoch with which a member leaves the group.
pub const LEAVE_GROUP_MEMBER_EPOCH: i32 = -1;
/// The member epoch with which a static member leaves for now (its instance may return).
pub const LEAVE_GROUP_STATIC_MEMBER_EPOCH: i32 = -2;
/// From this ConsumerGroupHeartbeat version the client chooses its member id (KIP-1082) and
/// may subscribe by regex.
pub const CLIENT_MEMBER_ID_VERSION_MIN: i16 = 1;
/// Members of a consumer-protocol group must commit with OffsetCommit v9 or later, which
/// carries the member epoch.
pub const CONSUMER_PROTOCOL_COMMIT_VERSION_MIN: i16 = 9;
/// The most memory one compiled subscription regex may take.
const REGEX_COMPILED_BYTES_MAX: usize = 1 << 20;
/// The least a session task sleeps between looks, so that it always yields to the executor.
const SESSION_CHECK_MIN: Duration = Duration::from_millis(10);

/// A ConsumerGroupHeartbeat, decoded.
#[derive(Debug, Clone, Default)]
pub struct ConsumerHeartbeat {
    /// The request's version.
    pub api_version: i16,
    /// The group.
    pub group_id: String,
    /// The member (v0: empty when joining).
    pub member_id: String,
    /// 0 to join, -1 to leave, -2 for a static member to leave for now; its epoch otherwise.
    pub member_epoch: i32,
    /// Its static instance id.
    pub instance_id: Option<String>,
    /// Its rack.
    pub rack_id: Option<String>,
    /// -1 when unchanged.
    pub rebalance_timeout_ms: i32,
    /// Null when unchanged.
    pub subscribed_topic_names: Option<Vec<String>>,
    /// Null when unchanged (v1+).
    pub subscribed_topic_regex: Option<String>,
    /// Null when unchanged.
    pub server_assignor: Option<String>,
    /// What it owns; null when unchanged.
    pub topic_partitions: Option<TopicPartitions>,
    /// The request header's client id.
    pub client_id: String,
    /// Where it connected from.
    pub client_host: String,
}

/// A heartbeat's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeartbeatAnswer {
    /// The member's id.
    pub member_id: String,
    /// Its epoch.
    pub member_epoch: i32,
    /// How often it is to heartbeat.
    pub heartbeat_interval_ms: i32,
    /// Its assignment, when it changed or the member needs it whole.
    pub assignment: Option<TopicPartitions>,
}

/// A refused heartbeat: its error and a message for the client's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeartbeatRefusal {
    /// The error.
    pub error: ResponseError,
    /// Why.
    pub message: Option<String>,
}

impl HeartbeatRefusal {
    fn new(error: ResponseError, message: impl Into<String>) -> Self {
        Self {
            error,
            message: Some(message.into()),
        }
    }

    fn bare(error: ResponseError) -> Self {
        Self {
            error,
            message: None,
        }
    }
}

/// One member as ConsumerGroupDescribe reports it.
#[derive(Debug, Clone)]
pub struct ConsumerMemberSummary {
    /// Its id.
    pub member_id: String,
    /// Its instance id.
    pub instance_id: Option<String>,
    /// Its rack.
    pub rack_id: Option<String>,
    /// Its epoch.
    pub member_epoch: i32,
    /// Its client id.
    pub client_id: String,
    /// Its host.
    pub client_host: String,
    /// Topics it names.
    pub subscribed_topic_names: Vec<String>,
    /// Its regex.
    pub subscribed_topic_regex: Option<String>,
    /// What it holds.
    pub assignment: TopicPartitions,
    /// What it is to hold.
    pub target_assignment: TopicPartitions,
}

/// A group as ConsumerGroupDescribe reports it.
#[derive(Debug, Clone)]
pub struct ConsumerGroupSummary {
    /// Its state.
    pub state: ConsumerGroupState,
    /// Its group epoch.
    pub group_epoch: i32,
    /// The epoch of its target assignment.
    pub assignment_epoch: i32,
    /// The assignor of its target assignment.
    pub assignor_name: String,
    /// Its members, in the order they joined.
    pub members: Vec<ConsumerMemberSummary>,
}

/// The consumer-protocol groups one shard coordinates.
pub struct ConsumerGroupCoordinator {
    settings: GroupSettings,
    groups: RefCell<HashMap<String, ConsumerGroup>>,
    next_incarnation: Cell<u64>,
    /// Members over all groups, against `group_members_per_shard_max`.
    member_count: Cell<usize>,
    /// Bytes of subscriptions held, against `group_state_bytes_per_shard_max`.
    state_bytes: Cell<usize>,
    unloaded: Cell<bool>,
    myself: Weak<ConsumerGroupCoordinator>,
}

impl ConsumerGroupCoordinator {
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

    fn session_timeout(&self) -> Duration {
        Duration::from_millis(self.settings.consumer_group_session_timeout_ms)
    }

    /// Whether it knows `group` (with members, or empty after them).
    pub fn knows(&self, group: &str) -> bool {
        self.groups.borrow().contains_key(group)
    }

    /// Whether `group` has members.
    pub fn has_members(&self, group: &str) -> bool {
        self.groups
            .borrow()
            .get(group)
            .is_some_and(|group| group.member_count() > 0)
    }

    /// Forgets an empty group (DeleteGroups, a classic group taking the name, or its offsets
    /// expired). Refuses a group with members.
    pub fn remove_empty(&self, group: &str) -> Result<(), ResponseError> {
        empty_groups::remove_empty(&mut self.groups.borrow_mut(), group)
    }

    /// How offsets retention treats `group`.
    pub fn retention_hold(&self, group: &str) -> RetentionHold {
        empty_groups::retention_hold(&self.groups.borrow(), group)
    }

    /// Forgets empty groups with no committed offsets.
    pub fn forget_empty_groups(&self, has_offsets: impl Fn(&str) -> bool) {
        empty_groups::forget_empty(&mut self.groups.borrow_mut(), has_offsets);
    }

    /// Every group, with its state, sorted by name.
    pub fn list(&self) -> Vec<(String, ConsumerGroupState)> {
        let mut listed: Vec<(String, ConsumerGroupState)> = self
            .groups
            .borrow()
            .iter()
            .map(|(name, group)| (name.clone(), group.state()))
            .collect();
        listed.sort_unstable_by(|left, right| left.0.cmp(&right.0));
        listed
    }

    /// A group as ConsumerGroupDescribe reports it.
    pub fn describe(&self, group: &str) -> Option<ConsumerGroupSummary> {
        let groups = self.groups.borrow();
        let known = groups.get(group)?;
        let mut members: Vec<&ConsumerMember> = known.members().collect();
        members.sort_unstable_by_key(|member| member.join_order);
        Some(ConsumerGroupSummary {
            state: known.state(),
            group_epoch: known.group_epoch(),
            assignment_epoch: known.assignment_epoch(),
            assignor_name: known.assignor().name().to_string(),
            members: members
                .into_iter()
                .map(|member| ConsumerMemberSummary {
                    member_id: member.member_id.clone(),
                    instance_id: member.instance_id.clone(),
                    rack_id: member.rack_id.clone(),
                    member_epoch: member.member_epoch,
                    client_id: member.client_id.clone(),
                    client_host: member.client_host.clone(),
                    subscribed_topic_names: member.subscription.topic_names.clone(),
                    subscribed_topic_regex: member.subscription.regex_source.clone(),
                    assignment: member.assigned.clone(),
                    target_assignment: known.target_of(&member.member_id),
                })
                .collect(),
        })
    }

    /// Refuses every request from now on with NOT_COORDINATOR: the shard is stopping.
    pub fn unload(&self) {
        self.unloaded.set(true);
    }

    /// Checks an OffsetCommit to a consumer-protocol group.
    pub fn validate_commit(
        &self,
        group_id: &str,
        member_id: &str,
        member_epoch: i32,
        api_version: i16,
    ) -> Result<(), ResponseError> {
        if self.unloaded.get() {
            return Err(ResponseError::NotCoordinator);
        }
        let groups = self.groups.borrow();
        let Some(group) = groups.get(group_id) else {
            return Ok(());
        };
        let is_member = group.member(member_id).is_some();
        if is_member && api_version < CONSUMER_PROTOCOL_COMMIT_VERSION_MIN {
            return Err(ResponseError::UnsupportedVersion);
        }
        group.validate_commit(member_id, member_epoch)
    }

    /// Checks an OffsetFetch's member (v9+) against a consumer-protocol group.
    pub fn validate_fetch(
        &self,
        group_id: &str,
        member_id: &str,
        member_epoch: i32,
    ) -> Result<(), ResponseError> {
        match self.groups.borrow().get(group_id) {
            Some(group) => group.validate_fetch(member_id, member_epoch),
            None => Ok(()),
        }
    }

    /// Handles a ConsumerGroupHeartbeat (the caller has checked that this shard coordinates
    /// the group and that no classic group holds its name).
    pub fn heartbeat(
        &self,
        request: ConsumerHeartbeat,
        metadata: &ClusterMetadata,
    ) -> Result<HeartbeatAnswer, HeartbeatRefusal> {
        if self.unloaded.get() {
            return Err(HeartbeatRefusal::bare(ResponseError::NotCoordinator));
        }
        let parsed = self.check(&request).inspect_err(|refusal| {
            info!(
                group = request.group_id,
                member_id = request.member_id,
                member_epoch = request.member_epoch,
                error = ?refusal.error,
                message = refusal.message.as_deref().unwrap_or_default(),
                "ConsumerGroupHeartbeat refused"
            );
        })?;
        let group_id = request.group_id.clone();
        let now = Instant::now();
        let mut groups = self.groups.borrow_mut();
        if !groups.contains_key(&request.group_id) {
            if request.member_epoch != 0 {
                return Err(HeartbeatRefusal::new(
                    ResponseError::UnknownMemberId,
                    format!(
                        "member {} is not in group {}",
                        request.member_id, request.group_id
                    ),
                ));
            }
            if groups.len() >= self.settings.groups_per_shard_max {
                warn!(
                    group = request.group_id,
                    "ConsumerGroupHeartbeat refused: the shard holds groups_per_shard_max groups"
                );
                return Err(HeartbeatRefusal::new(
                    ResponseError::GroupMaxSizeReached,
                    "the coordinator holds groups_per_shard_max groups",
                ));
            }
            let incarnation = self.next_incarnation.get();
            self.next_incarnation.set(incarnation + 1);
            groups.insert(
                request.group_id.clone(),
                ConsumerGroup::new(incarnation, now_ms()),
            );
        }
        let Some(group) = groups.get_mut(&request.group_id) else {
            return Err(HeartbeatRefusal::bare(
                ResponseError::CoordinatorNotAvailable,
            ));
        };
        let before = (group.member_count(), group.footprint_bytes());
        let incarnation = group.incarnation;
        let result = self.heartbeat_in_group(group, request, parsed, metadata, now);
        let after = (group.member_count(), group.footprint_bytes());
        drop(groups);
        self.member_count
            .set((self.member_count.get() + after.0).saturating_sub(before.0));
        self.state_bytes
            .set((self.state_bytes.get() + after.1).saturating_sub(before.1));
        let (answer, new_member) = result?;
        if let Some(member_id) = new_member {
            self.arm_session(&group_id, incarnation, &member_id);
        }
        Ok(answer)
    }

    /// Validates the request's fields (Kafka's rules and ours); returns its subscription and
    /// assignor when it sets them.
    fn check(&self, request: &ConsumerHeartbeat) -> Result<ParsedFields, HeartbeatRefusal> {
        let invalid = |message: &str| HeartbeatRefusal::new(ResponseError::InvalidRequest, message);
        if request.group_id.is_empty() {
            return Err(invalid("GroupId can't be empty."));
        }
        if request.instance_id.as_deref() == Some("") {
            return Err(invalid("InstanceId can't be empty."));
        }
        if request.rack_id.as_deref() == Some("") {
            return Err(invalid("RackId can't be empty."));
        }
        if request.member_id.is_empty()
            && (request.api_version >= CLIENT_MEMBER_ID_VERSION_MIN || request.member_epoch != 0)
        {
            return Err(invalid("MemberId can't be empty."));
        }
        if request.member_id.len() > 1024 {
            return Err(invalid("MemberId is longer than 1024 bytes."));
        }
        match request.member_epoch {
            0 => {
                let incomplete = request.rebalance_timeout_ms <= 0
                    || (request.subscribed_topic_names.is_none()
                        && request.subscribed_topic_regex.is_none());
                if incomplete && !request.member_id.is_empty() {
                    // Kafka answers INVALID_REQUEST, which librdkafka treats as fatal. But
                    // librdkafka sends exactly this (epoch 0, no fields) when its heartbeat
                    // timer fires between a leave and its rejoin (it clamps epoch -1 to 0), as
                    // the suite's 0089 does against a fast coordinator. UNKNOWN_MEMBER_ID makes
                    // it rejoin with the full request instead of dying.
                    return Err(HeartbeatRefusal::new(
                        ResponseError::UnknownMemberId,
                        "a join (epoch 0) must carry RebalanceTimeoutMs and a subscription: rejoin",
                    ));
                }
                if request.rebalance_timeout_ms <= 0 {
                    return Err(invalid(
                        "RebalanceTimeoutMs must be provided in first request.",
                    ));
                }
                if request
                    .topic_partitions
                    .as_ref()
                    .is_some_and(|owned| !owned.is_empty())
                {
                    return Err(invalid("TopicPartitions must be empty when (re-)joining."));
                }
                if request.subscribed_topic_names.is_none()
                    && request.subscribed_topic_regex.is_none()
                {
                    return Err(invalid(
                        "SubscribedTopicNames or SubscribedTopicRegex must be set in first request.",
                    ));
                }
            }
            LEAVE_GROUP_MEMBER_EPOCH | LEAVE_GROUP_STATIC_MEMBER_EPOCH => {}
            epoch if epoch < 0 => return Err(invalid("MemberEpoch is invalid.")),
            _ => {}
        }
        let assignor = match request.server_assignor.as_deref() {
            None => None,
            Some(name) => Some(ServerAssignor::from_name(name).ok_or_else(|| {
                HeartbeatRefusal::new(
                    ResponseError::UnsupportedAssignor,
                    format!("ServerAssignor {name} is not supported. Supported assignors: uniform, range."),
                )
            })?),
        };
        let names = request.subscribed_topic_names.as_ref();
        if names
            .is_some_and(|names| names.len() > self.settings.consumer_group_subscribed_topics_max)
        {
            return Err(invalid(
                "SubscribedTopicNames has more topics than consumer_group_subscribed_topics_max.",
            ));
        }
        let regex = match request.subscribed_topic_regex.as_deref() {
            None | Some("") => None,
            Some(source) if source.len() > self.settings.consumer_group_regex_bytes_max => {
                return Err(invalid(
                    "SubscribedTopicRegex is longer than consumer_group_regex_bytes_max.",
                ))
            }
            Some(source) => Some(
                RegexBuilder::new(&format!("^(?:{source})$"))
                    .size_limit(REGEX_COMPILED_BYTES_MAX)
                    .build()
                    .map_err(|error| {
                        HeartbeatRefusal::new(
                            ResponseError::InvalidRegularExpression,
                            format!("SubscribedTopicRegex {source} is not a valid regular expression: {error}"),
                        )
                    })?,
            ),
        };
        let subscription =
            (names.is_some() || request.subscribed_topic_regex.is_some()).then(|| {
                let mut topic_names: Vec<String> = names.cloned().unwrap_or_default();
                topic_names.sort_unstable();
                topic_names.dedup();
                Subscription {
                    topic_names,
                    regex_source: request
                        .subscribed_topic_regex
                        .clone()
                        .filter(|source| !source.is_empty()),
                    regex,
                }
            });
        Ok(ParsedFields {
            subscription,
            assignor,
        })
    }

    fn heartbeat_in_group(
        &self,
        group: &mut ConsumerGroup,
        request: ConsumerHeartbeat,
        parsed: ParsedFields,
        metadata: &ClusterMetadata,
        now: Instant,
    ) -> Result<(HeartbeatAnswer, Option<String>), HeartbeatRefusal> {
        let interval_ms =
            i32::try_from(self.settings.consumer_group_heartbeat_interval_ms).unwrap_or(i32::MAX);
        let group_id = request.group_id.clone();
        if request.member_epoch < 0 {
            return self.leave(group, &request, now).map(|member_epoch| {
                (
                    HeartbeatAnswer {
                        member_id: request.member_id.clone(),
                        member_epoch,
                        heartbeat_interval_ms: 0,
                        assignment: None,
                    },
                    None,
                )
            });
        }
        let mut new_member = None;
        let member_id = if request.member_epoch == 0 {
            let member_id = if request.member_id.is_empty() {
                uuid::Uuid::from_u128(fastrand::u128(..))
                    .simple()
                    .to_string()
            } else {
                request.member_id.clone()
            };
            // A member starting over keeps its session task; others get one.
            if self.join(group, &request, &parsed, &member_id, now)? {
                new_member = Some(member_id.clone());
            }
            member_id
        } else {
            let owned = request.topic_partitions.as_ref();
            group
                .check_epoch(&request.member_id, request.member_epoch, owned)
                .map_err(|error| {
                    HeartbeatRefusal::new(
                        error,
                        format!(
                            "member {} of group {group_id} sent epoch {}",
                            request.member_id, request.member_epoch
                        ),
                    )
                })?;
            self.update(group, &request, parsed);
            request.member_id.clone()
        };
        if let Some(member) = group.member_mut(&member_id) {
            member.last_heartbeat = now;
        }
        group.refresh_assignment(metadata, None, self.settings.consumer_group_partitions_max);
        let owned = if request.member_epoch == 0 {
            Some(TopicPartitions::new())
        } else {
            request.topic_partitions.clone()
        };
        let Some(reconciled) = group.reconcile(&member_id, owned.as_ref(), now) else {
            return Err(HeartbeatRefusal::bare(ResponseError::UnknownMemberId));
        };
        let full_request = request.topic_partitions.is_some()
            && (request.subscribed_topic_names.is_some()
                || request.subscribed_topic_regex.is_some());
        let assignment = (request.member_epoch == 0 || full_request || reconciled.changed)
            .then(|| {
                group
                    .member(&member_id)
                    .map(|member| member.assigned.clone())
            })
            .flatten();
        Ok((
            HeartbeatAnswer {
                member_id,
                member_epoch: reconciled.member_epoch,
                heartbeat_interval_ms: interval_ms,
                assignment,
            },
            new_member,
        ))
    }

    /// A join (epoch 0): a new member, a member starting over, or a static member's instance
    /// coming back.
    fn join(
        &self,
        group: &mut ConsumerGroup,
        request: &ConsumerHeartbeat,
        parsed: &ParsedFields,
        member_id: &str,
        now: Instant,
    ) -> Result<bool, HeartbeatRefusal> {
        let member = ConsumerMember {
            member_id: member_id.to_string(),
            instance_id: request.instance_id.clone(),
            rack_id: request.rack_id.clone(),
            client_id: request.client_id.clone(),
            client_host: request.client_host.clone(),
            member_epoch: 0,
            previous_member_epoch: 0,
            state: ReconcileState::Stable,
            assigned: TopicPartitions::new(),
            pending_revocation: TopicPartitions::new(),
            subscription: parsed.subscription.clone().unwrap_or_default(),
            server_assignor: parsed.assignor,
            rebalance_timeout: Duration::from_millis(request.rebalance_timeout_ms as u64),
            last_heartbeat: now,
            revocation_deadline: None,
            departed: false,
            join_order: 0,
        };
        let bytes = member.member_id.len() + member.subscription.bytes();
        if let Some(instance) = request.instance_id.as_deref() {
            if let Some(holder) = group.static_member(instance) {
                let holder_id = holder.member_id.clone();
                if holder_id != member_id {
                    if !holder.departed {
                        return Err(HeartbeatRefusal::new(
                            ResponseError::UnreleasedInstanceId,
                            format!("static member {instance} is still used by member {holder_id}"),
                        ));
                    }
                    info!(
                        group = request.group_id,
                        old_member_id = holder_id,
                        member_id,
                        "static member rejoined"
                    );
                    group.replace_static_member(&holder_id, member);
                    return Ok(true);
                }
            }
        }
        let rejoining = group.member(member_id).is_some();
        if rejoining {
            // A member that starts over at epoch 0 has given up what it held.
            group.remove_member(member_id, now_ms());
        } else {
            if group.member_count() >= self.settings.group_max_size {
                return Err(HeartbeatRefusal::new(
                    ResponseError::GroupMaxSizeReached,
                    format!(
                        "the group has group_max_size ({}) members",
                        self.settings.group_max_size
                    ),
                ));
            }
            if self.member_count.get() >= self.settings.group_members_per_shard_max
                || self.state_bytes.get() + bytes > self.settings.group_state_bytes_per_shard_max
            {
                warn!(
                    group = request.group_id,
                    "ConsumerGroupHeartbeat refused: the shard holds group_members_per_shard_max members or group_state_bytes_per_shard_max bytes"
                );
                return Err(HeartbeatRefusal::new(
                    ResponseError::GroupMaxSizeReached,
                    "the coordinator holds as many members as it may",
                ));
            }
            info!(
                group = request.group_id,
                member_id, "member joined the consumer group"
            );
        }
        group.add_member(member);
        Ok(!rejoining)
    }

    /// A member's heartbeat may change its subscription, assignor, rebalance timeout, rack.
    fn update(&self, group: &mut ConsumerGroup, request: &ConsumerHeartbeat, parsed: ParsedFields) {
        let mut bump = false;
        if let Some(member) = group.member_mut(&request.member_id) {
            if let Some(subscription) = parsed.subscription {
                if !subscription.same_as(&member.subscription) {
                    member.subscription = subscription;
                    bump = true;
                }
            }
            if parsed.assignor.is_some() && parsed.assignor != member.server_assignor {
                member.server_assignor = parsed.assignor;
                bump = true;
            }
            if request.rebalance_timeout_ms > 0 {
                member.rebalance_timeout =
                    Duration::from_millis(request.rebalance_timeout_ms as u64);
            }
            if request.rack_id.is_some() {
                member.rack_id = request.rack_id.clone();
            }
            if !request.client_id.is_empty() {
                member.client_id = request.client_id.clone();
            }
            member.client_host = request.client_host.clone();
        }
        if bump {
            group.bump_epoch();
        }
    }

    /// A leave (-1), or a static member's leave for now (-2): the epoch to answer with.
    fn leave(
        &self,
        group: &mut ConsumerGroup,
        request: &ConsumerHeartbeat,
        now: Instant,
    ) -> Result<i32, HeartbeatRefusal> {
        let Some(member) = group.member_mut(&request.member_id) else {
            return Err(HeartbeatRefusal::new(
                ResponseError::UnknownMemberId,
                format!(
                    "member {} is not in group {}",
                    request.member_id, request.group_id
                ),
            ));
        };
        if request.member_epoch == LEAVE_GROUP_STATIC_MEMBER_EPOCH && member.instance_id.is_some() {
            // KIP-345: its partitions wait for its instance until its session ends.
            member.departed = true;
            member.last_heartbeat = now;
            info!(
                group = request.group_id,
                member_id = request.member_id,
                "static member left for now"
            );
            return Ok(LEAVE_GROUP_STATIC_MEMBER_EPOCH);
        }
        info!(
            group = request.group_id,
            member_id = request.member_id,
            "member left the consumer group"
        );
        group.remove_member(&request.member_id, now_ms());
        Ok(request.member_epoch)
    }

    /// One task per member: it sleeps until the member's session or revocation deadline
    /// ends, and removes the member if no heartbeat (or revocation) came meanwhile.
    fn arm_session(&self, group_id: &str, incarnation: u64, member_id: &str) {
        let Some(coordinator) = self.myself.upgrade() else {
            return;
        };
        let group_id = group_id.to_string();
        let member_id = member_id.to_string();
        let session_timeout = self.session_timeout();
        glommio::spawn_local(async move {
            loop {
                let wake_at = {
                    let groups = coordinator.groups.borrow();
                    let Some(member) = groups
                        .get(&group_id)
                        .filter(|group| group.incarnation == incarnation)
                        .and_then(|group| group.member(&member_id))
                    else {
                        return;
                    };
                    member
                        .next_deadline(session_timeout)
                        .max(Instant::now() + SESSION_CHECK_MIN)
                };
                glommio::timer::sleep(wake_at.saturating_duration_since(Instant::now())).await;
                let now = Instant::now();
                let mut groups = coordinator.groups.borrow_mut();
                let Some(group) = groups
                    .get_mut(&group_id)
                    .filter(|group| group.incarnation == incarnation)
                else {
                    return;
                };
                match group
                    .member(&member_id)
                    .map(|member| member.expired(now, session_timeout))
                {
                    None => return,
                    Some(false) => continue,
                    Some(true) => {
                        info!(
                            group = group_id,
                            member_id,
                            "consumer group member's session or rebalance timeout expired"
                        );
                        let bytes_before = group.footprint_bytes();
                        group.remove_member(&member_id, now_ms());
                        let bytes_after = group.footprint_bytes();
                        drop(groups);
                        coordinator
                            .member_count
                            .set(coordinator.member_count.get().saturating_sub(1));
                        coordinator.state_bytes.set(
                            (coordinator.state_bytes.get() + bytes_after)
                                .saturating_sub(bytes_before),
                        );
                        return;
                    }
                }
            }
        })
        .detach();
    }
}

/// What a heartbeat sets, parsed.
struct ParsedFields {
    subscription: Option<Subscription>,
    assignor: Option<ServerAssignor>,
}
