//! Partitioners: Kafka's murmur2 for keyed records (the Java client's, and librdkafka's
//! `murmur2_random`), and a sticky choice for records without a key.

use std::cell::RefCell;
use std::collections::HashMap;

/// Kafka's murmur2 hash of a key (`org.apache.kafka.common.utils.Utils.murmur2`).
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let length = data.len();
    let mut h: u32 = SEED ^ (length as u32);
    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        let mut k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let rest = chunks.remainder();
    if rest.len() >= 3 {
        h ^= u32::from(rest[2]) << 16;
    }
    if rest.len() >= 2 {
        h ^= u32::from(rest[1]) << 8;
    }
    if !rest.is_empty() {
        h ^= u32::from(rest[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// The partition of a keyed record, as the Java client picks it.
pub fn partition_for_key(key: &[u8], partitions: usize) -> i32 {
    let positive = murmur2(key) & 0x7fff_ffff;
    (positive as u32 % partitions.max(1) as u32) as i32
}

/// Records without a key stick to one partition per topic until its batch is sent, then move
/// on (KIP-480), so batches fill instead of spreading thin.
#[derive(Default)]
pub struct StickyPartitioner {
    current: RefCell<HashMap<String, i32>>,
    next_seed: RefCell<u64>,
}

impl StickyPartitioner {
    /// The partition for the next unkeyed record of `topic`.
    pub fn partition(&self, topic: &str, partitions: usize) -> i32 {
        if let Some(partition) = self.current.borrow().get(topic) {
            if (*partition as usize) < partitions {
                return *partition;
            }
        }
        let partition = self.pick(partitions);
        self.current
            .borrow_mut()
            .insert(topic.to_string(), partition);
        partition
    }

    /// A batch of `topic` was sent: the next unkeyed record goes elsewhere.
    pub fn batch_sent(&self, topic: &str, partition: i32, partitions: usize) {
        let mut current = self.current.borrow_mut();
        if current.get(topic) == Some(&partition) && partitions > 1 {
            let mut next = self.pick(partitions);
            if next == partition {
                next = (next + 1) % partitions as i32;
            }
            current.insert(topic.to_string(), next);
        }
    }

    fn pick(&self, partitions: usize) -> i32 {
        let mut seed = self.next_seed.borrow_mut();
        // splitmix64: cheap and well spread; no cryptographic need here.
        *seed = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = *seed;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        (z % partitions.max(1) as u64) as i32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur2_matches_the_java_client() {
        // Values from Kafka's UtilsTest.testMurmur2.
        let cases: [(&[u8], i32); 6] = [
            (b"21", -973_932_308),
            (b"foobar", -790_332_482),
            (b"a-little-bit-long-string", -985_981_536),
            (b"a-little-bit-longer-string", -1_486_304_829),
            (
                b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58_897_971,
            ),
            (b"abc", 479_470_107),
        ];
        for (key, expected) in cases {
            assert_eq!(murmur2(key), expected, "{:?}", String::from_utf8_lossy(key));
        }
    }

    #[test]
    fn sticky_moves_after_a_batch() {
        let sticky = StickyPartitioner::default();
        let first = sticky.partition("t", 6);
        assert_eq!(sticky.partition("t", 6), first);
        sticky.batch_sent("t", first, 6);
        assert_ne!(sticky.partition("t", 6), first);
        assert_eq!(sticky.partition("one", 1), 0);
    }
}
