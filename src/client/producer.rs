//! The producer: records are partitioned (murmur2 for keys, sticky for the rest), gathered
//! into one open batch per partition, and sent when the batch reaches `batch_bytes` or has
//! waited `linger_ms`. Each batch is one produce request to its partition's leader, with at
//! most `in_flight_per_broker_max` in flight per broker. Retriable errors refresh metadata
//! and retry up to `retries` times. `buffer_bytes_max` bounds what is buffered and unacknowledged:
//! `send` waits above it.
//!
//! A record's delivery is a [`DeliveryFuture`] sharing its batch's completion, so a record
//! costs one `Rc` clone, not a channel.
//!
//! Idempotent (`ProducerConfig::idempotence`, on by default with acks=all, as in the Java
//! client): each partition's batches go out one at a time, in order, each stamped with the
//! producer id and its first sequence when its turn comes (`idempotence.rs`); a retry keeps
//! its sequence, so the broker stores it once. A partition then has one produce request in
//! flight instead of several, and its batches grow while they wait, up to `batch_bytes`.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use glommio::sync::Semaphore;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ApiKey, ProduceRequest, ProduceResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use crate::record::{Header, Record, RecordBatch, RecordBatchBuilder};
use crate::wake::WakerSet;

use super::cluster::Cluster;
use super::config::{Acks, ClientConfig, ProducerConfig};
use super::error::{ClientError, ClientResult};
use super::idempotence::Idempotence;
use super::partitioner::{partition_for_key, StickyPartitioner};

/// Per-record overhead counted against batch and buffer sizes (lengths, deltas, attributes).
const RECORD_OVERHEAD_BYTES: usize = 24;

/// A record to send.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProducerRecord<'a> {
    /// The topic.
    pub topic: &'a str,
    /// A fixed partition, or `None` to let the partitioner choose.
    pub partition: Option<i32>,
    /// The key, or `None`.
    pub key: Option<&'a [u8]>,
    /// The value, or `None` (a tombstone).
    pub value: Option<&'a [u8]>,
    /// Headers.
    pub headers: &'a [Header<'a>],
    /// CreateTime in ms since the epoch; `None` for now.
    pub timestamp_ms: Option<i64>,
}

/// Where a record landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordMetadata {
    /// Its partition.
    pub partition: i32,
    /// Its offset, or -1 with acks=0 (the broker does not say).
    pub offset: i64,
}

#[derive(Default)]
struct Completion {
    result: RefCell<Option<ClientResult<i64>>>,
    completed_at: Cell<Option<Instant>>,
    wakers: WakerSet,
}

impl Completion {
    fn complete(&self, result: ClientResult<i64>) {
        self.completed_at.set(Some(Instant::now()));
        *self.result.borrow_mut() = Some(result);
        self.wakers.wake_all();
    }
}

/// Resolves once the record's batch is acknowledged (per `acks`) or has failed for good.
pub struct DeliveryFuture {
    completion: Rc<Completion>,
    partition: i32,
    index: i64,
}

impl DeliveryFuture {
    /// When the record's batch was acknowledged (or failed), once it has been: the moment the
    /// response was read, whenever the future is polled. Latency measurements use it so that
    /// the order in which futures are awaited does not skew them.
    pub fn completed_at(&self) -> Option<Instant> {
        self.completion.completed_at.get()
    }
}

impl Future for DeliveryFuture {
    type Output = ClientResult<RecordMetadata>;

