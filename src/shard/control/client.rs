//! [`ControlClient`]: how a shard reaches the controller. On shard 0 a request goes straight
//! into the controller's queue; elsewhere it goes over the mesh with an id, and the receive
//! loop hands the answer back to the waiting request ([`ControlClient::deliver`]).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

use glommio::channels::local_channel::{self, LocalReceiver, LocalSender};
use kafka_protocol::ResponseError;

use super::{ControlRequest, ControlResponse, Mesh, MeshMessage, TopicOutcome};

/// Where the controller sends an answer.
pub(super) enum Reply {
    Local(LocalSender<ControlResponse>),
    Remote { shard: u32, id: u64 },
}

/// A request in the controller's queue.
pub struct QueuedRequest {
    pub(super) request: ControlRequest,
    pub(super) reply: Reply,
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
    pub(super) fn new(
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
        let names = request.topic_names();
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

/// Both ends of the controller's queue, as shard 0 creates them.
pub type ControllerQueue = (Rc<LocalSender<QueuedRequest>>, LocalReceiver<QueuedRequest>);
