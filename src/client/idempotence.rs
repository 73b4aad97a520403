//! The idempotent producer's side of KIP-98: one producer id and epoch from InitProducerId,
//! and for each partition the sequence of its next record.
//!
//! The producer sends one batch per partition at a time when idempotent (see `producer.rs`), so
//! a partition's sequences are handed out in send order and a retry always carries the
//! sequence it first had: the broker answers a retry of a stored batch with its original
//! offset and stores it never again. When a batch ends with its outcome unknown (retries
//! exhausted) or the broker no longer knows the producer (UNKNOWN_PRODUCER_ID,
//! OUT_OF_ORDER_SEQUENCE_NUMBER after data loss), the identity is dropped: the next batch of
//! every partition starts again at sequence 0 under a new producer id, so no later batch can
//! be taken for a duplicate of one whose fate is unknown.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::time::Duration;

use glommio::sync::Semaphore;
use kafka_protocol::messages::{ApiKey, InitProducerIdRequest, InitProducerIdResponse, ProducerId};

use super::cluster::Cluster;
use super::error::{ClientError, ClientResult};

/// InitProducerId attempts before a batch fails with the last error.
pub const INIT_PRODUCER_ID_ATTEMPTS_MAX: u32 = 10;
/// Wait between two attempts.
const INIT_PRODUCER_ID_BACKOFF: Duration = Duration::from_millis(100);

/// A producer id and its epoch.
pub type ProducerIdentity = (i64, i16);

/// What a partition sends next.
#[derive(Debug, Clone, Copy)]
struct PartitionSequence {
    /// The identity its sequence counts under.
    identity: ProducerIdentity,
    /// The first sequence of its next batch.
    next_sequence: i32,
}

/// The producer id, and every partition's next sequence.
pub struct Idempotence {
    identity: Cell<Option<ProducerIdentity>>,
    /// One InitProducerId at a time; the others wait for its answer.
    initializing: Semaphore,
    sequences: RefCell<HashMap<(String, i32), PartitionSequence>>,
}

impl Default for Idempotence {
    fn default() -> Self {
        Self {
            identity: Cell::new(None),
            initializing: Semaphore::new(1),
            sequences: RefCell::new(HashMap::new()),
        }
    }
}

/// The sequence after `records` records from `first` (sequences wrap to 0 after `i32::MAX`).
pub fn sequence_after(first: i32, records: i32) -> i32 {
    ((i64::from(first) + i64::from(records)) % (i64::from(i32::MAX) + 1)) as i32
}

impl Idempotence {
    /// The identity and first sequence for the next batch of `topic`-`partition`, getting a
    /// producer id first if there is none.
    pub async fn next_batch(
        &self,
        cluster: &Cluster,
        topic: &str,
        partition: i32,
    ) -> ClientResult<(ProducerIdentity, i32)> {
        let identity = self.identity(cluster).await?;
        let mut sequences = self.sequences.borrow_mut();
        let entry = sequences
            .entry((topic.to_string(), partition))
            .or_insert(PartitionSequence {
                identity,
                next_sequence: 0,
            });
        if entry.identity != identity {
            *entry = PartitionSequence {
                identity,
                next_sequence: 0,
            };
        }
        Ok((identity, entry.next_sequence))
    }

    /// A batch of `records` records sent under `identity` was acknowledged.
    pub fn acknowledged(
        &self,
        identity: ProducerIdentity,
        topic: &str,
        partition: i32,
        records: i32,
    ) {
        if let Some(entry) = self
            .sequences
            .borrow_mut()
            .get_mut(&(topic.to_string(), partition))
            .filter(|entry| entry.identity == identity)
        {
            entry.next_sequence = sequence_after(entry.next_sequence, records);
        }
    }

    /// `identity` can no longer be trusted (a batch's fate is unknown, or the broker lost the
    /// producer): the next batch of every partition gets a new producer id.
    pub fn abandon(&self, identity: ProducerIdentity) {
        if self.identity.get() == Some(identity) {
            self.identity.set(None);
        }
    }

    async fn identity(&self, cluster: &Cluster) -> ClientResult<ProducerIdentity> {
        if let Some(identity) = self.identity.get() {
            return Ok(identity);
        }
        let _permit = self
            .initializing
            .acquire_permit(1)
            .await
            .map_err(|_| ClientError::Closed)?;
        if let Some(identity) = self.identity.get() {
            return Ok(identity);
        }
        let mut last_error = None;
        for attempt in 0..INIT_PRODUCER_ID_ATTEMPTS_MAX {
            if attempt > 0 {
                glommio::timer::sleep(INIT_PRODUCER_ID_BACKOFF).await;
            }
            match init_producer_id(cluster).await {
                Ok(identity) => {
                    self.identity.set(Some(identity));
                    return Ok(identity);
                }
                Err(error) if error.is_retriable() => last_error = Some(error),
                Err(error) => return Err(error),
            }
        }
        Err(last_error.unwrap_or(ClientError::Closed))
    }
}

async fn init_producer_id(cluster: &Cluster) -> ClientResult<ProducerIdentity> {
    let connection = cluster.any_connection().await?;
    let request = InitProducerIdRequest::default()
        .with_transactional_id(None)
        .with_transaction_timeout_ms(i32::MAX)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    let (_, response): (i16, InitProducerIdResponse) =
        connection.call(ApiKey::InitProducerId, &request).await?;
    ClientError::check("InitProducerId", response.error_code, None)?;
    Ok((response.producer_id.0, response.producer_epoch))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequences_wrap_after_the_largest() {
        assert_eq!(sequence_after(0, 5), 5);
        assert_eq!(sequence_after(i32::MAX - 1, 1), i32::MAX);
        assert_eq!(sequence_after(i32::MAX, 1), 0);
        assert_eq!(sequence_after(i32::MAX - 1, 3), 1);
    }
}
