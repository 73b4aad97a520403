//! Encoding a response frame: size, response header, body.

use bytes::{BufMut, BytesMut};
use kafka_protocol::messages::{ApiKey, ResponseHeader};
use kafka_protocol::protocol::Encodable;

use super::frame::FRAME_SIZE_BYTES;
use super::ProtocolError;

/// Encodes `body` at `api_version` behind a response header for `correlation_id`, into one
/// length-prefixed frame.
///
/// ApiVersions always answers with response header v0, even at flexible versions, so that a
/// client can read it before it knows what the broker supports.
pub fn encode_response<T: Encodable>(
    api_key: ApiKey,
    api_version: i16,
    correlation_id: i32,
    body: &T,
) -> Result<BytesMut, ProtocolError> {
    let encode_error = |error: anyhow::Error| ProtocolError::Encode {
        api: api_name(api_key),
        reason: error.to_string(),
    };
    let header_version = if api_key == ApiKey::ApiVersions {
        0
    } else {
        api_key.response_header_version(api_version)
    };
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    let size = header
        .compute_size(header_version)
        .and_then(|header_bytes| Ok(header_bytes + body.compute_size(api_version)?))
        .map_err(encode_error)?;
    let mut frame = BytesMut::with_capacity(FRAME_SIZE_BYTES + size);
    frame.put_i32(size as i32);
    header
        .encode(&mut frame, header_version)
        .map_err(encode_error)?;
    body.encode(&mut frame, api_version).map_err(encode_error)?;
    Ok(frame)
}

/// A readable name for logs.
pub fn api_name(api_key: ApiKey) -> &'static str {
    match api_key {
        ApiKey::Produce => "Produce",
        ApiKey::Fetch => "Fetch",
        ApiKey::ListOffsets => "ListOffsets",
        ApiKey::Metadata => "Metadata",
        ApiKey::ApiVersions => "ApiVersions",
        ApiKey::CreateTopics => "CreateTopics",
        ApiKey::DeleteTopics => "DeleteTopics",
        ApiKey::CreatePartitions => "CreatePartitions",
        ApiKey::DescribeConfigs => "DescribeConfigs",
        ApiKey::DescribeCluster => "DescribeCluster",
        ApiKey::FindCoordinator => "FindCoordinator",
        _ => "unsupported API",
    }
}
