//! ConsumerGroupHeartbeat v0-v1 (KIP-848) is refused with UNSUPPORTED_VERSION and a message:
//! StreamBus runs the classic protocol only. The API is advertised for this answer alone.
//!
//! Without it a consumer with `group.protocol=consumer` waits forever without a word:
//! librdkafka, seeing the API missing from ApiVersions, marks the coordinator dead, looks it
//! up again and retries at debug level for as long as it runs. With it, librdkafka raises a
//! fatal error ("ConsumerGroupHeartbeat fatal error: Broker: Unsupported version") that the
//! application sees at once, as the standards ask of a missing feature.

use bytes::BytesMut;
use kafka_protocol::messages::{
    ApiKey, ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse,
};
use kafka_protocol::ResponseError;

use crate::protocol::header::{decode_body, Request};
use crate::protocol::response::encode_response;
use crate::protocol::ProtocolError;
use crate::shard::ShardContext;

use super::str_bytes;

/// What the refusal says.
pub const REFUSAL_MESSAGE: &str = "StreamBus does not implement the KIP-848 consumer group \
protocol yet; use group.protocol=classic";

/// Answers ConsumerGroupHeartbeat with UNSUPPORTED_VERSION.
pub fn handle(_context: &ShardContext, request: &Request) -> Result<BytesMut, ProtocolError> {
    // Decoded all the same: a malformed body closes the connection like any other.
    let _body: ConsumerGroupHeartbeatRequest = decode_body(request)?;
    let response = ConsumerGroupHeartbeatResponse::default()
        .with_error_code(ResponseError::UnsupportedVersion.code())
        .with_error_message(Some(str_bytes(REFUSAL_MESSAGE)))
        .with_member_epoch(-1);
    encode_response(
        ApiKey::ConsumerGroupHeartbeat,
        request.api_version,
        request.header.correlation_id,
        &response,
    )
}
