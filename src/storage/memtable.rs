//! The MemTable: recent batches of each partition, kept in memory so that tailing consumers
//! never touch the disk.
//!
//! Each partition has a crossbeam skip list from base offset to the batch's bytes (the same
//! `Bytes` the producer's request arrived in, so inserting copies nothing). All partitions of a
//! shard share one [`MemTableBudget`]: when the shard's MemTables hold more than the budget, the
//! oldest batches, across partitions, are evicted first.
//!
//! A batch may be evicted only once the flusher has written it to its segment; until then it is
//! the only readable copy. The budget can therefore be exceeded by the data in flight, which
//! each partition bounds with `staged_bytes_max`.
//!
//! Per partition the MemTable always holds a contiguous run of batches ending at the log end:
//! eviction and retention remove from the front, truncation from the back.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::ops::Bound;
use std::rc::{Rc, Weak};

use bytes::Bytes;
use crossbeam_skiplist::SkipMap;

use crate::record::{BASE_OFFSET_AT, LAST_OFFSET_DELTA_AT};

/// Default MemTable budget of one shard.
pub const MEMTABLE_BUDGET_BYTES_DEFAULT: usize = 256 << 20;

/// The shard-wide byte budget of all MemTables, with a FIFO of insertions for eviction.
#[derive(Debug)]
pub struct MemTableBudget {
    budget_bytes: usize,
    used_bytes: Cell<usize>,
    live_entries: Cell<usize>,
    insertion_order: RefCell<VecDeque<Insertion>>,
    evicted_bytes_total: Cell<u64>,
}

#[derive(Debug)]
struct Insertion {
    table: Weak<MemTable>,
    base_offset: u64,
}

impl MemTableBudget {
    /// A budget of `budget_bytes` for one shard.
    pub fn new(budget_bytes: usize) -> Rc<Self> {
        Rc::new(Self {
            budget_bytes,
            used_bytes: Cell::new(0),
            live_entries: Cell::new(0),
            insertion_order: RefCell::new(VecDeque::new()),
            evicted_bytes_total: Cell::new(0),
        })
    }

    /// Bytes held by all MemTables of the shard.
    pub fn used_bytes(&self) -> usize {
        self.used_bytes.get()
    }

    /// The configured budget.
    pub fn budget_bytes(&self) -> usize {
        self.budget_bytes
    }

    /// Bytes evicted since the budget was made.
    pub fn evicted_bytes_total(&self) -> u64 {
        self.evicted_bytes_total.get()
    }

    /// Evicts the oldest written batches until the shard is within budget, or until the oldest
    /// batch is one not yet written to disk.
    pub fn evict(&self) {
        let mut order = self.insertion_order.borrow_mut();
        while self.used_bytes.get() > self.budget_bytes {
            let Some(front) = order.front() else { break };
            let Some(table) = front.table.upgrade() else {
                order.pop_front();
                continue;
            };
            if front.base_offset >= table.evictable_below.get() {
                break;
            }
            let base_offset = front.base_offset;
            order.pop_front();
            if let Some(bytes) = table.remove(base_offset) {
                self.evicted_bytes_total
                    .set(self.evicted_bytes_total.get() + bytes as u64);
            }
        }
        // Truncation and deletion leave stale insertions behind; drop them before they could
        // outnumber the live ones, so the queue stays bounded by the live entries.
        if order.len() > 2 * self.live_entries.get() + 1024 {
            order.retain(|insertion| {
                insertion
                    .table
                    .upgrade()
                    .is_some_and(|table| table.map.contains_key(&insertion.base_offset))
            });
        }
    }

    fn charge(&self, bytes: usize) {
        self.used_bytes.set(self.used_bytes.get() + bytes);
        self.live_entries.set(self.live_entries.get() + 1);
    }

    fn refund(&self, bytes: usize) {
        self.used_bytes
            .set(self.used_bytes.get().saturating_sub(bytes));
        self.live_entries
            .set(self.live_entries.get().saturating_sub(1));
    }
}

/// The MemTable of one partition.
#[derive(Debug)]
pub struct MemTable {
    map: SkipMap<u64, Bytes>,
    budget: Rc<MemTableBudget>,
    evictable_below: Cell<u64>,
    self_weak: Weak<MemTable>,
}

impl MemTable {
    /// An empty MemTable charged to `budget`.
    pub fn new(budget: Rc<MemTableBudget>) -> Rc<Self> {
        Rc::new_cyclic(|self_weak| Self {
            map: SkipMap::new(),
            budget,
            evictable_below: Cell::new(0),
            self_weak: self_weak.clone(),
        })
    }

    /// Inserts a batch (its base offset already stamped), then evicts if over budget.
    pub fn insert(&self, base_offset: u64, batch: Bytes) {
        // Offsets are never re-inserted while present: truncation removes the MemTable's tail
        // before the log reuses those offsets.
        let bytes = batch.len();
        self.map.insert(base_offset, batch);
        self.budget.charge(bytes);
        self.budget
            .insertion_order
            .borrow_mut()
            .push_back(Insertion {
                table: self.self_weak.clone(),
                base_offset,
            });
        self.budget.evict();
    }

    /// Batches with a base offset below this are written to disk and may be evicted.
    pub fn set_evictable_below(&self, offset: u64) {
        self.evictable_below.set(offset);
        self.budget.evict();
    }

    /// The first offset the MemTable can serve, if it holds anything.
    pub fn first_offset(&self) -> Option<u64> {
        self.map.front().map(|entry| *entry.key())
    }

