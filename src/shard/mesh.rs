//! The control-plane mesh: one bounded glommio shared channel from every shard to every other.
//!
//! glommio's `MeshBuilder` numbers peers by executor id, which depends on thread start order;
//! the mesh is built here from `shared_channel`s instead, so index `i` is always shard `i`.
//! Every channel holds at most `mesh_queue_depth` messages; a sender waits when it is full.
//! The mesh carries any message type `M` and knows nothing of what travels on it; the control
//! plane (`shard::control`) sends its requests, snapshots and acknowledgements here. Produce
//! and fetch never cross cores.

use glommio::channels::shared_channel::{
    self, ConnectedReceiver, ConnectedSender, SharedReceiver, SharedSender,
};

/// One shard's ends of the mesh before its executor connects them; these cross threads.
pub struct MeshEndpoints<M: Send + 'static> {
    senders: Vec<Option<SharedSender<M>>>,
    receivers: Vec<Option<SharedReceiver<M>>>,
}

/// Builds the channels between `shard_count` shards, `queue_depth` messages each.
pub fn build<M: Send + 'static>(shard_count: usize, queue_depth: usize) -> Vec<MeshEndpoints<M>> {
    let mut endpoints: Vec<MeshEndpoints<M>> = (0..shard_count)
        .map(|_| MeshEndpoints {
            senders: (0..shard_count).map(|_| None).collect(),
            receivers: (0..shard_count).map(|_| None).collect(),
        })
        .collect();
    for from in 0..shard_count {
        for to in 0..shard_count {
            if from == to {
                continue;
            }
            let (sender, receiver) = shared_channel::new_bounded(queue_depth);
            if let Some(slot) = endpoints.get_mut(from).and_then(|e| e.senders.get_mut(to)) {
                *slot = Some(sender);
            }
            if let Some(slot) = endpoints
                .get_mut(to)
                .and_then(|e| e.receivers.get_mut(from))
            {
                *slot = Some(receiver);
            }
        }
    }
    endpoints
}

/// The peer's end of the channel is gone: that shard is stopping or stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("shard {shard} is not reachable over the mesh")]
pub struct MeshClosed {
    /// The shard.
    pub shard: u32,
}

/// A shard's connected senders.
pub struct Mesh<M: Send + 'static> {
    senders: Vec<Option<ConnectedSender<M>>>,
}

/// A shard's connected receivers, by the shard they come from.
pub type MeshReceivers<M> = Vec<(u32, ConnectedReceiver<M>)>;

impl<M: Send + 'static> MeshEndpoints<M> {
    /// Connects both ends inside the shard's executor.
    pub async fn connect(self) -> (Mesh<M>, MeshReceivers<M>) {
        // Each end waits for its peer to connect, so all ends connect at once: connecting one
        // by one would have two shards each waiting on the other.
        let senders: Vec<_> = self
            .senders
            .into_iter()
            .map(|sender| sender.map(|sender| glommio::spawn_local(sender.connect())))
            .collect();
        let receivers: Vec<_> = self
            .receivers
            .into_iter()
            .enumerate()
            .filter_map(|(from, receiver)| {
                receiver.map(|receiver| (from as u32, glommio::spawn_local(receiver.connect())))
            })
            .collect();
        let mut connected_senders = Vec::with_capacity(senders.len());
        for sender in senders {
            connected_senders.push(match sender {
                Some(task) => Some(task.await),
                None => None,
            });
        }
        let mut connected_receivers = Vec::with_capacity(receivers.len());
        for (from, task) in receivers {
            connected_receivers.push((from, task.await));
        }
        (
            Mesh {
                senders: connected_senders,
            },
            connected_receivers,
        )
    }
}

impl<M: Send + 'static> Mesh<M> {
    /// Sends to shard `to`, waiting while its channel is full. Fails only when the peer is
    /// gone (shutting down).
    pub async fn send(&self, to: u32, message: M) -> Result<(), MeshClosed> {
        match self.senders.get(to as usize) {
            Some(Some(sender)) => sender
                .send(message)
                .await
                .map_err(|_| MeshClosed { shard: to }),
            _ => Err(MeshClosed { shard: to }),
        }
    }

    /// Shards this one can send to.
    pub fn peers(&self) -> impl Iterator<Item = u32> + '_ {
        self.senders
            .iter()
            .enumerate()
            .filter(|(_, sender)| sender.is_some())
            .map(|(shard, _)| shard as u32)
    }
}
