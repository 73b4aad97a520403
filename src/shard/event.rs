//! A shard-local event that happens once (shutdown starts, the first metadata arrives),
//! awaited by any number of tasks.

use std::cell::{Cell, RefCell};
use std::future::poll_fn;
use std::task::{Poll, Waker};

/// Set once; every waiter wakes.
#[derive(Default)]
pub struct Event {
    triggered: Cell<bool>,
    waiters: RefCell<Vec<Waker>>,
}

impl Event {
    /// Sets the event and wakes everyone waiting for it.
    pub fn trigger(&self) {
        self.triggered.set(true);
        for waker in std::mem::take(&mut *self.waiters.borrow_mut()) {
            waker.wake();
        }
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
            let mut waiters = self.waiters.borrow_mut();
            if !waiters.iter().any(|waker| waker.will_wake(context.waker())) {
                waiters.push(context.waker().clone());
            }
            Poll::Pending
        })
        .await
    }
}
