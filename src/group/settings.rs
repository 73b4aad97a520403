//! Settings of group coordination (`[groups]` in the broker's TOML), with Kafka's defaults
//! where Kafka has one.

use serde::Deserialize;

/// Kafka's `offset.metadata.max.bytes`: the longest metadata string a commit may carry.
pub const OFFSET_METADATA_MAX_BYTES_DEFAULT: usize = 4096;
/// Kafka's `offsets.retention.minutes` (7 days): committed offsets of a group that has no
/// members are dropped this long after its last commit.
pub const OFFSETS_RETENTION_MS_DEFAULT: u64 = 7 * 24 * 60 * 60 * 1000;
/// Groups one shard keeps at most, counted apart for committed offsets (a commit that would
/// add one more is refused with INVALID_COMMIT_OFFSET_SIZE) and for membership (a JoinGroup
/// that would create one more gets GROUP_MAX_SIZE_REACHED).
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

/// Kafka's `group.min.session.timeout.ms`: the shortest session a member may ask for.
pub const GROUP_MIN_SESSION_TIMEOUT_MS_DEFAULT: u64 = 6_000;
/// Kafka's `group.max.session.timeout.ms`: the longest session a member may ask for.
pub const GROUP_MAX_SESSION_TIMEOUT_MS_DEFAULT: u64 = 1_800_000;
/// Kafka's `group.initial.rebalance.delay.ms`: how long the first rebalance of an empty group
/// waits for more members (extended while they keep coming, up to the rebalance timeout), so a
/// group that starts together rebalances once and not once per member.
pub const GROUP_INITIAL_REBALANCE_DELAY_MS_DEFAULT: u64 = 3_000;
/// Members (and members-to-be, named by MEMBER_ID_REQUIRED) one group may have: Kafka's
/// `group.max.size`. Kafka's default is unbounded (2^31 - 1); a broker whose every map is
/// bounded needs a real number, and ten thousand consumers in one group is far past any
/// deployment Kafka's own documentation describes.
pub const GROUP_MAX_SIZE_DEFAULT: usize = 10_000;
/// Members one shard holds over all of its groups.
pub const GROUP_MEMBERS_PER_SHARD_MAX_DEFAULT: usize = 100_000;
/// The most bytes one member's protocol metadata (every protocol of its JoinGroup together),
/// and separately its assignment, may hold.
pub const GROUP_MEMBER_METADATA_BYTES_MAX_DEFAULT: usize = 1 << 20;
/// The most bytes of member metadata and assignments one shard holds over all of its groups:
/// the bound on membership's memory.
pub const GROUP_STATE_BYTES_PER_SHARD_MAX_DEFAULT: usize = 256 << 20;

