//! ApiVersions: the table of [`SUPPORTED_APIS`], always in response header v0.

use bytes::BytesMut;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse};
use kafka_protocol::ResponseError;

use crate::protocol::header::{decode_body, Request};
use crate::protocol::response::encode_response;
use crate::protocol::versions::SUPPORTED_APIS;
use crate::protocol::ProtocolError;

fn supported() -> Vec<ApiVersion> {
    SUPPORTED_APIS
        .iter()
        .map(|range| {
            ApiVersion::default()
                .with_api_key(range.api_key as i16)
                .with_min_version(range.min_version)
                .with_max_version(range.max_version)
        })
        .collect()
}

/// Answers ApiVersions.
pub fn handle(request: &Request) -> Result<BytesMut, ProtocolError> {
    let _body: ApiVersionsRequest = decode_body(request)?;
    let response = ApiVersionsResponse::default()
        .with_error_code(0)
        .with_api_keys(supported());
    encode_response(
        ApiKey::ApiVersions,
        request.api_version,
        request.header.correlation_id,
        &response,
    )
}

/// The answer to a version we do not know: v0, UNSUPPORTED_VERSION, and our table (KIP-511).
pub fn unsupported_version(correlation_id: i32) -> Result<BytesMut, ProtocolError> {
    let response = ApiVersionsResponse::default()
        .with_error_code(ResponseError::UnsupportedVersion.code())
        .with_api_keys(supported());
    encode_response(ApiKey::ApiVersions, 0, correlation_id, &response)
}
