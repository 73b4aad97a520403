//! The storage engine: one [`PartitionLog`] per partition, owned by one shard.
//!
//! | piece | file | role |
//! | --- | --- | --- |
//! | [`PartitionLog`] | `log/` | one file per concept: `mod.rs` (handle, state, mode, open, close, delete), `append.rs`, `flusher.rs` (group commit, seal, durability waits), `read.rs`, `retention.rs` (with recycling), `truncate.rs` |
//! | segment | `segment.rs` | `<base_offset:020>.log`, DMA staging and cold reads |
//! | [`OffsetIndex`] | `offset_index.rs` | sparse `.index`: relative offset -> file position |
//! | [`TimeIndex`] | `time_index.rs` | sparse `.timeindex`: timestamp -> relative offset |
//! | [`MemTable`] | `memtable.rs` | ring of recent batches under a per-shard [`MemTableBudget`] |
//! | recovery | `recovery.rs` | a directory's segments checked batch by batch, cuts, index rebuilds: the value a log is built from |
//! | I/O seam | `io/` | every file call of the log: glommio DMA, or [`io::MemoryFs`] with faults and power loss |
//! | file helpers | `fileio.rs` | exact reads, small atomic files, removal, directory sync, over the seam |
//!
//! See `../shared/DESIGN.md` §3 for why the log is organised this way.

mod config;
mod error;
pub(crate) mod fileio;
pub mod io;
mod log;
mod memtable;
mod offset_index;
pub mod producer_state;
mod recovery;
mod segment;
mod time_index;

pub use config::*;
pub(crate) use error::io_error;
pub use error::{StorageError, StorageResult};
pub use log::{
    system_clock_ms, AppendInfo, LogRead, LogStats, PartitionLog, RetentionOutcome,
    TimestampOffset, CLEAN_SHUTDOWN_MARKER,
};
pub use memtable::{MemTable, MemTableBudget, MEMTABLE_BUDGET_BYTES_DEFAULT};
pub use offset_index::{IndexEntry, OffsetIndex, OFFSET_INDEX_ENTRY_BYTES};
pub use producer_state::{
    AbortedTransaction, ProducerStates, SequenceError, TransactionMarker,
    ABORTED_TRANSACTIONS_MAX_DEFAULT, PRODUCERS_PER_PARTITION_MAX_DEFAULT,
    PRODUCER_ID_EXPIRATION_MS_DEFAULT,
};
pub use recovery::{RecoveryCut, RecoveryReport};
pub use segment::{COLD_READ_BYTES_MAX, DMA_ALIGNMENT_BYTES};
pub use time_index::{TimeIndex, TimeIndexEntry, TIME_INDEX_ENTRY_BYTES};