    fn poll(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<Self::Output> {
        match &*self.completion.result.borrow() {
            Some(Ok(base_offset)) => {
                return Poll::Ready(Ok(RecordMetadata {
                    partition: self.partition,
                    offset: if *base_offset < 0 {
                        -1
                    } else {
                        base_offset + self.index
                    },
                }))
            }
            Some(Err(error)) => return Poll::Ready(Err(error.clone())),
            None => {}
        }
        self.completion.wakers.register(context.waker());
        Poll::Pending
    }
}

struct OpenBatch {
    builder: RecordBatchBuilder,
    bytes: usize,
    records: i64,
    completion: Rc<Completion>,
    generation: u64,
}

/// A Kafka producer on the current glommio executor. Cloning gives another handle.
#[derive(Clone)]
pub struct Producer {
    inner: Rc<Inner>,
}

/// The open batches of one topic, with its partition count cached: a linear scan by name
/// beats hashing the topic for every record when a producer writes to a few topics.
struct TopicBatches {
    name: String,
    partitions: usize,
    slots: Vec<Option<OpenBatch>>,
}

struct Inner {
    cluster: Rc<Cluster>,
    config: ProducerConfig,
    open: RefCell<Vec<TopicBatches>>,
    sticky: StickyPartitioner,
    buffered_bytes: Cell<usize>,
    outstanding_batches: Cell<usize>,
    waiters: WakerSet,
    in_flight: RefCell<HashMap<i32, Rc<Semaphore>>>,
    next_generation: Cell<u64>,
    /// Set when the producer is idempotent.
    idempotence: Option<Idempotence>,
    /// Idempotent: each partition's closed batches, sent one at a time in this order. Bounded
    /// by `buffer_bytes_max`, which counts every batch until it is acknowledged.
    queues: RefCell<HashMap<(String, i32), PartitionQueue>>,
}

/// An idempotent producer's closed batches of one partition.
#[derive(Default)]
struct PartitionQueue {
    batches: VecDeque<OpenBatch>,
    /// A task is sending them.
    sending: bool,
}

/// Times a batch is stamped afresh under a new producer id because the broker lost the old
/// one, before it fails with that error.
const PRODUCER_RESTARTS_MAX: u32 = 3;

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as i64)
}

impl Producer {
    /// A producer for the cluster `client` points at. Nothing connects until the first send.
    pub fn new(client: ClientConfig, config: ProducerConfig) -> ClientResult<Self> {
        if config.batch_bytes == 0 || config.in_flight_per_broker_max == 0 {
            return Err(ClientError::InvalidConfig(
                "batch_bytes and in_flight_per_broker_max must be positive".into(),
            ));
        }
        let idempotent = match config.idempotence {
            Some(true) if config.acks != Acks::All => {
                return Err(ClientError::InvalidConfig(
                    "an idempotent producer needs acks=all".into(),
                ))
            }
            Some(enabled) => enabled,
            None => config.acks == Acks::All,
        };
        if config.buffer_bytes_max < config.batch_bytes {
            return Err(ClientError::InvalidConfig(format!(
                "buffer_bytes_max {} is below batch_bytes {}",
                config.buffer_bytes_max, config.batch_bytes
            )));
        }
        Ok(Self {
            inner: Rc::new(Inner {
                cluster: Cluster::new(Rc::new(client)),
                config,
                open: RefCell::new(Vec::new()),
                sticky: StickyPartitioner::default(),
                buffered_bytes: Cell::new(0),
                outstanding_batches: Cell::new(0),
                waiters: WakerSet::default(),
                in_flight: RefCell::new(HashMap::new()),
                next_generation: Cell::new(1),
                idempotence: idempotent.then(Idempotence::default),
                queues: RefCell::new(HashMap::new()),
            }),
        })
    }

    /// The cluster view this producer uses.
    pub fn cluster(&self) -> &Rc<Cluster> {
        &self.inner.cluster
    }

