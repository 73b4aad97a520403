//! The control plane: topic creation, deletion and growth.
//!
//! Shard 0 runs the [`Controller`], the only writer of cluster metadata. A control request
//! that reaches any shard goes through its [`ControlClient`]: on shard 0 straight into the
//! controller's queue, elsewhere over the mesh. The controller handles one request at a time:
//! it validates every topic, builds the next snapshot, persists it, applies it on shard 0,
//! sends it to every other shard and waits until each has applied it (opened or deleted its
//! partitions). Only then does it answer, so a client that creates a topic can produce to it at
//! once, on any shard.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::poll_fn;
use std::rc::Rc;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use glommio::channels::local_channel::{self, LocalReceiver, LocalSender};
use kafka_protocol::ResponseError;
use tracing::{info, warn};

use crate::blocking::run_blocking;
use crate::cluster::changes::{delete_topics, new_topic_id, ChangeRules};
pub use crate::cluster::changes::{ControlResponse, NewTopic, PartitionGrowth, TopicOutcome};
use crate::cluster::store::MetadataStore;
use crate::cluster::ClusterMetadata;
use crate::wake::WakerSet;

use super::mesh;
use super::ShardContext;

/// Control requests waiting for the controller, from all shards together. A request that
/// finds the queue full is answered at once with REQUEST_TIMED_OUT rather than queued.
pub const CONTROL_QUEUE_DEPTH: usize = 256;
/// Topics one control request may name.
pub const CONTROL_REQUEST_TOPICS_MAX: usize = 10_000;

/// What the controller is asked to do.
#[derive(Debug, Clone)]
pub enum ControlRequest {
    /// CreateTopics.
    CreateTopics {
        /// The topics.
        topics: Vec<NewTopic>,
        /// Check only; change nothing.
        validate_only: bool,
    },
    /// DeleteTopics, by name.
    DeleteTopics {
        /// The topics.
        names: Vec<String>,
    },
    /// CreatePartitions.
    CreatePartitions {
        /// The topics and their new counts.
        topics: Vec<PartitionGrowth>,
        /// Check only; change nothing.
        validate_only: bool,
    },
    /// Metadata's auto-creation of missing topics with the default partition count.
    AutoCreate {
        /// The topics.
        names: Vec<String>,
    },
}

/// What shards send each other over the mesh: the control plane's messages.
#[derive(Debug)]
pub enum MeshMessage {
    /// A control request for shard 0, with the id the reply will carry.
    Request {
        /// Chosen by the sender, unique among its pending requests.
        id: u64,
        /// The request.
        request: ControlRequest,
    },
    /// Shard 0's answer to a request.
    Response {
        /// The request's id.
        id: u64,
        /// The answer.
        response: ControlResponse,
    },
    /// A new metadata snapshot from shard 0.
    Snapshot {
        /// The snapshot.
        metadata: Arc<ClusterMetadata>,
    },
    /// A shard has applied a snapshot.
    Applied {
        /// The snapshot's version.
        version: u64,
    },
}

/// The mesh, carrying control messages.
pub type Mesh = mesh::Mesh<MeshMessage>;

/// Where the controller sends an answer.
enum Reply {
    Local(LocalSender<ControlResponse>),
    Remote { shard: u32, id: u64 },
}

/// A request in the controller's queue.
pub struct QueuedRequest {
    request: ControlRequest,
    reply: Reply,
}

/// A shard's way to the controller.
#[derive(Clone)]
pub struct ControlClient {
    inner: Rc<ClientInner>,
}

struct ClientInner {
    mesh: Rc<Mesh>,
    next_id: Cell<u64>,
    pending: RefCell<HashMap<u64, LocalSender<ControlResponse>>>,
    /// On shard 0 only: the controller's queue.
    controller_queue: Option<Rc<LocalSender<QueuedRequest>>>,
    timeout: Duration,
}

