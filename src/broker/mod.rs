//! Starting and stopping the broker: data directory, sockets, one pinned executor per shard,
//! readiness, and the orderly stop that SIGTERM asks for.
//!
//! This module sits above both [`crate::shard`] (what a shard owns, its control plane) and
//! [`crate::server`] (listeners, connections, handlers): it builds a shard's context, starts
//! its control plane, then hands its listeners to the server. Dependencies run one way:
//! `broker` → `server` → `shard` → `storage`/`cluster`; `shard` never calls into `server`.
//!
//! | piece | file | role |
//! | --- | --- | --- |
//! | [`start`], [`RunningBroker`] | `mod.rs` | bind, start one executor per shard, wait for readiness; stop and join |
//! | host | `host.rs` | the data directory (made, resolved, locked) and RLIMIT_MEMLOCK |
//! | sockets | `sockets.rs` | the shared bootstrap listener and each shard's own |
//! | a shard's life | `shard_main.rs` | mesh, context, control plane, listeners, retention, drain and close |

mod host;
mod shard_main;
mod sockets;

use std::fs::File;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use glommio::{ExecutorJoinHandle, LocalExecutorBuilder, Placement};
use thiserror::Error;

use crate::config::{BrokerConfig, ConfigError};
use crate::shard::mesh;

use host::{lock_data_dir, prepare_data_dir, raise_memlock_limit};
use shard_main::{run_shard, ShardSetup};
use sockets::bind_all;

/// Pending connections the kernel queues per listening socket.
pub const LISTEN_BACKLOG: i32 = 1024;
/// How often a shard checks whether the process was asked to stop.
pub const STOP_POLL_INTERVAL_MS: u64 = 25;
/// How long a stopping shard waits for its connections to finish their requests.
pub const SHUTDOWN_DRAIN_MS_MAX: u64 = 10_000;
/// How long startup waits for every shard to open its partitions and listen.
pub const STARTUP_MS_MAX: u64 = 300_000;
/// Attempts to find a free run of ports when the bootstrap port is 0.
pub(crate) const EPHEMERAL_PORT_ATTEMPTS: usize = 64;
/// The lock file that keeps two brokers off one data directory.
pub const DATA_DIR_LOCK_FILE: &str = ".lock";

/// Why the broker could not start or stopped badly.
#[derive(Debug, Error)]
pub enum BrokerError {
    /// The configuration was refused.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The data directory cannot be used.
    #[error("data directory {path}: {reason}")]
    DataDirectory {
        /// The directory.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A listener could not be bound.
    #[error("cannot listen on {address}: {source}")]
    Bind {
        /// The address.
        address: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// A shard failed to start or stopped with an error.
    #[error("shard {shard}: {reason}")]
    Shard {
        /// The shard.
        shard: u32,
        /// Why.
        reason: String,
    },
}

/// A broker running in this process.
pub struct RunningBroker {
    /// The bootstrap address, with the port actually bound.
    pub bootstrap: SocketAddr,
    /// Each shard's own address, by shard id.
    pub shard_addresses: Vec<SocketAddr>,
    /// The data directory, made absolute.
    pub data_dir: PathBuf,
    stop: Arc<AtomicBool>,
    handles: Vec<ExecutorJoinHandle<Result<(), String>>>,
    finished: Arc<std::sync::atomic::AtomicUsize>,
    _lock: File,
}

impl RunningBroker {
    /// Asks every shard to stop: stop accepting, finish in-flight requests, flush, fsync.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }

    /// Whether any shard has already ended (it should not, until `stop`).
    pub fn any_shard_finished(&self) -> bool {
        self.finished.load(Ordering::SeqCst) > 0
    }

    /// Waits for every shard to end.
    pub fn join(self) -> Result<(), BrokerError> {
        let mut result = Ok(());
        for (shard, handle) in self.handles.into_iter().enumerate() {
            let outcome = match handle.join() {
                Ok(Ok(())) => Ok(()),
                Ok(Err(reason)) => Err(reason),
                Err(error) => Err(format!("executor failed: {error}")),
            };
            if let Err(reason) = outcome {
                result = Err(BrokerError::Shard {
                    shard: shard as u32,
                    reason,
                });
            }
        }
        result
    }
}

/// Starts the broker and returns once every shard serves its partitions and listens.
pub fn start(config: BrokerConfig) -> Result<RunningBroker, BrokerError> {
    config.validate()?;
    let mut config = config;
    // Resolve "one per core" here, once: inside a pinned shard thread the visible core count
    // is 1.
    config.shards = config.shard_count();
    let data_dir = prepare_data_dir(&config.data_dir)?;
    config.data_dir = data_dir.clone();
    let lock = lock_data_dir(&config.data_dir)?;
    raise_memlock_limit(&config);
    let shard_count = config.shard_count();
    let (bootstrap, sockets) = bind_all(config.listen, shard_count)?;
    config.listen = bootstrap;
    let shard_addresses: Vec<SocketAddr> = (0..shard_count)
        .map(|shard| SocketAddr::new(bootstrap.ip(), bootstrap.port() + 1 + shard as u16))
        .collect();
    let config = Arc::new(config);
    let cores: Vec<usize> = core_affinity::get_core_ids()
        .map(|ids| ids.into_iter().map(|id| id.id).collect())
        .unwrap_or_default();
    let stop = Arc::new(AtomicBool::new(false));
    let finished = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (ready_sender, ready_receiver) = mpsc::channel::<Result<u32, String>>();
    let endpoints = mesh::build(shard_count, config.mesh_queue_depth);
    let mut handles = Vec::with_capacity(shard_count);
    for (shard, (endpoints, sockets)) in endpoints.into_iter().zip(sockets).enumerate() {
        let placement = match (config.pin_cores, cores.is_empty()) {
            (true, false) => Placement::Fixed(cores[shard % cores.len()]),
            _ => Placement::Unbound,
        };
        let setup = ShardSetup {
            shard_id: shard as u32,
            config: config.clone(),
            endpoints,
            sockets,
            stop: stop.clone(),
            ready: ready_sender.clone(),
        };
        let finished = finished.clone();
        let handle = LocalExecutorBuilder::new(placement)
            .name(&format!("shard-{shard}"))
            .io_memory(config.io_memory_bytes_per_shard)
            .spin_before_park(Duration::from_micros(config.idle_poll_us))
            .spawn(move || async move {
                let result = run_shard(setup).await;
                finished.fetch_add(1, Ordering::SeqCst);
                result
            })
            .map_err(|error| BrokerError::Shard {
                shard: shard as u32,
                reason: format!(
                    "cannot start its executor: {error} (is `ulimit -l` high enough? glommio \
                     locks {} bytes of I/O memory per shard)",
                    config.io_memory_bytes_per_shard
                ),
            })?;
        handles.push(handle);
    }
    drop(ready_sender);
    let broker = RunningBroker {
        bootstrap,
        shard_addresses,
        data_dir,
        stop,
        handles,
        finished,
        _lock: lock,
    };
    let deadline = Instant::now() + Duration::from_millis(STARTUP_MS_MAX);
    for _ in 0..shard_count {
        let wait = deadline.saturating_duration_since(Instant::now());
        let failure = match ready_receiver.recv_timeout(wait) {
            Ok(Ok(_)) => continue,
            Ok(Err(reason)) => reason,
            Err(_) => "did not become ready".to_string(),
        };
        broker.stop();
        let _ = broker.join();
        return Err(BrokerError::Shard {
            shard: 0,
            reason: failure,
        });
    }
    Ok(broker)
}
