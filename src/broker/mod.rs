//! Starting and stopping the broker: data directory, sockets, one pinned executor per shard,
//! readiness, and the orderly stop that SIGTERM asks for.

use std::fs::{File, OpenOptions};
use std::net::{SocketAddr, TcpListener as StdTcpListener};
use std::os::fd::{FromRawFd, IntoRawFd};
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use glommio::net::TcpListener;
use glommio::{ExecutorJoinHandle, LocalExecutorBuilder, Placement};
use socket2::{Domain, Protocol, Socket, Type};
use thiserror::Error;
use tracing::{info, warn};

use crate::config::{BrokerConfig, ConfigError};
use crate::server;

use super::control::MeshMessage;
use super::control::{control_plane, Controller};
use super::mesh::{self, MeshEndpoints, MeshReceivers};
use super::ShardContext;

/// Pending connections the kernel queues per listening socket.
pub const LISTEN_BACKLOG: i32 = 1024;
/// How often a shard checks whether the process was asked to stop.
pub const STOP_POLL_INTERVAL_MS: u64 = 25;
/// How long a stopping shard waits for its connections to finish their requests.
pub const SHUTDOWN_DRAIN_MS_MAX: u64 = 10_000;
/// How long startup waits for every shard to open its partitions and listen.
pub const STARTUP_MS_MAX: u64 = 300_000;
/// Attempts to find a free run of ports when the bootstrap port is 0.
const EPHEMERAL_PORT_ATTEMPTS: usize = 64;
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