    /// Adds a record to its partition's batch. Waits while `buffer_bytes_max` is reached.
    /// The returned future resolves when the record is acknowledged.
    pub async fn send(&self, record: ProducerRecord<'_>) -> ClientResult<DeliveryFuture> {
        let inner = &self.inner;
        let size = RECORD_OVERHEAD_BYTES
            + record.key.map_or(0, <[u8]>::len)
            + record.value.map_or(0, <[u8]>::len)
            + record
                .headers
                .iter()
                .map(|h| h.key.len() + h.value.map_or(0, <[u8]>::len) + 4)
                .sum::<usize>();
        if inner.buffered_bytes.get() + size > inner.config.buffer_bytes_max {
            poll_fn(|context| {
                if inner.buffered_bytes.get() + size <= inner.config.buffer_bytes_max
                    || inner.buffered_bytes.get() == 0
                {
                    return Poll::Ready(());
                }
                inner.waiters.register(context.waker());
                Poll::Pending
            })
            .await;
        }
        let cached = inner
            .open
            .borrow()
            .iter()
            .find(|topic| topic.name == record.topic)
            .map(|topic| topic.partitions);
        let partitions = match cached {
            Some(count) => count,
            None => {
                let count = inner
                    .cluster
                    .topic(record.topic, true)
                    .await?
                    .partitions
                    .len();
                let mut open = inner.open.borrow_mut();
                if !open.iter().any(|topic| topic.name == record.topic) {
                    open.push(TopicBatches {
                        name: record.topic.to_string(),
                        partitions: count,
                        slots: (0..count).map(|_| None).collect(),
                    });
                }
                count
            }
        };
        let partition = match (record.partition, record.key) {
            (Some(partition), _) => partition,
            (None, Some(key)) => partition_for_key(key, partitions),
            (None, None) => inner.sticky.partition(record.topic, partitions),
        };
        let index = usize::try_from(partition)
            .ok()
            .filter(|index| *index < partitions)
            .ok_or_else(|| ClientError::UnknownPartition {
                topic: record.topic.to_string(),
                partition,
            })?;
        let timestamp_ms = record.timestamp_ms.unwrap_or_else(now_ms);
        let (future, full, new_generation) = {
            let mut open = inner.open.borrow_mut();
            let Some(topic) = open.iter_mut().find(|topic| topic.name == record.topic) else {
                return Err(ClientError::UnknownPartition {
                    topic: record.topic.to_string(),
                    partition,
                });
            };
            let slots = &mut topic.slots;
            if slots.len() < partitions {
                slots.resize_with(partitions, || None);
            }
            let mut new_generation = None;
            let slot = &mut slots[index];
            let batch = slot.get_or_insert_with(|| {
                let generation = inner.next_generation.get();
                inner.next_generation.set(generation + 1);
                new_generation = Some(generation);
                OpenBatch {
                    builder: RecordBatchBuilder::with_capacity(inner.config.batch_bytes + size),
                    bytes: 0,
                    records: 0,
                    completion: Rc::new(Completion::default()),
                    generation,
                }
            });
            batch.builder.push(Record {
                key: record.key,
                value: record.value,
                headers: record.headers,
                timestamp_ms,
            });
            let future = DeliveryFuture {
                completion: batch.completion.clone(),
                partition,
                index: batch.records,
            };
            batch.records += 1;
            batch.bytes += size;
            (
                future,
                batch.bytes >= inner.config.batch_bytes,
                new_generation,
            )
        };
        inner.buffered_bytes.set(inner.buffered_bytes.get() + size);
        if full {
            dispatch(inner, record.topic, partition);
        } else if let Some(generation) = new_generation {
            let weak = Rc::downgrade(inner);
            let topic = record.topic.to_string();
            let linger = Duration::from_millis(inner.config.linger_ms);
            glommio::spawn_local(async move {
                glommio::timer::sleep(linger).await;
                if let Some(inner) = weak.upgrade() {
                    let still_open = inner
                        .open
                        .borrow()
                        .iter()
                        .find(|open| open.name == topic)
                        .and_then(|open| open.slots.get(index))
                        .and_then(Option::as_ref)
                        .is_some_and(|batch| batch.generation == generation);
                    if still_open {
                        dispatch(&inner, &topic, partition);
                    }
                }
            })
            .detach();
        }
        Ok(future)
    }