/// Kafka's `group.consumer.session.timeout.ms`: a member of a consumer-protocol group
/// (KIP-848) that has not heartbeated for this long is removed. The broker sets it, not the
/// member.
pub const CONSUMER_GROUP_SESSION_TIMEOUT_MS_DEFAULT: u64 = 45_000;
/// Kafka's `group.consumer.heartbeat.interval.ms`: how often consumer-protocol members are
/// told to heartbeat. A member learns of a new assignment at its next heartbeat, so this is
/// also about how long a rebalance step waits.
pub const CONSUMER_GROUP_HEARTBEAT_INTERVAL_MS_DEFAULT: u64 = 5_000;
/// Topic partitions one consumer-protocol group's subscriptions may cover: the bound on the
/// target assignment and on the ownership map of one group.
pub const CONSUMER_GROUP_PARTITIONS_MAX_DEFAULT: usize = 100_000;
/// The longest topic regex (KIP-848 v1) a member may subscribe with, in bytes.
pub const CONSUMER_GROUP_REGEX_BYTES_MAX_DEFAULT: usize = 4096;
/// Topic names one member may subscribe to.
pub const CONSUMER_GROUP_SUBSCRIBED_TOPICS_MAX_DEFAULT: usize = 10_000;

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
    /// The shortest session timeout a member may ask for.
    pub group_min_session_timeout_ms: u64,
    /// The longest session timeout a member may ask for.
    pub group_max_session_timeout_ms: u64,
    /// How long an empty group's first rebalance waits for more members.
    pub group_initial_rebalance_delay_ms: u64,
    /// Members one group may have.
    pub group_max_size: usize,
    /// Members one shard may hold over all of its groups.
    pub group_members_per_shard_max: usize,
    /// Bytes of one member's protocol metadata, and of its assignment.
    pub group_member_metadata_bytes_max: usize,
    /// Bytes of member metadata and assignments one shard may hold.
    pub group_state_bytes_per_shard_max: usize,
    /// Session timeout of consumer-protocol (KIP-848) members.
    pub consumer_group_session_timeout_ms: u64,
    /// Heartbeat interval consumer-protocol members are given.
    pub consumer_group_heartbeat_interval_ms: u64,
    /// Topic partitions one consumer-protocol group may be assigned.
    pub consumer_group_partitions_max: usize,
    /// Bytes of one member's topic regex.
    pub consumer_group_regex_bytes_max: usize,
    /// Topic names one member may subscribe to.
    pub consumer_group_subscribed_topics_max: usize,
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
            group_min_session_timeout_ms: GROUP_MIN_SESSION_TIMEOUT_MS_DEFAULT,
            group_max_session_timeout_ms: GROUP_MAX_SESSION_TIMEOUT_MS_DEFAULT,
            group_initial_rebalance_delay_ms: GROUP_INITIAL_REBALANCE_DELAY_MS_DEFAULT,
            group_max_size: GROUP_MAX_SIZE_DEFAULT,
            group_members_per_shard_max: GROUP_MEMBERS_PER_SHARD_MAX_DEFAULT,
            group_member_metadata_bytes_max: GROUP_MEMBER_METADATA_BYTES_MAX_DEFAULT,
            group_state_bytes_per_shard_max: GROUP_STATE_BYTES_PER_SHARD_MAX_DEFAULT,
            consumer_group_session_timeout_ms: CONSUMER_GROUP_SESSION_TIMEOUT_MS_DEFAULT,
            consumer_group_heartbeat_interval_ms: CONSUMER_GROUP_HEARTBEAT_INTERVAL_MS_DEFAULT,
            consumer_group_partitions_max: CONSUMER_GROUP_PARTITIONS_MAX_DEFAULT,
            consumer_group_regex_bytes_max: CONSUMER_GROUP_REGEX_BYTES_MAX_DEFAULT,
            consumer_group_subscribed_topics_max: CONSUMER_GROUP_SUBSCRIBED_TOPICS_MAX_DEFAULT,
        }
    }
}

impl GroupSettings {
    /// The settings that must be positive, by name, for the broker's validation.
    pub fn positive_settings(&self) -> [(&'static str, u64); 16] {
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
            (
                "groups.group_min_session_timeout_ms",
                self.group_min_session_timeout_ms,
            ),
            ("groups.group_max_size", self.group_max_size as u64),
            (
                "groups.group_members_per_shard_max",
                self.group_members_per_shard_max as u64,
            ),
            (
                "groups.group_member_metadata_bytes_max",
                self.group_member_metadata_bytes_max as u64,
            ),
            (
                "groups.group_state_bytes_per_shard_max",
                self.group_state_bytes_per_shard_max as u64,
            ),
            (
                "groups.consumer_group_session_timeout_ms",
                self.consumer_group_session_timeout_ms,
            ),
            (
                "groups.consumer_group_heartbeat_interval_ms",
                self.consumer_group_heartbeat_interval_ms,
            ),
            (
                "groups.consumer_group_partitions_max",
                self.consumer_group_partitions_max as u64,
            ),
            (
                "groups.consumer_group_regex_bytes_max",
                self.consumer_group_regex_bytes_max as u64,
            ),
            (
                "groups.consumer_group_subscribed_topics_max",
                self.consumer_group_subscribed_topics_max as u64,
            ),
        ]
    }
}
