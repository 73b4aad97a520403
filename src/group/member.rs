//! One member of a classic group, as its coordinator holds it: who it is, the protocols it
//! joined with, its assignment, its session, and the JoinGroup or SyncGroup it is waiting in.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::ResponseError;

/// What a JoinGroup is answered with.
#[derive(Debug, Clone, Default)]
pub struct JoinOutcome {
    /// `None` on success.
    pub error: Option<ResponseError>,
    /// The generation the member joined (-1 on error).
    pub generation_id: i32,
    /// The group's protocol type, once chosen.
    pub protocol_type: Option<String>,
    /// The protocol (assignor) chosen for the generation.
    pub protocol_name: Option<String>,
    /// The leader's member id.
    pub leader: String,
    /// The member's id: a new one for a new member, or the one MEMBER_ID_REQUIRED hands out.
    pub member_id: String,
    /// Every member and its metadata for the chosen protocol: the leader's only.
    pub members: Vec<JoinedMember>,
    /// The leader need not assign (KIP-814): a static leader came back to a stable group.
    pub skip_assignment: bool,
}

impl JoinOutcome {
    /// A JoinGroup refused with `error`.
    pub fn refused(error: ResponseError, member_id: &str) -> Self {
        Self {
            error: Some(error),
            generation_id: -1,
            member_id: member_id.to_string(),
            ..Self::default()
        }
    }
}

/// One member as the leader sees it in its JoinGroup response.
#[derive(Debug, Clone)]
pub struct JoinedMember {
    /// Its id.
    pub member_id: String,
    /// Its static instance id, if any.
    pub instance_id: Option<String>,
    /// Its metadata for the chosen protocol (the subscription, for consumers).
    pub metadata: Bytes,
}

/// What a SyncGroup is answered with.
#[derive(Debug, Clone, Default)]
pub struct SyncOutcome {
    /// `None` on success.
    pub error: Option<ResponseError>,
    /// The group's protocol type.
    pub protocol_type: Option<String>,
    /// The generation's protocol.
    pub protocol_name: Option<String>,
    /// The member's assignment, as the leader wrote it.
    pub assignment: Bytes,
}

impl SyncOutcome {
    /// A SyncGroup refused with `error`.
    pub fn refused(error: ResponseError) -> Self {
        Self {
            error: Some(error),
            ..Self::default()
        }
    }
}

/// The answering end of a request that waits for the group: one answer, once.
#[derive(Debug)]
pub struct Waiter<T> {
    slot: Rc<RefCell<Slot<T>>>,
}

/// Where a waiting request's handler receives its answer: a future that yields `None` if the
/// waiter was dropped unanswered, which the handler answers as UNKNOWN_MEMBER_ID (the member
/// is gone).
#[derive(Debug)]
pub struct Answer<T> {
    slot: Rc<RefCell<Slot<T>>>,
}

#[derive(Debug)]
struct Slot<T> {
    value: Option<T>,
    /// The waiter answered or was dropped: nothing more will come.
    closed: bool,
    waker: Option<Waker>,
}

/// A waiter and its answer.
pub fn waiter<T>() -> (Waiter<T>, Answer<T>) {
    let slot = Rc::new(RefCell::new(Slot {
        value: None,
        closed: false,
        waker: None,
    }));
    (Waiter { slot: slot.clone() }, Answer { slot })
}

impl<T> Waiter<T> {
    /// Answers the waiting request. Its handler may be gone (the connection closed): the
    /// answer is then dropped with the slot.
    pub fn answer(self, value: T) {
        self.slot.borrow_mut().value = Some(value);
        // Drop closes the slot and wakes the handler.
    }
}