    /// Sends every open batch now and waits until every batch sent so far is acknowledged
    /// or has failed.
    pub async fn flush(&self) {
        let inner = &self.inner;
        let open: Vec<(String, i32)> = inner
            .open
            .borrow()
            .iter()
            .flat_map(|topic| {
                topic
                    .slots
                    .iter()
                    .enumerate()
                    .filter(|(_, slot)| slot.is_some())
                    .map(|(partition, _)| (topic.name.clone(), partition as i32))
                    .collect::<Vec<_>>()
            })
            .collect();
        for (topic, partition) in open {
            dispatch(inner, &topic, partition);
        }
        poll_fn(|context| {
            if inner.outstanding_batches.get() == 0 {
                return Poll::Ready(());
            }
            inner.waiters.register(context.waker());
            Poll::Pending
        })
        .await;
    }

    /// Bytes buffered and not yet acknowledged.
    pub fn buffered_bytes(&self) -> usize {
        self.inner.buffered_bytes.get()
    }

    /// Whether batches carry a producer id and sequences (see the module doc).
    pub fn is_idempotent(&self) -> bool {
        self.inner.idempotence.is_some()
    }
}

/// Closes the open batch of a partition and starts sending it.
fn dispatch(inner: &Rc<Inner>, topic: &str, partition: i32) {
    let (batch, partitions) = {
        let mut open = inner.open.borrow_mut();
        let Some(open) = open.iter_mut().find(|open| open.name == topic) else {
            return;
        };
        let Some(batch) = open
            .slots
            .get_mut(partition as usize)
            .and_then(Option::take)
        else {
            return;
        };
        (batch, open.partitions)
    };
    inner.sticky.batch_sent(topic, partition, partitions);
    inner
        .outstanding_batches
        .set(inner.outstanding_batches.get() + 1);
    if inner.idempotence.is_some() {
        let key = (topic.to_string(), partition);
        let start = {
            let mut queues = inner.queues.borrow_mut();
            let queue = queues.entry(key).or_default();
            queue.batches.push_back(batch);
            !std::mem::replace(&mut queue.sending, true)
        };
        if start {
            glommio::spawn_local(send_in_order(inner.clone(), topic.to_string(), partition))
                .detach();
        }
        return;
    }
    let built = batch
        .builder
        .build_compressed(inner.config.compression)
        .map(|batch| batch.into_bytes());
    let inner = inner.clone();
    let topic = topic.to_string();
    glommio::spawn_local(async move {
        let result = match built {
            Ok(bytes) => send_batch(&inner, &topic, partition, bytes).await,
            Err(error) => Err(ClientError::Batch(error)),
        };
        finish(&inner, &batch.completion, batch.bytes, result);
    })
    .detach();
}

/// A batch is done: its records learn the outcome, and its bytes leave the buffer.
fn finish(inner: &Inner, completion: &Completion, batch_bytes: usize, result: ClientResult<i64>) {
    completion.complete(result);
    inner
        .buffered_bytes
        .set(inner.buffered_bytes.get().saturating_sub(batch_bytes));
    inner
        .outstanding_batches
        .set(inner.outstanding_batches.get().saturating_sub(1));
    inner.waiters.wake_all();
}

/// Idempotent: sends a partition's queued batches one at a time, in order, until none is left.
async fn send_in_order(inner: Rc<Inner>, topic: String, partition: i32) {
    let key = (topic, partition);
    loop {
        let next = {
            let mut queues = inner.queues.borrow_mut();
            let Some(queue) = queues.get_mut(&key) else {
                return;
            };
            match queue.batches.pop_front() {
                Some(batch) => batch,
                None => {
                    queues.remove(&key);
                    return;
                }
            }
        };
        let OpenBatch {
            builder,
            bytes,
            records,
            completion,
            ..
        } = next;
        let result = match builder.build_compressed(inner.config.compression) {
            Ok(batch) => send_sequenced(&inner, &key.0, partition, batch, records).await,
            Err(error) => Err(ClientError::Batch(error)),
        };
        finish(&inner, &completion, bytes, result);
    }
}

