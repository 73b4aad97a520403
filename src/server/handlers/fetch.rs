//! Fetch: many partitions per request, `min_bytes` / `max_bytes` / per-partition limits, and
//! long-polling for `max_wait_ms` that is woken by the partitions' own high-watermark moves
//! (appends under `interval`/`never`, fdatasyncs under `always`), never by a polling timer.
//!
//! The stored batches are returned as they are; a partition whose read spans several stored
//! chunks has them joined once into the response.
//!
//! `isolation_level` 1 (`read_committed`, v4+) stops at the partition's last stable offset:
//! only whole batches below it are returned, with the aborted transactions among them, so
//! the client drops their records (and the control batches). `read_uncommitted` returns
//! everything up to the high watermark, aborted records included, as Kafka does. Both report
//! the LSO.

use std::future::poll_fn;
use std::task::Poll;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::fetch_response::{
    AbortedTransaction, FetchableTopicResponse, PartitionData,
};
use kafka_protocol::messages::{ApiKey, BrokerId, FetchRequest, FetchResponse, ProducerId};
use kafka_protocol::ResponseError;

use crate::config::FETCH_MAX_WAIT_MS_MAX;
use crate::protocol::header::{decode_body, Request};
use crate::protocol::response::encode_response;
use crate::protocol::ProtocolError;
use crate::record::BatchHeader;
use crate::shard::{PartitionLookup, ShardContext};
use crate::storage::{LogRead, PartitionLog};

use super::storage_error_code;

/// The partitions' log start offset exists from this version.
pub const LOG_START_OFFSET_VERSION_MIN: i16 = 5;

/// `isolation_level` of a `read_committed` fetch.
pub const READ_COMMITTED: i8 = 1;

/// Partitions one fetch may name.
pub const FETCH_PARTITIONS_MAX: usize = 100_000;

/// A partition being fetched: what to wait on if the response is too small.
struct Watch {
    log: PartitionLog,
    high_watermark: u64,
}

/// Answers Fetch.
pub async fn handle(context: &ShardContext, request: &Request) -> Result<BytesMut, ProtocolError> {
    let body: FetchRequest = decode_body(request)?;
    let partition_count: usize = body.topics.iter().map(|topic| topic.partitions.len()).sum();
    if partition_count > FETCH_PARTITIONS_MAX {
        return Err(ProtocolError::Malformed {
            what: "Fetch request",
            reason: format!("{partition_count} partitions named"),
        });
    }
    let max_wait =
        Duration::from_millis((body.max_wait_ms.max(0) as u64).min(FETCH_MAX_WAIT_MS_MAX));
    let deadline = Instant::now() + max_wait;
    let response_bytes_max = match usize::try_from(body.max_bytes) {
        Ok(bytes) if bytes > 0 => bytes.min(context.config.fetch_max_bytes),
        _ => context.config.fetch_max_bytes,
    };
    let min_bytes = usize::try_from(body.min_bytes).unwrap_or(0);
    loop {
        let (topics, total_bytes, watches, any_error) =
            read_partitions(context, request.api_version, &body, response_bytes_max).await;
        let now = Instant::now();
        let done = total_bytes >= min_bytes.max(1)
            || any_error
            || now >= deadline
            || watches.is_empty()
            || context.shutdown.is_triggered();
        if done || !wait_for_data(context, &watches, deadline - now).await {
            let response = FetchResponse::default()
                .with_error_code(0)
                .with_session_id(0)
                .with_responses(topics);
            return encode_response(
                ApiKey::Fetch,
                request.api_version,
                request.header.correlation_id,
                &response,
            );
        }
    }
}

