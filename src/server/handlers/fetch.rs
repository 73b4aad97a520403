//! Fetch: many partitions per request, `min_bytes` / `max_bytes` / per-partition limits, and
//! long-polling for `max_wait_ms` that is woken by the partitions' own high-watermark moves
//! (appends under `interval`/`never`, fdatasyncs under `always`), never by a polling timer.
//!
//! The stored batches are returned as they are; a partition whose read spans several stored
//! chunks has them joined once into the response.

use std::future::poll_fn;
use std::task::Poll;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{ApiKey, BrokerId, FetchRequest, FetchResponse};
use kafka_protocol::ResponseError;

use crate::config::FETCH_MAX_WAIT_MS_MAX;
use crate::protocol::header::{decode_body, Request};
use crate::protocol::response::encode_response;
use crate::protocol::ProtocolError;
use crate::shard::{PartitionLookup, ShardContext};
use crate::storage::{LogRead, PartitionLog};

use super::storage_error_code;

/// The partitions' log start offset exists from this version.
pub const LOG_START_OFFSET_VERSION_MIN: i16 = 5;

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
                        .with_last_stable_offset(log.high_watermark() as i64)
                        .with_log_start_offset(log_start(log.log_start_offset())),
                );
                continue;
            };
            let outcome = if budget == 0 {
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
                    total_bytes += read.bytes;
                    data = data
                        .with_high_watermark(read.high_watermark as i64)
                        .with_last_stable_offset(read.high_watermark as i64)
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
                        .with_last_stable_offset(log.high_watermark() as i64)
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
