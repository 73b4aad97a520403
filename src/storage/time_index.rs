//! The sparse time index of one segment.
//!
//! On disk (`<base_offset:020>.timeindex`) it is a packed array of 12-byte entries, big-endian:
//!
//! ```text
//! timestamp:       i64   the largest timestamp seen in the segment up to this batch
//! relative_offset: u32   base offset of the batch that raised it - segment base offset
//! ```
//!
//! An entry is added, at the offset index's cadence, only when the largest timestamp grew, so
//! both columns strictly increase. A lookup for time `t` returns the last entry whose timestamp
//! is below `t`: every record before that entry's batch is older than `t`, so a scan for the
//! first record at or after `t` may start there.

/// Bytes of one entry on disk.
pub const TIME_INDEX_ENTRY_BYTES: usize = 12;

/// One time index entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeIndexEntry {
    /// Largest timestamp so far in the segment.
    pub timestamp: i64,
    /// Relative base offset of the batch that carried it.
    pub relative_offset: u32,
}

/// The sparse time index of one segment.
#[derive(Debug, Default, Clone)]
pub struct TimeIndex {
    entries: Vec<TimeIndexEntry>,
}

impl TimeIndex {
    /// Entries held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// No entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The last entry: the segment's largest indexed timestamp.
    pub fn last(&self) -> Option<TimeIndexEntry> {
        self.entries.last().copied()
    }

    /// Appends an entry if it raises the largest timestamp and moves the offset forward.
    pub fn push(&mut self, entry: TimeIndexEntry) {
        if let Some(last) = self.last() {
            if entry.timestamp <= last.timestamp || entry.relative_offset < last.relative_offset {
                return;
            }
        }
        self.entries.push(entry);
    }

    /// The last entry with a timestamp strictly below `timestamp`.
    pub fn lookup_before(&self, timestamp: i64) -> Option<TimeIndexEntry> {
        let count = self
            .entries
            .partition_point(|entry| entry.timestamp < timestamp);
        count
            .checked_sub(1)
            .and_then(|at| self.entries.get(at))
            .copied()
    }

    /// Drops every entry at or after `relative_offset`.
    pub fn truncate_to_offset(&mut self, relative_offset: u32) {
        let keep = self
            .entries
            .partition_point(|entry| entry.relative_offset < relative_offset);
        self.entries.truncate(keep);
    }

    /// The on-disk form.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.len() * TIME_INDEX_ENTRY_BYTES);
        for entry in &self.entries {
            out.extend_from_slice(&entry.timestamp.to_be_bytes());
            out.extend_from_slice(&entry.relative_offset.to_be_bytes());
        }
        out
    }

    /// Parses the on-disk form; entries must increase and stay below `relative_offset_end`.
    pub fn decode(bytes: &[u8], relative_offset_end: u64) -> Result<Self, &'static str> {
        if !bytes.len().is_multiple_of(TIME_INDEX_ENTRY_BYTES) {
            return Err("size is not a multiple of the entry size");
        }
        let mut index = Self::default();
        for chunk in bytes.chunks_exact(TIME_INDEX_ENTRY_BYTES) {
            let mut timestamp = [0u8; 8];
            timestamp.copy_from_slice(&chunk[..8]);
            let entry = TimeIndexEntry {
                timestamp: i64::from_be_bytes(timestamp),
                relative_offset: u32::from_be_bytes([chunk[8], chunk[9], chunk[10], chunk[11]]),
            };
            if u64::from(entry.relative_offset) >= relative_offset_end {
                return Err("entry points past the end of the segment");
            }
            if let Some(last) = index.last() {
                if entry.timestamp <= last.timestamp || entry.relative_offset < last.relative_offset
                {
                    return Err("entries are not increasing");
                }
            }
            index.entries.push(entry);
        }
        Ok(index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_before_and_truncate() {
        let mut index = TimeIndex::default();
        for (timestamp, relative_offset) in [(100, 0), (200, 5), (150, 6), (300, 9)] {
            index.push(TimeIndexEntry {
                timestamp,
                relative_offset,
            });
        }
        assert_eq!(index.len(), 3, "a non-increasing timestamp is not indexed");
        assert_eq!(index.lookup_before(100), None);
        assert_eq!(index.lookup_before(101).map(|e| e.relative_offset), Some(0));
        assert_eq!(index.lookup_before(300).map(|e| e.relative_offset), Some(5));
        assert_eq!(
            index.lookup_before(i64::MAX).map(|e| e.relative_offset),
            Some(9)
        );
        let decoded = TimeIndex::decode(&index.encode(), 10).expect("valid");
        assert_eq!(decoded.encode(), index.encode());
        assert!(TimeIndex::decode(&index.encode(), 9).is_err());
        assert!(TimeIndex::decode(&[1, 2, 3], 9).is_err());
        index.truncate_to_offset(5);
        assert_eq!(index.len(), 1);
    }
}