/// The listening sockets of one shard, bound before its thread starts.
struct ShardSockets {
    bootstrap: StdTcpListener,
    own: StdTcpListener,
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

fn prepare_data_dir(path: &std::path::Path) -> Result<PathBuf, BrokerError> {
    let fail = |reason: String| BrokerError::DataDirectory {
        path: path.to_path_buf(),
        reason,
    };
    std::fs::create_dir_all(path).map_err(|error| fail(format!("cannot create it: {error}")))?;
    let absolute = std::fs::canonicalize(path).map_err(|error| fail(error.to_string()))?;
    if !absolute.is_dir() {
        return Err(fail("is not a directory".into()));
    }
    std::fs::create_dir_all(absolute.join(super::TOPICS_DIRECTORY))
        .map_err(|error| fail(format!("cannot create its topics directory: {error}")))?;
    Ok(absolute)
}

fn lock_data_dir(data_dir: &std::path::Path) -> Result<File, BrokerError> {
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
fn raise_memlock_limit(config: &BrokerConfig) {
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

/// A listening socket. Only the bootstrap port is shared (`shared`): every shard binds it and
/// the kernel spreads new connections across them. A shard's own port is exclusive, so a
/// second broker started on the same ports fails to bind instead of silently sharing them.
fn listener_socket(address: SocketAddr, shared: bool) -> Result<StdTcpListener, std::io::Error> {
    let socket = Socket::new(
        Domain::for_address(address),
        Type::STREAM,
        Some(Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(shared)?;
    socket.set_tcp_nodelay(true)?;
    socket.bind(&address.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    Ok(socket.into())
}

/// Binds the bootstrap port once per shard, and each shard's own port after it. With port 0,
/// looks for a free port whose next `shard_count` ports are free too.
fn bind_all(
    listen: SocketAddr,
    shard_count: usize,
) -> Result<(SocketAddr, Vec<ShardSockets>), BrokerError> {
    let attempts = if listen.port() == 0 {
        EPHEMERAL_PORT_ATTEMPTS
    } else {
        1
    };
    let mut last_error = None;
    for _ in 0..attempts {
        match try_bind_all(listen, shard_count) {
            Ok(bound) => return Ok(bound),
            Err(error) => last_error = Some(error),
        }
    }
    Err(last_error.unwrap_or_else(|| BrokerError::Bind {
        address: listen,
        source: std::io::Error::other("no free ports"),
    }))
}

fn try_bind_all(
    listen: SocketAddr,
    shard_count: usize,
) -> Result<(SocketAddr, Vec<ShardSockets>), BrokerError> {
    let bind = |address: SocketAddr, shared: bool| {
        listener_socket(address, shared).map_err(|source| BrokerError::Bind { address, source })
    };
    let first = bind(listen, true)?;
    let bootstrap = first.local_addr().map_err(|source| BrokerError::Bind {
        address: listen,
        source,
    })?;
    let mut bootstraps = vec![first];
    for _ in 1..shard_count {
        bootstraps.push(bind(bootstrap, true)?);
    }
    let mut sockets = Vec::with_capacity(shard_count);
    for (shard, bootstrap_socket) in bootstraps.into_iter().enumerate() {
        let own_port = bootstrap
            .port()
            .checked_add(1 + shard as u16)
            .ok_or_else(|| BrokerError::Bind {
                address: bootstrap,
                source: std::io::Error::other("no port numbers left for the shards"),
            })?;
        let own = bind(SocketAddr::new(bootstrap.ip(), own_port), false)?;
        sockets.push(ShardSockets {
            bootstrap: bootstrap_socket,
            own,
        });
    }
    Ok((bootstrap, sockets))
}

struct ShardSetup {
    shard_id: u32,
    config: Arc<BrokerConfig>,
    endpoints: MeshEndpoints<MeshMessage>,
    sockets: ShardSockets,
    stop: Arc<AtomicBool>,
    ready: mpsc::Sender<Result<u32, String>>,
}

async fn run_shard(setup: ShardSetup) -> Result<(), String> {
    let ShardSetup {
        shard_id,
        config,
        endpoints,
        sockets,
        stop,
        ready,
    } = setup;
    let (mesh, receivers) = endpoints.connect().await;
    let mesh = Rc::new(mesh);
    let timeout = Duration::from_millis(config.control_timeout_ms);
    let (client, controller_queue) = control_plane(shard_id, mesh, timeout);
    let bootstrap_port = config.listen.port();
    let context = Rc::new(ShardContext::new(
        shard_id,
        config.clone(),
        bootstrap_port,
        client,
    ));
    // Shard 0 loads the controller before the mesh receivers start, so they are built with it;
    // the initial publish comes after, since it waits for the other shards' acknowledgements,
    // which those receivers deliver.
    let fail = |reason: String| {
        let reason = format!("cannot load cluster metadata: {reason}");
        let _ = ready.send(Err(reason.clone()));
        Err(reason)
    };
    let controller = match controller_queue.map(|queue| Controller::load(context.clone(), queue)) {
        None => None,
        Some(Ok(loaded)) => Some(loaded),
        Some(Err(reason)) => return fail(reason),
    };
    spawn_mesh_receivers(
        &context,
        receivers,
        controller.as_ref().map(|(loaded, _)| loaded.clone()),
    );
    glommio::spawn_local(watch_stop_flag(context.clone(), stop)).detach();
    if let Some((loaded, queue)) = controller {
        if let Err(reason) = loaded.publish_initial(queue).await {
            return fail(reason);
        }
    }
    futures_lite::future::or(context.metadata_ready.wait(), context.shutdown.wait()).await;
    if context.shutdown.is_triggered() {
        return Ok(());
    }
    let listeners = [sockets.bootstrap, sockets.own].map(|socket| {
        // SAFETY: the descriptor comes from a listening socket we own and hand over whole.
        unsafe { TcpListener::from_raw_fd(socket.into_raw_fd()) }
    });
    for listener in listeners {
        glommio::spawn_local(server::accept_loop(context.clone(), listener)).detach();
    }
    glommio::spawn_local(retention_loop(context.clone())).detach();
    info!(
        shard = shard_id,
        port = context.shard_port(shard_id),
        partitions = context.logs().len(),
        "shard ready"
    );
    let _ = ready.send(Ok(shard_id));
    context.shutdown.wait().await;
    let deadline = Instant::now() + Duration::from_millis(SHUTDOWN_DRAIN_MS_MAX);
    while context.connection_count() > 0 && Instant::now() < deadline {
        glommio::timer::sleep(Duration::from_millis(STOP_POLL_INTERVAL_MS)).await;
    }
    if context.connection_count() > 0 {
        warn!(
            shard = shard_id,
            connections = context.connection_count(),
            "connections still busy after the drain limit; closing anyway"
        );
    }
    context.close_logs().await;
    info!(shard = shard_id, "shard stopped");
    Ok(())
}

fn spawn_mesh_receivers(
    context: &Rc<ShardContext>,
    receivers: MeshReceivers<MeshMessage>,
    controller: Option<Rc<Controller>>,
) {
    for (from, receiver) in receivers {
        let context = context.clone();
        let controller = controller.clone();
        glommio::spawn_local(async move {
            while let Some(message) = receiver.recv().await {
                match message {
                    MeshMessage::Request { id, request } => match &controller {
                        Some(controller) => controller.enqueue_remote(from, id, request).await,
                        // Only shard 0 is sent requests (`ControlClient` forwards there).
                        None => warn!(
                            shard = from,
                            "control request sent to a shard without the controller; dropped"
                        ),
                    },
                    MeshMessage::Response { id, response } => {
                        context.control.deliver(id, response);
                    }
                    MeshMessage::Snapshot { metadata } => {
                        let version = metadata.version;
                        context.apply_snapshot(metadata).await;
                        let applied = MeshMessage::Applied { version };
                        let _ = context.control.mesh().send(from, applied).await;
                    }
                    MeshMessage::Applied { version } => {
                        if let Some(controller) = &controller {
                            controller.on_applied(from, version);
                        }
                    }
                }
            }
        })
        .detach();
    }
}

/// Turns the process-wide stop flag (set from the signal-handling thread) into this shard's
/// shutdown event. Polled: a glommio executor cannot be woken from a foreign thread cheaply,
/// and this runs once per `STOP_POLL_INTERVAL_MS` only.
async fn watch_stop_flag(context: Rc<ShardContext>, stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::SeqCst) {
        glommio::timer::sleep(Duration::from_millis(STOP_POLL_INTERVAL_MS)).await;
    }
    context.shutdown.trigger();
}

async fn retention_loop(context: Rc<ShardContext>) {
    let period = Duration::from_millis(context.config.retention_check_interval_ms);
    loop {
        futures_lite::future::or(
            async {
                glommio::timer::sleep(period).await;
            },
            context.shutdown.wait(),
        )
        .await;
        if context.shutdown.is_triggered() {
            return;
        }
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_millis() as i64);
        context.apply_retention(now_ms).await;
    }
}
