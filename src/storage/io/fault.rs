//! Faults a [`super::MemoryFs`] injects: which call fails, on which path, and how.

use std::io;

/// A call through the seam, as faults and call counts name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IoOperation {
    /// `StorageIo::open`, `create` or `open_existing`.
    Open,
    /// `StorageFile::write_at`.
    Write,
    /// `StorageFile::read_at`.
    Read,
    /// `StorageFile::fdatasync`.
    Fdatasync,
    /// `StorageFile::truncate`.
    Truncate,
    /// `StorageIo::rename`.
    Rename,
    /// `StorageIo::remove`.
    Remove,
    /// `StorageIo::sync_directory`.
    SyncDirectory,
    /// `StorageIo::list`.
    List,
}

impl IoOperation {
    /// Every operation, for per-operation counters.
    pub const ALL: [IoOperation; 9] = [
        Self::Open,
        Self::Write,
        Self::Read,
        Self::Fdatasync,
        Self::Truncate,
        Self::Rename,
        Self::Remove,
        Self::SyncDirectory,
        Self::List,
    ];

    pub(super) fn index(self) -> usize {
        self as usize
    }
}

/// How a faulty call fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// The call does nothing and fails with EIO.
    Eio,
    /// The call does nothing and fails with ENOSPC (a full disk).
    NoSpace,
    /// A write stores only its first half (rounded down to a 512-byte sector), then fails with
    /// EIO: a torn write. On other operations, as `Eio`.
    TornWrite,
}

impl FaultKind {
    pub(super) fn error(self, operation: IoOperation) -> io::Error {
        let code = match self {
            Self::Eio | Self::TornWrite => libc::EIO,
            Self::NoSpace => libc::ENOSPC,
        };
        let error = io::Error::from_raw_os_error(code);
        io::Error::new(
            error.kind(),
            format!("injected fault on {operation:?}: {error}"),
        )
    }
}

/// One injected fault: the `skip + 1`-th matching call fails, and with `repeat` every later
/// matching call too.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    /// The operation that fails.
    pub operation: IoOperation,
    /// Only calls on a path containing this string match (any path when `None`).
    pub path_contains: Option<String>,
    /// Matching calls that pass before the fault fires.
    pub skip: u64,
    /// How the call fails.
    pub kind: FaultKind,
    /// Fire on every matching call from then on, not once.
    pub repeat: bool,
}

impl Fault {
    /// The next call of `operation` fails as `kind`.
    pub fn once(operation: IoOperation, kind: FaultKind) -> Self {
        Self {
            operation,
            path_contains: None,
            skip: 0,
            kind,
            repeat: false,
        }
    }

    /// Only calls on paths containing `fragment` match.
    pub fn on_path(mut self, fragment: impl Into<String>) -> Self {
        self.path_contains = Some(fragment.into());
        self
    }

    /// The first `calls` matching calls pass.
    pub fn after(mut self, calls: u64) -> Self {
        self.skip = calls;
        self
    }

    /// Every matching call fails once the fault has fired.
    pub fn repeating(mut self) -> Self {
        self.repeat = true;
        self
    }

    /// Whether a call of `operation` on `path` matches.
    pub(super) fn matches(&self, operation: IoOperation, path: &str) -> bool {
        self.operation == operation
            && self
                .path_contains
                .as_deref()
                .is_none_or(|fragment| path.contains(fragment))
    }
}