impl ControlClient {
    /// A client for shard `shard_id`. Shard 0 gets the controller's queue as well.
    fn new(
        mesh: Rc<Mesh>,
        controller_queue: Option<Rc<LocalSender<QueuedRequest>>>,
        timeout: Duration,
    ) -> Self {
        Self {
            inner: Rc::new(ClientInner {
                mesh,
                next_id: Cell::new(1),
                pending: RefCell::new(HashMap::new()),
                controller_queue,
                timeout,
            }),
        }
    }

    /// The mesh this shard sends on.
    pub fn mesh(&self) -> &Rc<Mesh> {
        &self.inner.mesh
    }

    /// Sends a request to the controller and waits for its answer, at most the control
    /// timeout. A timeout or a broken mesh answers every topic with REQUEST_TIMED_OUT.
    pub async fn call(&self, request: ControlRequest) -> ControlResponse {
        let names = request_topic_names(&request);
        let timed_out = |reason: &str| -> ControlResponse {
            names
                .iter()
                .map(|name| TopicOutcome::error(name, ResponseError::RequestTimedOut, reason))
                .collect()
        };
        let inner = &self.inner;
        let (sender, receiver) = local_channel::new_bounded(1);
        let id = inner.next_id.get();
        inner.next_id.set(id + 1);
        if let Some(queue) = &inner.controller_queue {
            let queued = QueuedRequest {
                request,
                reply: Reply::Local(sender),
            };
            if queue.try_send(queued).is_err() {
                return timed_out("the controller's queue is full; retry");
            }
        } else {
            inner.pending.borrow_mut().insert(id, sender);
            if inner
                .mesh
                .send(0, MeshMessage::Request { id, request })
                .await
                .is_err()
            {
                inner.pending.borrow_mut().remove(&id);
                return timed_out("shard 0 is not reachable");
            }
        }
        let answer =
            glommio::timer::timeout(inner.timeout, async { Ok(receiver.recv().await) }).await;
        inner.pending.borrow_mut().remove(&id);
        match answer {
            Ok(Some(response)) => response,
            Ok(None) => timed_out("the controller went away"),
            Err(_) => timed_out("the controller did not answer in time"),
        }
    }

    /// Delivers a response that came over the mesh to the request waiting for it.
    pub fn deliver(&self, id: u64, response: ControlResponse) {
        if let Some(sender) = self.inner.pending.borrow_mut().remove(&id) {
            // The waiter may have timed out and gone; then there is nobody to tell.
            let _ = sender.try_send(response);
        }
    }
}

fn request_topic_names(request: &ControlRequest) -> Vec<String> {
    match request {
        ControlRequest::CreateTopics { topics, .. } => {
            topics.iter().map(|topic| topic.name.clone()).collect()
        }
        ControlRequest::DeleteTopics { names } | ControlRequest::AutoCreate { names } => {
            names.clone()
        }
        ControlRequest::CreatePartitions { topics, .. } => {
            topics.iter().map(|topic| topic.name.clone()).collect()
        }
    }
}

/// Both ends of the controller's queue, as shard 0 creates them.
pub type ControllerQueue = (Rc<LocalSender<QueuedRequest>>, LocalReceiver<QueuedRequest>);

/// Shard 0's owner of cluster metadata.
pub struct Controller {
    context: Rc<ShardContext>,
    store: MetadataStore,
    metadata: RefCell<ClusterMetadata>,
    /// The last snapshot version each shard has applied.
    applied: RefCell<Vec<u64>>,
    applied_waiters: WakerSet,
    queue: Rc<LocalSender<QueuedRequest>>,
}

/// Creates the control plane of one shard: its client, and on shard 0 the controller with the
/// receiving end of its queue.
pub fn control_plane(
    shard_id: u32,
    mesh: Rc<Mesh>,
    timeout: Duration,
) -> (ControlClient, Option<ControllerQueue>) {
    if shard_id == 0 {
        let (sender, receiver) = local_channel::new_bounded(CONTROL_QUEUE_DEPTH);
        let sender = Rc::new(sender);
        let client = ControlClient::new(mesh, Some(sender.clone()), timeout);
        (client, Some((sender, receiver)))
    } else {
        (ControlClient::new(mesh, None, timeout), None)
    }
}

