//! The real storage I/O: glommio's O_DIRECT `DmaFile` on io_uring. Calls without an io_uring
//! form (directory creation, listing, recursive removal, `stat`) run on glommio's blocking
//! pool, never on the shard thread. Every path handed to glommio is absolute: opening a DMA
//! file runs statfs on the path and glommio unwraps that.

use std::cell::RefCell;
use std::io;
use std::path::{Path, PathBuf};

use glommio::io::{DmaFile, OpenOptions};

use crate::blocking::run_blocking;

pub(super) async fn prepare_directory(directory: &Path) -> io::Result<PathBuf> {
    let requested = directory.to_path_buf();
    run_blocking(move || {
        std::fs::create_dir_all(&requested)?;
        std::fs::canonicalize(&requested)
    })
    .await
}

pub(super) async fn list(directory: &Path) -> io::Result<Vec<String>> {
    let listed = directory.to_path_buf();
    run_blocking(move || {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(&listed)? {
            if let Ok(name) = entry?.file_name().into_string() {
                names.push(name);
            }
        }
        Ok(names)
    })
    .await
}

pub(super) async fn open(path: &Path, truncate: bool) -> io::Result<DmaFile> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(truncate)
        .dma_open(path)
        .await
        .map_err(io::Error::from)
}

pub(super) async fn sync_directory(directory: &Path) -> io::Result<()> {
    let opened = glommio::io::Directory::open(directory).await?;
    opened.sync().await?;
    opened.close().await.map_err(io::Error::from)
}

pub(super) async fn remove_directory_all(directory: &Path) -> io::Result<()> {
    let removed = directory.to_path_buf();
    run_blocking(move || std::fs::remove_dir_all(&removed)).await
}

thread_local! {
    /// Devices whose io_uring poll support this thread's glommio has probed.
    static PROBED_DEVICES: RefCell<Vec<u64>> = const { RefCell::new(Vec::new()) };
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
pub(super) async fn prime_direct_io_probe(directory: &Path) -> io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let stated = directory.to_path_buf();
    let device = run_blocking(move || std::fs::metadata(&stated))
        .await?
        .dev();
    if PROBED_DEVICES.with(|probed| probed.borrow().contains(&device)) {
        return Ok(());
    }
    let path = directory.join(DIRECT_IO_PROBE_FILE);
    let written = path.clone();
    run_blocking(move || std::fs::write(&written, [0u8; 4096])).await?;
    let file = DmaFile::open(&path).await?;
    file.close().await?;
    glommio::io::remove(&path).await?;
    PROBED_DEVICES.with(|probed| probed.borrow_mut().push(device));
    Ok(())
}
