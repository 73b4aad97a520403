//! Small glommio file helpers shared by segments, indexes and markers. Every path handed to
//! glommio is absolute: opening a DMA file runs statfs on the path and glommio unwraps that.

use std::path::{Path, PathBuf};

use glommio::io::{DmaFile, OpenOptions};

use super::error::{io_error, StorageError, StorageResult};

/// Opens (creating if missing) a file for O_DIRECT reads and writes.
pub(crate) async fn open_read_write(path: &Path) -> StorageResult<DmaFile> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .dma_open(path)
        .await
        .map_err(io_error("open", path))
}

/// Reads exactly `[position, position + length)`; a short read is an error.
pub(crate) async fn read_exact(
    file: &DmaFile,
    path: &Path,
    position: u64,
    length: usize,
) -> StorageResult<glommio::io::ReadResult> {
    let read = file
        .read_at(position, length)
        .await
        .map_err(io_error("read", path))?;
    if read.len() != length {
        return Err(StorageError::Io {
            operation: "read",
            path: path.to_path_buf(),
            source: std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!(
                    "short read at {position}: wanted {length} bytes, got {}",
                    read.len()
                ),
            ),
        });
    }
    Ok(read)
}

/// What [`read_small_file`] found.
pub(crate) enum SmallFile {
    /// No such file.
    Missing,
    /// Larger than the caller's bound: not read (it cannot be valid).
    TooLarge,
    /// The whole file.
    Contents(Vec<u8>),
}

/// Reads a whole small file (an index), unless it is larger than `bytes_max`: damage on disk
/// must not make the broker allocate whatever size a garbage file claims.
pub(crate) async fn read_small_file(path: &Path, bytes_max: u64) -> StorageResult<SmallFile> {
    if !path.exists() {
        return Ok(SmallFile::Missing);
    }
    let file = DmaFile::open(path).await.map_err(io_error("open", path))?;
    let size = file.file_size().await.map_err(io_error("stat", path))?;
    let bytes = if size > bytes_max {
        None
    } else if size == 0 {
        Some(Vec::new())
    } else {
        Some(read_exact(&file, path, 0, size as usize).await?.to_vec())
    };
    file.close().await.map_err(io_error("close", path))?;
    Ok(bytes.map_or(SmallFile::TooLarge, SmallFile::Contents))
}

/// Replaces `path` with `contents` atomically: write a temporary file, fdatasync, rename.
/// The caller syncs the directory when the rename itself must be durable.
pub(crate) async fn write_small_file(path: &Path, contents: &[u8]) -> StorageResult<()> {
    let temporary = temporary_path(path);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .dma_open(&temporary)
        .await
        .map_err(io_error("create", &temporary))?;
    if !contents.is_empty() {
        let alignment = file.alignment() as usize;
        let padded = contents.len().div_ceil(alignment) * alignment;
        let mut buffer = file.alloc_dma_buffer(padded);
        let bytes = buffer.as_bytes_mut();
        bytes[..contents.len()].copy_from_slice(contents);
        bytes[contents.len()..].fill(0);
        let written = file
            .write_at(buffer, 0)
            .await
            .map_err(io_error("write", &temporary))?;
        if written != padded {
            return Err(short_write(&temporary, padded, written));
        }
        file.truncate(contents.len() as u64)
            .await
            .map_err(io_error("truncate", &temporary))?;
    }
    file.fdatasync()
        .await
        .map_err(io_error("fdatasync", &temporary))?;
    file.close().await.map_err(io_error("close", &temporary))?;
    glommio::io::rename(&temporary, path)
        .await
        .map_err(io_error("rename", path))?;
    Ok(())
}

/// fsyncs a directory so that creations, renames and removals in it are durable.
pub(crate) async fn sync_directory(path: &Path) -> StorageResult<()> {
    let directory = glommio::io::Directory::open(path)
        .await
        .map_err(io_error("open directory", path))?;
    directory
        .sync()
        .await
        .map_err(io_error("fsync directory", path))?;
    directory
        .close()
        .await
        .map_err(io_error("close directory", path))
}

/// Removes a file; a file that is already gone is not an error.
pub(crate) async fn remove_if_exists(path: &Path) -> StorageResult<()> {
    if !path.exists() {
        return Ok(());
    }
    glommio::io::remove(path)
        .await
        .map_err(io_error("remove", path))
}

pub(crate) fn temporary_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_os_string();
    name.push(".tmp");
    PathBuf::from(name)
}

pub(crate) fn short_write(path: &Path, wanted: usize, written: usize) -> StorageError {
    StorageError::Io {
        operation: "write",
        path: path.to_path_buf(),
        source: std::io::Error::new(
            std::io::ErrorKind::WriteZero,
            format!("short write: {written} of {wanted} bytes"),
        ),
    }
}

thread_local! {
    /// Devices whose io_uring poll support this thread's glommio has probed.
    static PROBED_DEVICES: std::cell::RefCell<Vec<u64>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Name of the scratch file used by [`prime_direct_io_probe`].
const DIRECT_IO_PROBE_FILE: &str = ".direct_io_probe";

/// Makes glommio's per-thread, per-device IOPOLL probe see real data.
///
/// glommio decides whether a device supports polled I/O by reading the first O_DIRECT file a
/// thread opens on it, and remembers the answer. If that file is empty (a new segment), the
/// read succeeds at end-of-file without reaching the device, the device is marked pollable,
/// and every later read on it fails with EOPNOTSUPP on devices without poll queues (virtio
/// disks among them). Opening a non-empty file first gives the probe a real answer.
pub(crate) async fn prime_direct_io_probe(directory: &Path) -> StorageResult<()> {
    use std::os::unix::fs::MetadataExt;
    let stated = directory.to_path_buf();
    let device = crate::blocking::run_blocking(move || {
        std::fs::metadata(&stated).map_err(super::error::std_io_error("stat", &stated))
    })
    .await?
    .dev();
    if PROBED_DEVICES.with(|probed| probed.borrow().contains(&device)) {
        return Ok(());
    }
    let path = directory.join(DIRECT_IO_PROBE_FILE);
    let written = path.clone();
    crate::blocking::run_blocking(move || {
        std::fs::write(&written, [0u8; 4096]).map_err(super::error::std_io_error("write", &written))
    })
    .await?;
    let file = DmaFile::open(&path)
        .await
        .map_err(io_error("open", &path))?;
    file.close().await.map_err(io_error("close", &path))?;
    remove_if_exists(&path).await?;
    PROBED_DEVICES.with(|probed| probed.borrow_mut().push(device));
    Ok(())
}
