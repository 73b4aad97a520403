//! Errors of the client SDK.

use std::time::Duration;

use kafka_protocol::ResponseError;
use thiserror::Error;

use crate::record::BatchError;

/// Result of client operations.
pub type ClientResult<T> = Result<T, ClientError>;

/// What went wrong talking to a Kafka-compatible broker.
#[derive(Debug, Clone, Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The configuration is unusable.
    #[error("invalid client config: {0}")]
    InvalidConfig(String),
    /// A connection could not be made.
    #[error("connect to {address}: {reason}")]
    Connect {
        /// The broker address.
        address: String,
        /// The OS error.
        reason: String,
    },
    /// A connection failed or closed while requests were outstanding.
    #[error("connection to {address} failed: {reason}")]
    Connection {
        /// The broker address.
        address: String,
        /// Why.
        reason: String,
    },
    /// A response did not decode, or did not match the request.
    #[error("protocol error with {address}: {reason}")]
    Protocol {
        /// The broker address.
        address: String,
        /// What was wrong.
        reason: String,
    },
    /// The broker does not support any version of an API this client speaks.
    #[error("{address} does not support {api}")]
    UnsupportedApi {
        /// The broker address.
        address: String,
        /// The API.
        api: &'static str,
    },
    /// The broker answered with a Kafka error code.
    #[error("{context}: {error} ({code}){}", message.as_ref().map(|m| format!(": {m}")).unwrap_or_default())]
    Broker {
        /// What was being done (topic, partition).
        context: String,
        /// The code.
        code: i16,
        /// The code's meaning.
        error: ResponseError,
        /// The broker's message, where it sent one.
        message: Option<String>,
    },
    /// No answer in time.
    #[error("{operation} timed out after {after:?}")]
    Timeout {
        /// What was being done.
        operation: String,
        /// The limit.
        after: Duration,
    },
    /// A record batch could not be built or read.
    #[error("record batch: {0}")]
    Batch(#[from] BatchError),
    /// The topic has no such partition, or the topic does not exist.
    #[error("unknown topic or partition {topic}-{partition}")]
    UnknownPartition {
        /// The topic.
        topic: String,
        /// The partition, or -1 for the topic.
        partition: i32,
    },
    /// The client was closed.
    #[error("the client is closed")]
    Closed,
}

impl ClientError {
    /// A broker error from a code, or `None` for 0.
    pub fn from_code(
        context: impl Into<String>,
        code: i16,
        message: Option<String>,
    ) -> Option<Self> {
        let error = ResponseError::try_from_code(code)?;
        Some(Self::Broker {
            context: context.into(),
            code,
            error,
            message,
        })
    }

    /// `Ok` for code 0, else the broker error with its message.
    pub fn check(context: impl Into<String>, code: i16, message: Option<&str>) -> ClientResult<()> {
        match Self::from_code(context, code, message.map(str::to_string)) {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }

    /// Whether retrying (after a metadata refresh) may succeed.
    pub fn is_retriable(&self) -> bool {
        match self {
            Self::Connect { .. } | Self::Connection { .. } | Self::Timeout { .. } => true,
            Self::Broker { error, .. } => {
                error.is_retriable()
                    || matches!(
                        error,
                        ResponseError::NotLeaderOrFollower
                            | ResponseError::UnknownTopicOrPartition
                            | ResponseError::LeaderNotAvailable
                    )
            }
            _ => false,
        }
    }
}
