//! The Kafka wire protocol, as StreamBus frames and dispatches it. Message bodies are encoded
//! and decoded by the `kafka-protocol` crate; this module owns what is around them:
//!
//! - [`acks`]: the Produce `acks` values, shared by the broker and the client.
//! - [`frame`]: the 4-byte length prefix, checked against `max_request_bytes` before a byte of
//!   the body is read or allocated.
//! - [`header`]: the request header, read far enough to route and to answer even a request
//!   whose version is not supported.
//! - [`versions`]: the API and version table ApiVersions advertises.
//! - [`response`]: a response header and body encoded into one length-prefixed frame.

pub mod acks;
pub mod frame;
pub mod header;
pub mod response;
pub mod versions;

use thiserror::Error;

/// Errors of the protocol layer. Each one closes the connection it happened on: the framing
/// is lost or the peer speaks something other than what it negotiated.
#[derive(Debug, Error)]
pub enum ProtocolError {
    /// The frame's length prefix is above the limit.
    #[error("request of {size_bytes} bytes is above max_request_bytes {limit_bytes}")]
    FrameTooLarge {
        /// The announced size.
        size_bytes: i64,
        /// The limit.
        limit_bytes: usize,
    },
    /// The frame's length prefix is too small to hold a request header.
    #[error("request of {size_bytes} bytes is too short for a request header")]
    FrameTooShort {
        /// The announced size.
        size_bytes: i32,
    },
    /// The peer closed the connection in the middle of a frame.
    #[error("connection closed inside a frame ({received_bytes} of {size_bytes} bytes)")]
    TruncatedFrame {
        /// Bytes received.
        received_bytes: usize,
        /// Bytes announced.
        size_bytes: usize,
    },
    /// A socket operation failed.
    #[error("socket {operation}: {source}")]
    Io {
        /// What was being done.
        operation: &'static str,
        /// The OS error.
        source: std::io::Error,
    },
    /// The API key is not one StreamBus implements.
    #[error("unsupported API key {api_key} (version {api_version})")]
    UnsupportedApi {
        /// The key.
        api_key: i16,
        /// The version asked for.
        api_version: i16,
    },
    /// The API is implemented, but not at this version.
    #[error("unsupported version {api_version} of API key {api_key}")]
    UnsupportedVersion {
        /// The key.
        api_key: i16,
        /// The version asked for.
        api_version: i16,
    },
    /// A header or body did not decode.
    #[error("malformed {what}: {reason}")]
    Malformed {
        /// Which part.
        what: &'static str,
        /// The decoder's message.
        reason: String,
    },
    /// A response could not be encoded (a bug, logged; the connection is closed).
    #[error("cannot encode the {api} response: {reason}")]
    Encode {
        /// The API.
        api: &'static str,
        /// The encoder's message.
        reason: String,
    },
}
