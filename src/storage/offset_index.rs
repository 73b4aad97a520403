//! The sparse offset index of one segment.
//!
//! On disk (`<base_offset:020>.index`) it is a packed array of 8-byte entries, big-endian:
//!
//! ```text
//! relative_offset: u32   batch base offset - segment base offset
//! position:        u32   byte position of that batch in the .log file
//! ```
//!
//! One entry is added per `index_interval_bytes` of batches. Both columns strictly increase.
//! In memory the columns are kept apart so the binary search touches only offsets.

/// Bytes of one entry on disk.
pub const OFFSET_INDEX_ENTRY_BYTES: usize = 8;

/// A position in a segment's `.log` file found through the index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexEntry {
    /// Batch base offset relative to the segment's base offset.
    pub relative_offset: u32,
    /// Byte position of the batch in the `.log` file.
    pub position: u32,
}

/// The sparse offset index of one segment.
#[derive(Debug, Default, Clone)]
pub struct OffsetIndex {
    relative_offsets: Vec<u32>,
    positions: Vec<u32>,
}

impl OffsetIndex {
    /// Entries held.
    pub fn len(&self) -> usize {
        self.relative_offsets.len()
    }

    /// No entries.
    pub fn is_empty(&self) -> bool {
        self.relative_offsets.is_empty()
    }

    /// The last entry, if any.
    pub fn last(&self) -> Option<IndexEntry> {
        Some(IndexEntry {
            relative_offset: *self.relative_offsets.last()?,
            position: *self.positions.last()?,
        })
    }

    /// Appends an entry. Entries that would break the strict ordering are ignored, which keeps
    /// the index valid whatever the caller does.
    pub fn push(&mut self, entry: IndexEntry) {
        if let Some(last) = self.last() {
            if entry.relative_offset <= last.relative_offset || entry.position <= last.position {
                return;
            }
        }
        self.relative_offsets.push(entry.relative_offset);
        self.positions.push(entry.position);
    }

    /// The entry with the largest relative offset `<= relative_offset`, or `None` when the
    /// target lies before the first entry (start at position 0). Branch-free binary search:
    /// the loop runs log2(len) times whatever the data, and allocates nothing.
    #[inline]
    pub fn lookup(&self, relative_offset: u32) -> Option<IndexEntry> {
        let offsets = &self.relative_offsets[..];
        let mut size = offsets.len();
        if size == 0 {
            return None;
        }
        let mut base = 0usize;
        while size > 1 {
            let half = size / 2;
            let middle = base + half;
            // `middle < offsets.len()` because base + size <= len throughout.
            base = if offsets.get(middle).copied().unwrap_or(u32::MAX) <= relative_offset {
                middle
            } else {
                base
            };
            size -= half;
        }
        let found = offsets.get(base).copied()?;
        if found > relative_offset {
            return None;
        }
        Some(IndexEntry {
            relative_offset: found,
            position: self.positions.get(base).copied()?,
        })
    }

    /// Drops every entry whose position is `>= position` (after a truncation of the log).
    pub fn truncate_to_position(&mut self, position: u64) {
        let keep = self
            .positions
            .partition_point(|&entry| u64::from(entry) < position);
        self.relative_offsets.truncate(keep);
        self.positions.truncate(keep);
    }

    /// The on-disk form.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.len() * OFFSET_INDEX_ENTRY_BYTES);
        for (offset, position) in self.relative_offsets.iter().zip(&self.positions) {
            out.extend_from_slice(&offset.to_be_bytes());
            out.extend_from_slice(&position.to_be_bytes());
        }
        out
    }

    /// Parses the on-disk form and checks it against the segment: entries strictly increase
    /// and every position lies inside a log of `log_bytes`. Any violation returns the reason,
    /// and the caller rebuilds the index from the log.
    pub fn decode(bytes: &[u8], log_bytes: u64) -> Result<Self, &'static str> {
        if bytes.len() % OFFSET_INDEX_ENTRY_BYTES != 0 {
            return Err("size is not a multiple of the entry size");
        }
        let mut index = Self::default();
        for chunk in bytes.chunks_exact(OFFSET_INDEX_ENTRY_BYTES) {
            let relative_offset = u32::from_be_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
            let position = u32::from_be_bytes([chunk[4], chunk[5], chunk[6], chunk[7]]);
            if u64::from(position) >= log_bytes {
                return Err("entry points past the end of the log");
            }
            if let Some(last) = index.last() {
                if relative_offset <= last.relative_offset || position <= last.position {
                    return Err("entries are not strictly increasing");
                }
            }
            index.relative_offsets.push(relative_offset);
            index.positions.push(position);
        }
        Ok(index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index_of(entries: &[(u32, u32)]) -> OffsetIndex {
        let mut index = OffsetIndex::default();
        for &(relative_offset, position) in entries {
            index.push(IndexEntry {
                relative_offset,
                position,
            });
        }
        index
    }

    #[test]
    fn lookup_at_every_boundary() {
        let entries: Vec<(u32, u32)> = (0..100).map(|i| (10 + i * 10, 4096 * (i + 1))).collect();
        let index = index_of(&entries);
        assert_eq!(index.lookup(0), None);
        assert_eq!(index.lookup(9), None);
        for &(offset, position) in &entries {
            for probe in [offset, offset + 1, offset + 9] {
                assert_eq!(
                    index.lookup(probe),
                    Some(IndexEntry {
                        relative_offset: offset,
                        position
                    }),
                    "probe {probe}"
                );
            }
        }
        assert_eq!(
            index.lookup(u32::MAX).map(|e| e.relative_offset),
            Some(1000)
        );
        assert_eq!(OffsetIndex::default().lookup(5), None);
        assert_eq!(index_of(&[(3, 7)]).lookup(3).map(|e| e.position), Some(7));
    }

    #[test]
    fn push_ignores_out_of_order_entries() {
        let index = index_of(&[(5, 100), (5, 200), (4, 300), (6, 50), (7, 400)]);
        assert_eq!(index.len(), 2);
    }

    #[test]
    fn encode_decode_and_garbage() {
        let index = index_of(&[(1, 10), (2, 20), (9, 90)]);
        let bytes = index.encode();
        let decoded = OffsetIndex::decode(&bytes, 100).expect("valid");
        assert_eq!(decoded.encode(), bytes);
        assert!(OffsetIndex::decode(&bytes, 90).is_err(), "past end of log");
        assert!(OffsetIndex::decode(&bytes[..7], 100).is_err());
        let mut swapped = bytes.clone();
        swapped[..8].copy_from_slice(&bytes[8..16]);
        assert!(OffsetIndex::decode(&swapped, 100).is_err());
    }

    #[test]
    fn truncate_to_position() {
        let mut index = index_of(&[(1, 10), (2, 20), (9, 90)]);
        index.truncate_to_position(20);
        assert_eq!(index.len(), 1);
        assert_eq!(index.last().map(|e| e.position), Some(10));
    }
}
