//! One transactional id's state at its coordinator, and the rules that move it (KIP-98, as
//! Kafka's `TransactionCoordinator` and `TransactionMetadata` apply them). Pure: the caller
//! persists each new state in the transaction log before it answers, writes the markers a
//! `Prepare*` state asks for, then completes the transition.
//!
//! ```text
//! Empty --AddPartitions--> Ongoing --EndTxn(commit)--> PrepareCommit --markers--> CompleteCommit
//!                            |  \--EndTxn(abort) / timeout / fence--> PrepareAbort --markers--> CompleteAbort
//! Complete* --AddPartitions--> Ongoing;  Empty / Complete* --InitProducerId--> Empty (epoch + 1)
//! ```

use std::collections::BTreeSet;

use thiserror::Error;

/// Where a transaction is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransactionState {
    /// Initialised, no transaction begun.
    Empty,
    /// Partitions (or a group's offsets) were added: a transaction is open.
    Ongoing,
    /// EndTxn(commit) was accepted; commit markers are being written.
    PrepareCommit,
    /// EndTxn(abort), a timeout or a fence; abort markers are being written.
    PrepareAbort,
    /// Every commit marker is written.
    CompleteCommit,
    /// Every abort marker is written.
    CompleteAbort,
}

impl TransactionState {
    /// Kafka's name for the state (DescribeTransactions, ListTransactions).
    pub fn name(self) -> &'static str {
        match self {
            TransactionState::Empty => "Empty",
            TransactionState::Ongoing => "Ongoing",
            TransactionState::PrepareCommit => "PrepareCommit",
            TransactionState::PrepareAbort => "PrepareAbort",
            TransactionState::CompleteCommit => "CompleteCommit",
            TransactionState::CompleteAbort => "CompleteAbort",
        }
    }

    /// Markers are being written: requests other than retries must wait.
    pub fn is_preparing(self) -> bool {
        matches!(
            self,
            TransactionState::PrepareCommit | TransactionState::PrepareAbort
        )
    }
}

/// Why the coordinator refuses a request; each maps to Kafka's error code of the same name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum TransactionError {
    /// Markers of the previous transaction are still being written: retry.
    #[error("CONCURRENT_TRANSACTIONS")]
    ConcurrentTransactions,
    /// The request's producer id is not the one the transactional id has.
    #[error("INVALID_PRODUCER_ID_MAPPING")]
    InvalidProducerIdMapping,
    /// A newer producer with the same transactional id has fenced this one.
    #[error("PRODUCER_FENCED")]
    ProducerFenced,
    /// The request does not fit the transaction's state.
    #[error("INVALID_TXN_STATE")]
    InvalidTxnState,
    /// `transaction.timeout.ms` is not positive or above `transaction_max_timeout_ms`.
    #[error("INVALID_TRANSACTION_TIMEOUT")]
    InvalidTransactionTimeout,
}

/// What EndTxn asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndTransaction {
    /// Commit.
    Commit,
    /// Abort.
    Abort,
}

/// What the caller must do after a transition was accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransitionOutcome {
    /// Persist the new state and answer.
    Persist,
    /// Nothing changed (a retry of what is already done): answer at once.
    AlreadyDone,
    /// Persist the `Prepare*` state, write a marker into every partition of `partitions`
    /// with `producer_epoch`, then call [`TransactionMetadata::complete`].
    WriteMarkers {
        /// Commit or abort markers.
        end: EndTransaction,
        /// The partitions of the transaction, as (topic, partition).
        partitions: BTreeSet<(String, i32)>,
        /// The epoch the markers carry (bumped for a timeout or a fence).
        producer_epoch: i16,
    },
}

/// One transactional id's state at its coordinator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionMetadata {
    /// The transactional id.
    pub transactional_id: String,
    /// Its producer id.
    pub producer_id: i64,
    /// Its current epoch.
    pub producer_epoch: i16,
    /// `transaction.timeout.ms` from its last InitProducerId.
    pub timeout_ms: i32,
    /// Where it is.
    pub state: TransactionState,
    /// Partitions of the open (or ending) transaction.
    pub partitions: BTreeSet<(String, i32)>,
    /// Groups whose offsets the open transaction commits (AddOffsetsToTxn).
    pub groups: BTreeSet<String>,
    /// When the open transaction began (ms since the epoch), for its timeout.
    pub started_ms: i64,
    /// When the state last changed.
    pub updated_ms: i64,
}

