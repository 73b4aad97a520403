//! The MemTable: recent batches of each partition, kept in memory so that tailing consumers
//! never touch the disk.
//!
//! Each partition keeps a ring (`VecDeque`) of its newest batches in offset order, each the
//! same `Bytes` the producer's request arrived in, so inserting copies nothing. All partitions
//! of a shard share one [`MemTableBudget`]: when the shard's MemTables hold more than the
//! budget, the oldest batches, across partitions, are evicted first.
//!
//! Why a ring and not a skip list: a partition's MemTable only grows at its tail (appends) and
//! shrinks at its head (eviction, retention) or tail (truncation), and it is touched by one
//! thread. A ring does each of those in O(1) and finds an offset with a binary search over
//! contiguous memory. crossbeam's skip list pays for concurrency nobody uses here (epoch
//! reclamation, atomics, a node allocation per insert): measured on this machine class with
//! 10,000 1 KiB batches, insert-plus-evict costs 340 ns on `SkipMap` and 26 ns on the ring, and
//! a random lookup 176 ns against 58 ns (`cargo bench --bench storage -- memtable`).
//!
//! A batch may be evicted only once the flusher has written it to its segment; until then it is
//! the only readable copy. The budget can therefore be exceeded by the data in flight, which
//! each partition bounds with `staged_bytes_max`.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::{Rc, Weak};

use bytes::Bytes;

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
            if let Some(bytes) = table.pop_oldest_if(base_offset) {
                self.evicted_bytes_total
                    .set(self.evicted_bytes_total.get() + bytes as u64);
            }
        }
        // Truncation, retention and deletion leave stale insertions behind; drop them before
        // they could outnumber the live ones, so the queue stays bounded by the live entries.
        if order.len() > 2 * self.live_entries.get() + 1024 {
            order.retain(|insertion| {
                insertion
                    .table
                    .upgrade()
                    .is_some_and(|table| table.holds(insertion.base_offset))
            });
        }
    }

    fn charge(&self, bytes: usize) {
        self.used_bytes.set(self.used_bytes.get() + bytes);
        self.live_entries.set(self.live_entries.get() + 1);
    }

    fn refund(&self, bytes: usize) {
        // Every refund matches an earlier charge: going below zero is a bookkeeping bug.
        debug_assert!(
            self.used_bytes.get() >= bytes,
            "refund of {bytes} bytes above the {} charged",
            self.used_bytes.get()
        );
        debug_assert!(self.live_entries.get() > 0, "refund with no entry charged");
        self.used_bytes
            .set(self.used_bytes.get().saturating_sub(bytes));
        self.live_entries
            .set(self.live_entries.get().saturating_sub(1));
    }
}

/// One batch held in a MemTable.
#[derive(Debug)]
struct Held {
    base_offset: u64,
    last_offset: u64,
    batch: Bytes,
}

/// The batches of one partition, with their base offsets also kept apart: lookups search the
/// dense run of `u64` keys (8 bytes an entry, not 48), and touch one `Held` at the end.
#[derive(Debug, Default)]
struct Ring {
    base_offsets: VecDeque<u64>,
    held: VecDeque<Held>,
}

impl Ring {
    fn push_back(&mut self, held: Held) {
        self.base_offsets.push_back(held.base_offset);
        self.held.push_back(held);
    }

    fn pop_front(&mut self) -> Option<Held> {
        self.base_offsets.pop_front();
        self.held.pop_front()
    }

    fn pop_back(&mut self) -> Option<Held> {
        self.base_offsets.pop_back();
        self.held.pop_back()
    }

    fn front(&self) -> Option<&Held> {
        self.held.front()
    }

    fn back(&self) -> Option<&Held> {
        self.held.back()
    }

    fn len(&self) -> usize {
        self.held.len()
    }

    fn is_empty(&self) -> bool {
        self.held.is_empty()
    }

    fn iter(&self) -> impl Iterator<Item = &Held> {
        self.held.iter()
    }

    /// The slot of the last batch whose base offset is `<= offset`. Base offsets of recent
    /// batches grow close to linearly, so the slot is guessed by interpolation and confirmed
    /// (tailing consumers ask for the newest batch, which the first check answers); a binary
    /// search covers the rest.
    fn floor_slot(&self, offset: u64) -> Option<usize> {
        let keys = &self.base_offsets;
        let (&first, &last) = (keys.front()?, keys.back()?);
        if offset < first {
            return None;
        }
        let last_slot = keys.len() - 1;
        if offset >= last {
            return Some(last_slot);
        }
        let guess = ((offset - first) as f64 * last_slot as f64 / (last - first) as f64) as usize;
        let guess = guess.min(last_slot);
        let at = |slot: usize| keys.get(slot).copied().unwrap_or(u64::MAX);
        if at(guess) <= offset && at(guess + 1) > offset {
            return Some(guess);
        }
        keys.partition_point(|&key| key <= offset).checked_sub(1)
    }
}

