//! A TCP proxy that can cut a real server off and bring it back, to test outages without stopping
//! the shared server every other test uses.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::copy_bidirectional;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::{CancellationToken, DropGuard};

/// Forwards connections from a local port to `upstream` while up; while down, it closes every
/// connection it had and refuses new ones (accepts and drops them at once).
#[derive(Debug, Clone)]
pub struct FaultProxy {
    address: SocketAddr,
    state: Arc<Mutex<ProxyState>>,
    /// Cancels the accept loop when the last clone of the proxy is dropped.
    _stop: Arc<DropGuard>,
}

#[derive(Debug)]
struct ProxyState {
    up: bool,
    connections: CancellationToken,
}

impl FaultProxy {
    /// Starts a proxy to `upstream` on a free loopback port, up.
    pub async fn start(upstream: SocketAddr) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        let state = Arc::new(Mutex::new(ProxyState {
            up: true,
            connections: CancellationToken::new(),
        }));
        let stop = CancellationToken::new();
        tokio::spawn(accept_loop(listener, upstream, state.clone(), stop.clone()));
        Ok(Self {
            address,
            state,
            _stop: Arc::new(stop.drop_guard()),
        })
    }

    /// The proxy's own address, to give to the client under test.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Cuts every open connection and refuses new ones.
    pub fn go_down(&self) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.up = false;
        state.connections.cancel();
    }

    /// Forwards again.
    pub fn come_back(&self) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.up = true;
        state.connections = CancellationToken::new();
    }
}

async fn accept_loop(
    listener: TcpListener,
    upstream: SocketAddr,
    state: Arc<Mutex<ProxyState>>,
    stop: CancellationToken,
) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = stop.cancelled() => return,
        };
        let Ok((client, _)) = accepted else { continue };
        let (up, cut) = {
            let state = state.lock().unwrap_or_else(|p| p.into_inner());
            (state.up, state.connections.clone())
        };
        if !up {
            drop(client);
            continue;
        }
        tokio::spawn(forward(client, upstream, cut));
    }
}

async fn forward(mut client: TcpStream, upstream: SocketAddr, cut: CancellationToken) {
    let Ok(mut server) = TcpStream::connect(upstream).await else {
        return;
    };
    tokio::select! {
        _ = copy_bidirectional(&mut client, &mut server) => {}
        () = cut.cancelled() => {}
    }
}
