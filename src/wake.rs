//! A list of tasks waiting for something on the same thread.
//!
//! A task that is polled again before the thing it waits for happens registers again; the
//! list keeps one waker per task (`Waker::will_wake`), so repeated polls cannot grow it, and
//! `wake_all` empties it.

use std::cell::RefCell;
use std::task::Waker;

/// Tasks to wake when something happens.
#[derive(Debug, Default)]
pub struct WakerSet {
    wakers: RefCell<Vec<Waker>>,
}

impl WakerSet {
    /// Registers `waker`, once per task.
    pub fn register(&self, waker: &Waker) {
        let mut wakers = self.wakers.borrow_mut();
        if !wakers.iter().any(|known| known.will_wake(waker)) {
            wakers.push(waker.clone());
        }
    }

    /// Wakes every registered task and forgets them.
    pub fn wake_all(&self) {
        // Taken first: a woken task may register again while we iterate.
        for waker in std::mem::take(&mut *self.wakers.borrow_mut()) {
            waker.wake();
        }
    }

    /// Tasks registered now.
    pub fn len(&self) -> usize {
        self.wakers.borrow().len()
    }

    /// No task registered.
    pub fn is_empty(&self) -> bool {
        self.wakers.borrow().is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::task::Wake;

    struct Counter(AtomicUsize);

    impl Wake for Counter {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn one_waker_per_task_however_often_it_registers() {
        let counter = Arc::new(Counter(AtomicUsize::new(0)));
        let waker = Waker::from(counter.clone());
        let set = WakerSet::default();
        for _ in 0..1_000 {
            set.register(&waker);
        }
        assert_eq!(set.len(), 1);
        set.wake_all();
        assert!(set.is_empty());
        assert_eq!(counter.0.load(Ordering::SeqCst), 1);
    }
}
