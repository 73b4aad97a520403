//! [`MemoryFs`]: a file system in memory that behaves as a disk does across a power loss.
//!
//! Each file keeps two images: what reads see now, and what the last completed fdatasync made
//! durable (tracked by 4 KiB block, so a sync copies only what changed). Each directory keeps
//! its entries, its durable entries and the changes since its last sync, in order (creations,
//! renames, removals). [`MemoryFs::power_loss`] then decides, from a seed, what a crash
//! leaves:
//! - in every directory, a prefix of the unsynced changes survives (journaled metadata is
//!   committed in order: a later change never survives without the earlier ones), anything
//!   from nothing to all of them;
//! - every file with unsynced data loses it all, keeps it all, or is torn: each unsynced
//!   512-byte sector comes from the new or the old image, and the size is the new or the old.
//!
//! Faults ([`Fault`]) make chosen calls fail with EIO or ENOSPC, or tear a write. Files opened
//! before a power loss fail with ESTALE afterwards, so a log left over from before the crash
//! cannot touch the files of the next run.
//!
//! Simplifications, on purpose: directories themselves are durable once created or removed
//! (the log syncs the entries inside its directory, which is what it relies on); there are no
//! hard links; renames stay within one directory (the log never renames across directories).

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Component, Path, PathBuf};
use std::rc::Rc;

use super::fault::{Fault, FaultKind, IoOperation};

/// Granule of unsynced-data tracking.
const BLOCK_BYTES: usize = 4096;
/// Granule of a torn write after a power loss: a device writes a sector whole or not at all.
const SECTOR_BYTES: usize = 512;

type InodeRef = Rc<RefCell<Inode>>;

/// A file system in memory with fault injection and power-loss simulation. Share it as
/// `Rc<MemoryFs>` (`StorageIo::Memory`); one thread only, like a shard.
#[derive(Default)]
pub struct MemoryFs {
    state: RefCell<FsState>,
}

#[derive(Default)]
struct FsState {
    directories: BTreeMap<PathBuf, Directory>,
    /// Bumped by every power loss; files opened under an older one are stale.
    generation: u64,
    faults: Vec<Fault>,
    calls: [u64; IoOperation::ALL.len()],
}

#[derive(Default)]
struct Directory {
    entries: BTreeMap<String, InodeRef>,
    durable_entries: BTreeMap<String, InodeRef>,
    /// Changes since the last directory sync, oldest first.
    pending: Vec<NamespaceChange>,
}

enum NamespaceChange {
    Link(String, InodeRef),
    Unlink(String),
    Rename(String, String),
}

impl NamespaceChange {
    fn apply(&self, entries: &mut BTreeMap<String, InodeRef>) {
        match self {
            Self::Link(name, inode) => {
                entries.insert(name.clone(), inode.clone());
            }
            Self::Unlink(name) => {
                entries.remove(name);
            }
            Self::Rename(from, to) => {
                if let Some(inode) = entries.remove(from) {
                    entries.insert(to.clone(), inode);
                }
            }
        }
    }
}

#[derive(Default)]
struct Inode {
    data: Vec<u8>,
    /// The image the last completed fdatasync left.
    durable: Vec<u8>,
    /// Blocks where `data` and `durable` may differ.
    dirty_blocks: BTreeSet<usize>,
}

impl Inode {
    fn mark_dirty(&mut self, start: usize, end: usize) {
        if end > start {
            self.dirty_blocks
                .extend(start / BLOCK_BYTES..end.div_ceil(BLOCK_BYTES));
        }
    }

    fn write(&mut self, bytes: &[u8], position: usize) {
        let end = position + bytes.len();
        let old_len = self.data.len();
        if end > old_len {
            self.data.resize(end, 0);
        }
        self.data[position..end].copy_from_slice(bytes);
        // A write past the end also fills the gap before it with zeros.
        self.mark_dirty(position.min(old_len), end);
    }

    fn truncate(&mut self, size: usize) {
        let old_len = self.data.len();
        self.data.resize(size, 0);
        self.mark_dirty(size.min(old_len), size.max(old_len));
    }

