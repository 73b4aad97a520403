//! Where the coordinator of a consumer group or a transactional id lives: on shard
//! `crc32c(key) % shard_count`, where `key` is the group id or transactional id as UTF-8 bytes
//! and crc32c is the Castagnoli CRC (the one RecordBatch v2 uses). The hash is fixed here
//! and must never change: committed offsets and transaction state will live on the shard it
//! names, so a different hash would strand them after an upgrade.

/// The shard that coordinates `key` (a group id or a transactional id).
pub fn coordinator_shard(key: &str, shard_count: u32) -> u32 {
    debug_assert!(shard_count > 0, "a broker has at least one shard");
    crc32c::crc32c(key.as_bytes()) % shard_count.max(1)
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
        assert_eq!(coordinator_shard("orders", 2), 0x09a7_c08a % 2);
        assert_eq!(coordinator_shard("anything", 1), 0);
        let mut per_shard = [0usize; 4];
        for index in 0..1_000 {
            per_shard[coordinator_shard(&format!("group-{index}"), 4) as usize] += 1;
        }
        assert!(per_shard.iter().all(|&count| count > 150), "{per_shard:?}");
    }
}
