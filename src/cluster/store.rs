//! Persistence of the cluster metadata: `<data_dir>/cluster/metadata.json`, replaced atomically
//! (write a temporary file, fsync it, rename it over the old one, fsync the directory), so a
//! crash leaves either the old snapshot or the new one, never a mix.
//!
//! The file is small (a few hundred bytes per topic) and changes only on control requests, so
//! plain blocking file I/O on shard 0 is fine here; the data path never comes near it.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use thiserror::Error;

use super::ClusterMetadata;

/// Directory under the data directory holding the cluster metadata.
pub const CLUSTER_DIRECTORY: &str = "cluster";
/// The metadata file's name.
pub const METADATA_FILE: &str = "metadata.json";
/// A metadata file larger than this is refused as corrupt rather than read.
pub const METADATA_FILE_BYTES_MAX: u64 = 256 << 20;

/// Errors reading or writing the metadata file.
#[derive(Debug, Error)]
pub enum MetadataStoreError {
    /// A file operation failed.
    #[error("{operation} {path}: {source}")]
    Io {
        /// What was being done.
        operation: &'static str,
        /// On which path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file exists but cannot be decoded.
    #[error("metadata file {path} is corrupt: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// Reads and writes the metadata snapshot of one data directory.
#[derive(Debug, Clone)]
pub struct MetadataStore {
    directory: PathBuf,
}

impl MetadataStore {
    /// The store under `data_dir`.
    pub fn new(data_dir: &Path) -> Self {
        Self {
            directory: data_dir.join(CLUSTER_DIRECTORY),
        }
    }

    /// The metadata file's path.
    pub fn path(&self) -> PathBuf {
        self.directory.join(METADATA_FILE)
    }

    /// The last snapshot written, or `None` for a new data directory.
    pub fn load(&self) -> Result<Option<ClusterMetadata>, MetadataStoreError> {
        let path = self.path();
        let io = |operation: &'static str| {
            let path = path.clone();
            move |source| MetadataStoreError::Io {
                operation,
                path,
                source,
            }
        };
        let size = match fs::metadata(&path) {
            Ok(metadata) => metadata.len(),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(io("stat")(error)),
        };
        if size > METADATA_FILE_BYTES_MAX {
            return Err(MetadataStoreError::Corrupt {
                path,
                reason: format!("{size} bytes is above the {METADATA_FILE_BYTES_MAX}-byte limit"),
            });
        }
        let text = fs::read(&path).map_err(io("read"))?;
        serde_json::from_slice(&text)
            .map(Some)
            .map_err(|error| MetadataStoreError::Corrupt {
                path,
                reason: error.to_string(),
            })
    }

    /// Replaces the snapshot on disk with `metadata`, durably.
    pub fn save(&self, metadata: &ClusterMetadata) -> Result<(), MetadataStoreError> {
        let path = self.path();
        let temporary = self.directory.join(format!("{METADATA_FILE}.tmp"));
        let io = |operation: &'static str, path: &Path| {
            let path = path.to_path_buf();
            move |source| MetadataStoreError::Io {
                operation,
                path,
                source,
            }
        };
        fs::create_dir_all(&self.directory).map_err(io("create directory", &self.directory))?;
        let encoded =
            serde_json::to_vec_pretty(metadata).map_err(|error| MetadataStoreError::Corrupt {
                path: path.clone(),
                reason: error.to_string(),
            })?;
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&temporary)
            .map_err(io("create", &temporary))?;
        file.write_all(&encoded).map_err(io("write", &temporary))?;
        file.sync_all().map_err(io("fsync", &temporary))?;
        drop(file);
        fs::rename(&temporary, &path).map_err(io("rename", &path))?;
        File::open(&self.directory)
            .and_then(|directory| directory.sync_all())
            .map_err(io("fsync directory", &self.directory))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::{TopicConfigs, TopicMetadata};

    #[test]
    fn save_then_load_round_trips_and_garbage_is_reported() {
        let directory = tempfile::tempdir().unwrap();
        let store = MetadataStore::new(directory.path());
        assert!(store.load().unwrap().is_none());
        let mut metadata = ClusterMetadata::new("abc".into(), 2);
        metadata.topics.insert(
            "t".into(),
            TopicMetadata {
                topic_id: 7,
                partition_shards: vec![0, 1],
                configs: TopicConfigs::default(),
            },
        );
        metadata.version = 3;
        store.save(&metadata).unwrap();
        assert_eq!(store.load().unwrap(), Some(metadata));
        fs::write(store.path(), b"{\"version\": 1, ").unwrap();
        assert!(matches!(
            store.load(),
            Err(MetadataStoreError::Corrupt { .. })
        ));
    }
}
