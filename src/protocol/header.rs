//! The request header. The first eight bytes (api key, api version, correlation id) have the
//! same layout in every header version, so they are read by hand first: that is enough to
//! refuse an unsupported API or version, and to answer ApiVersions at a version we do not know
//! (KIP-511), before the rest of the header is decoded at the version the API calls for.

use bytes::{Buf, Bytes};
use kafka_protocol::messages::{ApiKey, RequestHeader};
use kafka_protocol::protocol::Decodable;

use super::versions::{is_supported, supported_range};
use super::ProtocolError;

/// The routing fields of a request, readable whatever its version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestPrefix {
    /// The API key.
    pub api_key: i16,
    /// The API version.
    pub api_version: i16,
    /// The correlation id, echoed in the response.
    pub correlation_id: i32,
}

/// Reads the routing fields without consuming the frame.
pub fn read_prefix(frame: &[u8]) -> Result<RequestPrefix, ProtocolError> {
    let mut fields = frame;
    if fields.len() < 8 {
        return Err(ProtocolError::Malformed {
            what: "request header",
            reason: format!("{} bytes is too short", frame.len()),
        });
    }
    Ok(RequestPrefix {
        api_key: fields.get_i16(),
        api_version: fields.get_i16(),
        correlation_id: fields.get_i32(),
    })
}

/// A decoded request: its header and the body, not yet decoded.
#[derive(Debug)]
pub struct Request {
    /// The API, known to be implemented.
    pub api_key: ApiKey,
    /// The version, known to be supported.
    pub api_version: i16,
    /// The full header.
    pub header: RequestHeader,
    /// The body, to be decoded by the handler at `api_version`.
    pub body: Bytes,
}

/// Splits a frame into a checked header and its body.
pub fn parse_request(frame: Bytes) -> Result<Request, ProtocolError> {
    let prefix = read_prefix(&frame)?;
    let Some(range) = supported_range(prefix.api_key) else {
        return Err(ProtocolError::UnsupportedApi {
            api_key: prefix.api_key,
            api_version: prefix.api_version,
        });
    };
    if !is_supported(prefix.api_key, prefix.api_version) {
        return Err(ProtocolError::UnsupportedVersion {
            api_key: prefix.api_key,
            api_version: prefix.api_version,
        });
    }
    let api_key = range.api_key;
    let header_version = api_key.request_header_version(prefix.api_version);
    let mut body = frame;
    let header = RequestHeader::decode(&mut body, header_version).map_err(|error| {
        ProtocolError::Malformed {
            what: "request header",
            reason: error.to_string(),
        }
    })?;
    Ok(Request {
        api_key,
        api_version: prefix.api_version,
        header,
        body,
    })
}

/// Decodes a request body at its version. Bytes left after the body are ignored, as Kafka's
/// generated parsers ignore them (they read the fields the version defines and never look at
/// what remains): librdkafka's all-topics Metadata v9+ request carries three stray bytes after
/// its compact array count, and Kafka answers it. Unknown tagged fields are skipped by the
/// codec, as Kafka skips them.
pub fn decode_body<T: Decodable>(request: &Request) -> Result<T, ProtocolError> {
    let mut body = request.body.clone();
    let message =
        T::decode(&mut body, request.api_version).map_err(|error| ProtocolError::Malformed {
            what: "request body",
            reason: error.to_string(),
        })?;
    if body.has_remaining() {
        tracing::debug!(
            api_key = request.api_key as i16,
            api_version = request.api_version,
            trailing_bytes = body.remaining(),
            "ignoring bytes after the request body, as Kafka does"
        );
    }
    Ok(message)
}
