//! Produce: validate every batch of a partition (length, magic, CRC32C, size) before any of
//! them is appended, append them in order, and answer per `acks`: not at all for 0, once
//! appended for 1, and for -1 once an fdatasync covers them under the `always` flush policy
//! (once appended under `interval` and `never`, whose timer or seal makes them durable).
//!
//! All partitions of a request are staged first and waited on afterwards, so one fdatasync can
//! cover them all (group commit across partitions and across the connection's pipelined
//! requests).

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ApiKey, ProduceRequest, ProduceResponse};
use kafka_protocol::ResponseError;
use tracing::debug;

use crate::cluster::topic_name_problem;
use crate::protocol::header::{decode_body, Request};
use crate::protocol::response::encode_response;
use crate::protocol::ProtocolError;
use crate::record::{BatchError, RecordBatch};
use crate::shard::{PartitionLookup, ShardContext};
use crate::storage::{FlushPolicy, PartitionLog};

use super::{storage_error_code, str_bytes};

/// Batches one partition of one produce request may carry.
pub const PRODUCE_BATCHES_PER_PARTITION_MAX: usize = 10_000;

/// A partition's work: where it stands after staging.
struct Staged {
    log: PartitionLog,
    /// Offset after its last record: durable once the log's durable offset reaches it.
    end_offset: u64,
}

/// Answers Produce (or stays silent for acks=0).
pub async fn handle(
    context: &ShardContext,
    request: &Request,
) -> Result<Option<BytesMut>, ProtocolError> {
    let body: ProduceRequest = decode_body(request)?;
    let acks = body.acks;
    let mut topics = Vec::with_capacity(body.topic_data.len());
    let mut staged: Vec<(usize, usize, Staged)> = Vec::new();
    for (topic_index, topic) in body.topic_data.iter().enumerate() {
        let name = topic.name.0.as_str();
        let mut partitions = Vec::with_capacity(topic.partition_data.len());
        for (partition_index, partition) in topic.partition_data.iter().enumerate() {
            let base = PartitionProduceResponse::default()
                .with_index(partition.index)
                .with_base_offset(-1)
                .with_log_append_time_ms(-1)
                .with_log_start_offset(-1);
            let outcome = if !matches!(acks, -1..=1) {
                Err((
                    ResponseError::InvalidRequiredAcks,
                    format!("acks must be -1, 0 or 1, not {acks}"),
                ))
            } else {
                produce_partition(
                    context,
                    request.api_version,
                    name,
                    partition.index,
                    partition.records.as_ref(),
                )
                .await
            };
            let response = match outcome {
                Ok((response, stage)) => {
                    staged.push((topic_index, partition_index, stage));
                    response.with_index(partition.index)
                }
                Err((error, message)) => {
                    debug!(topic = name, partition = partition.index, %message, "produce refused");
                    // Error messages exist from v8.
                    base.with_error_code(error.code())
                        .with_error_message((request.api_version >= 8).then(|| str_bytes(message)))
                }
            };
            partitions.push(response);
        }
        topics.push(
            TopicProduceResponse::default()
                .with_name(topic.name.clone())
                .with_partition_responses(partitions),
        );
    }
    if acks == 0 {
        return Ok(None);
    }
    if acks == -1 {
        for (topic_index, partition_index, stage) in &staged {
            // Under `interval` and `never` the policy itself says when data becomes durable;
            // acks=-1 then answers once the batch is appended, as Kafka does without fsync.
            if stage.log.config().flush_policy != FlushPolicy::Always {
                continue;
            }
            if let Err(error) = stage.log.wait_durable(stage.end_offset).await {
                if let Some(response) = topics
                    .get_mut(*topic_index)
                    .and_then(|topic| topic.partition_responses.get_mut(*partition_index))
                {
                    response.error_code = storage_error_code(&error).code();
                    if request.api_version >= 8 {
                        response.error_message = Some(str_bytes(error.to_string()));
                    }
                }
            }
        }
    }
    let response = ProduceResponse::default().with_responses(topics);
    encode_response(
        ApiKey::Produce,
        request.api_version,
        request.header.correlation_id,
        &response,
    )
    .map(Some)
}

type Refusal = (ResponseError, String);

async fn produce_partition(
    context: &ShardContext,
    api_version: i16,
    topic: &str,
    partition: i32,
    records: Option<&Bytes>,
) -> Result<(PartitionProduceResponse, Staged), Refusal> {
    if let Some(problem) = topic_name_problem(topic) {
        return Err((ResponseError::InvalidTopicException, problem));
    }
    let log = match context.lookup(topic, partition) {
        PartitionLookup::Local(log) => log,
        PartitionLookup::Elsewhere => {
            return Err((
                ResponseError::NotLeaderOrFollower,
                format!("partition {topic}-{partition} is led by another shard"),
            ))
        }
        PartitionLookup::Unknown => {
            return Err((
                ResponseError::UnknownTopicOrPartition,
                format!("partition {topic}-{partition} does not exist"),
            ))
        }
    };
    let batches = split_batches(records, log.config().batch_bytes_max)?;
    let mut first = None;
    let mut end_offset = 0;
    for batch in batches {
        let info = log
            .append_staged(batch)
            .await
            .map_err(|error| (storage_error_code(&error), error.to_string()))?;
        first.get_or_insert(info);
        end_offset = info.last_offset + 1;
    }
    let Some(first) = first else {
        return Err((ResponseError::CorruptMessage, "no record batch".into()));
    };
    let response = PartitionProduceResponse::default()
        .with_base_offset(first.base_offset as i64)
        .with_log_append_time_ms(first.log_append_time_ms.unwrap_or(-1))
        // The log start offset exists from v5.
        .with_log_start_offset(if api_version >= 5 {
            log.log_start_offset() as i64
        } else {
            -1
        });
    Ok((response, Staged { log, end_offset }))
}

/// Splits a partition's records into validated batches: all of them, or a refusal. The
/// records are copied once, into one buffer the batches then share.
fn split_batches(
    records: Option<&Bytes>,
    batch_bytes_max: usize,
) -> Result<Vec<RecordBatch>, Refusal> {
    let corrupt = |error: BatchError| (ResponseError::CorruptMessage, error.to_string());
    let Some(records) = records.filter(|records| !records.is_empty()) else {
        return Err((ResponseError::CorruptMessage, "no record batch".into()));
    };
    let mut remaining = BytesMut::from(&records[..]);
    let mut batches = Vec::new();
    while !remaining.is_empty() {
        if batches.len() >= PRODUCE_BATCHES_PER_PARTITION_MAX {
            return Err((
                ResponseError::InvalidRequest,
                format!("more than {PRODUCE_BATCHES_PER_PARTITION_MAX} batches for one partition"),
            ));
        }
        let batch = RecordBatch::split_first(&mut remaining).map_err(corrupt)?;
        if batch.len() > batch_bytes_max {
            return Err((
                ResponseError::MessageTooLarge,
                format!(
                    "batch of {} bytes is above the topic's max.message.bytes {batch_bytes_max}",
                    batch.len()
                ),
            ));
        }
        batch.validate_for_append().map_err(corrupt)?;
        batches.push(batch);
    }
    Ok(batches)
}
