//! A TCP proxy in front of a server (RabbitMQ, or a PostgreSQL primary for its standby)
//! that the test can cut like a network partition.
//!
//! [`Proxy::cut`] blackholes every connection: bytes in both directions are read and
//! dropped, nothing is closed, and new connections are accepted but not forwarded. Neither
//! side sees an error or an end of stream, exactly as when a switch between them dies, so
//! only AMQP heartbeats can tell the worker its broker is gone. [`Proxy::restore`] forwards
//! again; connections that lived through the cut are then closed, as the broker forgot them
//! meanwhile (it closed its side on its own heartbeat timeout).

use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub struct Proxy {
    pub addr: SocketAddr,
    cut: watch::Sender<bool>,
    accept: JoinHandle<()>,
}

impl Proxy {
    /// Listens on a free loopback port and forwards every connection to `upstream`.
    pub async fn start(upstream: SocketAddr) -> Self {
        let port = crate::support::ports::free_port();
        let listener = TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("bind the proxy port");
        let addr = listener.local_addr().unwrap();
        let (cut, _) = watch::channel(false);
        let state = cut.subscribe();
        let accept = tokio::spawn(async move {
            // Dropping the set (when the accept task is aborted) aborts every connection.
            let mut connections = tokio::task::JoinSet::new();
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    continue;
                };
                connections.spawn(relay(client, upstream, state.clone()));
                while connections.try_join_next().is_some() {}
            }
        });
        Self { addr, cut, accept }
    }

    /// Starts blackholing all traffic.
    pub fn cut(&self) {
        self.cut.send_replace(true);
    }

    /// Forwards again; connections that lived through the cut are closed.
    pub fn restore(&self) {
        self.cut.send_replace(false);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

async fn relay(client: TcpStream, upstream: SocketAddr, mut state: watch::Receiver<bool>) {
    // A connection opened during a cut hangs, as a SYN into a partition would.
    if state.wait_for(|cut| !cut).await.is_err() {
        return;
    }
    let Ok(server) = TcpStream::connect(upstream).await else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    tokio::select! {
        _ = pump(client_read, server_write, state.clone()) => {}
        _ = pump(server_read, client_write, state.clone()) => {}
        _ = lived_through_a_cut(state) => {}
    }
    // Both sockets close here.
}

/// Copies bytes one way; drops them while cut. An end of stream or an error seen during a
/// cut is held back until the cut ends, so that nothing reaches the other side meanwhile.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut state: watch::Receiver<bool>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => 0,
            Ok(n) => n,
        };
        if *state.borrow() || n == 0 {
            if n == 0 {
                let _ = state.wait_for(|cut| !cut).await;
                return;
            }
            continue;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            let _ = state.wait_for(|cut| !cut).await;
            return;
        }
    }
}

/// Resolves when a cut that this connection was open during ends.
async fn lived_through_a_cut(mut state: watch::Receiver<bool>) {
    if state.wait_for(|cut| *cut).await.is_err() {
        std::future::pending::<()>().await;
    }
    if state.wait_for(|cut| !cut).await.is_err() {
        std::future::pending::<()>().await;
    }
}