    fn sync(&mut self) {
        self.durable.resize(self.data.len(), 0);
        for &block in &self.dirty_blocks {
            let start = block * BLOCK_BYTES;
            let end = (start + BLOCK_BYTES).min(self.data.len());
            if start < end {
                self.durable[start..end].copy_from_slice(&self.data[start..end]);
            }
        }
        self.dirty_blocks.clear();
    }

    fn lose_power(&mut self, random: &mut fastrand::Rng, report: &mut PowerLossReport) {
        if self.dirty_blocks.is_empty() && self.data.len() == self.durable.len() {
            return;
        }
        match random.u8(0..3) {
            0 => {
                self.data = self.durable.clone();
                report.files_reverted += 1;
            }
            1 => report.files_kept += 1,
            _ => {
                let size = if random.bool() {
                    self.data.len()
                } else {
                    self.durable.len()
                };
                let mut torn = vec![0u8; size];
                for block in 0..size.div_ceil(BLOCK_BYTES) {
                    let start = block * BLOCK_BYTES;
                    let end = (start + BLOCK_BYTES).min(size);
                    if !self.dirty_blocks.contains(&block) {
                        copy_available(&self.data, start, end, &mut torn);
                        continue;
                    }
                    for sector in (start..end).step_by(SECTOR_BYTES) {
                        let sector_end = (sector + SECTOR_BYTES).min(end);
                        let source = if random.bool() {
                            &self.data
                        } else {
                            &self.durable
                        };
                        copy_available(source, sector, sector_end, &mut torn);
                    }
                }
                self.data = torn;
                report.files_torn += 1;
            }
        }
        self.durable = self.data.clone();
        self.dirty_blocks.clear();
    }
}

/// Copies `source[start..end]` into `target`, as far as `source` reaches (zeros beyond).
fn copy_available(source: &[u8], start: usize, end: usize, target: &mut [u8]) {
    let available = end.min(source.len());
    if start < available {
        target[start..available].copy_from_slice(&source[start..available]);
    }
}

/// What a simulated power loss did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PowerLossReport {
    /// Unsynced directory changes that survived.
    pub namespace_changes_kept: usize,
    /// Unsynced directory changes that were lost.
    pub namespace_changes_lost: usize,
    /// Files whose unsynced data was all lost.
    pub files_reverted: usize,
    /// Files whose unsynced data all survived.
    pub files_kept: usize,
    /// Files left with a mix of old and new sectors.
    pub files_torn: usize,
}

/// Splits a path into its normalised directory and file name.
fn split(path: &Path) -> io::Result<(PathBuf, String)> {
    let path = normalise(path);
    let name = path
        .file_name()
        .and_then(|name| name.to_str())
        .ok_or_else(|| invalid(&path, "no file name"))?
        .to_string();
    let directory = path
        .parent()
        .map_or_else(|| PathBuf::from("/"), Path::to_path_buf);
    Ok((directory, name))
}