impl Controller {
    /// Loads the persisted metadata (or starts empty), moves partitions of shards that no
    /// longer exist, and persists the result. [`Controller::publish_initial`] then sends it
    /// out; the two are split so the mesh receivers can reach the controller before the first
    /// acknowledgements arrive.
    pub fn load(
        context: Rc<ShardContext>,
        queue: ControllerQueue,
    ) -> Result<(Rc<Self>, LocalReceiver<QueuedRequest>), String> {
        let store = MetadataStore::new(&context.config.data_dir);
        let mut metadata = match store.load().map_err(|error| error.to_string())? {
            Some(metadata) => metadata,
            None => ClusterMetadata::new(new_cluster_id(), context.shard_count),
        };
        if metadata.shard_count != context.shard_count {
            info!(
                from = metadata.shard_count,
                to = context.shard_count,
                "shard count changed since the last run; rebalancing partitions"
            );
            for (topic, partition, from, to) in metadata.rebalance_to(context.shard_count) {
                info!(%topic, partition, from, to, "partition moved to another shard");
            }
            metadata.shard_count = context.shard_count;
        }
        metadata.version += 1;
        store.save(&metadata).map_err(|error| error.to_string())?;
        let (sender, receiver) = queue;
        let controller = Rc::new(Self {
            applied: RefCell::new(vec![0; context.shard_count as usize]),
            applied_waiters: WakerSet::default(),
            context,
            store,
            metadata: RefCell::new(metadata),
            queue: sender,
        });
        Ok((controller, receiver))
    }

    /// Publishes the loaded metadata to every shard, then starts serving control requests.
    pub async fn publish_initial(
        self: &Rc<Self>,
        queue: LocalReceiver<QueuedRequest>,
    ) -> Result<(), String> {
        let metadata = self.metadata.borrow().clone();
        self.publish(Arc::new(metadata)).await?;
        glommio::spawn_local(self.clone().serve(queue)).detach();
        Ok(())
    }

    /// Queues a request that came over the mesh; a full queue is answered at once.
    pub async fn enqueue_remote(&self, shard: u32, id: u64, request: ControlRequest) {
        let names = request_topic_names(&request);
        let queued = QueuedRequest {
            request,
            reply: Reply::Remote { shard, id },
        };
        if self.queue.try_send(queued).is_err() {
            let response = names
                .iter()
                .map(|name| {
                    TopicOutcome::error(
                        name,
                        ResponseError::RequestTimedOut,
                        "the controller's queue is full; retry",
                    )
                })
                .collect();
            let _ = self
                .context
                .control
                .mesh()
                .send(shard, MeshMessage::Response { id, response })
                .await;
        }
    }

    /// Records that `shard` applied snapshot `version`.
    pub fn on_applied(&self, shard: u32, version: u64) {
        if let Some(slot) = self.applied.borrow_mut().get_mut(shard as usize) {
            *slot = (*slot).max(version);
        }
        self.applied_waiters.wake_all();
    }

    async fn serve(self: Rc<Self>, queue: LocalReceiver<QueuedRequest>) {
        while let Some(QueuedRequest { request, reply }) = queue.recv().await {
            let response = self.handle(request).await;
            match reply {
                Reply::Local(sender) => {
                    let _ = sender.try_send(response);
                }
                Reply::Remote { shard, id } => {
                    let message = MeshMessage::Response { id, response };
                    if self
                        .context
                        .control
                        .mesh()
                        .send(shard, message)
                        .await
                        .is_err()
                    {
                        warn!(shard, "cannot answer a control request: the shard is gone");
                    }
                }
            }
        }
    }

