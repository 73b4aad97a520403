//! The consumer: assigned partitions, fetched by one pipelined fetch loop per leader broker.
//! Each loop sends the next fetch as soon as the previous one's records are buffered, so the
//! broker is working on the next response while the application reads this one. Buffering is
//! bounded by `buffered_records_max`; a loop waits while the buffer is full.
//!
//! Partitions are assigned explicitly here; [`GroupConsumer`](super::GroupConsumer) assigns
//! them through a consumer group. With a `group_id`, the consumer commits its positions and
//! reads them back (`commit_positions`, `committed`); a new consumer resumes by assigning
//! `OffsetSpec::Offset` of what `committed` returns.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashSet, VecDeque};
use std::future::poll_fn;
use std::rc::Rc;
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{ApiKey, BrokerId, FetchRequest, FetchResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use crate::record::compression::decompress;
use crate::record::{BatchHeader, Compression, RecordIter, BATCH_HEADER_BYTES};
use crate::wake::WakerSet;

use super::admin::{list_offset, OffsetSpec};
use super::cluster::Cluster;
use super::config::{ClientConfig, ConsumerConfig};
use super::error::{ClientError, ClientResult};
use super::group_offsets::{commit_offsets, committed_offsets, OffsetAndMetadata};

/// A batch inflating beyond this is refused rather than decompressed.
pub const DECOMPRESSED_BATCH_BYTES_MAX: usize = 256 << 20;

/// A consumed record. Key, value and headers share the fetched buffer (no copy) unless the
/// batch was compressed.
#[derive(Debug, Clone)]
pub struct ConsumerRecord {
    /// The topic.
    pub topic: Rc<str>,
    /// The partition.
    pub partition: i32,
    /// The offset.
    pub offset: i64,
    /// The timestamp (CreateTime or LogAppendTime), ms since the epoch.
    pub timestamp_ms: i64,
    /// The key.
    pub key: Option<Bytes>,
    /// The value.
    pub value: Option<Bytes>,
    /// Headers: key and value.
    pub headers: Vec<(Bytes, Option<Bytes>)>,
}

/// A partition's reading position.
struct Position {
    offset: i64,
    /// Bumped by `seek`, so a fetch that was in flight across a seek is discarded.
    epoch: u64,
}

/// A Kafka consumer on the current glommio executor.
pub struct Consumer {
    inner: Rc<Inner>,
}

struct Inner {
    cluster: Rc<Cluster>,
    config: ConsumerConfig,
    positions: RefCell<BTreeMap<(Rc<str>, i32), Position>>,
    /// Per partition, the offset after the last record `poll` returned (or the seek target):
    /// what a commit may claim as processed. The fetch position runs ahead of it by whatever
    /// is buffered.
    consumed: RefCell<BTreeMap<(Rc<str>, i32), i64>>,
    ready: RefCell<VecDeque<ConsumerRecord>>,
    errors: RefCell<VecDeque<ClientError>>,
    loops: RefCell<HashSet<i32>>,
    readers: WakerSet,
    fetchers: WakerSet,
    closed: Cell<bool>,
}

impl Consumer {
    /// A consumer for the cluster `client` points at.
    pub fn new(client: ClientConfig, config: ConsumerConfig) -> Self {
        Self {
            inner: Rc::new(Inner {
                cluster: Cluster::new(Rc::new(client)),
                config,
                positions: RefCell::new(BTreeMap::new()),
                consumed: RefCell::new(BTreeMap::new()),
                ready: RefCell::new(VecDeque::new()),
                errors: RefCell::new(VecDeque::new()),
                loops: RefCell::new(HashSet::new()),
                readers: WakerSet::default(),
                fetchers: WakerSet::default(),
                closed: Cell::new(false),
            }),
        }
    }

    /// Assigns partitions, each starting where `start` says; replaces nothing already assigned
    /// elsewhere.
    pub async fn assign(&self, partitions: &[(&str, i32, OffsetSpec)]) -> ClientResult<()> {
        for (topic, partition, start) in partitions {
            let offset = match start {
                OffsetSpec::Offset(offset) => *offset,
                spec => list_offset(&self.inner.cluster, topic, *partition, *spec).await?,
            };
            self.seek(topic, *partition, offset);
        }
        Ok(())
    }

    fn group(&self) -> ClientResult<&str> {
        self.inner.config.group_id.as_deref().ok_or_else(|| {
            ClientError::InvalidConfig("committed offsets need ConsumerConfig::group_id".into())
        })
    }

    /// Commits `offsets` for the consumer's group.
    pub async fn commit(&self, offsets: &[(&str, i32, OffsetAndMetadata)]) -> ClientResult<()> {
        commit_offsets(&self.inner.cluster, self.group()?, offsets).await
    }

    /// Commits, for every assigned partition, the offset after the last record `poll`
    /// returned (records still buffered are not claimed).
    pub async fn commit_positions(&self) -> ClientResult<()> {
        let positions: Vec<(Rc<str>, i32, i64)> = self
            .inner
            .consumed
            .borrow()
            .iter()
            .map(|((topic, partition), offset)| (topic.clone(), *partition, *offset))
            .collect();
        let offsets: Vec<(&str, i32, OffsetAndMetadata)> = positions
            .iter()
            .map(|(topic, partition, offset)| {
                (
                    &**topic,
                    *partition,
                    OffsetAndMetadata {
                        offset: *offset,
                        metadata: None,
                    },
                )
            })
            .collect();
        self.commit(&offsets).await
    }

    /// The group's committed offsets of `partitions`, `None` where it has none.
    pub async fn committed(
        &self,
        partitions: &[(&str, i32)],
    ) -> ClientResult<Vec<Option<OffsetAndMetadata>>> {
        committed_offsets(&self.inner.cluster, self.group()?, partitions).await
    }

    /// Moves a partition's position; records buffered from the old position are dropped.
    pub fn seek(&self, topic: &str, partition: i32, offset: i64) {
        let inner = &self.inner;
        let key: Rc<str> = Rc::from(topic);
        let mut positions = inner.positions.borrow_mut();
        let epoch = positions
            .get(&(key.clone(), partition))
            .map_or(0, |position| position.epoch + 1);
        positions.insert((key.clone(), partition), Position { offset, epoch });
        inner.consumed.borrow_mut().insert((key, partition), offset);
        inner
            .ready
            .borrow_mut()
            .retain(|record| !(&*record.topic == topic && record.partition == partition));
    }

    /// Stops reading `partitions`: their positions go, and so do records buffered for them
    /// (a fetch in flight for one finds no position and keeps nothing).
    pub fn unassign(&self, partitions: &[(String, i32)]) {
        let inner = &self.inner;
        let mut positions = inner.positions.borrow_mut();
        let mut consumed = inner.consumed.borrow_mut();
        for (topic, partition) in partitions {
            let key = (Rc::from(topic.as_str()), *partition);
            positions.remove(&key);
            consumed.remove(&key);
        }
        drop((positions, consumed));
        inner.ready.borrow_mut().retain(|record| {
            !partitions
                .iter()
                .any(|(topic, partition)| &*record.topic == topic && record.partition == *partition)
        });
    }

    /// The partitions assigned now.
    pub fn assignment(&self) -> Vec<(String, i32)> {
        self.inner
            .positions
            .borrow()
            .keys()
            .map(|(topic, partition)| (topic.to_string(), *partition))
            .collect()
    }

    /// The next offset `poll` returns for a partition: after the last record it returned.
    pub fn consumed_position(&self, topic: &str, partition: i32) -> Option<i64> {
        self.inner
            .consumed
            .borrow()
            .get(&(Rc::from(topic), partition))
            .copied()
    }

    /// The next offset the fetch loop asks for; records before it may still be buffered.
    pub fn position(&self, topic: &str, partition: i32) -> Option<i64> {
        self.inner
            .positions
            .borrow()
            .get(&(Rc::from(topic), partition))
            .map(|position| position.offset)
    }

    /// Returns buffered records, up to `max_records`, waiting at most `timeout` for some.
    /// A fetch error for a partition (an offset out of range, say) is returned once.
    pub async fn poll(
        &self,
        max_records: usize,
        timeout: Duration,
    ) -> ClientResult<Vec<ConsumerRecord>> {
        let inner = &self.inner;
        self.start_loops().await?;
        let wait = poll_fn(|context| {
            if !inner.ready.borrow().is_empty() || !inner.errors.borrow().is_empty() {
                return Poll::Ready(());
            }
            inner.readers.register(context.waker());
            Poll::Pending
        });
        let _ = glommio::timer::timeout(timeout, async {
            wait.await;
            Ok(())
        })
        .await;
        if let Some(error) = inner.errors.borrow_mut().pop_front() {
            return Err(error);
        }
        let mut ready = inner.ready.borrow_mut();
        let count = max_records.min(ready.len());
        let records: Vec<ConsumerRecord> = ready.drain(..count).collect();
        drop(ready);
        // Records come in runs of one partition: one map update per run, not per record.
        let mut consumed = inner.consumed.borrow_mut();
        for (index, record) in records.iter().enumerate() {
            let run_ends = records.get(index + 1).is_none_or(|next| {
                next.partition != record.partition || !Rc::ptr_eq(&next.topic, &record.topic)
            });
            if run_ends {
                if let Some(next) = consumed.get_mut(&(record.topic.clone(), record.partition)) {
                    *next = record.offset + 1;
                }
            }
        }
        drop(consumed);
        inner.fetchers.wake_all();
        Ok(records)
    }

    async fn start_loops(&self) -> ClientResult<()> {
        let inner = &self.inner;
        let assigned: Vec<(Rc<str>, i32)> = inner.positions.borrow().keys().cloned().collect();
        let mut leaders = HashSet::new();
        for (topic, partition) in &assigned {
            let leader = match inner.cluster.leader_cached(topic, *partition) {
                Some(leader) => leader,
                None => {
                    inner
                        .cluster
                        .refresh(Some(&[topic.to_string()]), false)
                        .await?;
                    match inner.cluster.leader_cached(topic, *partition) {
                        Some(leader) => leader,
                        None => continue,
                    }
                }
            };
            leaders.insert(leader);
        }
        for leader in leaders {
            if inner.loops.borrow_mut().insert(leader) {
                glommio::spawn_local(fetch_loop(Rc::downgrade(inner), leader)).detach();
            }
        }
        Ok(())
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        self.inner.closed.set(true);
        self.inner.fetchers.wake_all();
    }
}

async fn fetch_loop(weak: std::rc::Weak<Inner>, leader: i32) {
    loop {
        let Some(inner) = weak.upgrade() else { return };
        if inner.closed.get() {
            return;
        }
        // Pause while the application has a full buffer to read.
        if inner.ready.borrow().len() >= inner.config.buffered_records_max {
            poll_fn(|context| {
                if inner.closed.get()
                    || inner.ready.borrow().len() < inner.config.buffered_records_max
                {
                    return Poll::Ready(());
                }
                inner.fetchers.register(context.waker());
                Poll::Pending
            })
            .await;
            continue;
        }
        // The partitions this broker leads, at their positions now.
        let wanted: Vec<(Rc<str>, i32, i64, u64)> = inner
            .positions
            .borrow()
            .iter()
            .filter(|((topic, partition), _)| {
                inner.cluster.leader_cached(topic, *partition) == Some(leader)
            })
            .map(|((topic, partition), position)| {
                (topic.clone(), *partition, position.offset, position.epoch)
            })
            .collect();
        if wanted.is_empty() {
            inner.loops.borrow_mut().remove(&leader);
            return;
        }
        match fetch_once(&inner, leader, &wanted).await {
            Ok(()) => {}
            Err(error) => {
                let retriable = error.is_retriable();
                inner.errors.borrow_mut().push_back(error);
                inner.readers.wake_all();
                if retriable {
                    for (topic, _, _, _) in &wanted {
                        inner.cluster.invalidate(topic);
                    }
                }
                // The next poll restarts the loops with fresh leaders.
                inner.loops.borrow_mut().remove(&leader);
                return;
            }
        }
    }
}

async fn fetch_once(
    inner: &Rc<Inner>,
    leader: i32,
    wanted: &[(Rc<str>, i32, i64, u64)],
) -> ClientResult<()> {
    let connection = inner.cluster.connection(leader).await?;
    let mut topics: Vec<FetchTopic> = Vec::new();
    for (topic, partition, offset, _) in wanted {
        let fetch_partition = FetchPartition::default()
            .with_partition(*partition)
            .with_fetch_offset(*offset)
            .with_partition_max_bytes(inner.config.partition_max_bytes);
        match topics.iter_mut().find(|t| t.topic.0.as_str() == &**topic) {
            Some(existing) => existing.partitions.push(fetch_partition),
            None => topics.push(
                FetchTopic::default()
                    .with_topic(TopicName(StrBytes::from_string(topic.to_string())))
                    .with_partitions(vec![fetch_partition]),
            ),
        }
    }
    let request = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(inner.config.fetch_max_wait_ms)
        .with_min_bytes(inner.config.fetch_min_bytes)
        .with_max_bytes(inner.config.fetch_max_bytes)
        .with_session_epoch(-1)
        .with_topics(topics);
    let (_, response): (i16, FetchResponse) = connection.call(ApiKey::Fetch, &request).await?;
    if let Some(error) = ClientError::from_code("fetch", response.error_code, None) {
        return Err(error);
    }
    let mut first_error = None;
    for topic in response.responses {
        let name: Rc<str> = Rc::from(topic.topic.0.as_str());
        for partition in topic.partitions {
            let Some((_, _, fetched_from, epoch)) = wanted
                .iter()
                .find(|(t, p, _, _)| **t == *name && *p == partition.partition_index)
            else {
                continue;
            };
            if let Some(error) = ClientError::from_code(
                format!("fetch {name}-{}", partition.partition_index),
                partition.error_code,
                None,
            ) {
                first_error.get_or_insert(error);
                continue;
            }
            let Some(records) = partition.records else {
                continue;
            };
            let mut decoded = Vec::new();
            decode_records(
                &name,
                partition.partition_index,
                *fetched_from,
                &records,
                &mut decoded,
            )?;
            // Keep them only if nobody sought elsewhere meanwhile.
            let mut positions = inner.positions.borrow_mut();
            let Some(position) = positions.get_mut(&(name.clone(), partition.partition_index))
            else {
                continue;
            };
            if position.epoch != *epoch || position.offset != *fetched_from {
                continue;
            }
            if let Some(last) = decoded.last() {
                position.offset = last.offset + 1;
            }
            drop(positions);
            inner.ready.borrow_mut().extend(decoded);
        }
    }
    inner.readers.wake_all();
    match first_error {
        Some(error) => Err(error),
        None => Ok(()),
    }
}

/// Decodes the batches of one partition's fetched records, keeping offsets at or after `from`.
pub fn decode_records(
    topic: &Rc<str>,
    partition: i32,
    from: i64,
    records: &Bytes,
    out: &mut Vec<ConsumerRecord>,
) -> ClientResult<()> {
    let mut position = 0usize;
    while position + BATCH_HEADER_BYTES <= records.len() {
        let rest = &records[position..];
        // A partial batch at the end (the fetch limit cut it) ends the set.
        let Ok(header) = BatchHeader::parse(rest) else {
            break;
        };
        let total = header.total_bytes();
        if total > rest.len() {
            break;
        }
        let batch = records.slice(position..position + total);
        position += total;
        // Check what came over the wire, as Kafka consumers do (`check.crcs`).
        BatchHeader::parse_verified(&batch)?;
        if header.is_control() || (header.last_offset() as i64) < from {
            continue;
        }
        let base = header.base_offset as i64;
        let mut push = |records_section: &Bytes| -> ClientResult<()> {
            for view in RecordIter::over(&header, records_section) {
                let view = view?;
                let offset = base + i64::from(view.offset_delta);
                if offset < from {
                    continue;
                }
                let share = |slice: &[u8]| records_section.slice_ref(slice);
                out.push(ConsumerRecord {
                    topic: topic.clone(),
                    partition,
                    offset,
                    timestamp_ms: view.timestamp,
                    key: view.key.map(share),
                    value: view.value.map(share),
                    headers: view
                        .headers
                        .clone()
                        .filter_map(Result::ok)
                        .map(|(key, value)| (share(key), value.map(share)))
                        .collect(),
                });
            }
            Ok(())
        };
        let section = batch.slice(BATCH_HEADER_BYTES..);
        match header.compression() {
            Compression::None => push(&section)?,
            codec => {
                let inflated =
                    Bytes::from(decompress(codec, &section, DECOMPRESSED_BATCH_BYTES_MAX)?);
                push(&inflated)?;
            }
        }
    }
    Ok(())
}
