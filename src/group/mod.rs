//! Group coordination. Today: committed offsets (OffsetCommit, OffsetFetch, OffsetDelete) for
//! groups that manage their own assignment (`assign()` consumers, generation -1); the group
//! membership protocols come next and will live here beside them.
//!
//! | piece | file | role |
//! | --- | --- | --- |
//! | [`OffsetStore`] | `offset_store.rs` | the offsets of every group this shard coordinates; limits; expiry |
//! | [`OffsetPartition`] | `offset_partition.rs` | one partition of the offsets log: replay, commit, delete, rewrite |
//! | records | `offset_record.rs` | the key and value format of the offsets log |
//! | [`GroupSettings`] | `settings.rs` | `[groups]` settings with Kafka's defaults |

mod offset_partition;
mod offset_record;
mod offset_store;
mod settings;

pub use offset_partition::{GroupOffsets, OffsetPartition};
pub use offset_record::{CommittedOffset, OffsetKey, OffsetRecordError};
pub use offset_store::{CommitRefusal, OffsetStore, GROUPS_DIRECTORY};
pub use settings::*;

/// The state Kafka reports for a group without members (every group, until membership).
pub const GROUP_STATE_EMPTY: &str = "Empty";
/// The state Kafka reports for a group it does not know.
pub const GROUP_STATE_DEAD: &str = "Dead";
/// The group type of classic groups (ListGroups v5).
pub const GROUP_TYPE_CLASSIC: &str = "classic";

/// Milliseconds since the epoch, for commit timestamps and expiry: the storage engine's clock.
pub use crate::storage::system_clock_ms as now_ms;