/// Stamps a batch with the producer id and its partition's next sequence and sends it, with
/// the producer's retries; again under a new producer id if the broker lost the old one.
async fn send_sequenced(
    inner: &Rc<Inner>,
    topic: &str,
    partition: i32,
    mut batch: RecordBatch,
    records: i64,
) -> ClientResult<i64> {
    let Some(idempotence) = inner.idempotence.as_ref() else {
        return send_batch(inner, topic, partition, batch.into_bytes()).await;
    };
    let records = i32::try_from(records)
        .map_err(|_| ClientError::InvalidConfig(format!("{records} records in one batch")))?;
    let mut restarts = 0;
    loop {
        let (identity, sequence) = idempotence
            .next_batch(&inner.cluster, topic, partition)
            .await?;
        batch.set_producer(identity.0, identity.1, sequence);
        let bytes = batch.into_bytes();
        let result = send_batch(inner, topic, partition, bytes.clone()).await;
        match result {
            Ok(base_offset) => {
                idempotence.acknowledged(identity, topic, partition, records);
                return Ok(base_offset);
            }
            Err(error) => {
                // Whatever happened, a later batch must not count on this identity's
                // sequence: the batch may or may not be stored.
                idempotence.abandon(identity);
                let lost = matches!(
                    &error,
                    ClientError::Broker {
                        error: kafka_protocol::ResponseError::UnknownProducerId
                            | kafka_protocol::ResponseError::OutOfOrderSequenceNumber
                            | kafka_protocol::ResponseError::InvalidProducerEpoch,
                        ..
                    }
                );
                if !lost || restarts >= PRODUCER_RESTARTS_MAX {
                    return Err(error);
                }
                restarts += 1;
                // The request is gone: the bytes are this batch's alone again (or copied).
                batch = RecordBatch::from_bytes(bytes).map_err(ClientError::Batch)?;
            }
        }
    }
}

async fn send_batch(
    inner: &Rc<Inner>,
    topic: &str,
    partition: i32,
    records: Bytes,
) -> ClientResult<i64> {
    let mut attempt = 0;
    loop {
        let result = send_once(inner, topic, partition, records.clone()).await;
        match result {
            Err(error) if error.is_retriable() && attempt < inner.config.retries => {
                attempt += 1;
                inner.cluster.invalidate(topic);
                glommio::timer::sleep(Duration::from_millis(inner.config.retry_backoff_ms)).await;
                // A failed refresh is retried by the next attempt.
                let _ = inner
                    .cluster
                    .refresh(Some(&[topic.to_string()]), false)
                    .await;
            }
            other => return other,
        }
    }
}

async fn send_once(
    inner: &Rc<Inner>,
    topic: &str,
    partition: i32,
    records: Bytes,
) -> ClientResult<i64> {
    let connection = inner.cluster.leader_connection(topic, partition).await?;
    let leader = inner.cluster.leader_cached(topic, partition).unwrap_or(-1);
    let semaphore = inner
        .in_flight
        .borrow_mut()
        .entry(leader)
        .or_insert_with(|| Rc::new(Semaphore::new(inner.config.in_flight_per_broker_max as u64)))
        .clone();
    let _permit = semaphore
        .acquire_permit(1)
        .await
        .map_err(|_| ClientError::Closed)?;
    let request = ProduceRequest::default()
        .with_acks(inner.config.acks.wire())
        .with_timeout_ms(inner.cluster.config().request_timeout_ms as i32)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(partition)
                .with_records(Some(records))])]);
    if inner.config.acks == Acks::None {
        connection.send_only(ApiKey::Produce, &request).await?;
        return Ok(-1);
    }
    let (_, response): (i16, ProduceResponse) = connection.call(ApiKey::Produce, &request).await?;
    let answer = response
        .responses
        .first()
        .and_then(|topic| topic.partition_responses.first())
        .ok_or_else(|| connection.protocol_error("produce response without the partition"))?;
    ClientError::check(
        format!("produce to {topic}-{partition}"),
        answer.error_code,
        answer.error_message.as_deref(),
    )?;
    Ok(answer.base_offset)
}