    /// Batches held.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Nothing held.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Appends to `out` the batches that hold `offset` and follow it, below `end_offset`, up to
    /// `max_bytes` (the first batch is returned whole even if larger, as Kafka does). Returns
    /// `None` if `offset` is older than the MemTable's first batch; the caller reads the disk.
    pub fn read(
        &self,
        offset: u64,
        end_offset: u64,
        max_bytes: usize,
        out: &mut Vec<Bytes>,
    ) -> Option<usize> {
        let first = self.map.upper_bound(Bound::Included(&offset))?;
        if last_offset_of(first.value()) < offset {
            // `offset` is past the last batch: nothing to read yet.
            return (offset >= end_offset).then_some(0);
        }
        let mut total_bytes = 0usize;
        let mut cursor = Some(first);
        while let Some(entry) = cursor {
            if *entry.key() >= end_offset {
                break;
            }
            let batch = entry.value();
            if total_bytes > 0 && total_bytes + batch.len() > max_bytes {
                break;
            }
            total_bytes += batch.len();
            out.push(batch.clone());
            if total_bytes >= max_bytes {
                break;
            }
            cursor = entry.next();
        }
        Some(total_bytes)
    }

    /// Iterates all batches in offset order (for tests and benches).
    pub fn iter(&self) -> impl Iterator<Item = (u64, Bytes)> + '_ {
        self.map
            .iter()
            .map(|entry| (*entry.key(), entry.value().clone()))
    }

    /// Removes batches with a base offset below `offset` (retention).
    pub fn remove_below(&self, offset: u64) {
        while let Some(entry) = self.map.front() {
            if *entry.key() >= offset {
                break;
            }
            self.remove(*entry.key());
        }
    }

    /// Removes batches with a base offset at or above `offset` (truncation).
    pub fn remove_from(&self, offset: u64) {
        while let Some(entry) = self.map.back() {
            if *entry.key() < offset {
                break;
            }
            self.remove(*entry.key());
        }
    }

    /// Removes everything.
    pub fn clear(&self) {
        self.remove_from(0);
    }

    fn remove(&self, base_offset: u64) -> Option<usize> {
        let entry = self.map.remove(&base_offset)?;
        let bytes = entry.value().len();
        self.budget.refund(bytes);
        Some(bytes)
    }
}

impl Drop for MemTable {
    fn drop(&mut self) {
        for entry in self.map.iter() {
            self.budget.refund(entry.value().len());
        }
    }
}

/// The last offset of a stored batch: base offset plus last offset delta, read in place (the
/// batch was validated before it entered the MemTable).
fn last_offset_of(batch: &[u8]) -> u64 {
    let field = |at: usize, out: &mut [u8]| {
        if let Some(bytes) = batch.get(at..at + out.len()) {
            out.copy_from_slice(bytes);
        }
    };
    let mut base_offset = [0u8; 8];
    let mut last_offset_delta = [0u8; 4];
    field(BASE_OFFSET_AT, &mut base_offset);
    field(LAST_OFFSET_DELTA_AT, &mut last_offset_delta);
    u64::from_be_bytes(base_offset) + u64::from(u32::from_be_bytes(last_offset_delta))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Record, RecordBatchBuilder};

    fn batch_at(base_offset: u64, records: usize, value_bytes: usize) -> Bytes {
        let value = vec![7u8; value_bytes];
        let mut builder = RecordBatchBuilder::default();
        for _ in 0..records {
            builder.push(Record {
                value: Some(&value),
                ..Record::default()
            });
        }
        let mut batch = builder.build();
        batch.set_base_offset(base_offset);
        batch.into_bytes()
    }

    #[test]
    fn read_serves_the_batch_holding_an_offset_and_what_follows() {
        let budget = MemTableBudget::new(1 << 20);
        let table = MemTable::new(budget.clone());
        for index in 0..10u64 {
            table.insert(index * 3, batch_at(index * 3, 3, 10));
        }
        let mut out = Vec::new();
        assert_eq!(
            table.read(4, 30, usize::MAX, &mut out).map(|_| out.len()),
            Some(9)
        );
        out.clear();
        let one = batch_at(0, 3, 10).len();
        assert_eq!(table.read(0, 30, one + 1, &mut out), Some(one));
        out.clear();
        assert_eq!(table.read(30, 30, 100, &mut out), Some(0), "at the log end");
        assert_eq!(
            table.read(4, 6, usize::MAX, &mut out),
            Some(one),
            "stops at end_offset"
        );
        out.clear();
        assert_eq!(
            table.read(0, 30, 1, &mut out),
            Some(one),
            "first batch whole"
        );
        table.remove_below(6);
        assert_eq!(
            table.read(4, 30, 100, &mut out),
            None,
            "evicted: go to disk"
        );
        assert_eq!(table.first_offset(), Some(6));
    }

    #[test]
    fn budget_evicts_oldest_first_across_partitions_but_only_written_batches() {
        let one = batch_at(0, 1, 1000).len();
        let budget = MemTableBudget::new(one * 4);
        let left = MemTable::new(budget.clone());
        let right = MemTable::new(budget.clone());
        for index in 0..3u64 {
            left.insert(index, batch_at(index, 1, 1000));
            right.insert(index, batch_at(index, 1, 1000));
        }
        assert_eq!(
            budget.used_bytes(),
            one * 6,
            "nothing written yet: nothing evicted"
        );
        left.set_evictable_below(3);
        right.set_evictable_below(3);
        assert_eq!(budget.used_bytes(), one * 4);
        assert_eq!(left.first_offset(), Some(1));
        assert_eq!(right.first_offset(), Some(1));
        assert_eq!(budget.evicted_bytes_total(), (one * 2) as u64);
        drop(left);
        assert_eq!(budget.used_bytes(), one * 2);
        right.remove_from(2);
        assert_eq!(budget.used_bytes(), one);
        assert_eq!(right.iter().count(), 1);
    }
}
