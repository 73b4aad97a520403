//! [`OffsetStore`]: the committed offsets of every group this shard coordinates. Group `g`
//! lives in offsets partition `crc32c(g) % OFFSETS_PARTITIONS`, and that partition on shard
//! `partition % shards` (see `cluster::coordinator_placement`), so a group's commits and its
//! coordinator are on one core, and a change of shard count moves whole partitions (their
//! directories), never individual groups.

use std::collections::HashMap;
use std::path::Path;
use std::rc::Rc;

use super::RetentionHold;
use tracing::{info, warn};

use crate::cluster::{offsets_partition, OFFSETS_PARTITIONS};
use crate::config::BrokerConfig;
use crate::storage::{LogConfig, MemTableBudget, StorageError, StorageResult};

use super::offset_partition::{GroupOffsets, OffsetPartition};
use super::offset_record::CommittedOffset;
use super::GroupSettings;

/// Directory under the data directory holding one directory per offsets partition.
pub const GROUPS_DIRECTORY: &str = "groups";
/// MemTable bytes the offsets logs of one shard share (replay and rewrites read them).
const OFFSETS_MEMTABLE_BUDGET_BYTES: usize = 8 << 20;
/// Segment size of an offsets log: small, since rewrites keep it small.
const OFFSETS_SEGMENT_BYTES: u64 = 16 << 20;

/// Why a commit was refused before it reached the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitRefusal {
    /// Another shard coordinates the group.
    NotCoordinator,
    /// The shard holds `groups_per_shard_max` groups already.
    TooManyGroups,
    /// The group would hold more than `offsets_per_group_max` partitions.
    TooManyOffsets,
    /// The shard would hold more than `offsets_per_shard_max` commits in all.
    TooManyOffsetsOnShard,
}

/// The committed offsets this shard coordinates.
pub struct OffsetStore {
    shard_id: u32,
    shard_count: u32,
    settings: GroupSettings,
    partitions: HashMap<u32, Rc<OffsetPartition>>,
}

impl OffsetStore {
    /// Opens every offsets partition this shard owns and loads its commits. The shard answers
    /// nothing before this is done, so no client sees a coordinator without its offsets.
    pub async fn open(config: &BrokerConfig, shard_id: u32) -> StorageResult<Self> {
        let shard_count = config.shard_count() as u32;
        let root = config.data_dir.join(GROUPS_DIRECTORY);
        Self::open_in(&root, config, shard_id, shard_count).await
    }

    async fn open_in(
        root: &Path,
        config: &BrokerConfig,
        shard_id: u32,
        shard_count: u32,
    ) -> StorageResult<Self> {
        let log_config = LogConfig {
            segment_bytes: OFFSETS_SEGMENT_BYTES,
            retention_ms: None,
            retention_bytes: None,
            ..config.log.log_config()
        };
        let budget = MemTableBudget::new(OFFSETS_MEMTABLE_BUDGET_BYTES);
        let mut partitions = HashMap::new();
        for index in (0..OFFSETS_PARTITIONS).filter(|index| index % shard_count == shard_id) {
            let partition = OffsetPartition::open(
                index,
                root.join(format!("offsets-{index:02}")),
                log_config.clone(),
                budget.clone(),
                config.groups.offsets_rewrite_bytes_min,
            )
            .await?;
            partitions.insert(index, Rc::new(partition));
        }
        Ok(Self {
            shard_id,
            shard_count,
            settings: config.groups.clone(),
            partitions,
        })
    }

    /// The settings in force.
    pub fn settings(&self) -> &GroupSettings {
        &self.settings
    }

    /// Whether this shard coordinates `group`.
    pub fn coordinates(&self, group: &str) -> bool {
        self.partition(group).is_some()
    }

    fn partition(&self, group: &str) -> Option<&Rc<OffsetPartition>> {
        let index = offsets_partition(group);
        debug_assert_eq!(
            index % self.shard_count == self.shard_id,
            self.partitions.contains_key(&index)
        );
        self.partitions.get(&index)
    }

    fn group_count(&self) -> usize {
        self.partitions
            .values()
            .map(|partition| partition.group_count())
            .sum()
    }

    /// Every group with committed offsets this shard coordinates, sorted.
    pub fn groups(&self) -> Vec<String> {
        let mut groups: Vec<String> = self
            .partitions
            .values()
            .flat_map(|partition| partition.group_names())
            .collect();
        groups.sort_unstable();
        groups
    }

    /// Deletes every committed offset of `group` (DeleteGroups).
    pub async fn delete_group(&self, group: &str, now_ms: i64) -> StorageResult<()> {
        let doomed: Vec<(String, i32)> = self.group_offsets(group).into_keys().collect();
        self.delete(group, &doomed, now_ms).await
    }

