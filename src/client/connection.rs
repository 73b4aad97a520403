//! One connection to one broker, pipelined: requests go out as they are made, a reader task
//! hands each response to its request in order (Kafka answers a connection's requests in the
//! order they were sent). Versions are negotiated with ApiVersions on connect.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::rc::Rc;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use futures_lite::AsyncWriteExt;
use glommio::channels::local_channel::{self, LocalSender};
use glommio::net::TcpStream;
use glommio::sync::Semaphore;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, RequestHeader, ResponseHeader,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use kafka_protocol::ResponseError;

use crate::net::{split, ReadHalf, WriteHalf};
use crate::protocol::frame::FrameReader;

use super::error::{ClientError, ClientResult};

/// The largest response the client accepts.
pub const RESPONSE_BYTES_MAX: usize = 256 << 20;

/// The versions this client speaks, per API: the same ranges the broker implements.
const CLIENT_VERSIONS: [(ApiKey, i16, i16); 17] = [
    (ApiKey::Produce, 3, 9),
    (ApiKey::Fetch, 4, 12),
    (ApiKey::ListOffsets, 1, 6),
    (ApiKey::Metadata, 1, 12),
    (ApiKey::OffsetCommit, 2, 9),
    // v8+ batches groups; one group per request needs none of it.
    (ApiKey::OffsetFetch, 1, 7),
    // v4 batches keys; one key per request needs none of it.
    (ApiKey::FindCoordinator, 1, 3),
    // v4+: MEMBER_ID_REQUIRED, which the group member handles.
    (ApiKey::JoinGroup, 4, 9),
    (ApiKey::Heartbeat, 1, 4),
    (ApiKey::LeaveGroup, 1, 5),
    (ApiKey::SyncGroup, 1, 5),
    (ApiKey::ApiVersions, 0, 3),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::DeleteTopics, 1, 6),
    (ApiKey::InitProducerId, 0, 4),
    (ApiKey::DescribeConfigs, 1, 4),
    (ApiKey::CreatePartitions, 0, 3),
];

struct Pending {
    correlation_id: i32,
    reply: LocalSender<ClientResult<Bytes>>,
}

/// A connection to one broker. Cloning gives another handle to it.
#[derive(Clone)]
pub struct Connection {
    inner: Rc<Inner>,
}

struct Inner {
    address: String,
    client_id: StrBytes,
    writer: WriteHalf,
    /// Held while a frame is written, so frames never interleave and pending order matches
    /// the wire.
    write_lock: Semaphore,
    pending: RefCell<VecDeque<Pending>>,
    next_correlation_id: Cell<i32>,
    versions: RefCell<HashMap<i16, (i16, i16)>>,
    failed: RefCell<Option<String>>,
    timeout: Duration,
}

impl Connection {
    /// Connects, starts the reader, and negotiates versions.
    pub async fn connect(address: &str, client_id: &str, timeout: Duration) -> ClientResult<Self> {
        let connect_error = |reason: String| ClientError::Connect {
            address: address.to_string(),
            reason,
        };
        let stream = glommio::timer::timeout(timeout, TcpStream::connect(address))
            .await
            .map_err(|error| connect_error(error.to_string()))?;
        let _ = stream.set_nodelay(true);
        let (input, output) = split(stream);
        let inner = Rc::new(Inner {
            address: address.to_string(),
            client_id: StrBytes::from_string(client_id.to_string()),
            writer: output,
            write_lock: Semaphore::new(1),
            pending: RefCell::new(VecDeque::new()),
            next_correlation_id: Cell::new(1),
            versions: RefCell::new(HashMap::new()),
            failed: RefCell::new(None),
            timeout,
        });
        glommio::spawn_local(read_loop(Rc::downgrade(&inner), input)).detach();
        let connection = Self { inner };
        connection.negotiate().await?;
        Ok(connection)
    }

    /// The broker's address.
    pub fn address(&self) -> &str {
        &self.inner.address
    }

    /// A protocol error with this broker: a response that cannot be decoded or lacks what the
    /// request asked about, or a request that cannot be encoded.
    pub fn protocol_error(&self, reason: impl Into<String>) -> ClientError {
        ClientError::Protocol {
            address: self.inner.address.clone(),
            reason: reason.into(),
        }
    }

