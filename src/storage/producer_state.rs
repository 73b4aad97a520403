//! Idempotent producers' state in one partition (KIP-98): for each producer id, its epoch and
//! the metadata of its last [`PRODUCER_BATCHES_KEPT`] batches. The log checks every batch that
//! carries a producer id against it, in the synchronous part of an append, before the batch
//! takes an offset:
//! - a batch equal to one of the last five (same epoch, first and last sequence) is a retry:
//!   it is answered with its original offsets and never appended again;
//! - a batch of an older epoch is refused (INVALID_PRODUCER_EPOCH);
//! - a batch whose first sequence does not follow the last one is refused
//!   (OUT_OF_ORDER_SEQUENCE_NUMBER), and so is a new epoch that does not start at 0;
//! - a producer this partition does not know may start at sequence 0 only
//!   (UNKNOWN_PRODUCER_ID otherwise, as Kafka answers).
//!
//! The rules and the limits are Kafka's (`ProducerStateManager`); why five: a producer keeps
//! at most `max.in.flight.requests.per.connection` = 5 batches in flight per partition, so a
//! retry is always one of the last five.
//!
//! Transactional producers (KIP-98) add two things per partition: the first offset of each
//! producer's open transaction, whose minimum is the last stable offset (LSO) that
//! `read_committed` readers stop at, and the list of aborted transactions (producer, first and
//! last offset) that a `read_committed` fetch returns so the client can drop their records. A
//! control batch (a commit or abort marker, written by the broker) ends a transaction.
//!
//! The state is rebuilt at open from a snapshot ([`ProducerStates::encode_snapshot`], written
//! when a segment is sealed and at a clean close) plus the batches after the offset the
//! snapshot covers, so a restart does not rescan whole partitions. The number of producers is
//! bounded (`producers_max`): when full, the one that appended least recently goes. Producers
//! idle for `producer_id_expiration_ms` expire.

use std::collections::{BTreeMap, HashMap, VecDeque};

use thiserror::Error;

use crate::record::{BatchHeader, RecordIter};

/// Batches remembered per producer: Kafka's `NUM_BATCHES_TO_RETAIN`.
pub const PRODUCER_BATCHES_KEPT: usize = 5;
/// Default of `producers_per_partition_max`.
pub const PRODUCERS_PER_PARTITION_MAX_DEFAULT: usize = 10_000;
/// Kafka's default `producer.id.expiration.ms`: one day.
pub const PRODUCER_ID_EXPIRATION_MS_DEFAULT: u64 = 86_400_000;
/// The first four bytes of a snapshot file.
const SNAPSHOT_MAGIC: &[u8; 4] = b"SBPS";
/// The snapshot format this build writes; it reads it and version 1 (no transactions).
const SNAPSHOT_VERSION: u16 = 2;
/// The first snapshot format: producers and their batches only.
const SNAPSHOT_VERSION_IDEMPOTENT_ONLY: u16 = 1;
/// Aborted transactions a partition remembers at most (`aborted_transactions_max`'s
/// default); past it the oldest is forgotten, with a warning, and a `read_committed` reader
/// of offsets that old would see its records. Retention drops the ones below the log start.
pub const ABORTED_TRANSACTIONS_MAX_DEFAULT: usize = 100_000;
/// Producer id, first and last offset of an aborted transaction in a snapshot.
const SNAPSHOT_ABORTED_BYTES: usize = 8 + 8 + 8;
/// The first offset of a producer's open transaction (-1: none), in a v2 snapshot.
const SNAPSHOT_ONGOING_BYTES: usize = 8;
/// The count of aborted transactions after the producers, in a v2 snapshot.
const SNAPSHOT_ABORTED_COUNT_BYTES: usize = 4;
/// Magic, version, covered offset, producer count.
const SNAPSHOT_HEADER_BYTES: usize = 4 + 2 + 8 + 4;
/// Producer id, epoch, last append time, batch count (then, in v2, the open transaction).
const SNAPSHOT_PRODUCER_BYTES: usize = 8 + 2 + 8 + 1;
/// First and last sequence, base and last offset.
const SNAPSHOT_BATCH_BYTES: usize = 4 + 4 + 8 + 8;
/// The CRC32C at the end.
const SNAPSHOT_CRC_BYTES: usize = 4;