/// Reads every partition once. Returns the topic responses, their bytes, what to watch, and
/// whether any partition answered with an error (which makes the response go out at once).
async fn read_partitions(
    context: &ShardContext,
    api_version: i16,
    body: &FetchRequest,
    response_bytes_max: usize,
) -> (Vec<FetchableTopicResponse>, usize, Vec<Watch>, bool) {
    // The log start offset exists from v5.
    let log_start = |offset: u64| {
        if api_version >= LOG_START_OFFSET_VERSION_MIN {
            offset as i64
        } else {
            -1
        }
    };
    let read_committed = body.isolation_level == READ_COMMITTED;
    let mut total_bytes = 0usize;
    let mut watches = Vec::new();
    let mut any_error = false;
    let mut read = LogRead::default();
    let mut topics = Vec::with_capacity(body.topics.len());
    for topic in &body.topics {
        let name = topic.topic.0.as_str();
        let mut partitions = Vec::with_capacity(topic.partitions.len());
        for partition in &topic.partitions {
            let mut data = PartitionData::default()
                .with_partition_index(partition.partition)
                .with_high_watermark(-1)
                .with_last_stable_offset(-1)
                .with_log_start_offset(-1)
                .with_preferred_read_replica(BrokerId(-1))
                .with_records(Some(Bytes::new()));
            let log = match context.lookup(name, partition.partition) {
                PartitionLookup::Local(log) => log,
                PartitionLookup::Elsewhere => {
                    any_error = true;
                    partitions
                        .push(data.with_error_code(ResponseError::NotLeaderOrFollower.code()));
                    continue;
                }
                PartitionLookup::Unknown => {
                    any_error = true;
                    partitions
                        .push(data.with_error_code(ResponseError::UnknownTopicOrPartition.code()));
                    continue;
                }
            };
            let remaining = response_bytes_max.saturating_sub(total_bytes);
            let partition_max = usize::try_from(partition.partition_max_bytes).unwrap_or(0);
            // KIP-74: the first batch of the response goes out whole even above the limits, so
            // a consumer never stalls on a batch larger than its max bytes.
            let budget = if total_bytes == 0 {
                partition_max.min(remaining).max(1)
            } else {
                partition_max.min(remaining)
            };
            let Ok(offset) = u64::try_from(partition.fetch_offset) else {
                any_error = true;
                partitions.push(
                    data.with_error_code(ResponseError::OffsetOutOfRange.code())
                        .with_high_watermark(log.high_watermark() as i64)
                        .with_last_stable_offset(log.last_stable_offset() as i64)
                        .with_log_start_offset(log_start(log.log_start_offset())),
                );
                continue;
            };
            // Read before the data: a transaction that ends meanwhile only makes this answer
            // more conservative than it could be.
            let last_stable = log.last_stable_offset();
            // A read_committed reader at or past the LSO (but not past the high watermark,
            // which is out of range) gets nothing yet.
            let nothing_stable =
                read_committed && offset >= last_stable && offset <= log.high_watermark();
            let outcome = if budget == 0 || nothing_stable {
                read.batches.clear();
                read.bytes = 0;
                read.high_watermark = log.high_watermark();
                read.log_start_offset = log.log_start_offset();
                Ok(())
            } else {
                log.read_into(offset, budget, &mut read).await
            };
            match outcome {
                Ok(()) => {
                    if read_committed {
                        // librdkafka reads committed by default: with no open transaction the
                        // LSO is the high watermark, which the read never passes, so the
                        // batches are not walked (the aborted list then covers up to it).
                        let end = if last_stable < read.high_watermark {
                            keep_below(&mut read, last_stable)
                        } else {
                            read.high_watermark
                        };
                        data = data.with_aborted_transactions(Some(
                            log.aborted_transactions(offset, end)
                                .into_iter()
                                .map(|txn| {
                                    AbortedTransaction::default()
                                        .with_producer_id(ProducerId(txn.producer_id))
                                        .with_first_offset(txn.first_offset as i64)
                                })
                                .collect(),
                        ));
                    }
                    total_bytes += read.bytes;
                    data = data
                        .with_high_watermark(read.high_watermark as i64)
                        .with_last_stable_offset(last_stable.min(read.high_watermark) as i64)
                        .with_log_start_offset(log_start(read.log_start_offset))
                        .with_records(Some(join(&mut read.batches, read.bytes)));
                    watches.push(Watch {
                        log,
                        high_watermark: read.high_watermark,
                    });
                }
                Err(error) => {
                    any_error = true;
                    data = data
                        .with_error_code(storage_error_code(&error).code())
                        .with_high_watermark(log.high_watermark() as i64)
                        .with_last_stable_offset(log.last_stable_offset() as i64)
                        .with_log_start_offset(log_start(log.log_start_offset()));
                }
            }
            partitions.push(data);
        }
        topics.push(
            FetchableTopicResponse::default()
                .with_topic(topic.topic.clone())
                .with_partitions(partitions),
        );
    }
    (topics, total_bytes, watches, any_error)
}

/// Keeps only the whole batches of `read` that end below `end` (the last stable offset of a
/// `read_committed` fetch); returns the offset after the last batch kept, or `end` when none
/// is left. The chunks are sliced, not copied.
fn keep_below(read: &mut LogRead, end: u64) -> u64 {
    let mut next = None;
    let mut kept_bytes = 0usize;
    let mut kept_chunks = 0usize;
    'chunks: for chunk in read.batches.iter_mut() {
        let mut position = 0usize;
        while position < chunk.len() {
            let Ok(header) = BatchHeader::parse(&chunk[position..]) else {
                break;
            };
            if header.next_offset() > end {
                *chunk = chunk.slice(..position);
                kept_bytes += position;
                if position > 0 {
                    kept_chunks += 1;
                }
                break 'chunks;
            }
            next = Some(header.next_offset());
            position += header.total_bytes();
        }
        kept_bytes += chunk.len();
        kept_chunks += 1;
    }
    read.batches.truncate(kept_chunks);
    read.bytes = kept_bytes;
    next.unwrap_or(end)
}

