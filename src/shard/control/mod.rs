//! The control plane: topic creation, deletion and growth.
//!
//! Shard 0 runs the [`Controller`], the only writer of cluster metadata. A control request
//! that reaches any shard goes through its [`ControlClient`]: on shard 0 straight into the
//! controller's queue, elsewhere over the mesh. The controller handles one request at a time:
//! it validates every topic, builds the next snapshot, persists it, applies it on shard 0,
//! sends it to every other shard and waits until each has applied it (opened or deleted its
//! partitions). Only then does it answer, so a client that creates a topic can produce to it at
//! once, on any shard.
//!
//! | piece | file | role |
//! | --- | --- | --- |
//! | messages | `mod.rs` | [`ControlRequest`], [`MeshMessage`], the limits, [`control_plane`] |
//! | [`ControlClient`] | `client.rs` | a shard's way to the controller: straight into its queue on shard 0, over the mesh elsewhere |
//! | [`Controller`] | `controller.rs` | shard 0's owner of cluster metadata: apply the change rules, persist, publish, wait for every shard |
//! | receive loop | `receive.rs` | one task per peer shard, turning mesh messages into calls on the controller, the client or the shard |

mod client;
mod controller;
mod receive;

pub use client::{ControlClient, ControllerQueue, QueuedRequest};
pub use controller::Controller;
pub use receive::spawn_receivers;

use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use glommio::channels::local_channel;

pub use crate::cluster::changes::{ControlResponse, NewTopic, PartitionGrowth, TopicOutcome};
use crate::cluster::ClusterMetadata;

use super::mesh;

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

impl ControlRequest {
    /// The topics the request names, for answers that cover every one of them.
    pub fn topic_names(&self) -> Vec<String> {
        match self {
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
