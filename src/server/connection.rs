//! One client connection.
//!
//! A reader task reads frames and starts a handler task for each request; a writer task awaits
//! those handlers in request order and writes their responses, as Kafka requires. Produce is
//! the exception to "a task per request" for its first half: the reader stages a produce
//! request's batches itself before it reads the next request, because a partition's batches
//! must be appended in the order the connection sent them (librdkafka and our own client
//! pipeline produce requests and count on it); the wait for durability is the task. So a client
//! may pipeline requests (librdkafka keeps up to 5 in flight), and a produce waiting for its
//! fdatasync does not stop the next request from being read. At most
//! `in_flight_requests_per_connection_max` requests are in flight; beyond it the reader waits,
//! and TCP pushes back on the client.

use std::cell::Cell;
use std::panic::AssertUnwindSafe;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use futures_lite::{AsyncWriteExt, FutureExt};
use glommio::channels::local_channel;
use glommio::net::TcpStream;
use glommio::task::JoinHandle;
use kafka_protocol::messages::ApiKey;
use tracing::{debug, warn};

use crate::net::split;
use crate::protocol::frame::FrameReader;
use crate::protocol::header::{parse_request, read_prefix};
use crate::protocol::response::api_name;
use crate::protocol::ProtocolError;
use crate::shard::ShardContext;

use super::dispatch::{dispatch, unsupported_api_versions};
use super::handlers::produce;

/// The shortest pause between two idle checks of a connection.
const IDLE_CHECK_MIN: Duration = Duration::from_millis(10);

/// What the writer waits for, in request order.
enum Pending {
    /// A handler still running; it yields a frame, or nothing (acks=0), or an error that closes
    /// the connection.
    Handler(glommio::Task<Result<Option<BytesMut>, ProtocolError>>),
    /// A response ready at once.
    Ready(BytesMut),
}

/// The error that closes a connection whose handler panicked.
fn handler_panicked(api: ApiKey) -> ProtocolError {
    ProtocolError::Encode {
        api: api_name(api),
        reason: "the handler panicked".into(),
    }
}