    /// The change rules with this broker's settings.
    fn rules(&self) -> ChangeRules<'_> {
        ChangeRules {
            shard_count: self.context.shard_count,
            config: &self.context.config,
        }
    }

    async fn handle(&self, request: ControlRequest) -> ControlResponse {
        // Every topic gets an answer: a request over the limit is refused whole rather than
        // cut short, so no topic is silently left out of the response.
        let names = request_topic_names(&request);
        if names.len() > CONTROL_REQUEST_TOPICS_MAX {
            return names
                .iter()
                .map(|name| {
                    TopicOutcome::error(
                        name,
                        ResponseError::InvalidRequest,
                        format!(
                            "{} topics in one request; at most {CONTROL_REQUEST_TOPICS_MAX}",
                            names.len()
                        ),
                    )
                })
                .collect();
        }
        let mut next = self.metadata.borrow().clone();
        let (outcomes, validate_only) = match &request {
            ControlRequest::CreateTopics {
                topics,
                validate_only,
            } => (
                self.rules().create_topics(&mut next, topics),
                *validate_only,
            ),
            ControlRequest::AutoCreate { names } => {
                (self.rules().auto_create(&mut next, names), false)
            }
            ControlRequest::DeleteTopics { names } => (delete_topics(&mut next, names), false),
            ControlRequest::CreatePartitions {
                topics,
                validate_only,
            } => (
                self.rules().create_partitions(&mut next, topics),
                *validate_only,
            ),
        };
        if validate_only || next == *self.metadata.borrow() {
            return outcomes;
        }
        next.version += 1;
        // Off the shard thread: shard 0 also serves produce, and an fsync here would stall
        // every group commit it runs meanwhile. Control requests are handled one at a time,
        // so nothing else changes the metadata while this waits.
        let saved = {
            let store = self.store.clone();
            let snapshot = next.clone();
            run_blocking(move || store.save(&snapshot)).await
        };
        if let Err(error) = saved {
            warn!(%error, "cannot persist cluster metadata; the change is abandoned");
            return fail_successes(
                outcomes,
                ResponseError::KafkaStorageError,
                &format!("cannot persist cluster metadata: {error}"),
            );
        }
        *self.metadata.borrow_mut() = next.clone();
        if let Err(error) = self.publish(Arc::new(next)).await {
            return fail_successes(outcomes, ResponseError::RequestTimedOut, &error);
        }
        outcomes
    }

    /// Applies a snapshot here, sends it to every other shard, and waits until all of them
    /// have applied it (at most the control timeout).
    async fn publish(&self, snapshot: Arc<ClusterMetadata>) -> Result<(), String> {
        let version = snapshot.version;
        self.context.apply_snapshot(snapshot.clone()).await;
        self.on_applied(0, version);
        let mesh = self.context.control.mesh().clone();
        for peer in mesh.peers().collect::<Vec<_>>() {
            let message = MeshMessage::Snapshot {
                metadata: snapshot.clone(),
            };
            if mesh.send(peer, message).await.is_err() {
                return Err(format!("shard {peer} is gone"));
            }
        }
        let all_applied = poll_fn(|context| {
            if self
                .applied
                .borrow()
                .iter()
                .all(|&applied| applied >= version)
            {
                return Poll::Ready(());
            }
            self.applied_waiters.register(context.waker());
            Poll::Pending
        });
        let timeout = Duration::from_millis(self.context.config.control_timeout_ms);
        glommio::timer::timeout(timeout, async {
            all_applied.await;
            Ok(())
        })
        .await
        .map_err(|_| format!("not every shard applied metadata version {version} in time"))
    }
}

fn fail_successes(
    outcomes: ControlResponse,
    error: ResponseError,
    message: &str,
) -> ControlResponse {
    outcomes
        .into_iter()
        .map(|outcome| {
            if outcome.error_code == 0 {
                TopicOutcome::error(&outcome.name, error, message)
            } else {
                outcome
            }
        })
        .collect()
}

/// A cluster id as Kafka makes them: 16 random bytes, base64url without padding.
fn new_cluster_id() -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let id = new_topic_id();
    (0..22)
        .map(|index| {
            let six_bits = ((id >> (index * 6)) & 0x3f) as usize;
            ALPHABET.get(six_bits).copied().unwrap_or(b'A') as char
        })
        .collect()
}
