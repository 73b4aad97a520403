//! Binding the listeners before the shard threads start: the shared bootstrap port (one
//! SO_REUSEPORT socket per shard) and each shard's own port.

use std::net::{SocketAddr, TcpListener as StdTcpListener};

use socket2::{Domain, Protocol, Socket, Type};

use super::{BrokerError, EPHEMERAL_PORT_ATTEMPTS, LISTEN_BACKLOG};

/// The listening sockets of one shard, bound before its thread starts.
pub(super) struct ShardSockets {
    pub(super) bootstrap: StdTcpListener,
    pub(super) own: StdTcpListener,
}

/// A listening socket. Only the bootstrap port is shared (`shared`): every shard binds it and
/// the kernel spreads new connections across them. A shard's own port is exclusive, so a
/// second broker started on the same ports fails to bind instead of silently sharing them.
fn listener_socket(address: SocketAddr, shared: bool) -> Result<StdTcpListener, std::io::Error> {
    let socket = Socket::new(
        Domain::for_address(address),
        Type::STREAM,
        Some(Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(shared)?;
    socket.set_tcp_nodelay(true)?;
    socket.bind(&address.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    Ok(socket.into())
}

/// Binds the bootstrap port once per shard, and each shard's own port after it. With port 0,
/// looks for a free port whose next `shard_count` ports are free too.
pub(super) fn bind_all(
    listen: SocketAddr,
    shard_count: usize,
) -> Result<(SocketAddr, Vec<ShardSockets>), BrokerError> {
    let attempts = if listen.port() == 0 {
        EPHEMERAL_PORT_ATTEMPTS
    } else {
        1
    };
    let mut last_error = None;
    for _ in 0..attempts {
        match try_bind_all(listen, shard_count) {
            Ok(bound) => return Ok(bound),
            Err(error) => last_error = Some(error),
        }
    }
    Err(last_error.unwrap_or_else(|| BrokerError::Bind {
        address: listen,
        source: std::io::Error::other("no free ports"),
    }))
}

fn try_bind_all(
    listen: SocketAddr,
    shard_count: usize,
) -> Result<(SocketAddr, Vec<ShardSockets>), BrokerError> {
    let bind = |address: SocketAddr, shared: bool| {
        listener_socket(address, shared).map_err(|source| BrokerError::Bind { address, source })
    };
    let first = bind(listen, true)?;
    let bootstrap = first.local_addr().map_err(|source| BrokerError::Bind {
        address: listen,
        source,
    })?;
    let mut bootstraps = vec![first];
    for _ in 1..shard_count {
        bootstraps.push(bind(bootstrap, true)?);
    }
    let mut sockets = Vec::with_capacity(shard_count);
    for (shard, bootstrap_socket) in bootstraps.into_iter().enumerate() {
        let own_port = bootstrap
            .port()
            .checked_add(1 + shard as u16)
            .ok_or_else(|| BrokerError::Bind {
                address: bootstrap,
                source: std::io::Error::other("no port numbers left for the shards"),
            })?;
        let own = bind(SocketAddr::new(bootstrap.ip(), own_port), false)?;
        sockets.push(ShardSockets {
            bootstrap: bootstrap_socket,
            own,
        });
    }
    Ok((bootstrap, sockets))
}
