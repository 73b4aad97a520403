//! InitProducerId v0-v4 for idempotent producers: a new producer id, at epoch 0, from this
//! shard's allocator (unique across shards and restarts). Without a transactional id Kafka
//! always hands out a new id, also to a producer that names its current id and epoch
//! (KIP-360's bump after a retriable error): its sequences then start again at 0 everywhere.
//!
//! Transactions are not implemented yet: a request with a transactional id is answered
//! UNSUPPORTED_VERSION (this broker does not support that use of the API), with a log line,
//! and never hangs.

use bytes::BytesMut;
use kafka_protocol::messages::{ApiKey, InitProducerIdRequest, InitProducerIdResponse, ProducerId};
use kafka_protocol::ResponseError;
use tracing::{debug, warn};

use crate::protocol::header::{decode_body, Request};
use crate::protocol::response::encode_response;
use crate::protocol::ProtocolError;
use crate::shard::ShardContext;

/// Answers InitProducerId.
pub async fn handle(context: &ShardContext, request: &Request) -> Result<BytesMut, ProtocolError> {
    let body: InitProducerIdRequest = decode_body(request)?;
    let refused = |error: ResponseError| {
        InitProducerIdResponse::default()
            .with_error_code(error.code())
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1)
    };
    let response = match body.transactional_id.as_ref().filter(|id| !id.is_empty()) {
        Some(transactional_id) => {
            debug!(
                transactional_id = transactional_id.as_str(),
                "InitProducerId for a transactional producer: transactions are not supported"
            );
            refused(ResponseError::UnsupportedVersion)
        }
        None => match context.producer_ids.next_id().await {
            Ok(producer_id) => InitProducerIdResponse::default()
                .with_producer_id(ProducerId(producer_id))
                .with_producer_epoch(0),
            Err(error) => {
                // Retriable for the client: a disk that was full may have room again.
                warn!(%error, "no producer id could be reserved");
                refused(ResponseError::CoordinatorNotAvailable)
            }
        },
    };
    encode_response(
        ApiKey::InitProducerId,
        request.api_version,
        request.header.correlation_id,
        &response,
    )
}