/// Why a producer's batch is refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SequenceError {
    /// The batch's epoch is older than the producer's current one (a zombie).
    #[error("producer {producer_id} epoch {epoch} is older than its current epoch {current}")]
    InvalidProducerEpoch {
        /// The producer.
        producer_id: i64,
        /// The batch's epoch.
        epoch: i16,
        /// The epoch the partition knows.
        current: i16,
    },
    /// The batch's first sequence does not follow the producer's last one.
    #[error("producer {producer_id} epoch {epoch}: sequence {sequence} does not follow {last}")]
    OutOfOrderSequence {
        /// The producer.
        producer_id: i64,
        /// The batch's epoch.
        epoch: i16,
        /// The batch's first sequence.
        sequence: i32,
        /// The last sequence appended in this epoch (-1 before a new epoch's first batch).
        last: i32,
    },
    /// The partition has no state for the producer and the batch does not start at 0.
    #[error("producer {producer_id} is unknown here and its batch starts at sequence {sequence}")]
    UnknownProducerId {
        /// The producer.
        producer_id: i64,
        /// The batch's first sequence.
        sequence: i32,
    },
    /// A transactional batch from a producer whose open transaction this partition does not
    /// know would be fine, but a plain batch while its transaction is open is not (Kafka's
    /// INVALID_TXN_STATE).
    #[error("producer {producer_id} sent a non-transactional batch while its transaction is open")]
    InvalidTxnState {
        /// The producer.
        producer_id: i64,
    },
    /// Every producer the partition may keep has an open transaction, so none can make room
    /// for a new transactional producer (`producers_per_partition_max`).
    #[error("producer {producer_id}: every one of the partition's {producers_max} producers has an open transaction")]
    TooManyOpenTransactions {
        /// The producer.
        producer_id: i64,
        /// The limit.
        producers_max: usize,
    },
    /// The batch names a producer but no sequence.
    #[error("producer {producer_id}: a batch with a producer id needs a sequence, not {sequence}")]
    InvalidSequence {
        /// The producer.
        producer_id: i64,
        /// The sequence it carried.
        sequence: i32,
    },
}

/// What the partition remembers of one batch of a producer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerBatch {
    /// Sequence of its first record.
    pub first_sequence: i32,
    /// Sequence of its last record.
    pub last_sequence: i32,
    /// Offset of its first record.
    pub base_offset: u64,
    /// Offset of its last record.
    pub last_offset: u64,
}

/// One producer's state in the partition.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ProducerEntry {
    epoch: i16,
    /// Oldest first, at most [`PRODUCER_BATCHES_KEPT`].
    batches: VecDeque<ProducerBatch>,
    last_append_ms: i64,
    /// The first offset of its open transaction in this partition.
    ongoing_first_offset: Option<u64>,
}

/// A transaction that was aborted: `read_committed` readers drop the producer's records from
/// `first_offset` up to the abort marker at `last_offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbortedTransaction {
    /// The producer.
    pub producer_id: i64,
    /// Its first record in this partition.
    pub first_offset: u64,
    /// The offset of the abort marker.
    pub last_offset: u64,
}

/// What a control batch's record says (Kafka's `ControlRecordType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransactionMarker {
    /// The transaction aborted (type 0).
    Abort,
    /// The transaction committed (type 1).
    Commit,
}

impl TransactionMarker {
    /// The control record's type field.
    pub fn control_type(self) -> i16 {
        match self {
            TransactionMarker::Abort => 0,
            TransactionMarker::Commit => 1,
        }
    }

    /// The marker a control record's type field names, if it is one.
    pub fn from_control_type(control_type: i16) -> Option<Self> {
        match control_type {
            0 => Some(TransactionMarker::Abort),
            1 => Some(TransactionMarker::Commit),
            _ => None,
        }
    }
}

/// What to do with a producer's batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SequenceCheck {
    /// Not an idempotent batch, or the next one in sequence: append it.
    Append,
    /// A retry of a batch already in the log: answer with its offsets.
    Duplicate(ProducerBatch),
}

/// The marker a control batch holds, read from its one record's key (version, type); `None`
/// for any other batch, or a control record of another type.
pub fn marker_of(header: &BatchHeader, batch: &[u8]) -> Option<TransactionMarker> {
    if !header.is_control() {
        return None;
    }
    let record = RecordIter::new(header, batch).ok()?.next()?.ok()?;
    let key = record.key?;
    let control_type = i16::from_be_bytes(key.get(2..4)?.try_into().ok()?);
    TransactionMarker::from_control_type(control_type)
}

/// The idempotent and transactional producers of one partition.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProducerStates {
    producers: HashMap<i64, ProducerEntry>,
    /// Open transactions by first offset: the smallest is the last stable offset.
    ongoing: BTreeMap<u64, i64>,
    /// Aborted transactions in marker order (so by `last_offset`), oldest first.
    aborted: VecDeque<AbortedTransaction>,
}

