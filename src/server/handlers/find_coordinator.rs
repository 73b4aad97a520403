//! FindCoordinator v0-v4: names the shard that coordinates a consumer group or a transactional
//! id (key types 0 and 1), placed by [`coordinator_shard`], as that shard's broker.
//!
//! The group and transaction APIs themselves are not implemented yet, and are not in
//! ApiVersions. Naming the coordinator is what makes clients fail fast rather than wait: they
//! check the coordinator's ApiVersions before they send a group request, so a `subscribe()`
//! in librdkafka gets "JoinGroup failed: Local: Required feature not supported by broker",
//! an `assign()`-ing consumer with auto-commit closes at once instead of retrying its final
//! commit forever, and kafka-python raises `IncompatibleBrokerVersion` for OffsetFetch. With
//! the retriable COORDINATOR_NOT_AVAILABLE that this handler answered before, each of them
//! waited silently forever.
//!
//! It is advertised for a second reason: librdkafka enables LZ4 for a broker only when that
//! broker advertises FindCoordinator (`rdkafka_feature.c` ties the LZ4 feature to it).

use bytes::BytesMut;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{ApiKey, BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use crate::cluster::coordinator_shard;
use crate::protocol::header::{decode_body, Request};
use crate::protocol::response::encode_response;
use crate::protocol::ProtocolError;
use crate::shard::ShardContext;

use super::str_bytes;

/// Key types (and error messages) exist from this version; before it every key is a group.
pub const KEY_TYPE_VERSION_MIN: i16 = 1;
/// Several keys per request exist from this version.
pub const BATCHED_KEYS_VERSION_MIN: i16 = 4;

/// Keys one batched (v4+) request may name.
pub const COORDINATOR_KEYS_MAX: usize = 10_000;
/// Key type of a consumer group.
pub const KEY_TYPE_GROUP: i8 = 0;
/// Key type of a transactional id.
pub const KEY_TYPE_TRANSACTION: i8 = 1;

/// Where one key's coordinator is, or why there is none.
struct Located {
    /// `None` when the coordinator is found.
    error: Option<ResponseError>,
    message: Option<String>,
    node_id: i32,
    host: StrBytes,
    port: i32,
}

fn locate(context: &ShardContext, key_type: i8, key: &str) -> Located {
    if !matches!(key_type, KEY_TYPE_GROUP | KEY_TYPE_TRANSACTION) {
        return Located {
            error: Some(ResponseError::InvalidRequest),
            message: Some(format!(
                "key type {key_type} is neither a group (0) nor a transaction (1)"
            )),
            node_id: -1,
            host: str_bytes(""),
            port: -1,
        };
    }
    let shard = coordinator_shard(key, context.shard_count);
    Located {
        error: None,
        message: None,
        node_id: shard as i32,
        host: str_bytes(context.advertised_host.clone()),
        port: i32::from(context.shard_port(shard)),
    }
}

/// Answers FindCoordinator.
pub fn handle(context: &ShardContext, request: &Request) -> Result<BytesMut, ProtocolError> {
    let body: FindCoordinatorRequest = decode_body(request)?;
    let version = request.api_version;
    // Before v1 every key is a group.
    let key_type = if version >= KEY_TYPE_VERSION_MIN {
        body.key_type
    } else {
        KEY_TYPE_GROUP
    };
    let response = if version >= BATCHED_KEYS_VERSION_MIN {
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
                let located = locate(context, key_type, key.as_str());
                Coordinator::default()
                    .with_key(key.clone())
                    .with_node_id(BrokerId(located.node_id))
                    .with_host(located.host)
                    .with_port(located.port)
                    .with_error_code(located.error.map_or(0, |error| error.code()))
                    .with_error_message(located.message.map(str_bytes))
            })
            .collect();
        FindCoordinatorResponse::default().with_coordinators(coordinators)
    } else {
        let located = locate(context, key_type, body.key.as_str());
        FindCoordinatorResponse::default()
            .with_error_code(located.error.map_or(0, |error| error.code()))
            .with_error_message(
                located
                    .message
                    .filter(|_| version >= KEY_TYPE_VERSION_MIN)
                    .map(str_bytes),
            )
            .with_node_id(BrokerId(located.node_id))
            .with_host(located.host)
            .with_port(located.port)
    };
    encode_response(
        ApiKey::FindCoordinator,
        version,
        request.header.correlation_id,
        &response,
    )
}