impl TransactionMetadata {
    /// A transactional id's first InitProducerId: `producer_id` at epoch 0.
    pub fn new(transactional_id: String, producer_id: i64, timeout_ms: i32, now_ms: i64) -> Self {
        Self {
            transactional_id,
            producer_id,
            producer_epoch: 0,
            timeout_ms,
            state: TransactionState::Empty,
            partitions: BTreeSet::new(),
            groups: BTreeSet::new(),
            started_ms: -1,
            updated_ms: now_ms,
        }
    }

    /// Checks `transaction.timeout.ms` against the broker's `transaction_max_timeout_ms`.
    pub fn check_timeout(timeout_ms: i32, max_timeout_ms: i32) -> Result<(), TransactionError> {
        if timeout_ms <= 0 || timeout_ms > max_timeout_ms {
            return Err(TransactionError::InvalidTransactionTimeout);
        }
        Ok(())
    }

    /// InitProducerId again (a restarted producer, or KIP-360's bump): the epoch rises,
    /// fencing the previous instance. An open transaction is aborted first (the answer is
    /// CONCURRENT_TRANSACTIONS until its markers are written, and the client retries);
    /// `expected` is the (producer id, epoch) a KIP-360 client names. Returns `true` when the
    /// epoch is exhausted and the caller must hand out a new producer id (see
    /// [`TransactionMetadata::rotate_producer_id`]).
    pub fn reinitialise(
        &mut self,
        expected: Option<(i64, i16)>,
        timeout_ms: i32,
        now_ms: i64,
    ) -> Result<(TransitionOutcome, bool), TransactionError> {
        if let Some((producer_id, epoch)) = expected {
            let current = producer_id == self.producer_id && epoch == self.producer_epoch;
            if !current {
                return Err(TransactionError::ProducerFenced);
            }
        }
        match self.state {
            TransactionState::PrepareCommit | TransactionState::PrepareAbort => {
                Err(TransactionError::ConcurrentTransactions)
            }
            TransactionState::Ongoing => {
                // Fence the old instance and abort what it left open; the client retries.
                let outcome = self.begin_abort_with_bump(now_ms);
                Ok((outcome, false))
            }
            TransactionState::Empty
            | TransactionState::CompleteCommit
            | TransactionState::CompleteAbort => {
                self.timeout_ms = timeout_ms;
                self.updated_ms = now_ms;
                self.state = TransactionState::Empty;
                if self.producer_epoch >= i16::MAX - 1 {
                    return Ok((TransitionOutcome::Persist, true));
                }
                self.producer_epoch += 1;
                Ok((TransitionOutcome::Persist, false))
            }
        }
    }

    /// A new producer id at epoch 0, when the old one's epochs ran out.
    pub fn rotate_producer_id(&mut self, producer_id: i64) {
        self.producer_id = producer_id;
        self.producer_epoch = 0;
    }

    fn check_producer(
        &self,
        producer_id: i64,
        producer_epoch: i16,
    ) -> Result<(), TransactionError> {
        if producer_id != self.producer_id {
            return Err(TransactionError::InvalidProducerIdMapping);
        }
        if producer_epoch != self.producer_epoch {
            return Err(TransactionError::ProducerFenced);
        }
        Ok(())
    }

    /// AddPartitionsToTxn (or, with `group`, AddOffsetsToTxn): the transaction is open from
    /// now on and covers these partitions.
    pub fn add(
        &mut self,
        producer_id: i64,
        producer_epoch: i16,
        partitions: impl IntoIterator<Item = (String, i32)>,
        group: Option<String>,
        now_ms: i64,
    ) -> Result<TransitionOutcome, TransactionError> {
        self.check_producer(producer_id, producer_epoch)?;
        if self.state.is_preparing() {
            return Err(TransactionError::ConcurrentTransactions);
        }
        if self.state != TransactionState::Ongoing {
            self.partitions.clear();
            self.groups.clear();
            self.started_ms = now_ms;
            self.state = TransactionState::Ongoing;
        }
        self.partitions.extend(partitions);
        self.groups.extend(group);
        self.updated_ms = now_ms;
        Ok(TransitionOutcome::Persist)
    }

