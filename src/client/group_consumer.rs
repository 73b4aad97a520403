//! A consumer in a consumer group (the classic protocol): `subscribe` to topics, and the
//! group's coordinator spreads their partitions over the members. Any Kafka client may be a
//! member of the same group: the subscription and assignment formats are Kafka's.
//!
//! With `range` and `roundrobin` the rebalance is eager: a member gives up every partition
//! (committing first, under auto-commit) and rejoins. When every assignor it offers is
//! cooperative (`cooperative-sticky`, KIP-429; Java's rule too) it is incremental: the member
//! rejoins naming what it holds, keeps its fetch positions and buffered records for what it
//! keeps, and gives up (commit, `on_revoked`, then one more rejoin) only what the leader moved.
//! The callbacks then name only the partitions revoked or added, as Java's and librdkafka's
//! do under cooperative rebalancing. A member that lost its membership (UNKNOWN_MEMBER_ID,
//! ILLEGAL_GENERATION) cannot commit and gives up everything in either mode.
//!
//! The rebalance runs inside `poll`, so a member that stops polling stops taking part, as
//! Kafka's `max.poll.interval.ms` intends.
//! Heartbeats run on their own task, on the member's own connection to the coordinator (a
//! JoinGroup waiting for the group there never holds up a fetch).

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{
    ApiKey, GroupId, HeartbeatRequest, HeartbeatResponse, JoinGroupRequest, JoinGroupResponse,
    LeaveGroupRequest, LeaveGroupResponse, SyncGroupRequest, SyncGroupResponse,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::admin::{list_offset, OffsetSpec};
use super::assignor::{
    decode_assignment, decode_subscription, encode_assignment, encode_subscription, Assignor,
    MemberSubscription,
};
use super::cluster::Cluster;
use super::config::{ClientConfig, ConsumerConfig};
use super::connection::Connection;
use super::consumer::{Consumer, ConsumerRecord};
use super::error::{ClientError, ClientResult};
use super::group_offsets::{
    commit_offsets_as_member, committed_offsets, find_coordinator, OffsetAndMetadata,
};

/// From this LeaveGroup version the request names a list of members.
const LEAVE_BATCH_VERSION_MIN: i16 = 3;
/// The protocol type of consumer groups.
pub const PROTOCOL_TYPE_CONSUMER: &str = "consumer";
/// Rounds of JoinGroup/SyncGroup one rebalance tries before it gives up with the last error.
pub const REBALANCE_ATTEMPTS_MAX: u32 = 20;
/// Wait between two rounds that met a coordinator error.
const REBALANCE_RETRY_BACKOFF: Duration = Duration::from_millis(200);
/// A JoinGroup is waited for this long past the rebalance timeout (as Kafka's clients do).
const JOIN_GRACE: Duration = Duration::from_secs(5);

/// Group settings, with Kafka's consumer defaults.
#[derive(Debug, Clone)]
pub struct GroupConfig {
    /// The group.
    pub group_id: String,
    /// `group.instance.id`: a static member (KIP-345).
    pub instance_id: Option<String>,
    /// `session.timeout.ms`.
    pub session_timeout_ms: i32,
    /// `max.poll.interval.ms`: how long a rebalance waits for this member.
    pub rebalance_timeout_ms: i32,
    /// `heartbeat.interval.ms`.
    pub heartbeat_interval_ms: u64,
    /// The assignors offered, most preferred first.
    pub assignors: Vec<Assignor>,
    /// `auto.commit.interval.ms` with auto-commit on; `None`: commit by hand.
    pub auto_commit_interval_ms: Option<u64>,
    /// Where a partition without a committed offset starts (`auto.offset.reset`).
    pub offset_reset: OffsetSpec,
}

impl GroupConfig {
    /// Kafka's consumer defaults for `group_id`.
    pub fn new(group_id: impl Into<String>) -> Self {
        Self {
            group_id: group_id.into(),
            instance_id: None,
            session_timeout_ms: 45_000,
            rebalance_timeout_ms: 300_000,
            heartbeat_interval_ms: 3_000,
            assignors: vec![Assignor::Range, Assignor::RoundRobin],
            auto_commit_interval_ms: Some(5_000),
            offset_reset: OffsetSpec::Latest,
        }
    }
}

/// Called with the partitions a rebalance assigns or takes away.
pub type RebalanceCallback = Box<dyn Fn(&[(String, i32)])>;

/// The member's standing in its group, shared with the heartbeat task.
struct Membership {
    config: GroupConfig,
    client: Rc<ClientConfig>,
    member_id: RefCell<String>,
    generation: Cell<i32>,
    coordinator: RefCell<Option<Connection>>,
    /// The coordinator asked for a rejoin (or the member never joined).
    rejoin: Cell<bool>,
    /// The coordinator no longer knows this member in its generation: what it holds may be
    /// someone else's already, so it is given up without a commit.
    lost: Cell<bool>,
    /// A JoinGroup or SyncGroup is on the coordinator connection: no heartbeat meanwhile.
    rebalancing: Cell<bool>,
    /// An error the member cannot recover from (FENCED_INSTANCE_ID).
    fatal: RefCell<Option<ClientError>>,
    closed: Cell<bool>,
}

/// A consumer that is a member of a consumer group.
pub struct GroupConsumer {
    consumer: Consumer,
    cluster: Rc<Cluster>,
    membership: Rc<Membership>,
    topics: RefCell<Vec<String>>,
    heartbeating: Cell<bool>,
    last_commit: Cell<Instant>,
    on_assigned: RefCell<Option<RebalanceCallback>>,
    on_revoked: RefCell<Option<RebalanceCallback>>,
}

impl GroupConsumer {
    /// A member of `group.group_id`, not yet subscribed.
    pub fn new(client: ClientConfig, consumer: ConsumerConfig, group: GroupConfig) -> Self {
        let consumer_config = ConsumerConfig {
            group_id: Some(group.group_id.clone()),
            ..consumer
        };
        let client = Rc::new(client);
        Self {
            consumer: Consumer::new((*client).clone(), consumer_config),
            cluster: Cluster::new(client.clone()),
            membership: Rc::new(Membership {
                config: group,
                client,
                member_id: RefCell::new(String::new()),
                generation: Cell::new(-1),
                coordinator: RefCell::new(None),
                rejoin: Cell::new(true),
                lost: Cell::new(false),
                rebalancing: Cell::new(false),
                fatal: RefCell::new(None),
                closed: Cell::new(false),
            }),
            topics: RefCell::new(Vec::new()),
            heartbeating: Cell::new(false),
            last_commit: Cell::new(Instant::now()),
            on_assigned: RefCell::new(None),
            on_revoked: RefCell::new(None),
        }
    }

    /// Called after each rebalance with the partitions assigned to this member (under a
    /// cooperative assignor: the partitions added to what it held).
    pub fn on_assigned(&self, callback: impl Fn(&[(String, i32)]) + 'static) {
        *self.on_assigned.borrow_mut() = Some(Box::new(callback));
    }

    /// Called with the partitions this member gives up: before it rejoins (eager, and after a
    /// lost membership), or once the leader moved them (cooperative).
    pub fn on_revoked(&self, callback: impl Fn(&[(String, i32)]) + 'static) {
        *self.on_revoked.borrow_mut() = Some(Box::new(callback));
    }

    /// Subscribes to `topics` (replacing any earlier subscription); the group rebalances at
    /// the next `poll`.
    pub fn subscribe(&self, topics: &[&str]) {
        *self.topics.borrow_mut() = topics.iter().map(|topic| topic.to_string()).collect();
        self.membership.rejoin.set(true);
    }

    /// The partitions this member holds now.
    pub fn assignment(&self) -> Vec<(String, i32)> {
        self.consumer.assignment()
    }

    /// The member id the coordinator gave, and the generation it is in.
    pub fn member(&self) -> (String, i32) {
        (
            self.membership.member_id.borrow().clone(),
            self.membership.generation.get(),
        )
    }

    /// Takes part in a rebalance if one is due, commits if auto-commit is due, and returns
    /// buffered records, up to `max_records`, waiting at most `timeout` for some.
    pub async fn poll(
        &self,
        max_records: usize,
        timeout: Duration,
    ) -> ClientResult<Vec<ConsumerRecord>> {
        if let Some(error) = self.membership.fatal.borrow_mut().take() {
            return Err(error);
        }
        if self.membership.rejoin.get() && !self.topics.borrow().is_empty() {
            self.rebalance().await?;
        }
        if let Some(interval) = self.membership.config.auto_commit_interval_ms {
            if self.last_commit.get().elapsed() >= Duration::from_millis(interval) {
                self.commit_positions().await?;
            }
        }
        self.consumer.poll(max_records, timeout).await
    }

    /// Commits, for every partition this member holds, the offset after the last record
    /// `poll` returned, as this member of the current generation.
    pub async fn commit_positions(&self) -> ClientResult<()> {
        self.last_commit.set(Instant::now());
        let positions: Vec<(String, i32, i64)> = self
            .consumer
            .assignment()
            .into_iter()
            .filter_map(|(topic, partition)| {
                self.consumer
                    .consumed_position(&topic, partition)
                    .map(|offset| (topic, partition, offset))
            })
            .collect();
        if positions.is_empty() {
            return Ok(());
        }
        let offsets: Vec<(&str, i32, OffsetAndMetadata)> = positions
            .iter()
            .map(|(topic, partition, offset)| {
                (
                    topic.as_str(),
                    *partition,
                    OffsetAndMetadata {
                        offset: *offset,
                        metadata: None,
                    },
                )
            })
            .collect();
        let connection = self.membership.coordinator(&self.cluster).await?;
        let member_id = self.membership.member_id.borrow().clone();
        let outcome = commit_offsets_as_member(
            &connection,
            &self.membership.config.group_id,
            (&member_id, self.membership.generation.get()),
            &offsets,
        )
        .await;
        if let Err(ClientError::Broker { error, .. }) = &outcome {
            self.membership.react_to(*error);
        }
        outcome
    }

    /// Leaves the group (after a last commit under auto-commit): its partitions go to the
    /// other members at once instead of after the session timeout. A static member does not
    /// leave (KIP-345): its place waits for it for its session.
    pub async fn close(&self) -> ClientResult<()> {
        let committed = if self.membership.config.auto_commit_interval_ms.is_some() {
            self.commit_positions().await
        } else {
            Ok(())
        };
        self.membership.closed.set(true);
        let member_id = self.membership.member_id.borrow().clone();
        if self.membership.config.instance_id.is_none() && !member_id.is_empty() {
            let connection = self.membership.coordinator(&self.cluster).await?;
            let request = LeaveGroupRequest::default()
                .with_group_id(group_id(&self.membership.config.group_id));
            // v0-v2 name one member; v3+ a list of them.
            let request = if connection.version(ApiKey::LeaveGroup)? >= LEAVE_BATCH_VERSION_MIN {
                request.with_members(vec![
                    MemberIdentity::default().with_member_id(StrBytes::from_string(member_id))
                ])
            } else {
                request.with_member_id(StrBytes::from_string(member_id))
            };
            let (_, response): (i16, LeaveGroupResponse) =
                connection.call(ApiKey::LeaveGroup, &request).await?;
            ClientError::check("leave the group", response.error_code, None)?;
        }
        committed
    }

    /// Joins the next generation and moves to its assignment: eager, it gives up everything
    /// first; cooperative, it gives up only what the leader moved, and rejoins once more so
    /// those partitions reach their new owners. New partitions start at their committed
    /// offsets (or the reset point).
    async fn rebalance(&self) -> ClientResult<()> {
        let cooperative = self.membership.is_cooperative();
        let lost = self.membership.lost.replace(false);
        let held = self.consumer.assignment();
        if !held.is_empty() && (!cooperative || lost) {
            self.revoke(&held, !lost).await;
        }
        let subscription = MemberSubscription {
            topics: self.topics.borrow().clone(),
            owned: if cooperative {
                self.consumer.assignment()
            } else {
                Vec::new()
            },
            generation: self.membership.generation.get(),
        };
        let assigned = self
            .membership
            .join_and_sync(&self.cluster, &subscription)
            .await?;
        // A membership lost during the join is found again in the generation just joined.
        self.membership.lost.set(false);
        let still_held = self.consumer.assignment();
        let revoked: Vec<(String, i32)> = still_held
            .iter()
            .filter(|partition| !assigned.contains(partition))
            .cloned()
            .collect();
        if !revoked.is_empty() {
            self.revoke(&revoked, true).await;
            // KIP-429: the leader withheld these from their new owners until this member
            // rejoins without them.
            self.membership.rejoin.set(true);
        }
        let added: Vec<(String, i32)> = assigned
            .iter()
            .filter(|partition| !still_held.contains(partition))
            .cloned()
            .collect();
        self.start(&added).await?;
        self.last_commit.set(Instant::now());
        if let Some(callback) = self.on_assigned.borrow().as_ref() {
            callback(&added);
        }
        if !self.heartbeating.replace(true) {
            glommio::spawn_local(heartbeat_loop(self.membership.clone())).detach();
        }
        Ok(())
    }

    /// Gives up `partitions`: commits first (under auto-commit, when the membership allows),
    /// then tells the application and stops fetching them.
    async fn revoke(&self, partitions: &[(String, i32)], commit: bool) {
        if commit && self.membership.config.auto_commit_interval_ms.is_some() {
            // A commit refused because the rebalance already began is expected: the next
            // owner starts from the last commit that was taken.
            let _ = self.commit_positions().await;
        }
        if let Some(callback) = self.on_revoked.borrow().as_ref() {
            callback(partitions);
        }
        self.consumer.unassign(partitions);
    }

    /// Starts fetching `partitions` at their committed offsets, or at the reset point.
    async fn start(&self, partitions: &[(String, i32)]) -> ClientResult<()> {
        if partitions.is_empty() {
            return Ok(());
        }
        let partitions: Vec<(&str, i32)> = partitions
            .iter()
            .map(|(topic, partition)| (topic.as_str(), *partition))
            .collect();
        let committed =
            committed_offsets(&self.cluster, &self.membership.config.group_id, &partitions).await?;
        let mut starts = Vec::with_capacity(partitions.len());
        for ((topic, partition), committed) in partitions.iter().zip(committed) {
            let offset = match committed {
                Some(committed) => committed.offset,
                None => {
                    list_offset(
                        &self.cluster,
                        topic,
                        *partition,
                        self.membership.config.offset_reset,
                    )
                    .await?
                }
            };
            starts.push((*topic, *partition, OffsetSpec::Offset(offset)));
        }
        self.consumer.assign(&starts).await
    }
}

impl Drop for GroupConsumer {
    fn drop(&mut self) {
        self.membership.closed.set(true);
    }
}

fn group_id(group: &str) -> GroupId {
    GroupId(StrBytes::from_string(group.to_string()))
}

impl Membership {
    /// Whether rebalances are incremental: only when every assignor offered is cooperative,
    /// since the group may pick any of them.
    fn is_cooperative(&self) -> bool {
        !self.config.assignors.is_empty()
            && self
                .config
                .assignors
                .iter()
                .all(|assignor| assignor.is_cooperative())
    }

    /// The member's own connection to the coordinator, found if needed.
    async fn coordinator(&self, cluster: &Cluster) -> ClientResult<Connection> {
        if let Some(connection) = self
            .coordinator
            .borrow()
            .as_ref()
            .filter(|connection| !connection.is_failed())
        {
            return Ok(connection.clone());
        }
        let (_, host, port) = find_coordinator(cluster, &self.config.group_id).await?;
        let connection = Connection::connect(
            &format!("{host}:{port}"),
            &self.client.client_id,
            self.client.request_timeout(),
        )
        .await?;
        *self.coordinator.borrow_mut() = Some(connection.clone());
        Ok(connection)
    }

    /// What an error from the coordinator means for the member.
    fn react_to(&self, error: ResponseError) {
        match error {
            ResponseError::RebalanceInProgress => self.rejoin.set(true),
            ResponseError::IllegalGeneration => {
                self.generation.set(-1);
                self.lost.set(true);
                self.rejoin.set(true);
            }
            ResponseError::UnknownMemberId => {
                self.member_id.borrow_mut().clear();
                self.generation.set(-1);
                self.lost.set(true);
                self.rejoin.set(true);
            }
            ResponseError::NotCoordinator | ResponseError::CoordinatorNotAvailable => {
                *self.coordinator.borrow_mut() = None;
                self.rejoin.set(true);
            }
            ResponseError::FencedInstanceId => {
                *self.fatal.borrow_mut() = Some(ClientError::Broker {
                    context: format!(
                        "group {}: another member took this instance id",
                        self.config.group_id
                    ),
                    error,
                    code: error.code(),
                    message: None,
                });
            }
            _ => {}
        }
    }

    /// JoinGroup then SyncGroup until a generation is complete: this member's partitions.
    async fn join_and_sync(
        &self,
        cluster: &Cluster,
        subscription: &MemberSubscription,
    ) -> ClientResult<Vec<(String, i32)>> {
        self.rebalancing.set(true);
        let outcome = self.join_and_sync_rounds(cluster, subscription).await;
        self.rebalancing.set(false);
        if outcome.is_ok() {
            self.rejoin.set(false);
        }
        outcome
    }

    async fn join_and_sync_rounds(
        &self,
        cluster: &Cluster,
        subscription: &MemberSubscription,
    ) -> ClientResult<Vec<(String, i32)>> {
        // Encoded once: the generation it names is the one the owned partitions came from,
        // whatever generations a failed round passes through.
        let subscription = encode_subscription(subscription)?;
        let protocols: Vec<JoinGroupRequestProtocol> = self
            .config
            .assignors
            .iter()
            .map(|assignor| {
                JoinGroupRequestProtocol::default()
                    .with_name(StrBytes::from_static_str(assignor.name()))
                    .with_metadata(subscription.clone())
            })
            .collect();
        let join_wait =
            Duration::from_millis(self.config.rebalance_timeout_ms.max(0) as u64) + JOIN_GRACE;
        let mut last_error = None;
        for _ in 0..REBALANCE_ATTEMPTS_MAX {
            let connection = match self.coordinator(cluster).await {
                Ok(connection) => connection,
                Err(error) => {
                    last_error = Some(error);
                    glommio::timer::sleep(REBALANCE_RETRY_BACKOFF).await;
                    continue;
                }
            };
            let request = JoinGroupRequest::default()
                .with_group_id(group_id(&self.config.group_id))
                .with_session_timeout_ms(self.config.session_timeout_ms)
                .with_rebalance_timeout_ms(self.config.rebalance_timeout_ms)
                .with_member_id(StrBytes::from_string(self.member_id.borrow().clone()))
                .with_group_instance_id(self.config.instance_id.clone().map(StrBytes::from_string))
                .with_protocol_type(StrBytes::from_static_str(PROTOCOL_TYPE_CONSUMER))
                .with_protocols(protocols.clone());
            let joined: JoinGroupResponse = match connection
                .call_within(ApiKey::JoinGroup, &request, join_wait)
                .await
            {
                Ok((_, joined)) => joined,
                Err(error) => {
                    *self.coordinator.borrow_mut() = None;
                    last_error = Some(error);
                    continue;
                }
            };
            if let Some(error) = ResponseError::try_from_code(joined.error_code) {
                match error {
                    ResponseError::MemberIdRequired => {
                        *self.member_id.borrow_mut() = joined.member_id.to_string();
                    }
                    ResponseError::UnknownMemberId
                    | ResponseError::RebalanceInProgress
                    | ResponseError::NotCoordinator
                    | ResponseError::CoordinatorNotAvailable
                    | ResponseError::CoordinatorLoadInProgress => {
                        self.react_to(error);
                        glommio::timer::sleep(REBALANCE_RETRY_BACKOFF).await;
                    }
                    _ => {
                        return Err(ClientError::Broker {
                            context: format!("join group {}", self.config.group_id),
                            error,
                            code: joined.error_code,
                            message: None,
                        })
                    }
                }
                last_error = ClientError::from_code("join group", joined.error_code, None);
                continue;
            }
            let member_id = joined.member_id.to_string();
            *self.member_id.borrow_mut() = member_id.clone();
            self.generation.set(joined.generation_id);
            let protocol = joined
                .protocol_name
                .as_deref()
                .unwrap_or_default()
                .to_string();
            let assignments = if joined.leader.as_str() == member_id && !joined.skip_assignment {
                self.assign(cluster, &protocol, &joined).await?
            } else {
                Vec::new()
            };
            let request = SyncGroupRequest::default()
                .with_group_id(group_id(&self.config.group_id))
                .with_generation_id(joined.generation_id)
                .with_member_id(StrBytes::from_string(member_id))
                .with_group_instance_id(self.config.instance_id.clone().map(StrBytes::from_string))
                .with_protocol_type(Some(StrBytes::from_static_str(PROTOCOL_TYPE_CONSUMER)))
                .with_protocol_name(Some(StrBytes::from_string(protocol)))
                .with_assignments(assignments);
            let synced: SyncGroupResponse = match connection
                .call_within(ApiKey::SyncGroup, &request, join_wait)
                .await
            {
                Ok((_, synced)) => synced,
                Err(error) => {
                    *self.coordinator.borrow_mut() = None;
                    last_error = Some(error);
                    continue;
                }
            };
            match ResponseError::try_from_code(synced.error_code) {
                None => return decode_assignment(&synced.assignment),
                Some(
                    error @ (ResponseError::RebalanceInProgress
                    | ResponseError::IllegalGeneration
                    | ResponseError::UnknownMemberId
                    | ResponseError::NotCoordinator
                    | ResponseError::CoordinatorNotAvailable),
                ) => {
                    self.react_to(error);
                    last_error = ClientError::from_code("sync group", synced.error_code, None);
                }
                Some(error) => {
                    return Err(ClientError::Broker {
                        context: format!("sync group {}", self.config.group_id),
                        error,
                        code: synced.error_code,
                        message: None,
                    })
                }
            }
        }
        Err(last_error.unwrap_or_else(|| {
            ClientError::InvalidConfig(format!(
                "group {}: no generation after {REBALANCE_ATTEMPTS_MAX} rounds",
                self.config.group_id
            ))
        }))
    }

    /// The leader's work: every member's share under `protocol`.
    async fn assign(
        &self,
        cluster: &Cluster,
        protocol: &str,
        joined: &JoinGroupResponse,
    ) -> ClientResult<Vec<SyncGroupRequestAssignment>> {
        let assignor = Assignor::from_name(protocol).ok_or_else(|| {
            ClientError::InvalidConfig(format!(
                "the group chose assignor {protocol}, which this member did not offer"
            ))
        })?;
        let mut members: BTreeMap<String, MemberSubscription> = BTreeMap::new();
        for member in &joined.members {
            members.insert(
                member.member_id.to_string(),
                decode_subscription(&member.metadata)?,
            );
        }
        let mut partitions: BTreeMap<String, i32> = BTreeMap::new();
        for topic in members.values().flat_map(|member| &member.topics) {
            if partitions.contains_key(topic) {
                continue;
            }
            // A subscribed topic that does not exist yet is assigned nothing.
            if let Ok(info) = cluster.topic(topic, false).await {
                partitions.insert(topic.clone(), info.partitions.len() as i32);
            }
        }
        assignor
            .assign(&members, &partitions)
            .into_iter()
            .map(|(member, share)| {
                Ok(SyncGroupRequestAssignment::default()
                    .with_member_id(StrBytes::from_string(member))
                    .with_assignment(encode_assignment(&share)?))
            })
            .collect()
    }
}

/// Heartbeats every `heartbeat_interval_ms` while the member is in a generation; an answer
/// asking for a rejoin is left for the next `poll`.
async fn heartbeat_loop(membership: Rc<Membership>) {
    let interval = Duration::from_millis(membership.config.heartbeat_interval_ms.max(1));
    loop {
        glommio::timer::sleep(interval).await;
        if membership.closed.get() {
            return;
        }
        if membership.rebalancing.get() || membership.rejoin.get() {
            continue;
        }
        let Some(connection) = membership.coordinator.borrow().clone() else {
            membership.rejoin.set(true);
            continue;
        };
        let request = HeartbeatRequest::default()
            .with_group_id(group_id(&membership.config.group_id))
            .with_generation_id(membership.generation.get())
            .with_member_id(StrBytes::from_string(membership.member_id.borrow().clone()))
            .with_group_instance_id(
                membership
                    .config
                    .instance_id
                    .clone()
                    .map(StrBytes::from_string),
            );
        match connection
            .call::<_, HeartbeatResponse>(ApiKey::Heartbeat, &request)
            .await
        {
            Ok((_, response)) => {
                if let Some(error) = ResponseError::try_from_code(response.error_code) {
                    membership.react_to(error);
                }
            }
            Err(_) => {
                *membership.coordinator.borrow_mut() = None;
                membership.rejoin.set(true);
            }
        }
    }
}
