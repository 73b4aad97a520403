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
//! | [`GroupSettings`] | `settings.rs` | `[groups]` settings with Kafka's defaults |

mod classic_group;
mod coordinator;
mod member;
mod offset_partition;
mod offset_record;
mod offset_store;
mod settings;

pub use classic_group::{ClassicGroup, GroupState};
pub use coordinator::{
    GroupCoordinator, GroupSummary, JoinRequest, LeavingMember, MemberSummary, RetentionHold,
    SyncRequest,
};
pub use member::{ClassicMember, JoinOutcome, JoinedMember, SyncOutcome};
pub use offset_partition::{GroupOffsets, OffsetPartition};
pub use offset_record::{CommittedOffset, OffsetKey, OffsetRecordError};
pub use offset_store::{CommitRefusal, OffsetStore, GROUPS_DIRECTORY};
pub use settings::*;

/// The state Kafka reports for a group it does not know.
pub const GROUP_STATE_DEAD: &str = "Dead";
/// The group type of classic groups (ListGroups v5).
pub const GROUP_TYPE_CLASSIC: &str = "classic";

/// Milliseconds since the epoch, for commit timestamps and expiry: the storage engine's clock.
pub use crate::storage::system_clock_ms as now_ms;
