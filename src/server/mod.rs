//! The Kafka listener of a shard: accept loop, connections, dispatch, and one handler per API.
//!
//! | piece | file |
//! | --- | --- |
//! | accept loop, connection limit | `mod.rs` |
//! | one connection: frames in, responses out in order, bounded pipelining | `connection.rs` |
//! | request header -> handler | `dispatch.rs` |
//! | handlers, one per API | `handlers/<api>.rs` |

mod connection;
mod dispatch;
pub mod handlers;

use std::rc::Rc;

use glommio::net::TcpListener;
use tracing::{debug, warn};

use crate::shard::ShardContext;

/// Accepts connections until the shard stops. A connection above the shard's limit is closed
/// at once, with a log line.
pub async fn accept_loop(context: Rc<ShardContext>, listener: TcpListener) {
    loop {
        let accepted = futures_lite::future::or(async { Some(listener.accept().await) }, async {
            context.shutdown.wait().await;
            None
        })
        .await;
        let Some(accepted) = accepted else { return };
        let stream = match accepted {
            Ok(stream) => stream,
            Err(error) => {
                warn!(shard = context.shard_id, %error, "accept failed");
                // Out of descriptors or similar: back off instead of spinning on the error.
                glommio::timer::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        if !context.try_add_connection() {
            warn!(
                shard = context.shard_id,
                limit = context.config.connections_per_shard_max,
                peer = ?stream.peer_addr().ok(),
                "connection refused: the shard holds connections_per_shard_max connections"
            );
            continue;
        }
        debug!(shard = context.shard_id, peer = ?stream.peer_addr().ok(), "connection accepted");
        let context = context.clone();
        glommio::spawn_local(async move {
            connection::serve(&context, stream).await;
            context.remove_connection();
        })
        .detach();
    }
}
