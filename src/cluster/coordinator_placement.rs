//! Where the coordinator of a consumer group or a transactional id lives.
//!
//! As in Kafka, a key maps to a partition of an internal log that never changes its partition
//! count: offsets partition `crc32c(key) % OFFSETS_PARTITIONS`, where `key` is the group id
//! or transactional id as UTF-8 bytes and crc32c is the Castagnoli CRC (the one RecordBatch
//! v2 uses). That partition, and so the coordinator, is on shard `partition % shard_count`.
//! When the shard count changes, whole offsets partitions (their directories) move to another
//! shard; no key's data has to be rewritten. Both functions are fixed here and must never
//! change: a different hash would strand committed offsets after an upgrade.

/// Partitions of the internal offsets log (Kafka's `offsets.topic.num.partitions` is 50).
/// More shards than this leave the extra shards without coordinators.
pub const OFFSETS_PARTITIONS: u32 = 64;

/// The offsets partition that holds `key`'s state.
pub fn offsets_partition(key: &str) -> u32 {
    crc32c::crc32c(key.as_bytes()) % OFFSETS_PARTITIONS
}

/// The shard that coordinates `key` (a group id or a transactional id).
pub fn coordinator_shard(key: &str, shard_count: u32) -> u32 {
    debug_assert!(shard_count > 0, "a broker has at least one shard");
    offsets_partition(key) % shard_count.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placement_is_the_written_down_hash_and_spreads_keys() {
        // Pinned values: a change of hash must fail here, not strand data. The first is the
        // Castagnoli check value.
        assert_eq!(crc32c::crc32c(b"123456789"), 0xe306_9283);
        assert_eq!(crc32c::crc32c(b"orders"), 0x09a7_c08a);
        assert_eq!(offsets_partition("orders"), 0x09a7_c08a % 64);
        assert_eq!(coordinator_shard("orders", 2), (0x09a7_c08a % 64) % 2);
        assert_eq!(coordinator_shard("anything", 1), 0);
        let mut per_shard = [0usize; 4];
        for index in 0..1_000 {
            per_shard[coordinator_shard(&format!("group-{index}"), 4) as usize] += 1;
        }
        assert!(per_shard.iter().all(|&count| count > 150), "{per_shard:?}");
    }
}
