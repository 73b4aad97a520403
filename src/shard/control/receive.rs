//! The control plane's receive loop: one task per peer shard reading what it sends over the
//! mesh and handing each message to whoever it is for: a request to the controller (shard 0
//! only), an answer to the request waiting for it, a snapshot to this shard, an
//! acknowledgement to the controller.

use std::rc::Rc;

use tracing::warn;

use crate::shard::mesh::MeshReceivers;
use crate::shard::ShardContext;

use super::{Controller, MeshMessage};

/// Starts one receive task per peer. Each ends when its peer's sender closes.
pub fn spawn_receivers(
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
