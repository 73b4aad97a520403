//! Producer ids that stay unique across restarts, handed out by every shard without asking
//! another one.
//!
//! A shard's ids are `shard << SHARD_SHIFT | counter`, so no two shards can hand out the same
//! id, whatever the shard count was at earlier starts. The counter advances in blocks of
//! [`PRODUCER_ID_BLOCK_SIZE`]: before the first id of a block is handed out, the block's end
//! is written durably to `<data_dir>/producer_ids/shard-<N>`, so after a crash the counter
//! resumes past every id that may have been given (as Kafka's ProducerIdManager reserves
//! blocks in its metadata log). A restart skips the rest of the block; 2^40 ids per shard
//! leave room for a block per second for 34,000 years.

use std::cell::Cell;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use glommio::sync::Semaphore;
use thiserror::Error;

use crate::blocking::run_blocking;

/// Ids reserved by one durable write.
pub const PRODUCER_ID_BLOCK_SIZE: u64 = 1000;
/// The shard's bits start here: each shard owns 2^40 ids.
const SHARD_SHIFT: u32 = 40;
/// Shards whose ids fit below `i64::MAX`.
const SHARDS_MAX: u32 = 1 << (63 - SHARD_SHIFT);
/// The directory under the data directory.
const PRODUCER_IDS_DIRECTORY: &str = "producer_ids";

/// Why no producer id could be handed out.
#[derive(Debug, Error)]
pub enum ProducerIdError {
    /// Reading or writing the reservation file failed.
    #[error("{operation} {}: {source}", path.display())]
    Io {
        /// What was being done.
        operation: &'static str,
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The reservation file holds something else than a counter.
    #[error("producer id reservation {} is damaged: {content:?}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What it holds (its first bytes).
        content: String,
    },
    /// The shard handed out all 2^40 of its ids.
    #[error("shard {shard} has no producer ids left")]
    Exhausted {
        /// The shard.
        shard: u32,
    },
}

/// One shard's producer ids.
pub struct ProducerIdAllocator {
    shard_id: u32,
    path: PathBuf,
    /// The next counter value to hand out.
    next: Cell<u64>,
    /// Counter values below this are reserved durably; 0 before the first reservation.
    reserved_end: Cell<u64>,
    /// One reservation at a time: callers that find the block used up wait for it.
    reserving: Semaphore,
}

impl ProducerIdAllocator {
    /// The allocator of `shard_id`, reserving under `data_dir`. Nothing is read until the
    /// first id is asked for.
    pub fn new(data_dir: &Path, shard_id: u32) -> Self {
        debug_assert!(shard_id < SHARDS_MAX, "shard {shard_id} has no id space");
        Self {
            shard_id,
            path: data_dir
                .join(PRODUCER_IDS_DIRECTORY)
                .join(format!("shard-{shard_id}")),
            next: Cell::new(0),
            reserved_end: Cell::new(0),
            reserving: Semaphore::new(1),
        }
    }

    /// A producer id no producer of this broker had before. Must run inside a glommio
    /// executor: a reservation runs on its blocking pool.
    pub async fn next_id(&self) -> Result<i64, ProducerIdError> {
        loop {
            if self.next.get() < self.reserved_end.get() {
                let counter = self.next.get();
                self.next.set(counter + 1);
                return Ok(((u64::from(self.shard_id) << SHARD_SHIFT) | counter) as i64);
            }
            let _permit =
                self.reserving
                    .acquire_permit(1)
                    .await
                    .map_err(|_| ProducerIdError::Exhausted {
                        shard: self.shard_id,
                    })?;
            if self.next.get() < self.reserved_end.get() {
                // Another caller reserved while this one waited.
                continue;
            }
            let start = if self.reserved_end.get() == 0 {
                let path = self.path.clone();
                run_blocking(move || read_reservation(&path)).await?
            } else {
                self.reserved_end.get()
            };
            let end = start + PRODUCER_ID_BLOCK_SIZE;
            if end > 1 << SHARD_SHIFT {
                return Err(ProducerIdError::Exhausted {
                    shard: self.shard_id,
                });
            }
            let path = self.path.clone();
            run_blocking(move || write_reservation(&path, end)).await?;
            self.next.set(start);
            self.reserved_end.set(end);
        }
    }
}

fn io(operation: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> ProducerIdError {
    let path = path.to_path_buf();
    move |source| ProducerIdError::Io {
        operation,
        path,
        source,
    }
}

/// The counter a previous run reserved up to (0 if none did).
fn read_reservation(path: &Path) -> Result<u64, ProducerIdError> {
    let content = match fs::read(path) {
        Ok(content) => content,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(error) => return Err(io("read", path)(error)),
    };
    let text = String::from_utf8_lossy(&content);
    text.trim()
        .parse::<u64>()
        .map_err(|_| ProducerIdError::Corrupt {
            path: path.to_path_buf(),
            content: text.chars().take(40).collect(),
        })
}

/// Replaces the reservation with `end`, durably (temporary file, fsync, rename, directory
/// fsync).
fn write_reservation(path: &Path, end: u64) -> Result<(), ProducerIdError> {
    let directory = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(directory).map_err(io("create directory", directory))?;
    let temporary = path.with_extension("tmp");
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&temporary)
        .map_err(io("create", &temporary))?;
    file.write_all(format!("{end}\n").as_bytes())
        .map_err(io("write", &temporary))?;
    file.sync_all().map_err(io("fsync", &temporary))?;
    drop(file);
    fs::rename(&temporary, path).map_err(io("rename", path))?;
    File::open(directory)
        .and_then(|directory| directory.sync_all())
        .map_err(io("fsync directory", directory))
}

#[cfg(test)]
mod tests {
    use super::*;
    use glommio::LocalExecutorBuilder;

    #[test]
    fn ids_are_unique_per_shard_and_across_restarts() {
        let directory = tempfile::tempdir().expect("tempdir");
        let data_dir = directory.path().to_path_buf();
        LocalExecutorBuilder::new(glommio::Placement::Unbound)
            .io_memory(4 << 20)
            .spawn(move || async move {
                let first = ProducerIdAllocator::new(&data_dir, 0);
                let mut ids: Vec<i64> = Vec::new();
                for _ in 0..PRODUCER_ID_BLOCK_SIZE + 2 {
                    ids.push(first.next_id().await.expect("id"));
                }
                let other_shard = ProducerIdAllocator::new(&data_dir, 3);
                ids.push(other_shard.next_id().await.expect("id"));
                // A restart of shard 0: the counter resumes past its last reserved block.
                let restarted = ProducerIdAllocator::new(&data_dir, 0);
                let after_restart = restarted.next_id().await.expect("id");
                assert!(after_restart > ids[PRODUCER_ID_BLOCK_SIZE as usize + 1]);
                ids.push(after_restart);
                let distinct: std::collections::BTreeSet<i64> = ids.iter().copied().collect();
                assert_eq!(distinct.len(), ids.len(), "no id handed out twice");
                assert!(ids.iter().all(|id| *id >= 0));

                fs::write(data_dir.join(PRODUCER_IDS_DIRECTORY).join("shard-5"), "x")
                    .expect("write");
                let damaged = ProducerIdAllocator::new(&data_dir, 5);
                assert!(matches!(
                    damaged.next_id().await,
                    Err(ProducerIdError::Corrupt { .. })
                ));
            })
            .expect("executor")
            .join()
            .expect("test");
    }
}
