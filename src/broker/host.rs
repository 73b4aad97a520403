//! The host side of starting: the data directory (created, made absolute, locked against a
//! second broker) and the locked-memory limit glommio needs.

use std::fs::{File, OpenOptions};
use std::path::PathBuf;

use tracing::{info, warn};

use crate::config::BrokerConfig;

use super::{BrokerError, DATA_DIR_LOCK_FILE};

pub(super) fn prepare_data_dir(path: &std::path::Path) -> Result<PathBuf, BrokerError> {
    let fail = |reason: String| BrokerError::DataDirectory {
        path: path.to_path_buf(),
        reason,
    };
    std::fs::create_dir_all(path).map_err(|error| fail(format!("cannot create it: {error}")))?;
    let absolute = std::fs::canonicalize(path).map_err(|error| fail(error.to_string()))?;
    if !absolute.is_dir() {
        return Err(fail("is not a directory".into()));
    }
    std::fs::create_dir_all(absolute.join(crate::shard::TOPICS_DIRECTORY))
        .map_err(|error| fail(format!("cannot create its topics directory: {error}")))?;
    Ok(absolute)
}

pub(super) fn lock_data_dir(data_dir: &std::path::Path) -> Result<File, BrokerError> {
    let path = data_dir.join(DATA_DIR_LOCK_FILE);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|error| BrokerError::DataDirectory {
            path: data_dir.to_path_buf(),
            reason: format!("cannot open {}: {error}", path.display()),
        })?;
    file.try_lock().map_err(|_| BrokerError::DataDirectory {
        path: data_dir.to_path_buf(),
        reason: "another broker is using it (its .lock is held)".into(),
    })?;
    Ok(file)
}

/// glommio locks its I/O memory; raise RLIMIT_MEMLOCK as far as this process may (up to the
/// hard limit, with no need for `ulimit -l` first), and log the limit it got. Root is not held
/// to the limit. Below it, glommio skips registering its buffers and still runs (seen with an
/// 8 MiB hard limit), so a shortfall is a warning; below 512 KiB glommio refuses to start and
/// says so itself.
pub(super) fn raise_memlock_limit(config: &BrokerConfig) {
    let wanted = (config.io_memory_bytes_per_shard as u64)
        .saturating_mul(config.shard_count() as u64)
        .saturating_mul(2);
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own; no other memory is touched.
    if unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut limit) } != 0 {
        warn!("cannot read RLIMIT_MEMLOCK; glommio needs at least 512 KiB of it");
        return;
    }
    // SAFETY: geteuid has no preconditions.
    let privileged = unsafe { libc::geteuid() } == 0;
    if limit.rlim_cur != libc::RLIM_INFINITY && limit.rlim_cur < wanted {
        let raised = libc::rlimit {
            rlim_cur: if limit.rlim_max == libc::RLIM_INFINITY {
                wanted
            } else {
                wanted.min(limit.rlim_max)
            },
            rlim_max: limit.rlim_max,
        };
        // SAFETY: setrlimit reads the struct we own.
        if unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &raised) } == 0 {
            limit = raised;
        }
    }
    let limit_text = if limit.rlim_cur == libc::RLIM_INFINITY {
        "unlimited".to_string()
    } else {
        format!("{} KiB", limit.rlim_cur / 1024)
    };
    if limit.rlim_cur != libc::RLIM_INFINITY && limit.rlim_cur < wanted && !privileged {
        warn!(
            limit = %limit_text,
            wanted = %format!("{} KiB", wanted / 1024),
            "RLIMIT_MEMLOCK is below twice the shards' io_memory_bytes_per_shard: glommio will not register its I/O buffers with io_uring (it works, with a copy less saved per I/O); raise the hard limit (limits.conf, systemd LimitMEMLOCK=) or lower io_memory_bytes_per_shard"
        );
    } else {
        info!(
            limit = %limit_text,
            wanted = %format!("{} KiB", wanted / 1024),
            privileged,
            "locked-memory limit (RLIMIT_MEMLOCK)"
        );
    }
}
