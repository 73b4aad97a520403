//! Producer-side state the broker keeps outside any one partition: the producer ids it hands
//! out (`id_allocator.rs`). Each partition's sequences and epochs live with its log
//! (`storage::producer_state`), on the shard that owns it.

pub mod id_allocator;

pub use id_allocator::{ProducerIdAllocator, ProducerIdError, PRODUCER_ID_BLOCK_SIZE};
