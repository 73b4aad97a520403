//! Shared helpers for the storage integration tests: a glommio executor per test, batch
//! factories, and a model of what the log should hold.
#![allow(dead_code)]

use std::future::Future;
use std::path::Path;
use std::rc::Rc;

use bytes::Bytes;
use glommio::{LocalExecutorBuilder, Placement};
use streambus::record::{BatchHeader, Record, RecordBatch, RecordBatchBuilder};
use streambus::storage::{LogConfig, MemTableBudget, PartitionLog, StorageResult};

/// glommio's registered I/O arena per test executor.
pub const TEST_IO_MEMORY_BYTES: usize = 16 << 20;

/// Runs `body` on a fresh glommio executor thread and waits for it.
pub fn run<F, Fut>(body: F)
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = ()> + 'static,
{
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    LocalExecutorBuilder::new(Placement::Unbound)
        .io_memory(TEST_IO_MEMORY_BYTES)
        .spawn(body)
        .expect("spawn glommio executor (is `ulimit -l` high enough?)")
        .join()
        .expect("test executor panicked");
}

/// A batch of `records` records whose values are `value_bytes` long and carry `seed`.
pub fn batch(seed: u64, records: usize, value_bytes: usize, timestamp_ms: i64) -> RecordBatch {
    let mut builder = RecordBatchBuilder::with_capacity(records * (value_bytes + 32));
    for index in 0..records {
        let key = format!("k{seed}-{index}");
        let mut value = vec![(seed as u8).wrapping_add(index as u8); value_bytes];
        if value_bytes >= 8 {
            value[..8].copy_from_slice(&seed.to_be_bytes());
        }
        builder.push(Record {
            key: Some(key.as_bytes()),
            value: Some(&value),
            headers: &[],
            timestamp_ms: timestamp_ms + index as i64,
        });
    }
    builder.build()
}

/// Opens a log with its own MemTable budget.
pub async fn open(dir: &Path, config: LogConfig) -> StorageResult<PartitionLog> {
    PartitionLog::open(dir, config, MemTableBudget::new(64 << 20)).await
}

/// Opens a log sharing `budget`.
pub async fn open_with(
    dir: &Path,
    config: LogConfig,
    budget: Rc<MemTableBudget>,
) -> StorageResult<PartitionLog> {
    PartitionLog::open(dir, config, budget).await
}

/// Every batch header in `bytes` (concatenated whole batches), CRC-checked.
pub fn headers(bytes: &[Bytes]) -> Vec<(BatchHeader, Bytes)> {
    let mut out = Vec::new();
    for chunk in bytes {
        let mut at = 0;
        while at < chunk.len() {
            let header = BatchHeader::parse_verified(&chunk[at..])
                .expect("read returns whole valid batches");
            out.push((header, chunk.slice(at..at + header.total_bytes())));
            at += header.total_bytes();
        }
    }
    out
}

/// Reads the whole log from `from` to the high watermark; returns every batch in order.
pub async fn read_all(log: &PartitionLog, from: u64) -> Vec<(BatchHeader, Bytes)> {
    let mut offset = from;
    let mut out = Vec::new();
    let end = log.high_watermark();
    while offset < end {
        let read = log.read(offset, 64 << 10).await.expect("read in range");
        let found = headers(&read.batches);
        assert!(
            !found.is_empty(),
            "no progress reading at {offset} (hw {end})"
        );
        for (header, bytes) in found {
            offset = header.next_offset();
            out.push((header, bytes));
        }
    }
    out
}

/// The bytes a batch has once stored at `base_offset` (what reads must return).
pub fn stored_form(batch: &RecordBatch, base_offset: u64) -> Vec<u8> {
    let mut bytes = batch.as_bytes().to_vec();
    bytes[..8].copy_from_slice(&base_offset.to_be_bytes());
    bytes
}

/// The `.log` files of a partition directory, sorted.
pub fn log_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("list dir")
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "log"))
        .collect();
    files.sort();
    files
}

/// A temporary directory for a test's data: under `STREAMBUS_TEST_DIR` when set, else under
/// the build directory (`CARGO_TARGET_TMPDIR`), which is on the same disk as the checkout.
pub fn tempdir() -> tempfile::TempDir {
    let root = std::env::var_os("STREAMBUS_TEST_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")));
    std::fs::create_dir_all(&root).expect("test data root");
    tempfile::tempdir_in(root).expect("tempdir")
}