    /// EndTxn. A retry of an end already reached is answered at once; the other end of a
    /// finished transaction is INVALID_TXN_STATE.
    pub fn end(
        &mut self,
        producer_id: i64,
        producer_epoch: i16,
        end: EndTransaction,
        now_ms: i64,
    ) -> Result<TransitionOutcome, TransactionError> {
        self.check_producer(producer_id, producer_epoch)?;
        match (self.state, end) {
            (TransactionState::Ongoing, _) => {
                self.state = match end {
                    EndTransaction::Commit => TransactionState::PrepareCommit,
                    EndTransaction::Abort => TransactionState::PrepareAbort,
                };
                self.updated_ms = now_ms;
                Ok(TransitionOutcome::WriteMarkers {
                    end,
                    partitions: self.partitions.clone(),
                    producer_epoch: self.producer_epoch,
                })
            }
            (TransactionState::CompleteCommit, EndTransaction::Commit)
            | (TransactionState::CompleteAbort, EndTransaction::Abort) => {
                Ok(TransitionOutcome::AlreadyDone)
            }
            (TransactionState::PrepareCommit, EndTransaction::Commit)
            | (TransactionState::PrepareAbort, EndTransaction::Abort) => {
                Err(TransactionError::ConcurrentTransactions)
            }
            _ => Err(TransactionError::InvalidTxnState),
        }
    }

    /// Aborts an open transaction that outlived its timeout, bumping the epoch so the
    /// producer that left it is fenced. `None` if it is not open or not yet expired.
    pub fn expire(&mut self, now_ms: i64) -> Option<TransitionOutcome> {
        let expired = self.state == TransactionState::Ongoing
            && now_ms.saturating_sub(self.started_ms) > i64::from(self.timeout_ms);
        expired.then(|| self.begin_abort_with_bump(now_ms))
    }

    fn begin_abort_with_bump(&mut self, now_ms: i64) -> TransitionOutcome {
        debug_assert_eq!(self.state, TransactionState::Ongoing);
        self.producer_epoch = self.producer_epoch.saturating_add(1);
        self.state = TransactionState::PrepareAbort;
        self.updated_ms = now_ms;
        TransitionOutcome::WriteMarkers {
            end: EndTransaction::Abort,
            partitions: self.partitions.clone(),
            producer_epoch: self.producer_epoch,
        }
    }

