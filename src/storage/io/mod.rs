//! The storage I/O seam: the partition log reaches files only through [`StorageIo`] (the file
//! system: create, open, rename, remove, directory sync, list) and [`StorageFile`] (write at,
//! read at, fdatasync, truncate, size).
//!
//! Two implementations sit behind it:
//! - `dma` (the broker's): glommio's O_DIRECT `DmaFile` on io_uring, as before the seam, with
//!   directory creation and listing on glommio's blocking pool;
//! - [`MemoryFs`] (tests and, later, the fault simulator): files in memory, with injected
//!   faults ([`Fault`]) and a simulated power loss ([`MemoryFs::power_loss`]) that loses, keeps
//!   or tears whatever no completed fdatasync or directory sync covers.
//!
//! The seam is a pair of enums rather than a trait object: a call costs one predictable
//! branch, no boxed future and no allocation, so the append and fetch paths pay nothing
//! measurable for it, and nothing above the log becomes generic. Every call answers
//! `std::io::Result`; the log's callers turn errors into [`super::StorageError`] with the
//! operation and path.
//!
//! Write buffers are glommio `DmaBuffer`s in both implementations (the log stages into the
//! executor's registered arena), so both run inside a glommio executor. The seam carries no
//! time: the log's clock is its own seam (`PartitionLog::set_clock`), and `MemoryFs` completes
//! every call at once, so a simulated run is as fast as the CPU and its order is the
//! executor's.

mod dma;
mod fault;
mod memory;

pub use fault::{Fault, FaultKind, IoOperation};
pub use memory::{MemoryFs, PowerLossReport};

use std::io;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use glommio::io::{DmaBuffer, DmaFile, ReadResult};

/// The file system a partition log works on. Cloning gives another handle to the same one.
#[derive(Clone, Default)]
pub enum StorageIo {
    /// Real files: glommio DMA (O_DIRECT) on io_uring.
    #[default]
    Dma,
    /// Files in memory, with fault injection and power-loss simulation.
    Memory(Rc<MemoryFs>),
}

impl std::fmt::Debug for StorageIo {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(match self {
            Self::Dma => "StorageIo::Dma",
            Self::Memory(_) => "StorageIo::Memory",
        })
    }
}

impl StorageIo {
    /// Creates `directory` and its parents if missing and returns its absolute path.
    pub async fn prepare_directory(&self, directory: &Path) -> io::Result<PathBuf> {
        match self {
            Self::Dma => dma::prepare_directory(directory).await,
            Self::Memory(fs) => fs.prepare_directory(directory),
        }
    }

    /// The names in `directory` (files and subdirectories); names that are not UTF-8 are left
    /// out (they are not the log's).
    pub async fn list(&self, directory: &Path) -> io::Result<Vec<String>> {
        match self {
            Self::Dma => dma::list(directory).await,
            Self::Memory(fs) => fs.list(directory),
        }
    }

    /// Opens `path` for reading and writing, creating it empty if missing.
    pub async fn open(&self, path: &Path) -> io::Result<StorageFile> {
        match self {
            Self::Dma => dma::open(path, false).await.map(StorageFile::Dma),
            Self::Memory(fs) => fs.open(path, false).map(StorageFile::Memory),
        }
    }

    /// Opens `path` for reading and writing, created or emptied.
    pub async fn create(&self, path: &Path) -> io::Result<StorageFile> {
        match self {
            Self::Dma => dma::open(path, true).await.map(StorageFile::Dma),
            Self::Memory(fs) => fs.open(path, true).map(StorageFile::Memory),
        }
    }

    /// Opens an existing file for reading; `NotFound` if there is none.
    pub async fn open_existing(&self, path: &Path) -> io::Result<StorageFile> {
        match self {
            Self::Dma => DmaFile::open(path)
                .await
                .map(StorageFile::Dma)
                .map_err(io::Error::from),
            Self::Memory(fs) => fs.open_existing(path).map(StorageFile::Memory),
        }
    }