/// Serves one connection until the client closes it, it breaks the protocol, or the shard
/// stops (then requests already read are still answered).
pub async fn serve(context: &Rc<ShardContext>, stream: TcpStream) {
    let peer = stream.peer_addr().ok();
    let _ = stream.set_nodelay(true);
    let (mut input, output) = split(stream);
    let (sender, receiver) =
        local_channel::new_bounded::<Pending>(context.config.in_flight_requests_per_connection_max);
    // Requests read but not yet answered, and the last read or write, for the idle check.
    let in_flight = Rc::new(Cell::new(0usize));
    let last_activity = Rc::new(Cell::new(Instant::now()));
    let writer: JoinHandle<()> = {
        let mut output = output.share();
        let in_flight_writer = in_flight.clone();
        let last_write = last_activity.clone();
        let shard = context.shard_id;
        glommio::spawn_local(async move {
            while let Some(pending) = receiver.recv().await {
                let frame = match pending {
                    Pending::Ready(frame) => frame,
                    Pending::Handler(task) => match task.await {
                        Ok(Some(frame)) => frame,
                        Ok(None) => {
                            in_flight_writer.set(in_flight_writer.get().saturating_sub(1));
                            continue;
                        }
                        Err(error) => {
                            warn!(shard, ?peer, %error, "closing connection");
                            break;
                        }
                    },
                };
                let written = output.write_all(&frame).await;
                in_flight_writer.set(in_flight_writer.get().saturating_sub(1));
                last_write.set(Instant::now());
                if let Err(error) = written {
                    debug!(shard, ?peer, %error, "write failed; closing connection");
                    break;
                }
            }
            // Wake the reader if it is blocked in a read: the connection is over.
            output.shutdown_both();
        })
        .detach()
    };
    let mut frames = FrameReader::new(context.config.max_request_bytes);
    let idle_max = Duration::from_millis(context.config.connection_idle_ms_max);
    loop {
        // Idle means nothing in flight and nothing read or written for `idle_max`: a
        // long-polling fetch is not idle. Checked once per `idle_max` at most.
        let idle = async {
            loop {
                let quiet_for = last_activity.get().elapsed();
                if in_flight.get() == 0 && quiet_for >= idle_max {
                    return;
                }
                glommio::timer::sleep(idle_max.saturating_sub(quiet_for).max(IDLE_CHECK_MIN)).await;
            }
        };
        let next =
            futures_lite::future::or(async { Some(frames.next_frame(&mut input).await) }, async {
                futures_lite::future::or(context.shutdown.wait(), idle).await;
                None
            })
            .await;
        last_activity.set(Instant::now());
        let frame = match next {
            None if context.shutdown.is_triggered() => break,
            None => {
                debug!(shard = context.shard_id, ?peer, "closing idle connection");
                break;
            }
            Some(Ok(Some(frame))) => frame,
            Some(Ok(None)) => break,
            Some(Err(ProtocolError::Io { .. })) => break,
            Some(Err(error)) => {
                warn!(shard = context.shard_id, ?peer, %error, "closing connection");
                break;
            }
        };
        let pending = match parse_request(frame.clone()) {
            Ok(request) if request.api_key == ApiKey::Produce => {
                // Staged here, before the next request is read, so that a partition's
                // batches are appended in the order this connection sent them, whatever
                // backpressure each one meets. Only the wait for durability runs as a task.
                let staged = AssertUnwindSafe(produce::stage(context, &request))
                    .catch_unwind()
                    .await
                    .unwrap_or_else(|_| Err(handler_panicked(request.api_key)));
                match staged {
                    Ok(staged) => Pending::Handler(glommio::spawn_local(async move {
                        AssertUnwindSafe(staged.respond())
                            .catch_unwind()
                            .await
                            .unwrap_or_else(|_| Err(handler_panicked(ApiKey::Produce)))
                    })),
                    Err(error) => {
                        warn!(shard = context.shard_id, ?peer, %error, "closing connection");
                        break;
                    }
                }
            }
            Ok(request) => {
                let context = context.clone();
                Pending::Handler(glommio::spawn_local(async move {
                    // A bug in a handler or in the codec must cost one connection, not the
                    // shard and every partition it owns.
                    let api = request.api_key;
                    AssertUnwindSafe(dispatch(&context, request, peer))
                        .catch_unwind()
                        .await
                        .unwrap_or_else(|_| Err(handler_panicked(api)))
                }))
            }
            Err(ProtocolError::UnsupportedVersion {
                api_key,
                api_version,
            }) if api_key == ApiKey::ApiVersions as i16 => {
                // KIP-511: answer at v0 with UNSUPPORTED_VERSION and our ranges, so the client
                // can retry at a version we know.
                let correlation_id = read_prefix(&frame).map_or(0, |prefix| prefix.correlation_id);
                debug!(
                    shard = context.shard_id,
                    ?peer,
                    api_version,
                    "ApiVersions at an unknown version"
                );
                match unsupported_api_versions(correlation_id) {
                    Ok(frame) => Pending::Ready(frame),
                    Err(error) => {
                        warn!(shard = context.shard_id, %error, "closing connection");
                        break;
                    }
                }
            }
            Err(error) => {
                // Kafka closes the connection on a request it cannot parse or does not support:
                // there is no response format to answer in.
                warn!(shard = context.shard_id, ?peer, %error, "closing connection");
                break;
            }
        };
        in_flight.set(in_flight.get() + 1);
        if sender.send(pending).await.is_err() {
            break;
        }
    }
    // Let the writer answer everything already read, then end.
    drop(sender);
    let _ = writer.await;
    let mut output = output;
    let _ = output.close().await;
}
