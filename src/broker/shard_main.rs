//! One shard's life, on its own executor: connect the mesh, build the context and the control
//! plane (shard 0 loads the controller), wait for the first metadata, listen, run retention,
//! and at shutdown drain connections and close the logs.

use std::os::fd::{FromRawFd, IntoRawFd};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use glommio::net::TcpListener;
use tracing::{info, warn};

use crate::config::BrokerConfig;
use crate::group::OffsetStore;
use crate::server;
use crate::shard::control::{self, control_plane, Controller, MeshMessage};
use crate::shard::mesh::MeshEndpoints;
use crate::shard::ShardContext;

use super::sockets::ShardSockets;
use super::{SHUTDOWN_DRAIN_MS_MAX, STOP_POLL_INTERVAL_MS};

pub(super) struct ShardSetup {
    pub(super) shard_id: u32,
    pub(super) config: Arc<BrokerConfig>,
    pub(super) endpoints: MeshEndpoints<MeshMessage>,
    pub(super) sockets: ShardSockets,
    pub(super) stop: Arc<AtomicBool>,
    pub(super) ready: mpsc::Sender<Result<u32, String>>,
}

pub(super) async fn run_shard(setup: ShardSetup) -> Result<(), String> {
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
    // Committed offsets are loaded before the shard answers anything: a coordinator never
    // answers OffsetFetch without them.
    let offsets = match OffsetStore::open(&config, shard_id).await {
        Ok(offsets) => Rc::new(offsets),
        Err(error) => {
            let reason = format!("cannot load committed offsets: {error}");
            let _ = ready.send(Err(reason.clone()));
            return Err(reason);
        }
    };
    let context = Rc::new(ShardContext::new(
        shard_id,
        config.clone(),
        bootstrap_port,
        client,
        offsets,
    ));
    // Shard 0 loads the controller before the mesh receivers start, so they are built with it;
    // the initial publish comes after, since it waits for the other shards' acknowledgements,
    // which those receivers deliver.
    let fail = |reason: String| {
        let reason = format!("cannot load cluster metadata: {reason}");
        let _ = ready.send(Err(reason.clone()));
        Err(reason)
    };
    let controller = match controller_queue {
        None => None,
        Some(queue) => match Controller::load(context.clone(), queue).await {
            Ok(loaded) => Some(loaded),
            Err(reason) => return fail(reason),
        },
    };
    control::spawn_receivers(
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
    glommio::spawn_local(offsets_expiry_loop(context.clone())).detach();
    info!(
        shard = shard_id,
        port = context.shard_port(shard_id),
        partitions = context.logs().len(),
        "shard ready"
    );
    let _ = ready.send(Ok(shard_id));
    context.shutdown.wait().await;
    // Requests waiting in JoinGroup or SyncGroup are answered now (NOT_COORDINATOR), so that
    // the drain below does not wait out their rebalance timeouts.
    context.groups.unload();
    context.consumer_groups.unload();
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
    context.offsets.close().await;
    info!(shard = shard_id, "shard stopped");
    Ok(())
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

/// Runs `pass` every `period` until the shard shuts down.
async fn periodically<F, Fut>(context: Rc<ShardContext>, period: Duration, pass: F)
where
    F: Fn(Rc<ShardContext>) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
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
        pass(context.clone()).await;
    }
}

/// The retention pass over every partition log of the shard.
async fn retention_loop(context: Rc<ShardContext>) {
    let period = Duration::from_millis(context.config.retention_check_interval_ms);
    periodically(context, period, |context| async move {
        context
            .apply_retention(crate::storage::system_clock_ms())
            .await;
    })
    .await;
}

/// Expires the committed offsets of groups idle for `offsets_retention_ms`.
async fn offsets_expiry_loop(context: Rc<ShardContext>) {
    let settings = context.offsets.settings();
    let period = Duration::from_millis(settings.offsets_retention_check_interval_ms);
    periodically(context, period, |context| async move {
        let now_ms = crate::group::now_ms();
        let groups = context.groups.clone();
        let consumer_groups = context.consumer_groups.clone();
        context
            .offsets
            .expire(now_ms, |group| {
                // A name is held by one protocol's group at a time.
                match groups.retention_hold(group) {
                    crate::group::RetentionHold::Unknown => consumer_groups.retention_hold(group),
                    hold => hold,
                }
            })
            .await;
        groups.forget_empty_groups(|group| context.offsets.has_group(group));
        consumer_groups.forget_empty_groups(|group| context.offsets.has_group(group));
    })
    .await;
}