    /// Renames `from` to `to` (same directory), replacing `to` atomically.
    pub async fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        match self {
            Self::Dma => glommio::io::rename(from, to).await.map_err(io::Error::from),
            Self::Memory(fs) => fs.rename(from, to),
        }
    }

    /// Removes a file; `NotFound` if there is none.
    pub async fn remove(&self, path: &Path) -> io::Result<()> {
        match self {
            Self::Dma => glommio::io::remove(path).await.map_err(io::Error::from),
            Self::Memory(fs) => fs.remove(path),
        }
    }

    /// Makes creations, renames and removals in `directory` durable.
    pub async fn sync_directory(&self, directory: &Path) -> io::Result<()> {
        match self {
            Self::Dma => dma::sync_directory(directory).await,
            Self::Memory(fs) => fs.sync_directory(directory),
        }
    }

    /// Removes `directory` and everything in it.
    pub async fn remove_directory_all(&self, directory: &Path) -> io::Result<()> {
        match self {
            Self::Dma => dma::remove_directory_all(directory).await,
            Self::Memory(fs) => fs.remove_directory_all(directory),
        }
    }

    /// Readies the device of `directory` for direct I/O on this thread (glommio's IOPOLL
    /// probe; see `dma::prime_direct_io_probe`). Nothing to do in memory.
    pub async fn prime_direct_io(&self, directory: &Path) -> io::Result<()> {
        match self {
            Self::Dma => dma::prime_direct_io_probe(directory).await,
            Self::Memory(_) => Ok(()),
        }
    }
}

/// An open file of a [`StorageIo`].
pub enum StorageFile {
    /// A glommio O_DIRECT file.
    Dma(DmaFile),
    /// A file of a [`MemoryFs`].
    Memory(memory::MemoryFile),
}

impl StorageFile {
    /// Writes `buffer` at `position` (block-aligned for O_DIRECT); returns the bytes written.
    pub async fn write_at(&self, buffer: DmaBuffer, position: u64) -> io::Result<usize> {
        match self {
            Self::Dma(file) => file
                .write_at(buffer, position)
                .await
                .map_err(io::Error::from),
            Self::Memory(file) => file.write_at(buffer.as_bytes(), position),
        }
    }

    /// Reads up to `length` bytes at `position` (fewer at the end of the file).
    pub async fn read_at(&self, position: u64, length: usize) -> io::Result<FileBytes> {
        match self {
            Self::Dma(file) => file
                .read_at(position, length)
                .await
                .map(FileBytes::Dma)
                .map_err(io::Error::from),
            Self::Memory(file) => file.read_at(position, length).map(FileBytes::Memory),
        }
    }

    /// Makes the file's data (and the size needed to read it) durable.
    pub async fn fdatasync(&self) -> io::Result<()> {
        match self {
            Self::Dma(file) => file.fdatasync().await.map_err(io::Error::from),
            Self::Memory(file) => file.fdatasync(),
        }
    }

    /// Sets the file's size.
    pub async fn truncate(&self, size_bytes: u64) -> io::Result<()> {
        match self {
            Self::Dma(file) => file.truncate(size_bytes).await.map_err(io::Error::from),
            Self::Memory(file) => file.truncate(size_bytes),
        }
    }

    /// The file's size.
    pub async fn file_size(&self) -> io::Result<u64> {
        match self {
            Self::Dma(file) => file.file_size().await.map_err(io::Error::from),
            Self::Memory(file) => file.file_size(),
        }
    }

    /// Closes the file (dropping it closes it too, without the error).
    pub async fn close(self) -> io::Result<()> {
        match self {
            Self::Dma(file) => file.close().await.map_err(io::Error::from),
            Self::Memory(_) => Ok(()),
        }
    }
}

/// Bytes a [`StorageFile::read_at`] returned.
pub enum FileBytes {
    /// glommio's read buffer.
    Dma(ReadResult),
    /// A copy out of a [`MemoryFs`] file.
    Memory(Vec<u8>),
}

impl Deref for FileBytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            Self::Dma(read) => read,
            Self::Memory(bytes) => bytes,
        }
    }
}
