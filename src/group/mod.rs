//! Group coordination: the classic group protocol (JoinGroup, SyncGroup, Heartbeat,
//! LeaveGroup; client-side assignment; static membership) and committed offsets
//! (OffsetCommit, OffsetFetch, OffsetDelete), for the groups whose coordinator is this shard.
//!
//! | piece | file | role |
//! | --- | --- | --- |
//! | [`GroupCoordinator`] | `coordinator.rs` | this shard's classic groups: requests, session and rebalance timers, limits |
//! | [`ClassicGroup`] | `classic_group.rs` | one group's state machine: states, generations, leader, protocol |
//! | [`ClassicMember`] | `member.rs` | one member; the waiters of its JoinGroup and SyncGroup |
//! | [`OffsetStore`] | `offset_store.rs` | the offsets of every group this shard coordinates; limits; expiry |
//! | [`OffsetPartition`] | `offset_partition.rs` | one partition of the offsets log: replay, commit, delete, rewrite |
//! | records | `offset_record.rs` | the key and value format of the offsets log |
//! | [`ConsumerGroupCoordinator`] | `consumer_coordinator.rs` | this shard's consumer-protocol (KIP-848) groups: heartbeats, sessions, limits |
//! | [`ConsumerGroup`] | `consumer_group.rs` | one KIP-848 group: epochs, target assignment, reconciliation |
//! | [`ConsumerMember`] | `consumer_member.rs` | one KIP-848 member: subscription, epoch, what it holds |
//! | [`ServerAssignor`] | `server_assignor.rs` | the server-side `uniform` and `range` assignors |
//! | [`TopicPartitions`] | `topic_partitions.rs` | partitions by topic id, with set operations |
//! | empty groups | `empty_groups.rs` | deletion, retention hold and cleanup of empty groups, for both coordinators |
//! | [`GroupSettings`] | `settings.rs` | `[groups]` settings with Kafka's defaults |

mod classic_group;
mod consumer_coordinator;
mod consumer_group;
mod consumer_member;
mod coordinator;
mod empty_groups;
mod member;
mod offset_partition;
mod offset_record;
mod offset_store;
mod server_assignor;
mod settings;
mod topic_partitions;

pub use classic_group::{ClassicGroup, GroupState};
pub use consumer_coordinator::{
    ConsumerGroupCoordinator, ConsumerGroupSummary, ConsumerHeartbeat, ConsumerMemberSummary,
    HeartbeatAnswer, HeartbeatRefusal,
};
pub use consumer_group::{ConsumerGroup, ConsumerGroupState};
pub use consumer_member::{ConsumerMember, ReconcileState};
pub use coordinator::{
    GroupCoordinator, GroupSummary, JoinRequest, LeavingMember, MemberSummary, RetentionHold,
    SyncRequest,
};
pub use member::{ClassicMember, JoinOutcome, JoinedMember, SyncOutcome};
pub use offset_partition::{GroupOffsets, OffsetPartition};
pub use offset_record::{CommittedOffset, OffsetKey, OffsetRecordError};
pub use offset_store::{CommitRefusal, OffsetStore, GROUPS_DIRECTORY};
pub use server_assignor::{AssignorMember, ServerAssignor, RANGE_ASSIGNOR, UNIFORM_ASSIGNOR};
pub use settings::*;
pub use topic_partitions::TopicPartitions;

/// The state Kafka reports for a group it does not know.
pub const GROUP_STATE_DEAD: &str = "Dead";
/// The group type of classic groups (ListGroups v5).
pub const GROUP_TYPE_CLASSIC: &str = "classic";
/// The group type of consumer-protocol groups (KIP-848).
pub const GROUP_TYPE_CONSUMER: &str = "consumer";

/// Milliseconds since the epoch, for commit timestamps and expiry: the storage engine's clock.
pub use crate::storage::system_clock_ms as now_ms;