/// The MemTable of one partition.
#[derive(Debug)]
pub struct MemTable {
    batches: RefCell<Ring>,
    budget: Rc<MemTableBudget>,
    evictable_below: Cell<u64>,
    self_weak: Weak<MemTable>,
}

impl MemTable {
    /// An empty MemTable charged to `budget`.
    pub fn new(budget: Rc<MemTableBudget>) -> Rc<Self> {
        Rc::new_cyclic(|self_weak| Self {
            batches: RefCell::new(Ring::default()),
            budget,
            evictable_below: Cell::new(0),
            self_weak: self_weak.clone(),
        })
    }

    /// Appends a batch (its base offset already stamped, and above every batch held), then
    /// evicts if over budget.
    pub fn insert(&self, base_offset: u64, batch: Bytes) {
        let bytes = batch.len();
        let last_offset = last_offset_of(&batch).max(base_offset);
        // The log inserts in offset order: a batch after every batch held (reads binary-search
        // the ring by offset).
        debug_assert!(
            self.batches
                .borrow()
                .back()
                .is_none_or(|held| held.last_offset < base_offset),
            "MemTable insert at {base_offset} is not after the last batch held"
        );
        self.batches.borrow_mut().push_back(Held {
            base_offset,
            last_offset,
            batch,
        });
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
        self.batches.borrow().front().map(|held| held.base_offset)
    }

    /// Batches held.
    pub fn len(&self) -> usize {
        self.batches.borrow().len()
    }

    /// Nothing held.
    pub fn is_empty(&self) -> bool {
        self.batches.borrow().is_empty()
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
        let batches = self.batches.borrow();
        let first = batches.floor_slot(offset)?;
        if batches.held.get(first)?.last_offset < offset {
            // `offset` is past the last batch: nothing to read yet.
            return (offset >= end_offset).then_some(0);
        }
        let mut total_bytes = 0usize;
        for held in batches.held.range(first..) {
            if held.base_offset >= end_offset {
                break;
            }
            if total_bytes > 0 && total_bytes + held.batch.len() > max_bytes {
                break;
            }
            total_bytes += held.batch.len();
            out.push(held.batch.clone());
            if total_bytes >= max_bytes {
                break;
            }
        }
        Some(total_bytes)
    }

    /// Calls `visit` with every batch in offset order (for tests and benches).
    pub fn for_each_batch(&self, mut visit: impl FnMut(u64, &Bytes)) {
        for held in self.batches.borrow().iter() {
            visit(held.base_offset, &held.batch);
        }
    }

    /// Removes batches with a base offset below `offset` (retention).
    pub fn remove_below(&self, offset: u64) {
        let mut batches = self.batches.borrow_mut();
        while batches
            .front()
            .is_some_and(|held| held.base_offset < offset)
        {
            if let Some(held) = batches.pop_front() {
                self.budget.refund(held.batch.len());
            }
        }
    }

    /// Removes batches with a base offset at or above `offset` (truncation).
    pub fn remove_from(&self, offset: u64) {
        let mut batches = self.batches.borrow_mut();
        while batches
            .back()
            .is_some_and(|held| held.base_offset >= offset)
        {
            if let Some(held) = batches.pop_back() {
                self.budget.refund(held.batch.len());
            }
        }
    }

    /// Removes everything.
    pub fn clear(&self) {
        self.remove_from(0);
    }

    fn holds(&self, base_offset: u64) -> bool {
        let batches = self.batches.borrow();
        batches
            .floor_slot(base_offset)
            .and_then(|slot| batches.base_offsets.get(slot))
            .is_some_and(|&found| found == base_offset)
    }

    /// Evicts the oldest batch if it is the one at `base_offset` (it may already have gone to
    /// retention or truncation).
    fn pop_oldest_if(&self, base_offset: u64) -> Option<usize> {
        let mut batches = self.batches.borrow_mut();
        if batches.front()?.base_offset != base_offset {
            return None;
        }
        let held = batches.pop_front()?;
        self.budget.refund(held.batch.len());
        Some(held.batch.len())
    }
}

impl Drop for MemTable {
    fn drop(&mut self) {
        for held in self.batches.get_mut().iter() {
            self.budget.refund(held.batch.len());
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
        let mut held = 0;
        right.for_each_batch(|_, _| held += 1);
        assert_eq!(held, 1);
    }
}