    /// Whether the connection has failed (a new one is needed).
    pub fn is_failed(&self) -> bool {
        self.inner.failed.borrow().is_some()
    }

    async fn negotiate(&self) -> ClientResult<()> {
        let request = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("streambus-client"))
            .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
        let mut response: ApiVersionsResponse =
            self.call_at(ApiKey::ApiVersions, 3, &request).await?;
        if response.error_code == ResponseError::UnsupportedVersion.code() {
            response = self
                .call_at(ApiKey::ApiVersions, 0, &ApiVersionsRequest::default())
                .await?;
        }
        if let Some(error) = ClientError::from_code("ApiVersions", response.error_code, None) {
            return Err(error);
        }
        let mut versions = self.inner.versions.borrow_mut();
        for api in response.api_keys {
            versions.insert(api.api_key, (api.min_version, api.max_version));
        }
        Ok(())
    }

    /// The highest version of `api` both sides speak.
    pub fn version(&self, api: ApiKey) -> ClientResult<i16> {
        let (ours_min, ours_max) = CLIENT_VERSIONS
            .iter()
            .find(|(key, _, _)| *key == api)
            .map(|(_, min, max)| (*min, *max))
            .unwrap_or((0, -1));
        let theirs = self.inner.versions.borrow().get(&(api as i16)).copied();
        match theirs {
            Some((min, max)) if max.min(ours_max) >= min.max(ours_min) => Ok(max.min(ours_max)),
            _ => Err(ClientError::UnsupportedApi {
                address: self.inner.address.clone(),
                api: api_label(api),
            }),
        }
    }

    /// Sends a request at the negotiated version and decodes its response.
    pub async fn call<Req: Encodable, Resp: Decodable>(
        &self,
        api: ApiKey,
        request: &Req,
    ) -> ClientResult<(i16, Resp)> {
        let version = self.version(api)?;
        Ok((version, self.call_at(api, version, request).await?))
    }

    /// Sends a request for which the broker sends no response (produce with acks=0).
    pub async fn send_only<Req: Encodable>(&self, api: ApiKey, request: &Req) -> ClientResult<()> {
        let version = self.version(api)?;
        let (_, frame) = self.encode(api, version, request)?;
        let _permit = self.lock_write().await?;
        self.write(&frame).await
    }

    /// Sends a request at the negotiated version and waits up to `timeout` (not the request
    /// timeout) for its response: a JoinGroup is answered only when the rebalance ends.
    pub async fn call_within<Req: Encodable, Resp: Decodable>(
        &self,
        api: ApiKey,
        request: &Req,
        timeout: Duration,
    ) -> ClientResult<(i16, Resp)> {
        let version = self.version(api)?;
        Ok((
            version,
            self.call_at_within(api, version, request, timeout).await?,
        ))
    }

    /// Sends a request at `version` and decodes its response.
    pub async fn call_at<Req: Encodable, Resp: Decodable>(
        &self,
        api: ApiKey,
        version: i16,
        request: &Req,
    ) -> ClientResult<Resp> {
        self.call_at_within(api, version, request, self.inner.timeout)
            .await
    }

    async fn call_at_within<Req: Encodable, Resp: Decodable>(
        &self,
        api: ApiKey,
        version: i16,
        request: &Req,
        timeout: Duration,
    ) -> ClientResult<Resp> {
        let (correlation_id, frame) = self.encode(api, version, request)?;
        let (sender, receiver) = local_channel::new_bounded(1);
        {
            let _permit = self.lock_write().await?;
            self.inner.pending.borrow_mut().push_back(Pending {
                correlation_id,
                reply: sender,
            });
            self.write(&frame).await?;
        }
        let reply = glommio::timer::timeout(timeout, async { Ok(receiver.recv().await) })
            .await
            .map_err(|_| {
                // A response that never came leaves the stream unusable: later responses would
                // be matched to the wrong requests.
                self.fail(format!("no response to {} in {timeout:?}", api_label(api)));
                ClientError::Timeout {
                    operation: format!("{} to {}", api_label(api), self.inner.address),
                    after: timeout,
                }
            })?;
        let mut body = match reply {
            Some(result) => result?,
            None => return Err(self.connection_error()),
        };
        let header_version = if api == ApiKey::ApiVersions {
            0
        } else {
            api.response_header_version(version)
        };
        let protocol_error = |reason: String| self.protocol_error(reason);
        let header = ResponseHeader::decode(&mut body, header_version)
            .map_err(|error| protocol_error(error.to_string()))?;
        if header.correlation_id != correlation_id {
            return Err(protocol_error(format!(
                "response for correlation id {} to request {correlation_id}",
                header.correlation_id
            )));
        }
        let response =
            Resp::decode(&mut body, version).map_err(|error| protocol_error(error.to_string()))?;
        if body.has_remaining() {
            return Err(protocol_error(format!(
                "{} bytes after the {} response",
                body.remaining(),
                api_label(api)
            )));
        }
        Ok(response)
    }

    fn encode<Req: Encodable>(
        &self,
        api: ApiKey,
        version: i16,
        request: &Req,
    ) -> ClientResult<(i32, BytesMut)> {
        let correlation_id = self.inner.next_correlation_id.get();
        self.inner
            .next_correlation_id
            .set(correlation_id.wrapping_add(1).max(1));
        let header = RequestHeader::default()
            .with_request_api_key(api as i16)
            .with_request_api_version(version)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(self.inner.client_id.clone()));
        let header_version = api.request_header_version(version);
        let encode_error = |error: anyhow::Error| {
            self.protocol_error(format!("cannot encode {}: {error}", api_label(api)))
        };
        let size = header
            .compute_size(header_version)
            .and_then(|header_bytes| Ok(header_bytes + request.compute_size(version)?))
            .map_err(encode_error)?;
        let mut frame = BytesMut::with_capacity(4 + size);
        frame.put_i32(size as i32);
        header
            .encode(&mut frame, header_version)
            .map_err(encode_error)?;
        request.encode(&mut frame, version).map_err(encode_error)?;
        Ok((correlation_id, frame))
    }

    async fn lock_write(&self) -> ClientResult<glommio::sync::Permit<'_>> {
        if self.is_failed() {
            return Err(self.connection_error());
        }
        self.inner
            .write_lock
            .acquire_permit(1)
            .await
            .map_err(|_| self.connection_error())
    }

    async fn write(&self, frame: &[u8]) -> ClientResult<()> {
        let mut writer = self.inner.writer.share();
        if let Err(error) = writer.write_all(frame).await {
            self.fail(error.to_string());
            return Err(self.connection_error());
        }
        Ok(())
    }

    fn fail(&self, reason: String) {
        fail(&self.inner, reason);
    }

    fn connection_error(&self) -> ClientError {
        ClientError::Connection {
            address: self.inner.address.clone(),
            reason: self
                .inner
                .failed
                .borrow()
                .clone()
                .unwrap_or_else(|| "closed".into()),
        }
    }
}

