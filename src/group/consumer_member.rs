//! One member of a consumer-protocol group (KIP-848): its subscription, its epoch, and where
//! its reconciliation towards the group's target assignment stands.

use std::time::{Duration, Instant};

use regex::Regex;

use super::server_assignor::ServerAssignor;
use super::topic_partitions::TopicPartitions;

/// Where a member's reconciliation stands (Kafka's `MemberState`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReconcileState {
    /// It holds its whole target at the group's assignment epoch.
    Stable,
    /// It must give up partitions (`pending_revocation`) before it moves to the new epoch.
    UnrevokedPartitions,
    /// It is at the new epoch, and waits for partitions other members still hold.
    UnreleasedPartitions,
}

/// A member's subscription: topic names, or a regex (v1), or both.
#[derive(Debug, Clone, Default)]
pub struct Subscription {
    /// Topics named.
    pub topic_names: Vec<String>,
    /// The regex as the member sent it.
    pub regex_source: Option<String>,
    /// It, compiled to match whole topic names (as Kafka's RE2J `matches`).
    pub regex: Option<Regex>,
}

impl Subscription {
    /// Whether it names or matches `topic`.
    pub fn covers(&self, topic: &str) -> bool {
        self.topic_names.iter().any(|name| name == topic)
            || self
                .regex
                .as_ref()
                .is_some_and(|regex| regex.is_match(topic))
    }

    /// Bytes it holds, against the shard's group state budget.
    pub fn bytes(&self) -> usize {
        self.topic_names.iter().map(String::len).sum::<usize>()
            + self.regex_source.as_ref().map_or(0, String::len) * 2
    }

    /// Whether two subscriptions are the same.
    pub fn same_as(&self, other: &Subscription) -> bool {
        self.topic_names == other.topic_names && self.regex_source == other.regex_source
    }
}

/// One member.
#[derive(Debug, Clone)]
pub struct ConsumerMember {
    /// Its id (v1: chosen by the client).
    pub member_id: String,
    /// Its static instance id.
    pub instance_id: Option<String>,
    /// Its rack.
    pub rack_id: Option<String>,
    /// The client id of its last full heartbeat.
    pub client_id: String,
    /// Where it connected from.
    pub client_host: String,
    /// Its epoch: the assignment epoch it has reconciled to.
    pub member_epoch: i32,
    /// Its epoch before the last change, accepted once more (the answer may have been lost).
    pub previous_member_epoch: i32,
    /// Where its reconciliation stands.
    pub state: ReconcileState,
    /// The partitions it may consume now.
    pub assigned: TopicPartitions,
    /// The partitions it must give up.
    pub pending_revocation: TopicPartitions,
    /// What it subscribes to.
    pub subscription: Subscription,
    /// The assignor it asked for.
    pub server_assignor: Option<ServerAssignor>,
    /// How long it may take to revoke partitions.
    pub rebalance_timeout: Duration,
    /// Its last heartbeat.
    pub last_heartbeat: Instant,
    /// When it must have revoked `pending_revocation` by.
    pub revocation_deadline: Option<Instant>,
    /// A static member that left with epoch -2: its assignment waits for its instance to
    /// come back until its session ends.
    pub departed: bool,
    /// Order of joining, for DescribeGroups-like listings.
    pub join_order: u64,
}

impl ConsumerMember {
    /// Whether its session or its revocation deadline has passed.
    pub fn expired(&self, now: Instant, session_timeout: Duration) -> bool {
        now >= self.last_heartbeat + session_timeout
            || self
                .revocation_deadline
                .is_some_and(|deadline| now >= deadline)
    }

    /// When to look at it next: the end of its session or its revocation deadline.
    pub fn next_deadline(&self, session_timeout: Duration) -> Instant {
        let session_end = self.last_heartbeat + session_timeout;
        self.revocation_deadline
            .map_or(session_end, |deadline| deadline.min(session_end))
    }

    /// Every partition it holds (assigned or still revoking).
    pub fn held(&self) -> impl Iterator<Item = (u128, i32)> + '_ {
        self.assigned.iter().chain(self.pending_revocation.iter())
    }
}
