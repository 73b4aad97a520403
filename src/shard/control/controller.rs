//! [`Controller`]: shard 0's owner of cluster metadata. It handles one control request at a
//! time: the change rules (`cluster::changes`) on a copy of the metadata, the save on the
//! blocking pool, the new snapshot applied here and sent to every shard, and the answer once
//! every shard has applied it.

use std::cell::RefCell;
use std::future::poll_fn;
use std::rc::Rc;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use glommio::channels::local_channel::{LocalReceiver, LocalSender};
use kafka_protocol::ResponseError;
use tracing::{info, warn};

use crate::blocking::run_blocking;
use crate::cluster::changes::{delete_topics, new_topic_id, ChangeRules};
use crate::cluster::store::MetadataStore;
use crate::cluster::ClusterMetadata;
use crate::shard::ShardContext;
use crate::wake::WakerSet;

use super::client::Reply;
use super::{
    ControlRequest, ControlResponse, ControllerQueue, MeshMessage, QueuedRequest, TopicOutcome,
    CONTROL_REQUEST_TOPICS_MAX,
};

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

impl Controller {
    /// Loads the persisted metadata (or starts empty), moves partitions of shards that no
    /// longer exist, and persists the result. [`Controller::publish_initial`] then sends it
    /// out; the two are split so the mesh receivers can reach the controller before the first
    /// acknowledgements arrive.
    ///
    /// The file calls (read, write, fsync) run on the blocking pool like every later save.
    pub async fn load(
        context: Rc<ShardContext>,
        queue: ControllerQueue,
    ) -> Result<(Rc<Self>, LocalReceiver<QueuedRequest>), String> {
        let store = MetadataStore::new(&context.config.data_dir);
        let loaded = {
            let store = store.clone();
            run_blocking(move || store.load()).await
        };
        let mut metadata = match loaded.map_err(|error| error.to_string())? {
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
        let saved = {
            let store = store.clone();
            let snapshot = metadata.clone();
            run_blocking(move || store.save(&snapshot)).await
        };
        saved.map_err(|error| error.to_string())?;
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
        let names = request.topic_names();
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
        let names = request.topic_names();
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