fn fail(inner: &Inner, reason: String) {
    if inner.failed.borrow().is_none() {
        *inner.failed.borrow_mut() = Some(reason.clone());
    }
    for pending in inner.pending.borrow_mut().drain(..) {
        let _ = pending.reply.try_send(Err(ClientError::Connection {
            address: inner.address.clone(),
            reason: reason.clone(),
        }));
    }
    // Wake the reader if it is blocked in a read.
    inner.writer.shutdown_both();
}

async fn read_loop(inner: std::rc::Weak<Inner>, mut input: ReadHalf) {
    let mut frames = FrameReader::for_responses(RESPONSE_BYTES_MAX);
    loop {
        let next = frames.next_frame(&mut input).await;
        let Some(inner) = inner.upgrade() else { return };
        let frame = match next {
            Ok(Some(frame)) => frame,
            Ok(None) => {
                fail(&inner, "closed by the broker".into());
                return;
            }
            Err(error) => {
                fail(&inner, error.to_string());
                return;
            }
        };
        let Some(pending) = inner.pending.borrow_mut().pop_front() else {
            fail(&inner, "a response arrived with no request waiting".into());
            return;
        };
        let mut peek = &frame[..];
        if peek.remaining() >= 4 && peek.get_i32() != pending.correlation_id {
            let _ = pending.reply.try_send(Err(ClientError::Protocol {
                address: inner.address.clone(),
                reason: "responses arrived out of order".into(),
            }));
            fail(&inner, "responses arrived out of order".into());
            return;
        }
        let _ = pending.reply.try_send(Ok(frame));
    }
}

/// A readable API name.
pub fn api_label(api: ApiKey) -> &'static str {
    crate::protocol::response::api_name(api)
}
