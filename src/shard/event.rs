//! A shard-local event that happens once (shutdown starts, the first metadata arrives),
//! awaited by any number of tasks.

use std::cell::Cell;
use std::future::poll_fn;
use std::task::Poll;

use crate::wake::WakerSet;

/// Set once; every waiter wakes.
#[derive(Default)]
pub struct Event {
    triggered: Cell<bool>,
    waiters: WakerSet,
}

impl Event {
    /// Sets the event and wakes everyone waiting for it.
    pub fn trigger(&self) {
        self.triggered.set(true);
        self.waiters.wake_all();
    }

    /// Whether the event is set.
    pub fn is_triggered(&self) -> bool {
        self.triggered.get()
    }

    /// Completes once the event is set.
    pub async fn wait(&self) {
        poll_fn(|context| {
            if self.triggered.get() {
                return Poll::Ready(());
            }
            self.waiters.register(context.waker());
            Poll::Pending
        })
        .await
    }
}
