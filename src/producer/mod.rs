//! Producer-side state the broker keeps outside any one partition: the producer ids it hands
//! out (`id_allocator.rs`) and each transactional id's state and rules at its coordinator
//! (`transaction.rs`). Each partition's sequences, epochs, open transactions and aborted
//! transactions live with its log (`storage::producer_state`), on the shard that owns it.

pub mod id_allocator;
pub mod transaction;

pub use id_allocator::{ProducerIdAllocator, ProducerIdError, PRODUCER_ID_BLOCK_SIZE};
pub use transaction::{
    EndTransaction, TransactionError, TransactionMetadata, TransactionState, TransitionOutcome,
};