/// The sequence of a batch's last record: sequences wrap from `i32::MAX` to 0.
fn last_sequence(header: &BatchHeader) -> i32 {
    ((i64::from(header.base_sequence) + i64::from(header.last_offset_delta))
        % (i64::from(i32::MAX) + 1)) as i32
}

/// Whether `next` follows `last` (with the wrap to 0).
fn follows(last: i32, next: i32) -> bool {
    i64::from(next) == i64::from(last) + 1 || (next == 0 && last == i32::MAX)
}

impl ProducerStates {
    /// Producers with state here.
    pub fn len(&self) -> usize {
        self.producers.len()
    }

    /// Whether no producer has state here.
    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }

    /// The epoch and last batch the partition knows of `producer_id`.
    pub fn last_batch(&self, producer_id: i64) -> Option<(i16, Option<ProducerBatch>)> {
        self.producers
            .get(&producer_id)
            .map(|entry| (entry.epoch, entry.batches.back().copied()))
    }

    /// Checks a batch offered for append against its producer's state. Batches without a
    /// producer id always pass.
    pub fn check(&self, header: &BatchHeader) -> Result<SequenceCheck, SequenceError> {
        let producer_id = header.producer_id;
        if producer_id < 0 {
            return Ok(SequenceCheck::Append);
        }
        let (epoch, sequence) = (header.producer_epoch, header.base_sequence);
        if header.is_control() {
            // A marker the broker writes: no sequence, but never from a fenced epoch.
            return match self.producers.get(&producer_id) {
                Some(entry) if epoch < entry.epoch => Err(SequenceError::InvalidProducerEpoch {
                    producer_id,
                    epoch,
                    current: entry.epoch,
                }),
                _ => Ok(SequenceCheck::Append),
            };
        }
        if sequence < 0 {
            return Err(SequenceError::InvalidSequence {
                producer_id,
                sequence,
            });
        }
        let Some(entry) = self.producers.get(&producer_id) else {
            return if sequence == 0 {
                Ok(SequenceCheck::Append)
            } else {
                Err(SequenceError::UnknownProducerId {
                    producer_id,
                    sequence,
                })
            };
        };
        if epoch < entry.epoch {
            return Err(SequenceError::InvalidProducerEpoch {
                producer_id,
                epoch,
                current: entry.epoch,
            });
        }
        if epoch > entry.epoch {
            // A new epoch restarts the sequence (KIP-360's bump, or a re-initialised producer).
            return if sequence == 0 {
                Ok(SequenceCheck::Append)
            } else {
                Err(SequenceError::OutOfOrderSequence {
                    producer_id,
                    epoch,
                    sequence,
                    last: -1,
                })
            };
        }
        if !header.is_transactional() && entry.ongoing_first_offset.is_some() {
            return Err(SequenceError::InvalidTxnState { producer_id });
        }
        let last = last_sequence(header);
        if let Some(original) = entry
            .batches
            .iter()
            .find(|batch| batch.first_sequence == sequence && batch.last_sequence == last)
        {
            return Ok(SequenceCheck::Duplicate(*original));
        }
        let current = entry.batches.back().map_or(-1, |batch| batch.last_sequence);
        if follows(current, sequence) {
            Ok(SequenceCheck::Append)
        } else {
            Err(SequenceError::OutOfOrderSequence {
                producer_id,
                epoch,
                sequence,
                last: current,
            })
        }
    }

    /// Records a batch just appended at `base_offset` (or found by recovery there). Makes room
    /// first when `producers_max` producers are known: the least recently active goes.
    pub fn record(
        &mut self,
        header: &BatchHeader,
        base_offset: u64,
        now_ms: i64,
        producers_max: usize,
    ) {
        if header.producer_id < 0 || (header.base_sequence < 0 && !header.is_control()) {
            return;
        }
        if !self.producers.contains_key(&header.producer_id)
            && self.producers.len() >= producers_max.max(1)
        {
            self.evict_least_recent();
        }
        let entry = self
            .producers
            .entry(header.producer_id)
            .or_insert_with(|| ProducerEntry {
                epoch: header.producer_epoch,
                batches: VecDeque::with_capacity(PRODUCER_BATCHES_KEPT),
                last_append_ms: now_ms,
                ongoing_first_offset: None,
            });
        if header.is_control() {
            // A marker: the epoch it carries becomes current (the coordinator may have
            // bumped it to abort), and it ends the open transaction.
            if header.producer_epoch > entry.epoch {
                entry.epoch = header.producer_epoch;
                entry.batches.clear();
            }
            entry.last_append_ms = entry.last_append_ms.max(now_ms);
            return;
        }
        if header.is_transactional() && entry.ongoing_first_offset.is_none() {
            entry.ongoing_first_offset = Some(base_offset);
            self.ongoing.insert(base_offset, header.producer_id);
        }
        if header.producer_epoch != entry.epoch {
            entry.epoch = header.producer_epoch;
            entry.batches.clear();
        }
        if entry.batches.len() == PRODUCER_BATCHES_KEPT {
            entry.batches.pop_front();
        }
        entry.batches.push_back(ProducerBatch {
            first_sequence: header.base_sequence,
            last_sequence: last_sequence(header),
            base_offset,
            last_offset: base_offset + u64::from(header.last_offset_delta),
        });
        entry.last_append_ms = entry.last_append_ms.max(now_ms);
        debug_assert!(entry.batches.len() <= PRODUCER_BATCHES_KEPT);
    }

    /// Ends `producer_id`'s open transaction with the marker appended at `marker_offset`;
    /// an abort is remembered for `read_committed` readers. Call after recording the marker's
    /// batch. `aborted_max` bounds the list (the oldest goes first).
    pub fn end_transaction(
        &mut self,
        producer_id: i64,
        marker: TransactionMarker,
        marker_offset: u64,
        aborted_max: usize,
    ) {
        let Some(first_offset) = self
            .producers
            .get_mut(&producer_id)
            .and_then(|entry| entry.ongoing_first_offset.take())
        else {
            return;
        };
        self.ongoing.remove(&first_offset);
        if marker == TransactionMarker::Abort {
            if self.aborted.len() >= aborted_max.max(1) {
                if let Some(forgotten) = self.aborted.pop_front() {
                    tracing::warn!(
                        producer_id = forgotten.producer_id,
                        first_offset = forgotten.first_offset,
                        last_offset = forgotten.last_offset,
                        "aborted_transactions_max reached: the oldest aborted transaction is forgotten"
                    );
                }
            }
            debug_assert!(self
                .aborted
                .back()
                .is_none_or(|last| last.last_offset < marker_offset));
            self.aborted.push_back(AbortedTransaction {
                producer_id,
                first_offset,
                last_offset: marker_offset,
            });
        }
    }

    /// Refuses a transactional batch from a producer not known here when the partition is
    /// full of producers with open transactions: none may be evicted (the LSO would stick),
    /// so without this the producers would outgrow `producers_max`. O(1).
    pub fn check_room(
        &self,
        header: &BatchHeader,
        producers_max: usize,
    ) -> Result<(), SequenceError> {
        let full = self.producers.len() >= producers_max.max(1)
            && self.ongoing.len() >= self.producers.len();
        if full
            && header.is_transactional()
            && !header.is_control()
            && !self.producers.contains_key(&header.producer_id)
        {
            return Err(SequenceError::TooManyOpenTransactions {
                producer_id: header.producer_id,
                producers_max,
            });
        }
        Ok(())
    }

    /// The first offset of the oldest open transaction: the last stable offset is the
    /// smaller of it and the high watermark.
    pub fn first_unstable_offset(&self) -> Option<u64> {
        self.ongoing.keys().next().copied()
    }

    /// Open transactions here.
    pub fn ongoing_count(&self) -> usize {
        self.ongoing.len()
    }

    /// The aborted transactions whose records may lie in `[from, to)`: those whose marker is
    /// at or after `from` and whose first record is before `to`, in marker order.
    pub fn aborted_overlapping(&self, from: u64, to: u64) -> Vec<AbortedTransaction> {
        let start = self.aborted.partition_point(|txn| txn.last_offset < from);
        self.aborted
            .range(start..)
            .filter(|txn| txn.first_offset < to)
            .copied()
            .collect()
    }

    /// Forgets aborted transactions wholly below `log_start_offset` (retention removed them).
    pub fn forget_aborted_below(&mut self, log_start_offset: u64) {
        while self
            .aborted
            .front()
            .is_some_and(|txn| txn.last_offset < log_start_offset)
        {
            self.aborted.pop_front();
        }
    }

    fn evict_least_recent(&mut self) {
        // A producer with an open transaction stays: forgetting it would leave the LSO stuck.
        if let Some(oldest) = self
            .producers
            .iter()
            .filter(|(_, entry)| entry.ongoing_first_offset.is_none())
            .min_by_key(|(_, entry)| entry.last_append_ms)
            .map(|(producer_id, _)| *producer_id)
        {
            self.producers.remove(&oldest);
        }
    }

    /// Forgets producers idle for `expiration_ms` or longer (not those with an open
    /// transaction: the coordinator ends it); returns how many went.
    pub fn expire(&mut self, now_ms: i64, expiration_ms: u64) -> usize {
        let before = self.producers.len();
        let expiration_ms = i64::try_from(expiration_ms).unwrap_or(i64::MAX);
        self.producers.retain(|_, entry| {
            entry.ongoing_first_offset.is_some()
                || now_ms.saturating_sub(entry.last_append_ms) < expiration_ms
        });
        before - self.producers.len()
    }

    /// Forgets batches at or above `offset` (the log was truncated there), and producers left
    /// with none; transactions that began there are no longer open, and an abort whose
    /// marker went is open again.
    pub fn truncate_to(&mut self, offset: u64) {
        while self
            .aborted
            .back()
            .is_some_and(|txn| txn.last_offset >= offset)
        {
            let Some(reopened) = self.aborted.pop_back() else {
                break;
            };
            // An expired producer comes back with no batches and an unknown epoch (-1): the
            // transaction must hold the LSO until a marker ends it again.
            let entry = self
                .producers
                .entry(reopened.producer_id)
                .or_insert_with(|| ProducerEntry {
                    epoch: -1,
                    batches: VecDeque::new(),
                    last_append_ms: 0,
                    ongoing_first_offset: None,
                });
            if entry.ongoing_first_offset.is_none() {
                entry.ongoing_first_offset = Some(reopened.first_offset);
            }
        }
        self.producers.retain(|_, entry| {
            entry.batches.retain(|batch| batch.last_offset < offset);
            if entry
                .ongoing_first_offset
                .is_some_and(|first| first >= offset)
            {
                entry.ongoing_first_offset = None;
            }
            !entry.batches.is_empty() || entry.ongoing_first_offset.is_some()
        });
        self.ongoing = self
            .producers
            .iter()
            .filter_map(|(id, entry)| entry.ongoing_first_offset.map(|first| (first, *id)))
            .collect();
    }

    /// The state as a snapshot file covering every offset below `covered_offset`.
    pub fn encode_snapshot(&self, covered_offset: u64) -> Vec<u8> {
        let mut out = Vec::with_capacity(
            SNAPSHOT_HEADER_BYTES
                + self.producers.len() * producer_snapshot_bytes_max()
                + SNAPSHOT_ABORTED_COUNT_BYTES
                + self.aborted.len() * SNAPSHOT_ABORTED_BYTES
                + SNAPSHOT_CRC_BYTES,
        );
        out.extend_from_slice(SNAPSHOT_MAGIC);
        out.extend_from_slice(&SNAPSHOT_VERSION.to_be_bytes());
        out.extend_from_slice(&covered_offset.to_be_bytes());
        out.extend_from_slice(&(self.producers.len() as u32).to_be_bytes());
        // In producer-id order, so equal states give equal files.
        let mut producer_ids: Vec<&i64> = self.producers.keys().collect();
        producer_ids.sort_unstable();
        for producer_id in producer_ids {
            let entry = &self.producers[producer_id];
            out.extend_from_slice(&producer_id.to_be_bytes());
            out.extend_from_slice(&entry.epoch.to_be_bytes());
            out.extend_from_slice(&entry.last_append_ms.to_be_bytes());
            out.push(entry.batches.len() as u8);
            for batch in &entry.batches {
                out.extend_from_slice(&batch.first_sequence.to_be_bytes());
                out.extend_from_slice(&batch.last_sequence.to_be_bytes());
                out.extend_from_slice(&batch.base_offset.to_be_bytes());
                out.extend_from_slice(&batch.last_offset.to_be_bytes());
            }
            let ongoing = entry.ongoing_first_offset.map_or(-1, |first| first as i64);
            out.extend_from_slice(&ongoing.to_be_bytes());
        }
        out.extend_from_slice(&(self.aborted.len() as u32).to_be_bytes());
        for txn in &self.aborted {
            out.extend_from_slice(&txn.producer_id.to_be_bytes());
            out.extend_from_slice(&txn.first_offset.to_be_bytes());
            out.extend_from_slice(&txn.last_offset.to_be_bytes());
        }
        let crc = crc32c::crc32c(&out);
        out.extend_from_slice(&crc.to_be_bytes());
        out
    }

    /// The largest snapshot `producers_max` producers and `aborted_max` aborted transactions
    /// can make: a file above it is damaged.
    pub fn snapshot_bytes_max(producers_max: usize, aborted_max: usize) -> u64 {
        (SNAPSHOT_HEADER_BYTES
            + producers_max * producer_snapshot_bytes_max()
            + SNAPSHOT_ABORTED_COUNT_BYTES
            + aborted_max * SNAPSHOT_ABORTED_BYTES
            + SNAPSHOT_CRC_BYTES) as u64
    }

    /// Reads a snapshot (this build's version or version 1): the state and the offset it
    /// covers, or why it cannot be used.
    pub fn decode_snapshot(bytes: &[u8]) -> Result<(Self, u64), String> {
        let body_bytes = bytes
            .len()
            .checked_sub(SNAPSHOT_CRC_BYTES)
            .filter(|&body| body >= SNAPSHOT_HEADER_BYTES)
            .ok_or_else(|| format!("{} bytes is too short", bytes.len()))?;
        let (body, crc) = bytes.split_at(body_bytes);
        let stored = u32::from_be_bytes(crc.try_into().map_err(|_| "no checksum")?);
        if crc32c::crc32c(body) != stored {
            return Err("checksum mismatch".into());
        }
        let mut reader = SnapshotReader { bytes: body };
        if reader.take::<4>()? != *SNAPSHOT_MAGIC {
            return Err("not a producer state snapshot".into());
        }
        let version = u16::from_be_bytes(reader.take()?);
        if version != SNAPSHOT_VERSION && version != SNAPSHOT_VERSION_IDEMPOTENT_ONLY {
            return Err(format!("unknown snapshot version {version}"));
        }
        let with_transactions = version == SNAPSHOT_VERSION;
        let covered_offset = u64::from_be_bytes(reader.take()?);
        let count = u32::from_be_bytes(reader.take()?) as usize;
        let mut states = Self::default();
        for _ in 0..count {
            let producer_id = i64::from_be_bytes(reader.take()?);
            let epoch = i16::from_be_bytes(reader.take()?);
            let last_append_ms = i64::from_be_bytes(reader.take()?);
            let [batch_count] = reader.take::<1>()?;
            if usize::from(batch_count) > PRODUCER_BATCHES_KEPT {
                return Err(format!("producer {producer_id} has {batch_count} batches"));
            }
            let mut batches = VecDeque::with_capacity(PRODUCER_BATCHES_KEPT);
            for _ in 0..batch_count {
                batches.push_back(ProducerBatch {
                    first_sequence: i32::from_be_bytes(reader.take()?),
                    last_sequence: i32::from_be_bytes(reader.take()?),
                    base_offset: u64::from_be_bytes(reader.take()?),
                    last_offset: u64::from_be_bytes(reader.take()?),
                });
            }
            let ongoing_first_offset = if with_transactions {
                let first = i64::from_be_bytes(reader.take()?);
                u64::try_from(first).ok()
            } else {
                None
            };
            if let Some(first) = ongoing_first_offset {
                states.ongoing.insert(first, producer_id);
            }
            states.producers.insert(
                producer_id,
                ProducerEntry {
                    epoch,
                    batches,
                    last_append_ms,
                    ongoing_first_offset,
                },
            );
        }
        if with_transactions {
            let aborted = u32::from_be_bytes(reader.take()?) as usize;
            for _ in 0..aborted {
                let txn = AbortedTransaction {
                    producer_id: i64::from_be_bytes(reader.take()?),
                    first_offset: u64::from_be_bytes(reader.take()?),
                    last_offset: u64::from_be_bytes(reader.take()?),
                };
                if states
                    .aborted
                    .back()
                    .is_some_and(|last| last.last_offset >= txn.last_offset)
                {
                    return Err("aborted transactions out of order".into());
                }
                states.aborted.push_back(txn);
            }
        }
        if !reader.bytes.is_empty() {
            return Err(format!(
                "{} bytes after the last producer",
                reader.bytes.len()
            ));
        }
        Ok((states, covered_offset))
    }
}