    /// Every marker of the `Prepare*` state is written: the transaction is complete.
    pub fn complete(&mut self, now_ms: i64) {
        self.state = match self.state {
            TransactionState::PrepareCommit => TransactionState::CompleteCommit,
            TransactionState::PrepareAbort => TransactionState::CompleteAbort,
            other => other,
        };
        self.partitions.clear();
        self.groups.clear();
        self.started_ms = -1;
        self.updated_ms = now_ms;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn partitions(names: &[(&str, i32)]) -> Vec<(String, i32)> {
        names
            .iter()
            .map(|(topic, partition)| (topic.to_string(), *partition))
            .collect()
    }

    #[test]
    fn a_transaction_commits_through_its_markers_and_a_retry_is_answered() {
        let mut txn = TransactionMetadata::new("t".into(), 7, 60_000, 0);
        txn.add(7, 0, partitions(&[("a", 0), ("b", 1)]), None, 10)
            .expect("add");
        txn.add(7, 0, partitions(&[("a", 0)]), Some("g".into()), 11)
            .expect("add offsets");
        assert_eq!(txn.state, TransactionState::Ongoing);
        assert_eq!(txn.started_ms, 10);
        let outcome = txn.end(7, 0, EndTransaction::Commit, 12).expect("end");
        let TransitionOutcome::WriteMarkers {
            end,
            partitions: marked,
            producer_epoch,
        } = outcome
        else {
            panic!("markers to write: {outcome:?}");
        };
        assert_eq!((end, producer_epoch), (EndTransaction::Commit, 0));
        assert_eq!(marked.len(), 2);
        // While markers are written, a retry waits and new work is refused.
        assert_eq!(
            txn.end(7, 0, EndTransaction::Commit, 13),
            Err(TransactionError::ConcurrentTransactions)
        );
        assert_eq!(
            txn.add(7, 0, partitions(&[("c", 0)]), None, 13),
            Err(TransactionError::ConcurrentTransactions)
        );
        txn.complete(14);
        assert_eq!(txn.state, TransactionState::CompleteCommit);
        assert!(txn.partitions.is_empty() && txn.groups.is_empty());
        assert_eq!(
            txn.end(7, 0, EndTransaction::Commit, 15),
            Ok(TransitionOutcome::AlreadyDone)
        );
        assert_eq!(
            txn.end(7, 0, EndTransaction::Abort, 15),
            Err(TransactionError::InvalidTxnState)
        );
        // The next transaction starts afresh.
        txn.add(7, 0, partitions(&[("c", 0)]), None, 20)
            .expect("next");
        assert_eq!(txn.partitions.len(), 1);
        assert_eq!(txn.started_ms, 20);
    }

    #[test]
    fn a_new_instance_fences_the_old_one_and_aborts_what_it_left_open() {
        let mut txn = TransactionMetadata::new("t".into(), 7, 60_000, 0);
        txn.add(7, 0, partitions(&[("a", 0)]), None, 1)
            .expect("add");
        // The new instance's InitProducerId: abort with a bumped epoch, then retry.
        let (outcome, rotate) = txn.reinitialise(None, 30_000, 2).expect("fence");
        assert!(!rotate);
        assert!(matches!(
            outcome,
            TransitionOutcome::WriteMarkers {
                end: EndTransaction::Abort,
                producer_epoch: 1,
                ..
            }
        ));
        assert_eq!(
            txn.reinitialise(None, 30_000, 3),
            Err(TransactionError::ConcurrentTransactions)
        );
        txn.complete(4);
        let (outcome, _) = txn.reinitialise(None, 30_000, 5).expect("retry");
        assert_eq!(outcome, TransitionOutcome::Persist);
        assert_eq!((txn.producer_epoch, txn.timeout_ms), (2, 30_000));
        // The old instance is fenced everywhere.
        assert_eq!(
            txn.add(7, 0, partitions(&[("a", 0)]), None, 6),
            Err(TransactionError::ProducerFenced)
        );
        assert_eq!(
            txn.end(7, 1, EndTransaction::Commit, 6),
            Err(TransactionError::ProducerFenced)
        );
        assert_eq!(
            txn.add(8, 2, partitions(&[("a", 0)]), None, 6),
            Err(TransactionError::InvalidProducerIdMapping)
        );
        // KIP-360: a client naming a stale (id, epoch) is fenced; the current one bumps.
        assert_eq!(
            txn.reinitialise(Some((7, 1)), 30_000, 7),
            Err(TransactionError::ProducerFenced)
        );
        txn.reinitialise(Some((7, 2)), 30_000, 7).expect("bump");
        assert_eq!(txn.producer_epoch, 3);
    }

    #[test]
    fn timeouts_and_exhausted_epochs() {
        assert_eq!(
            TransactionMetadata::check_timeout(0, 900_000),
            Err(TransactionError::InvalidTransactionTimeout)
        );
        assert_eq!(
            TransactionMetadata::check_timeout(900_001, 900_000),
            Err(TransactionError::InvalidTransactionTimeout)
        );
        assert!(TransactionMetadata::check_timeout(60_000, 900_000).is_ok());

        let mut txn = TransactionMetadata::new("t".into(), 7, 1_000, 0);
        assert_eq!(txn.expire(10_000), None, "nothing open");
        txn.add(7, 0, partitions(&[("a", 0)]), None, 100)
            .expect("add");
        assert_eq!(txn.expire(1_100), None, "not past its timeout");
        assert!(matches!(
            txn.expire(1_101),
            Some(TransitionOutcome::WriteMarkers {
                producer_epoch: 1,
                ..
            })
        ));
        txn.complete(1_200);
        assert_eq!(txn.state, TransactionState::CompleteAbort);

        txn.producer_epoch = i16::MAX - 1;
        let (_, rotate) = txn.reinitialise(None, 1_000, 2_000).expect("init");
        assert!(rotate, "the epoch is exhausted: a new producer id");
        txn.rotate_producer_id(9);
        assert_eq!((txn.producer_id, txn.producer_epoch), (9, 0));
    }
}