    /// Whether `group` has an offset committed for the partition.
    pub fn is_committed(&self, group: &str, topic: &str, partition: i32) -> bool {
        self.partition(group)
            .is_some_and(|offsets| offsets.is_committed(group, topic, partition))
    }

    /// Whether `group` has any committed offset.
    pub fn has_group(&self, group: &str) -> bool {
        self.partition(group)
            .is_some_and(|partition| partition.has_group(group))
    }

    /// Checks a commit of `new_partitions` partitions not yet committed for `group` against the
    /// limits.
    pub fn admit(&self, group: &str, new_partitions: usize) -> Result<(), CommitRefusal> {
        let partition = self.partition(group).ok_or(CommitRefusal::NotCoordinator)?;
        if !partition.has_group(group) && self.group_count() >= self.settings.groups_per_shard_max {
            return Err(CommitRefusal::TooManyGroups);
        }
        if partition.offsets_of(group) + new_partitions > self.settings.offsets_per_group_max {
            return Err(CommitRefusal::TooManyOffsets);
        }
        let on_shard: usize = self
            .partitions
            .values()
            .map(|partition| partition.offset_count())
            .sum();
        if on_shard + new_partitions > self.settings.offsets_per_shard_max {
            return Err(CommitRefusal::TooManyOffsetsOnShard);
        }
        Ok(())
    }

    /// Stores commits (durably, as the flush policy says) and makes them visible.
    pub async fn commit(
        &self,
        group: &str,
        entries: Vec<(String, i32, CommittedOffset)>,
    ) -> StorageResult<()> {
        let partition = self
            .partition(group)
            .cloned()
            .ok_or_else(|| not_here(group))?;
        partition.commit(group, entries).await
    }

    /// The committed offset of one partition.
    pub fn committed(&self, group: &str, topic: &str, partition: i32) -> Option<CommittedOffset> {
        self.partition(group)?.committed(group, topic, partition)
    }

    /// All of `group`'s committed offsets.
    pub fn group_offsets(&self, group: &str) -> GroupOffsets {
        self.partition(group)
            .map(|partition| partition.group_offsets(group))
            .unwrap_or_default()
    }

    /// Deletes committed offsets of `group`.
    pub async fn delete(
        &self,
        group: &str,
        partitions: &[(String, i32)],
        now_ms: i64,
    ) -> StorageResult<()> {
        let partition = self
            .partition(group)
            .cloned()
            .ok_or_else(|| not_here(group))?;
        partition.delete(group, partitions, now_ms).await
    }

    /// Deletes every group's committed offsets of the topics named (deleted topics).
    pub async fn forget_topics(&self, topics: &[String], now_ms: i64) {
        for partition in self.partitions.values() {
            for group in partition.group_names() {
                let doomed: Vec<(String, i32)> = partition
                    .group_offsets(&group)
                    .into_keys()
                    .filter(|(topic, _)| topics.contains(topic))
                    .collect();
                if doomed.is_empty() {
                    continue;
                }
                if let Err(error) = partition.delete(&group, &doomed, now_ms).await {
                    warn!(%group, %error, "removing the offsets of a deleted topic failed");
                }
            }
        }
    }

    /// Drops the offsets of groups without members whose last commit, and the moment they
    /// became empty, are both `offsets_retention_ms` past (KIP-211): `hold` says which groups
    /// have members and since when the others are empty. Returns the groups expired.
    pub async fn expire(&self, now_ms: i64, hold: impl Fn(&str) -> RetentionHold) -> usize {
        let before_ms = now_ms.saturating_sub(self.settings.offsets_retention_ms as i64);
        let mut expired = 0;
        for partition in self.partitions.values() {
            for group in partition.groups_idle_since(before_ms) {
                match hold(&group) {
                    RetentionHold::Active => continue,
                    RetentionHold::EmptySince(since_ms) if since_ms >= before_ms => continue,
                    _ => {}
                }
                let doomed: Vec<(String, i32)> =
                    partition.group_offsets(&group).into_keys().collect();
                match partition.delete(&group, &doomed, now_ms).await {
                    Ok(()) => {
                        expired += 1;
                        info!(%group, partitions = doomed.len(), "committed offsets expired");
                    }
                    Err(error) => warn!(%group, %error, "expiring committed offsets failed"),
                }
            }
        }
        expired
    }

    /// Closes every offsets log (clean shutdown).
    pub async fn close(&self) {
        for partition in self.partitions.values() {
            if let Err(error) = partition.close().await {
                warn!(%error, "closing an offsets log failed");
            }
        }
    }
}

fn not_here(group: &str) -> StorageError {
    StorageError::Io {
        operation: "commit",
        path: group.into(),
        source: std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "this shard does not coordinate the group",
        ),
    }
}