/// An absolute path without `.` or `..`; relative paths are taken from `/`.
fn normalise(path: &Path) -> PathBuf {
    let mut normal = PathBuf::from("/");
    for component in path.components() {
        match component {
            Component::Normal(part) => normal.push(part),
            Component::ParentDir => {
                normal.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    normal
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{}: no such file or directory (in memory)", path.display()),
    )
}

fn invalid(path: &Path, why: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("{}: {why} (in memory)", path.display()),
    )
}

impl MemoryFs {
    /// An empty file system.
    pub fn new() -> Rc<Self> {
        Rc::new(Self::default())
    }

    /// Adds a fault; faults are checked in the order they were added.
    pub fn inject(&self, fault: Fault) {
        self.state.borrow_mut().faults.push(fault);
    }

    /// Removes every fault not yet fired (and every repeating one).
    pub fn clear_faults(&self) {
        self.state.borrow_mut().faults.clear();
    }

    /// Calls of `operation` so far, faulty ones included.
    pub fn calls(&self, operation: IoOperation) -> u64 {
        self.state.borrow().calls[operation.index()]
    }

    /// The current contents of a file, if it exists.
    pub fn contents(&self, path: &Path) -> Option<Vec<u8>> {
        let (directory, name) = split(path).ok()?;
        let state = self.state.borrow();
        let inode = state.directories.get(&directory)?.entries.get(&name)?;
        let data = inode.borrow().data.clone();
        Some(data)
    }

    /// Overwrites bytes of a file durably, as damage on the medium would: for tests of
    /// recovery from corruption.
    pub fn damage(&self, path: &Path, position: usize, bytes: &[u8]) -> io::Result<()> {
        let inode = self.lookup(path)?;
        let mut inode = inode.borrow_mut();
        inode.write(bytes, position);
        inode.sync();
        Ok(())
    }

    /// Simulates a power loss and the restart after it, as `seed` decides (the same seed on
    /// the same history gives the same outcome). Files opened before it are stale afterwards.
    pub fn power_loss(&self, seed: u64) -> PowerLossReport {
        let mut random = fastrand::Rng::with_seed(seed);
        let mut report = PowerLossReport::default();
        let mut state = self.state.borrow_mut();
        state.generation += 1;
        for directory in state.directories.values_mut() {
            let kept = random.usize(0..=directory.pending.len());
            report.namespace_changes_kept += kept;
            report.namespace_changes_lost += directory.pending.len() - kept;
            let mut entries = std::mem::take(&mut directory.durable_entries);
            for change in &directory.pending[..kept] {
                change.apply(&mut entries);
            }
            directory.pending.clear();
            directory.entries = entries.clone();
            directory.durable_entries = entries;
        }
        let mut seen: Vec<*const RefCell<Inode>> = Vec::new();
        for directory in state.directories.values() {
            for inode in directory.entries.values() {
                if seen.contains(&Rc::as_ptr(inode)) {
                    continue;
                }
                seen.push(Rc::as_ptr(inode));
                inode.borrow_mut().lose_power(&mut random, &mut report);
            }
        }
        report
    }

    /// Counts a call and fires the first matching fault, if any.
    fn check(&self, operation: IoOperation, path: &Path) -> Option<FaultKind> {
        let mut state = self.state.borrow_mut();
        state.calls[operation.index()] += 1;
        let path = path.to_string_lossy();
        let mut fired = None;
        for (index, fault) in state.faults.iter_mut().enumerate() {
            if !fault.matches(operation, &path) {
                continue;
            }
            if fault.skip > 0 {
                fault.skip -= 1;
                continue;
            }
            fired = Some((index, fault.kind, fault.repeat));
            break;
        }
        let (index, kind, repeat) = fired?;
        if !repeat {
            state.faults.remove(index);
        }
        Some(kind)
    }

    fn fail_if_faulty(&self, operation: IoOperation, path: &Path) -> io::Result<()> {
        match self.check(operation, path) {
            Some(kind) => Err(kind.error(operation)),
            None => Ok(()),
        }
    }

    fn lookup(&self, path: &Path) -> io::Result<InodeRef> {
        let (directory, name) = split(path)?;
        let state = self.state.borrow();
        state
            .directories
            .get(&directory)
            .and_then(|directory| directory.entries.get(&name))
            .cloned()
            .ok_or_else(|| not_found(path))
    }

    fn file(self: &Rc<Self>, path: &Path, inode: InodeRef) -> MemoryFile {
        MemoryFile {
            fs: self.clone(),
            path: normalise(path),
            inode,
            generation: self.state.borrow().generation,
        }
    }

    pub(super) fn prepare_directory(&self, directory: &Path) -> io::Result<PathBuf> {
        let directory = normalise(directory);
        let mut state = self.state.borrow_mut();
        for ancestor in directory.ancestors() {
            state.directories.entry(ancestor.to_path_buf()).or_default();
        }
        Ok(directory)
    }

    pub(super) fn list(&self, directory: &Path) -> io::Result<Vec<String>> {
        self.fail_if_faulty(IoOperation::List, directory)?;
        let directory = normalise(directory);
        let state = self.state.borrow();
        let listed = state
            .directories
            .get(&directory)
            .ok_or_else(|| not_found(&directory))?;
        let mut names: Vec<String> = listed.entries.keys().cloned().collect();
        names.extend(
            state
                .directories
                .keys()
                .filter(|child| child.parent() == Some(directory.as_path()))
                .filter_map(|child| child.file_name()?.to_str().map(str::to_string)),
        );
        Ok(names)
    }

    pub(super) fn open(self: &Rc<Self>, path: &Path, truncate: bool) -> io::Result<MemoryFile> {
        self.fail_if_faulty(IoOperation::Open, path)?;
        let (directory, name) = split(path)?;
        let inode = {
            let mut state = self.state.borrow_mut();
            let directory = state
                .directories
                .get_mut(&directory)
                .ok_or_else(|| not_found(&directory))?;
            match directory.entries.get(&name) {
                Some(inode) => inode.clone(),
                None => {
                    let inode = InodeRef::default();
                    directory.entries.insert(name.clone(), inode.clone());
                    directory
                        .pending
                        .push(NamespaceChange::Link(name, inode.clone()));
                    inode
                }
            }
        };
        if truncate {
            inode.borrow_mut().truncate(0);
        }
        Ok(self.file(path, inode))
    }

    pub(super) fn open_existing(self: &Rc<Self>, path: &Path) -> io::Result<MemoryFile> {
        self.fail_if_faulty(IoOperation::Open, path)?;
        let inode = self.lookup(path)?;
        Ok(self.file(path, inode))
    }

    pub(super) fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.fail_if_faulty(IoOperation::Rename, from)?;
        let (directory, from_name) = split(from)?;
        let (to_directory, to_name) = split(to)?;
        if directory != to_directory {
            return Err(invalid(to, "rename across directories is not simulated"));
        }
        let mut state = self.state.borrow_mut();
        let directory = state
            .directories
            .get_mut(&directory)
            .ok_or_else(|| not_found(from))?;
        let inode = directory
            .entries
            .remove(&from_name)
            .ok_or_else(|| not_found(from))?;
        directory.entries.insert(to_name.clone(), inode);
        directory
            .pending
            .push(NamespaceChange::Rename(from_name, to_name));
        Ok(())
    }

    pub(super) fn remove(&self, path: &Path) -> io::Result<()> {
        self.fail_if_faulty(IoOperation::Remove, path)?;
        let (directory, name) = split(path)?;
        let mut state = self.state.borrow_mut();
        let directory = state
            .directories
            .get_mut(&directory)
            .ok_or_else(|| not_found(path))?;
        directory
            .entries
            .remove(&name)
            .ok_or_else(|| not_found(path))?;
        directory.pending.push(NamespaceChange::Unlink(name));
        Ok(())
    }

    pub(super) fn sync_directory(&self, directory: &Path) -> io::Result<()> {
        self.fail_if_faulty(IoOperation::SyncDirectory, directory)?;
        let directory = normalise(directory);
        let mut state = self.state.borrow_mut();
        let synced = state
            .directories
            .get_mut(&directory)
            .ok_or_else(|| not_found(&directory))?;
        synced.durable_entries = synced.entries.clone();
        synced.pending.clear();
        Ok(())
    }

    pub(super) fn remove_directory_all(&self, directory: &Path) -> io::Result<()> {
        self.fail_if_faulty(IoOperation::Remove, directory)?;
        let directory = normalise(directory);
        let mut state = self.state.borrow_mut();
        if !state.directories.contains_key(&directory) {
            return Err(not_found(&directory));
        }
        state
            .directories
            .retain(|path, _| !path.starts_with(&directory));
        Ok(())
    }
}

