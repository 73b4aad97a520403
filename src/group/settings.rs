//! Settings of group coordination (`[groups]` in the broker's TOML), with Kafka's defaults
//! where Kafka has one.

use serde::Deserialize;

/// Kafka's `offset.metadata.max.bytes`: the longest metadata string a commit may carry.
pub const OFFSET_METADATA_MAX_BYTES_DEFAULT: usize = 4096;
/// Kafka's `offsets.retention.minutes` (7 days): committed offsets of a group that has no
/// members are dropped this long after its last commit.
pub const OFFSETS_RETENTION_MS_DEFAULT: u64 = 7 * 24 * 60 * 60 * 1000;
/// Groups with committed offsets one shard keeps at most; a commit that would add one more is
/// refused with INVALID_COMMIT_OFFSET_SIZE.
pub const GROUPS_PER_SHARD_MAX_DEFAULT: usize = 100_000;
/// Partitions one group may have offsets committed for.
pub const OFFSETS_PER_GROUP_MAX_DEFAULT: usize = 100_000;
/// Commits one shard keeps in memory at most, over every group (about 150 bytes each): the
/// bound on the store's memory, since groups × partitions per group alone is not one.
pub const OFFSETS_PER_SHARD_MAX_DEFAULT: usize = 1_000_000;
/// An offsets log is rewritten with only its live commits once it is larger than this and
/// than twice what is live, so it never grows without bound.
pub const OFFSETS_REWRITE_BYTES_MIN_DEFAULT: u64 = 64 << 20;
/// How often a shard looks for expired offsets (Kafka's
/// `offsets.retention.check.interval.ms`).
pub const OFFSETS_RETENTION_CHECK_INTERVAL_MS_DEFAULT: u64 = 600_000;

/// Group coordination settings.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GroupSettings {
    /// The longest metadata string a commit may carry.
    pub offset_metadata_max_bytes: usize,
    /// Committed offsets of an empty group expire this long after its last commit.
    pub offsets_retention_ms: u64,
    /// How often expiry runs.
    pub offsets_retention_check_interval_ms: u64,
    /// Groups with committed offsets one shard keeps at most.
    pub groups_per_shard_max: usize,
    /// Partitions one group may have offsets committed for.
    pub offsets_per_group_max: usize,
    /// Commits one shard keeps at most, over every group.
    pub offsets_per_shard_max: usize,
    /// Size above which an offsets log is rewritten with its live commits only.
    pub offsets_rewrite_bytes_min: u64,
}

impl Default for GroupSettings {
    fn default() -> Self {
        Self {
            offset_metadata_max_bytes: OFFSET_METADATA_MAX_BYTES_DEFAULT,
            offsets_retention_ms: OFFSETS_RETENTION_MS_DEFAULT,
            offsets_retention_check_interval_ms: OFFSETS_RETENTION_CHECK_INTERVAL_MS_DEFAULT,
            groups_per_shard_max: GROUPS_PER_SHARD_MAX_DEFAULT,
            offsets_per_group_max: OFFSETS_PER_GROUP_MAX_DEFAULT,
            offsets_per_shard_max: OFFSETS_PER_SHARD_MAX_DEFAULT,
            offsets_rewrite_bytes_min: OFFSETS_REWRITE_BYTES_MIN_DEFAULT,
        }
    }
}

impl GroupSettings {
    /// The settings that must be positive, by name, for the broker's validation.
    pub fn positive_settings(&self) -> [(&'static str, u64); 6] {
        [
            ("groups.offsets_retention_ms", self.offsets_retention_ms),
            (
                "groups.offsets_retention_check_interval_ms",
                self.offsets_retention_check_interval_ms,
            ),
            (
                "groups.groups_per_shard_max",
                self.groups_per_shard_max as u64,
            ),
            (
                "groups.offsets_per_group_max",
                self.offsets_per_group_max as u64,
            ),
            (
                "groups.offsets_per_shard_max",
                self.offsets_per_shard_max as u64,
            ),
            (
                "groups.offsets_rewrite_bytes_min",
                self.offsets_rewrite_bytes_min,
            ),
        ]
    }
}
