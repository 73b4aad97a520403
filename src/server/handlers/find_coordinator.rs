//! FindCoordinator, before consumer groups exist: every group and transaction key answers
//! COORDINATOR_NOT_AVAILABLE, the retriable error Kafka gives while no coordinator can serve.
//!
//! Why it is advertised at all: librdkafka enables LZ4 for a broker only when that broker
//! advertises FindCoordinator (its feature table, `rdkafka_feature.c`, ties the LZ4 feature to
//! it). Without it every librdkafka producer asked for lz4 silently sends uncompressed
//! batches. With this answer no client ever proceeds to group APIs that do not exist yet; an
//! `assign()`-based consumer with a `group.id` keeps working, and `subscribe()` keeps waiting
//! for a coordinator until the consumer-groups work lands.

use bytes::BytesMut;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{ApiKey, BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::ResponseError;

use crate::protocol::header::{decode_body, Request};
use crate::protocol::response::encode_response;
use crate::protocol::ProtocolError;

use super::str_bytes;

/// Keys one batched (v4+) request may name.
pub const COORDINATOR_KEYS_MAX: usize = 10_000;
const NOT_AVAILABLE: &str = "consumer groups and transactions are not implemented yet";

/// Answers FindCoordinator.
pub fn handle(request: &Request) -> Result<BytesMut, ProtocolError> {
    let body: FindCoordinatorRequest = decode_body(request)?;
    let code = ResponseError::CoordinatorNotAvailable.code();
    let version = request.api_version;
    let response = if version >= 4 {
        if body.coordinator_keys.len() > COORDINATOR_KEYS_MAX {
            return Err(ProtocolError::Malformed {
                what: "FindCoordinator request",
                reason: format!("{} keys named", body.coordinator_keys.len()),
            });
        }
        let coordinators = body
            .coordinator_keys
            .iter()
            .map(|key| {
                Coordinator::default()
                    .with_key(key.clone())
                    .with_node_id(BrokerId(-1))
                    .with_host(str_bytes(""))
                    .with_port(-1)
                    .with_error_code(code)
                    .with_error_message(Some(str_bytes(NOT_AVAILABLE)))
            })
            .collect();
        FindCoordinatorResponse::default().with_coordinators(coordinators)
    } else {
        FindCoordinatorResponse::default()
            .with_error_code(code)
            .with_error_message((version >= 1).then(|| str_bytes(NOT_AVAILABLE)))
            .with_node_id(BrokerId(-1))
            .with_host(str_bytes(""))
            .with_port(-1)
    };
    encode_response(
        ApiKey::FindCoordinator,
        version,
        request.header.correlation_id,
        &response,
    )
}