impl<T> Drop for Waiter<T> {
    fn drop(&mut self) {
        let waker = {
            let mut slot = self.slot.borrow_mut();
            slot.closed = true;
            slot.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

impl<T> Answer<T> {
    /// The answer if it has come: `Some(None)` when the waiter was dropped unanswered. (The
    /// state machine's tests read answers without an executor.)
    #[cfg(test)]
    pub fn try_take(&mut self) -> Option<Option<T>> {
        let mut slot = self.slot.borrow_mut();
        if slot.closed {
            Some(slot.value.take())
        } else {
            None
        }
    }
}

impl<T> Future for Answer<T> {
    type Output = Option<T>;

    fn poll(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<Option<T>> {
        let mut slot = self.slot.borrow_mut();
        if slot.closed {
            return Poll::Ready(slot.value.take());
        }
        slot.waker = Some(context.waker().clone());
        Poll::Pending
    }
}

/// A member of a classic group.
#[derive(Debug)]
pub struct ClassicMember {
    /// Its id, unique in the group.
    pub member_id: String,
    /// Its `group.instance.id` (static membership, KIP-345).
    pub instance_id: Option<String>,
    /// Its client id.
    pub client_id: String,
    /// The host it connected from, as Kafka writes it (`/127.0.0.1`).
    pub client_host: String,
    /// Its session: it is removed when no heartbeat comes for this long.
    pub session_timeout: Duration,
    /// How long a rebalance waits for it to rejoin.
    pub rebalance_timeout: Duration,
    /// The protocol type it joined with (`consumer` for consumers).
    pub protocol_type: String,
    /// The protocols it supports, most preferred first, with its metadata for each.
    pub protocols: Vec<(String, Bytes)>,
    /// Its assignment in the current generation.
    pub assignment: Bytes,
    /// The order it joined in: the first joined becomes leader when a leader is needed.
    pub join_order: u64,
    /// When its session was last renewed (heartbeat, join, sync, commit).
    pub last_heartbeat: Instant,
    /// Its JoinGroup, while it waits for the rebalance.
    pub join_waiter: Option<Waiter<JoinOutcome>>,
    /// Its SyncGroup, while it waits for the leader's assignment.
    pub sync_waiter: Option<Waiter<SyncOutcome>>,
    /// It has not sent SyncGroup for the current generation yet.
    pub sync_pending: bool,
}

impl ClassicMember {
    /// Bytes of protocol metadata this member holds, the figure the per-member and per-shard
    /// byte limits count.
    pub fn metadata_bytes(protocols: &[(String, Bytes)]) -> usize {
        protocols
            .iter()
            .map(|(name, metadata)| name.len() + metadata.len())
            .sum()
    }

    /// Bytes this member holds: ids, protocol metadata and assignment.
    pub fn retained_bytes(&self) -> usize {
        self.member_id.len()
            + self.instance_id.as_ref().map_or(0, String::len)
            + self.client_id.len()
            + self.client_host.len()
            + self.protocol_type.len()
            + Self::metadata_bytes(&self.protocols)
            + self.assignment.len()
    }

    /// Its metadata for `protocol`, empty if it does not support it.
    pub fn metadata_for(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|(name, _)| name == protocol)
            .map(|(_, metadata)| metadata.clone())
            .unwrap_or_default()
    }

    /// Whether it supports `protocol`.
    pub fn supports(&self, protocol: &str) -> bool {
        self.protocols.iter().any(|(name, _)| name == protocol)
    }

    /// Whether a JoinGroup with these protocols changes nothing.
    pub fn matches(&self, protocols: &[(String, Bytes)]) -> bool {
        self.protocols == protocols
    }

    /// Whether a heartbeat is due: a member waiting in JoinGroup or SyncGroup cannot send one,
    /// so its session is held while it waits, as Kafka does.
    pub fn session_expired(&self, now: Instant) -> bool {
        self.join_waiter.is_none()
            && self.sync_waiter.is_none()
            && now.saturating_duration_since(self.last_heartbeat) >= self.session_timeout
    }

    /// Answers a waiting JoinGroup or SyncGroup with `error`.
    pub fn refuse_waiters(&mut self, error: ResponseError) {
        if let Some(waiter) = self.join_waiter.take() {
            waiter.answer(JoinOutcome::refused(error, &self.member_id));
        }
        if let Some(waiter) = self.sync_waiter.take() {
            waiter.answer(SyncOutcome::refused(error));
        }
    }
}
