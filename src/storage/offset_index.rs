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
    /// Every `FENCE_STRIDE`-th relative offset: the small first level of the lookup.
    fences: Vec<u32>,
    /// Fences per unit of relative offset, `(fences - 1) / (last fence - first fence)`: the
    /// interpolation slope over `fences`.
    slope: f64,
    /// Entries per unit of relative offset over the whole index.
    entry_slope: f64,
}

/// Up to this many entries (16 KiB of offsets, L1-resident) a single interpolation over all
/// entries beats two levels: drift stays small and there is one gallop instead of two.
const SINGLE_LEVEL_ENTRIES_MAX: usize = 4096;

/// Entries per block under one fence: small enough that offsets within a block drift little
/// from the block's straight line, large enough that the fences of a full segment fit in L1.
const FENCE_STRIDE: usize = 64;

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
        if (self.relative_offsets.len() - 1).is_multiple_of(FENCE_STRIDE) {
            self.update_fences(self.relative_offsets.len() - 1);
        }
        self.entry_slope = slope_of(&self.relative_offsets);
    }

    /// The entry with the largest relative offset `<= relative_offset`, or `None` when the
    /// target lies before the first entry (start at position 0). Allocates nothing.
    ///
    /// Up to 4,096 entries: interpolation over all of them, then galloping from the guess.
    /// Above that, two levels. Entries are one per `index_interval_bytes` of batches, so offsets grow close
    /// to linearly (drifting over long runs as batch sizes vary). First the block: `fences`
    /// holds every 64th offset (16 KiB for a full 1 GiB segment, so it stays in L1); the fence
    /// is guessed by interpolation and found by galloping from the guess, which over a short,
    /// cache-resident array needs only a step or two. Then the slot: a branch-free binary search
    /// over the block's 64 offsets. Skewed data only costs more gallop steps; the worst case
    /// stays logarithmic.
    #[inline]
    pub fn lookup(&self, relative_offset: u32) -> Option<IndexEntry> {
        let offsets = self.relative_offsets.as_slice();
        if relative_offset < *offsets.first()? {
            return None;
        }
        if offsets.len() <= SINGLE_LEVEL_ENTRIES_MAX {
            let slot = floor_slot(offsets, relative_offset, self.entry_slope);
            return Some(IndexEntry {
                relative_offset: offsets.get(slot).copied()?,
                position: self.positions.get(slot).copied()?,
            });
        }
        let fence = floor_slot(&self.fences, relative_offset, self.slope);
        let start = fence * FENCE_STRIDE;
        let end = (start + FENCE_STRIDE).min(offsets.len());
        let block = offsets.get(start..end)?;
        // Within one block: std's branch-free binary search, six steps over four cache lines.
        // The block starts at its fence, which is <= target, so the count is at least one.
        let at_or_below = block.partition_point(|&offset| offset <= relative_offset);
        let slot = start + at_or_below.checked_sub(1)?;
        Some(IndexEntry {
            relative_offset: offsets.get(slot).copied()?,
            position: self.positions.get(slot).copied()?,
        })
    }

    fn update_fences(&mut self, from_entry: usize) {
        self.fences.truncate(from_entry.div_ceil(FENCE_STRIDE));
        let mut slot = self.fences.len() * FENCE_STRIDE;
        while let Some(&offset) = self.relative_offsets.get(slot) {
            self.fences.push(offset);
            slot += FENCE_STRIDE;
        }
        self.slope = slope_of(&self.fences);
        self.entry_slope = slope_of(&self.relative_offsets);
    }

    /// Drops every entry whose position is `>= position` (after a truncation of the log).
    pub fn truncate_to_position(&mut self, position: u64) {
        let keep = self
            .positions
            .partition_point(|&entry| u64::from(entry) < position);
        self.relative_offsets.truncate(keep);
        self.positions.truncate(keep);
        self.update_fences(keep);
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
        if !bytes.len().is_multiple_of(OFFSET_INDEX_ENTRY_BYTES) {
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
        index.update_fences(0);
        Ok(index)
    }
}

/// Slots per unit of value over an ascending array: the interpolation slope.
fn slope_of(values: &[u32]) -> f64 {
    match (values.first(), values.last()) {
        (Some(&first), Some(&last)) if last > first => {
            (values.len() - 1) as f64 / f64::from(last - first)
        }
        _ => 0.0,
    }
}

/// The largest slot of `values` (ascending, `values[0] <= target`) holding a value `<= target`:
/// an interpolated guess from `slope`, galloping to bracket the answer, then bisection.
fn floor_slot(values: &[u32], target: u32, slope: f64) -> usize {
    let (Some(&first), Some(&last)) = (values.first(), values.last()) else {
        return 0;
    };
    let last_slot = values.len() - 1;
    if target >= last {
        return last_slot;
    }
    let at = |slot: usize| values.get(slot).copied().unwrap_or(u32::MAX);
    let guess = ((f64::from(target.saturating_sub(first)) * slope) as usize).min(last_slot);
    // Bracket: values[low] <= target < values[high].
    let (mut low, mut high) = if at(guess) <= target {
        let (mut low, mut step) = (guess, 1);
        loop {
            let probe = (guess + step).min(last_slot);
            if at(probe) > target {
                break (low, probe);
            }
            low = probe;
            step *= 2;
        }
    } else {
        let (mut high, mut step) = (guess, 1);
        loop {
            let probe = guess.saturating_sub(step);
            if probe == 0 || at(probe) <= target {
                break (probe, high);
            }
            high = probe;
            step *= 2;
        }
    };
    while high - low > 1 {
        let middle = low + (high - low) / 2;
        if at(middle) <= target {
            low = middle;
        } else {
            high = middle;
        }
    }
    low
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
    fn lookup_agrees_with_a_plain_search_on_skewed_data() {
        let mut state = 7u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for shape in 0..4 {
            let mut entries = Vec::new();
            let mut offset = 5u32;
            for slot in 0..(if shape % 2 == 0 { 2000u32 } else { 9000 }) {
                let gap = match shape {
                    0 => 1,
                    1 => 1 + (next() % 50) as u32,
                    2 if !(1900..=1950).contains(&slot) => 1,
                    2 => 100_000,
                    _ => 1 + (next() % 3) as u32 * (next() % 1000) as u32,
                };
                offset += gap;
                entries.push((offset, slot * 100 + 1));
            }
            let index = index_of(&entries);
            for _ in 0..20_000 {
                let target = (next() % u64::from(offset + 10)) as u32;
                let expected = entries
                    .partition_point(|&(entry, _)| entry <= target)
                    .checked_sub(1)
                    .map(|slot| IndexEntry {
                        relative_offset: entries[slot].0,
                        position: entries[slot].1,
                    });
                assert_eq!(
                    index.lookup(target),
                    expected,
                    "shape {shape} target {target}"
                );
            }
        }
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