/// An open file of a [`MemoryFs`]. Like a descriptor, it keeps the file's data reachable after
/// the name is removed.
pub struct MemoryFile {
    fs: Rc<MemoryFs>,
    path: PathBuf,
    inode: InodeRef,
    generation: u64,
}

impl MemoryFile {
    fn check(&self, operation: IoOperation) -> io::Result<Option<FaultKind>> {
        self.check_fresh()?;
        Ok(self.fs.check(operation, &self.path))
    }

    /// Files opened before a power loss are stale: the run that opened them is gone.
    fn check_fresh(&self) -> io::Result<()> {
        if self.fs.state.borrow().generation != self.generation {
            return Err(io::Error::new(
                io::Error::from_raw_os_error(libc::ESTALE).kind(),
                format!(
                    "{}: opened before a simulated power loss (in memory)",
                    self.path.display()
                ),
            ));
        }
        Ok(())
    }

    pub(super) fn write_at(&self, bytes: &[u8], position: u64) -> io::Result<usize> {
        let position = position as usize;
        match self.check(IoOperation::Write)? {
            None => {
                self.inode.borrow_mut().write(bytes, position);
                Ok(bytes.len())
            }
            Some(FaultKind::TornWrite) => {
                let kept = bytes.len() / 2 / SECTOR_BYTES * SECTOR_BYTES;
                self.inode.borrow_mut().write(&bytes[..kept], position);
                Err(FaultKind::TornWrite.error(IoOperation::Write))
            }
            Some(kind) => Err(kind.error(IoOperation::Write)),
        }
    }

