//! File helpers over the storage I/O seam ([`super::io`]), shared by segments, indexes and
//! markers: each turns an I/O error into a [`StorageError`] naming the operation and path.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use super::error::{io_error, StorageError, StorageResult};
use super::io::{FileBytes, StorageFile, StorageIo};
use super::segment::{align_up, DMA_ALIGNMENT_BYTES};

/// Opens (creating if missing) a file for O_DIRECT reads and writes.
pub(crate) async fn open_read_write(io: &StorageIo, path: &Path) -> StorageResult<StorageFile> {
    io.open(path).await.map_err(io_error("open", path))
}

/// Reads exactly `[position, position + length)`; a short read is an error.
pub(crate) async fn read_exact(
    file: &StorageFile,
    path: &Path,
    position: u64,
    length: usize,
) -> StorageResult<FileBytes> {
    let read = file
        .read_at(position, length)
        .await
        .map_err(io_error("read", path))?;
    if read.len() != length {
        return Err(StorageError::Io {
            operation: "read",
            path: path.to_path_buf(),
            source: std::io::Error::new(
                ErrorKind::UnexpectedEof,
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
pub(crate) async fn read_small_file(
    io: &StorageIo,
    path: &Path,
    bytes_max: u64,
) -> StorageResult<SmallFile> {
    let file = match io.open_existing(path).await {
        Ok(file) => file,
        Err(error) if error.kind() == ErrorKind::NotFound => return Ok(SmallFile::Missing),
        Err(error) => return Err(io_error("open", path)(error)),
    };
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
pub(crate) async fn write_small_file(
    io: &StorageIo,
    path: &Path,
    contents: &[u8],
) -> StorageResult<()> {
    let temporary = temporary_path(path);
    let file = io
        .create(&temporary)
        .await
        .map_err(io_error("create", &temporary))?;
    if !contents.is_empty() {
        // 4096 is a multiple of every logical block size, so it satisfies O_DIRECT anywhere.
        let padded = align_up(contents.len());
        debug_assert!(padded.is_multiple_of(DMA_ALIGNMENT_BYTES));
        let mut buffer = glommio::allocate_dma_buffer(padded);
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
    io.rename(&temporary, path)
        .await
        .map_err(io_error("rename", path))?;
    Ok(())
}

/// fsyncs a directory so that creations, renames and removals in it are durable.
pub(crate) async fn sync_directory(io: &StorageIo, path: &Path) -> StorageResult<()> {
    io.sync_directory(path)
        .await
        .map_err(io_error("fsync directory", path))
}

/// Removes a file; a file that is already gone is not an error.
pub(crate) async fn remove_if_exists(io: &StorageIo, path: &Path) -> StorageResult<()> {
    match io.remove(path).await {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == ErrorKind::NotFound => Ok(()),
        Err(error) => Err(io_error("remove", path)(error)),
    }
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
            ErrorKind::WriteZero,
            format!("short write: {written} of {wanted} bytes"),
        ),
    }
}