/// Bytes one producer takes in a snapshot at most.
fn producer_snapshot_bytes_max() -> usize {
    SNAPSHOT_PRODUCER_BYTES + PRODUCER_BATCHES_KEPT * SNAPSHOT_BATCH_BYTES + SNAPSHOT_ONGOING_BYTES
}

struct SnapshotReader<'a> {
    bytes: &'a [u8],
}

impl SnapshotReader<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], String> {
        if self.bytes.len() < N {
            return Err("truncated".into());
        }
        let (head, rest) = self.bytes.split_at(N);
        self.bytes = rest;
        head.try_into().map_err(|_| "truncated".to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(producer_id: i64, epoch: i16, sequence: i32, records: u32) -> BatchHeader {
        BatchHeader {
            base_offset: 0,
            batch_length: 0,
            partition_leader_epoch: 0,
            crc: 0,
            attributes: 0,
            last_offset_delta: records - 1,
            base_timestamp: 0,
            max_timestamp: 0,
            producer_id,
            producer_epoch: epoch,
            base_sequence: sequence,
            record_count: records,
        }
    }

    fn appended(states: &mut ProducerStates, header: &BatchHeader, base_offset: u64) {
        assert_eq!(states.check(header), Ok(SequenceCheck::Append));
        states.record(header, base_offset, 0, 100);
    }

    #[test]
    fn in_order_batches_pass_and_retries_of_the_last_five_are_duplicates() {
        let mut states = ProducerStates::default();
        for batch in 0..7 {
            appended(
                &mut states,
                &header(7, 0, batch * 10, 10),
                batch as u64 * 10,
            );
        }
        // The last five are remembered: a retry of each gets its original offsets.
        for batch in 2..7 {
            let retry = header(7, 0, batch * 10, 10);
            let Ok(SequenceCheck::Duplicate(original)) = states.check(&retry) else {
                panic!("batch {batch} is a duplicate");
            };
            assert_eq!(original.base_offset, batch as u64 * 10);
            assert_eq!(original.last_offset, batch as u64 * 10 + 9);
        }
        // Older ones are gone: a retry of batch 1 is out of order.
        assert!(matches!(
            states.check(&header(7, 0, 10, 10)),
            Err(SequenceError::OutOfOrderSequence { last: 69, .. })
        ));
        assert_eq!(
            states.check(&header(7, 0, 70, 3)),
            Ok(SequenceCheck::Append)
        );
    }

    #[test]
    fn gaps_stale_epochs_and_unknown_producers_are_refused() {
        let mut states = ProducerStates::default();
        appended(&mut states, &header(1, 3, 0, 5), 0);
        assert!(matches!(
            states.check(&header(1, 3, 6, 1)),
            Err(SequenceError::OutOfOrderSequence {
                sequence: 6,
                last: 4,
                ..
            })
        ));
        assert!(matches!(
            states.check(&header(1, 2, 5, 1)),
            Err(SequenceError::InvalidProducerEpoch { current: 3, .. })
        ));
        assert!(matches!(
            states.check(&header(1, 4, 5, 1)),
            Err(SequenceError::OutOfOrderSequence { last: -1, .. })
        ));
        assert_eq!(states.check(&header(1, 4, 0, 1)), Ok(SequenceCheck::Append));
        assert!(matches!(
            states.check(&header(2, 0, 9, 1)),
            Err(SequenceError::UnknownProducerId { sequence: 9, .. })
        ));
        assert!(matches!(
            states.check(&header(2, 0, -1, 1)),
            Err(SequenceError::InvalidSequence { .. })
        ));
        assert_eq!(
            states.check(&header(-1, -1, -1, 1)),
            Ok(SequenceCheck::Append)
        );
    }

    #[test]
    fn a_new_epoch_forgets_the_old_batches_and_sequences_wrap() {
        let mut states = ProducerStates::default();
        appended(&mut states, &header(1, 0, 0, 2), 0);
        appended(&mut states, &header(1, 1, 0, 2), 2);
        assert_eq!(states.last_batch(1).map(|(epoch, _)| epoch), Some(1));
        assert!(matches!(
            states.check(&header(1, 0, 0, 2)),
            Err(SequenceError::InvalidProducerEpoch { .. })
        ));
        appended(&mut states, &header(1, 1, 2, i32::MAX as u32 - 2), 4);
        let (_, last) = states.last_batch(1).unwrap();
        assert_eq!(last.map(|batch| batch.last_sequence), Some(i32::MAX - 1));
        appended(&mut states, &header(1, 1, i32::MAX, 2), 10);
        let (_, last) = states.last_batch(1).unwrap();
        assert_eq!(last.map(|batch| batch.last_sequence), Some(0));
        assert_eq!(states.check(&header(1, 1, 1, 1)), Ok(SequenceCheck::Append));
    }

    #[test]
    fn producers_are_bounded_expire_and_truncate() {
        let mut states = ProducerStates::default();
        for producer_id in 0..3 {
            states.record(
                &header(producer_id, 0, 0, 1),
                producer_id as u64,
                producer_id,
                2,
            );
        }
        assert_eq!(states.len(), 2, "the least recent producer made room");
        assert!(states.last_batch(0).is_none());
        assert_eq!(states.expire(2_000, 1_000), 2);
        states.record(&header(5, 0, 0, 1), 10, 0, 10);
        states.record(&header(5, 0, 1, 1), 11, 0, 10);
        states.truncate_to(11);
        assert_eq!(
            states
                .last_batch(5)
                .and_then(|(_, last)| last)
                .map(|batch| batch.base_offset),
            Some(10)
        );
        states.truncate_to(10);
        assert!(states.is_empty());
    }

    fn transactional(producer_id: i64, sequence: i32) -> BatchHeader {
        BatchHeader {
            attributes: crate::record::ATTRIBUTE_TRANSACTIONAL_BIT,
            ..header(producer_id, 0, sequence, 1)
        }
    }

    #[test]
    fn transactions_move_the_lso_survive_snapshots_and_truncation() {
        let mut states = ProducerStates::default();
        states.record(&transactional(1, 0), 10, 0, 10);
        states.record(&transactional(1, 1), 11, 0, 10);
        states.record(&transactional(2, 0), 12, 0, 10);
        assert_eq!(states.first_unstable_offset(), Some(10));
        states.end_transaction(1, TransactionMarker::Abort, 13, 10);
        assert_eq!(states.first_unstable_offset(), Some(12));
        let abort = AbortedTransaction {
            producer_id: 1,
            first_offset: 10,
            last_offset: 13,
        };
        assert_eq!(states.aborted_overlapping(0, 100), vec![abort]);
        assert_eq!(states.aborted_overlapping(14, 100), vec![]);
        // Idle expiry never forgets a producer whose transaction is open.
        assert_eq!(states.expire(i64::MAX, 1), 1);
        assert_eq!(states.first_unstable_offset(), Some(12));

        let snapshot = states.encode_snapshot(14);
        assert!(snapshot.len() as u64 <= ProducerStates::snapshot_bytes_max(1, 1));
        assert_eq!(
            ProducerStates::decode_snapshot(&snapshot),
            Ok((states.clone(), 14))
        );

        // Truncating below the abort marker opens the transaction again (its producer had
        // expired: it comes back); below a transaction's first offset forgets it.
        states.truncate_to(13);
        assert_eq!(states.aborted_overlapping(0, 100), vec![]);
        assert_eq!(states.first_unstable_offset(), Some(10));
        assert_eq!(states.ongoing_count(), 2);
        states.truncate_to(11);
        assert_eq!(states.first_unstable_offset(), Some(10));
        assert_eq!(states.ongoing_count(), 1, "producer 2's began at 12");
        states.truncate_to(10);
        assert_eq!(states.first_unstable_offset(), None);
    }

    #[test]
    fn producers_with_open_transactions_are_never_evicted_and_stay_bounded() {
        let mut states = ProducerStates::default();
        states.record(&transactional(1, 0), 0, 0, 2);
        states.record(&transactional(2, 0), 1, 0, 2);
        assert_eq!(
            states.check_room(&transactional(3, 0), 2),
            Err(SequenceError::TooManyOpenTransactions {
                producer_id: 3,
                producers_max: 2
            })
        );
        // Known producers and plain batches are not held to it.
        assert_eq!(states.check_room(&transactional(1, 1), 2), Ok(()));
        assert_eq!(states.check_room(&header(3, 0, 0, 1), 2), Ok(()));
        // Once one transaction ends, its producer may make room.
        states.end_transaction(1, TransactionMarker::Commit, 2, 10);
        assert_eq!(states.check_room(&transactional(3, 0), 2), Ok(()));
        states.record(&transactional(3, 0), 3, 0, 2);
        assert_eq!(states.len(), 2);
        assert_eq!(states.first_unstable_offset(), Some(1), "2's stays open");
    }

    #[test]
    fn aborted_transactions_are_bounded_oldest_first() {
        let mut states = ProducerStates::default();
        for round in 0..3u64 {
            states.record(&transactional(1, round as i32), round * 2, 0, 10);
            states.end_transaction(1, TransactionMarker::Abort, round * 2 + 1, 2);
        }
        let kept: Vec<u64> = states
            .aborted_overlapping(0, 100)
            .iter()
            .map(|txn| txn.first_offset)
            .collect();
        assert_eq!(kept, vec![2, 4]);
        states.forget_aborted_below(4);
        assert_eq!(states.aborted_overlapping(0, 100).len(), 1);
    }

    #[test]
    fn a_snapshot_round_trips_and_damage_is_reported() {
        let mut states = ProducerStates::default();
        for batch in 0..6 {
            states.record(&header(42, 1, batch * 2, 2), batch as u64 * 2, 77, 10);
        }
        states.record(&header(-5, 0, 0, 1), 12, 0, 10);
        states.record(&header(3, 0, 0, 1), 13, 5, 10);
        let snapshot = states.encode_snapshot(14);
        assert!(snapshot.len() as u64 <= ProducerStates::snapshot_bytes_max(3, 0));
        assert_eq!(ProducerStates::decode_snapshot(&snapshot), Ok((states, 14)));
        let mut damaged = snapshot.clone();
        damaged[10] ^= 1;
        assert!(ProducerStates::decode_snapshot(&damaged).is_err());
        assert!(ProducerStates::decode_snapshot(&snapshot[..5]).is_err());
    }
}