    pub(super) fn read_at(&self, position: u64, length: usize) -> io::Result<Vec<u8>> {
        if let Some(kind) = self.check(IoOperation::Read)? {
            return Err(kind.error(IoOperation::Read));
        }
        let inode = self.inode.borrow();
        let start = (position as usize).min(inode.data.len());
        let end = start.saturating_add(length).min(inode.data.len());
        Ok(inode.data[start..end].to_vec())
    }

    pub(super) fn fdatasync(&self) -> io::Result<()> {
        if let Some(kind) = self.check(IoOperation::Fdatasync)? {
            // The data stays unsynced: a power loss may take it. (Linux may also drop the
            // dirty pages, so that a later fdatasync succeeds without them; the log never
            // retries, it fails, so the simpler model loses nothing the log relies on.)
            return Err(kind.error(IoOperation::Fdatasync));
        }
        self.inode.borrow_mut().sync();
        Ok(())
    }

    pub(super) fn truncate(&self, size_bytes: u64) -> io::Result<()> {
        if let Some(kind) = self.check(IoOperation::Truncate)? {
            return Err(kind.error(IoOperation::Truncate));
        }
        self.inode.borrow_mut().truncate(size_bytes as usize);
        Ok(())
    }

    pub(super) fn file_size(&self) -> io::Result<u64> {
        self.check_fresh()?;
        Ok(self.inode.borrow().data.len() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIRECTORY: &str = "/partition";

    fn fs_with_directory() -> Rc<MemoryFs> {
        let fs = MemoryFs::new();
        fs.prepare_directory(Path::new(DIRECTORY)).expect("mkdir");
        fs
    }

    fn path(name: &str) -> PathBuf {
        Path::new(DIRECTORY).join(name)
    }

    /// What a power loss under each of `seeds` leaves of `name`, after `history` ran on a fresh
    /// file system.
    fn outcomes(seeds: u64, history: impl Fn(&Rc<MemoryFs>), name: &str) -> Vec<Option<Vec<u8>>> {
        (0..seeds)
            .map(|seed| {
                let fs = fs_with_directory();
                history(&fs);
                fs.power_loss(seed);
                fs.contents(&path(name))
            })
            .collect()
    }

    #[test]
    fn synced_data_and_names_survive_every_power_loss() {
        let found = outcomes(
            64,
            |fs| {
                let file = fs.open(&path("a"), false).expect("open");
                file.write_at(&[7; 5000], 0).expect("write");
                file.fdatasync().expect("fdatasync");
                fs.sync_directory(Path::new(DIRECTORY)).expect("sync dir");
            },
            "a",
        );
        assert!(found
            .iter()
            .all(|bytes| bytes.as_deref() == Some(&[7u8; 5000][..])));
    }

    #[test]
    fn unsynced_data_is_lost_kept_or_torn_by_sector() {
        let found = outcomes(
            200,
            |fs| {
                let file = fs.open(&path("a"), false).expect("open");
                file.write_at(&[1; 8192], 0).expect("write");
                file.fdatasync().expect("fdatasync");
                fs.sync_directory(Path::new(DIRECTORY)).expect("sync dir");
                file.write_at(&[2; 8192], 4096).expect("unsynced write");
            },
            "a",
        );
        let old = [vec![1u8; 8192]].concat();
        let new = [vec![1u8; 4096], vec![2u8; 8192]].concat();
        let mut torn = 0;
        for bytes in found
            .iter()
            .map(|bytes| bytes.as_ref().expect("the name was synced"))
        {
            if *bytes == old || *bytes == new {
                continue;
            }
            torn += 1;
            // Synced bytes are never lost; every sector is wholly old or wholly new.
            assert_eq!(&bytes[..4096], &[1u8; 4096][..]);
            for sector in bytes[4096..].chunks(SECTOR_BYTES) {
                assert!(
                    sector.iter().all(|&byte| byte == sector[0]),
                    "a sector is one write or the other"
                );
            }
        }
        assert!(found.iter().any(|bytes| bytes.as_ref() == Some(&old)));
        assert!(found.iter().any(|bytes| bytes.as_ref() == Some(&new)));
        assert!(torn > 0, "some losses tear the unsynced blocks");
    }

    #[test]
    fn unsynced_directory_changes_survive_as_a_prefix() {
        let history = |fs: &Rc<MemoryFs>| {
            for name in ["a", "b"] {
                let file = fs.open(&path(name), false).expect("create");
                file.write_at(b"x", 0).expect("write");
                file.fdatasync().expect("fdatasync");
            }
            fs.rename(&path("a"), &path("c")).expect("rename");
        };
        let mut kinds = BTreeSet::new();
        for seed in 0..200 {
            let fs = fs_with_directory();
            history(&fs);
            fs.power_loss(seed);
            let names = fs.list(Path::new(DIRECTORY)).expect("list");
            // In order: create a, create b, rename a -> c. A later change never survives
            // without the earlier ones.
            let expected: [&[&str]; 4] = [&[], &["a"], &["a", "b"], &["b", "c"]];
            assert!(
                expected.iter().any(|want| names == *want),
                "seed {seed}: {names:?}"
            );
            kinds.insert(names);
        }
        assert_eq!(kinds.len(), 4, "every prefix happens for some seed");
    }

    #[test]
    fn files_opened_before_a_power_loss_are_stale() {
        let fs = fs_with_directory();
        let file = fs.open(&path("a"), false).expect("open");
        fs.sync_directory(Path::new(DIRECTORY)).expect("sync dir");
        fs.power_loss(1);
        let error = file.write_at(b"late", 0).expect_err("stale");
        assert!(error.to_string().contains("before a simulated power loss"));
        assert!(fs
            .open(&path("a"), false)
            .expect("reopen")
            .write_at(b"ok", 0)
            .is_ok());
    }

    #[test]
    fn faults_fire_on_the_chosen_call_and_path() {
        let fs = fs_with_directory();
        fs.inject(
            Fault::once(IoOperation::Write, FaultKind::NoSpace)
                .on_path(".log")
                .after(1),
        );
        let index = fs.open(&path("0.index"), false).expect("open");
        let log = fs.open(&path("0.log"), false).expect("open");
        index.write_at(&[1; 4096], 0).expect("another path passes");
        log.write_at(&[1; 4096], 0)
            .expect("the first matching call passes");
        let error = log
            .write_at(&[2; 4096], 4096)
            .expect_err("the second fails");
        assert_eq!(error.kind(), io::ErrorKind::StorageFull);
        assert_eq!(
            fs.contents(&path("0.log")).map(|bytes| bytes.len()),
            Some(4096)
        );
        log.write_at(&[3; 4096], 4096)
            .expect("a one-shot fault is spent");

        fs.inject(Fault::once(IoOperation::Write, FaultKind::TornWrite));
        log.write_at(&[4; 4096], 0).expect_err("torn");
        let bytes = fs.contents(&path("0.log")).expect("file");
        assert_eq!(&bytes[..2048], &[4u8; 2048][..], "the first half landed");
        assert_eq!(&bytes[2048..4096], &[1u8; 2048][..], "the rest did not");

        fs.inject(Fault::once(IoOperation::Fdatasync, FaultKind::Eio).repeating());
        assert!(log.fdatasync().is_err());
        assert!(log.fdatasync().is_err(), "a repeating fault keeps firing");
        fs.clear_faults();
        assert!(log.fdatasync().is_ok());
        assert_eq!(fs.calls(IoOperation::Fdatasync), 3);
    }
}