/// One `Bytes` for a partition's records: the stored chunk itself when there is one.
fn join(batches: &mut Vec<Bytes>, bytes: usize) -> Bytes {
    match batches.len() {
        0 => Bytes::new(),
        1 => batches.pop().unwrap_or_default(),
        _ => {
            let mut joined = BytesMut::with_capacity(bytes);
            for chunk in batches.drain(..) {
                joined.extend_from_slice(&chunk);
            }
            joined.freeze()
        }
    }
}

/// Waits until any watched partition's high watermark moves past what was read, the time is
/// up, or the shard stops. Returns whether new data may be there.
async fn wait_for_data(context: &ShardContext, watches: &[Watch], wait: Duration) -> bool {
    let moved = poll_fn(|cx| {
        let mut any = false;
        for watch in watches {
            if watch
                .log
                .poll_readable_beyond(watch.high_watermark, cx)
                .is_ready()
            {
                any = true;
            }
        }
        if any {
            Poll::Ready(true)
        } else {
            Poll::Pending
        }
    });
    futures_lite::future::or(moved, async {
        futures_lite::future::or(
            async {
                glommio::timer::sleep(wait).await;
            },
            context.shutdown.wait(),
        )
        .await;
        false
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Record, RecordBatchBuilder};

    /// Whole batches of `records` records each, at consecutive offsets from `base`.
    fn chunk(base: u64, batches: &[usize]) -> Bytes {
        let mut out = BytesMut::new();
        let mut offset = base;
        for &records in batches {
            let mut builder = RecordBatchBuilder::with_capacity(64);
            for _ in 0..records {
                builder.push(Record {
                    value: Some(b"v"),
                    ..Record::default()
                });
            }
            let mut batch = builder.build();
            batch.set_base_offset(offset);
            offset += records as u64;
            out.extend_from_slice(batch.as_bytes());
        }
        out.freeze()
    }

    fn read_of(chunks: Vec<Bytes>) -> LogRead {
        LogRead {
            bytes: chunks.iter().map(Bytes::len).sum(),
            batches: chunks,
            ..LogRead::default()
        }
    }

    fn offsets(read: &LogRead) -> Vec<u64> {
        let mut out = Vec::new();
        for chunk in &read.batches {
            let mut rest = &chunk[..];
            while let Ok(header) = BatchHeader::parse(rest) {
                out.push(header.base_offset);
                rest = &rest[header.total_bytes()..];
            }
        }
        out
    }

    #[test]
    fn a_read_committed_read_keeps_whole_batches_below_the_lso() {
        // Batches at 0 (2 records), 2 (3), 5 (1) | 6 (2), 8 (1).
        let chunks = vec![chunk(0, &[2, 3, 1]), chunk(6, &[2, 1])];
        let all: usize = chunks.iter().map(Bytes::len).sum();

        let mut read = read_of(chunks.clone());
        assert_eq!(keep_below(&mut read, 100), 9, "everything is stable");
        assert_eq!(read.bytes, all);
        assert_eq!(offsets(&read), vec![0, 2, 5, 6, 8]);

        // An LSO inside the batch at 2: only the batch at 0 is whole below it.
        let mut read = read_of(chunks.clone());
        assert_eq!(keep_below(&mut read, 4), 2);
        assert_eq!(offsets(&read), vec![0]);
        assert_eq!(
            read.bytes,
            read.batches.iter().map(Bytes::len).sum::<usize>()
        );

        // An LSO at the second chunk's start keeps the first chunk whole.
        let mut read = read_of(chunks.clone());
        assert_eq!(keep_below(&mut read, 6), 6);
        assert_eq!(offsets(&read), vec![0, 2, 5]);
        assert_eq!(read.batches.len(), 1);

        // Inside the second chunk.
        let mut read = read_of(chunks.clone());
        assert_eq!(keep_below(&mut read, 8), 8);
        assert_eq!(offsets(&read), vec![0, 2, 5, 6]);

        // An LSO inside the very first batch: nothing.
        let mut read = read_of(chunks);
        assert_eq!(keep_below(&mut read, 1), 1);
        assert!(read.batches.is_empty());
        assert_eq!(read.bytes, 0);
    }
}
