//! Produce: validate every batch of a partition (length, magic, CRC32C, size) before any of
//! them is appended, append them in order, and answer per `acks`: not at all for 0, once
//! appended for 1, and for -1 when the log says so ([`PartitionLog::wait_acknowledged`]:
//! once an fdatasync covers them under `always`, once appended under `interval` and `never`).
//!
//! Staging and answering are two steps ([`stage`], [`StagedProduce::respond`]): the
//! connection stages its produce requests one at a time, in arrival order, and only the
//! waits for durability run concurrently.
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
use crate::protocol::acks::Acks;
use crate::protocol::header::{decode_body, Request};
use crate::protocol::response::encode_response;
use crate::protocol::ProtocolError;
use crate::record::{BatchError, RecordBatch};
use crate::shard::{PartitionLookup, ShardContext};
use crate::storage::PartitionLog;

use super::{storage_error_code, str_bytes};

/// Error messages exist from this version.
pub const ERROR_MESSAGE_VERSION_MIN: i16 = 8;
/// The log start offset in the response exists from this version.
pub const LOG_START_OFFSET_VERSION_MIN: i16 = 5;

/// Batches one partition of one produce request may carry.
pub const PRODUCE_BATCHES_PER_PARTITION_MAX: usize = 10_000;

/// A partition's work: where it stands after staging.
struct Staged {
    log: PartitionLog,
    /// Offset after its last record: durable once the log's durable offset reaches it.
    end_offset: u64,
}

/// A produce request whose batches are staged: what is left is to wait for durability
/// (acks=-1 under `always`) and answer. The connection's reader stages each produce request
/// before it reads the next request, so a partition's batches are appended in the order the
/// connection sent them (as Kafka, which handles a connection's requests one at a time,
/// appends them), while the waits for durability of pipelined requests overlap.
pub struct StagedProduce {
    api_version: i16,
    correlation_id: i32,
    /// `None` for an invalid value: every partition then carries INVALID_REQUIRED_ACKS.
    acks: Option<Acks>,
    /// The response, with each partition's outcome of staging.
    topics: Vec<TopicProduceResponse>,
    /// (topic index, partition index, staged partition) for each partition staged.
    staged: Vec<(usize, usize, Staged)>,
}

/// Answers Produce (or stays silent for acks=0): [`stage`], then [`StagedProduce::respond`].
pub async fn handle(
    context: &ShardContext,
    request: &Request,
) -> Result<Option<BytesMut>, ProtocolError> {
    stage(context, request).await?.respond().await
}

/// Validates and stages every partition of a produce request, in request order. Returns once
/// each batch is staged (readable, and ordered before any later append to its partition).
pub async fn stage(
    context: &ShardContext,
    request: &Request,
) -> Result<StagedProduce, ProtocolError> {
    let body: ProduceRequest = decode_body(request)?;
    let acks = Acks::from_wire(body.acks);
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
            let outcome = if acks.is_none() {
                Err((
                    ResponseError::InvalidRequiredAcks,
                    format!("acks must be -1, 0 or 1, not {}", body.acks),
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
                    base.with_error_code(error.code()).with_error_message(
                        (request.api_version >= ERROR_MESSAGE_VERSION_MIN)
                            .then(|| str_bytes(message)),
                    )
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
    Ok(StagedProduce {
        api_version: request.api_version,
        correlation_id: request.header.correlation_id,
        acks,
        topics,
        staged,
    })
}

impl StagedProduce {
    /// Waits for what `acks` asks for and encodes the response; `None` for acks=0.
    pub async fn respond(self) -> Result<Option<BytesMut>, ProtocolError> {
        let StagedProduce {
            api_version,
            correlation_id,
            acks,
            mut topics,
            staged,
        } = self;
        if acks == Some(Acks::None) {
            return Ok(None);
        }
        if acks == Some(Acks::All) {
            for (topic_index, partition_index, stage) in &staged {
                // The log owns the rule (it depends on the flush policy).
                if let Err(error) = stage.log.wait_acknowledged(stage.end_offset).await {
                    if let Some(response) = topics
                        .get_mut(*topic_index)
                        .and_then(|topic| topic.partition_responses.get_mut(*partition_index))
                    {
                        response.error_code = storage_error_code(&error).code();
                        if api_version >= ERROR_MESSAGE_VERSION_MIN {
                            response.error_message = Some(str_bytes(error.to_string()));
                        }
                    }
                }
            }
        }
        let response = ProduceResponse::default().with_responses(topics);
        encode_response(ApiKey::Produce, api_version, correlation_id, &response).map(Some)
    }
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
        .with_log_start_offset(if api_version >= LOG_START_OFFSET_VERSION_MIN {
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
        if batch.header().is_control() {
            // Markers are the broker's to write (Kafka refuses them the same way).
            return Err((
                ResponseError::InvalidRecord,
                "a produce request may not carry control batches".into(),
            ));
        }
        if batch.header().is_transactional() {
            // No transaction can have begun: InitProducerId refuses transactional ids.
            return Err((
                ResponseError::InvalidTxnState,
                "transactional batches need a transaction, and transactions are not supported yet"
                    .into(),
            ));
        }
        batches.push(batch);
    }
    Ok(batches)
}
