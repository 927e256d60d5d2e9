//! Protocol upgrades (WebSocket and any other `Upgrade:` protocol) through the gateway.
//!
//! Why a module of its own: an upgraded connection leaves HTTP. The request that asks for it is
//! routed, limited and authenticated like any other, but `Connection: upgrade` and `Upgrade` are
//! hop-by-hop headers that the header rewrite removes, and once the upstream has answered
//! `101 Switching Protocols` the gateway no longer proxies requests: it copies bytes both ways
//! between the client's connection and the upstream's until either side closes. This module keeps
//! the upgrade headers through the rewrite and runs that tunnel.
//!
//! Only HTTP/1.1 upgrades are tunnelled (the WebSocket handshake of RFC 6455); an HTTP/2 client
//! gets the upstream's ordinary answer to its request. A tunnel is not an HTTP exchange any more:
//! the route's timeout covers the upstream's `101` only. A graceful shutdown drains open tunnels
//! like connections (`keel_http::ConnectionTasks`): they run on through the grace period, unless
//! either side closes first, and are closed when it is over.

use http::header::{self, HeaderMap, HeaderValue};
use http::request::Parts;
use http::{Response, StatusCode, Version};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tracing::Instrument;

use crate::{headers, metrics};

/// What a request that asks to switch protocols carries into the exchange: the protocol it asked
/// for and the handle on its connection once the `101` has been sent.
#[derive(Debug)]
pub(crate) struct ClientUpgrade {
    protocol: HeaderValue,
    connection: OnUpgrade,
    /// Where the tunnel runs: the server's tasks of this connection, drained at shutdown
    /// (`None` when served outside `keel_http::HttpServer`).
    tasks: Option<keel_http::ConnectionTasks>,
}

impl ClientUpgrade {
    /// The upgrade `parts` asks for, if it asks for one the gateway can tunnel: an HTTP/1.1
    /// request with `Upgrade` and a `Connection` header that names `upgrade`, on a connection
    /// that can be taken over. Takes the connection handle out of the request.
    pub(crate) fn take(parts: &mut Parts) -> Option<Self> {
        if parts.version != Version::HTTP_11 || !names_upgrade(&parts.headers) {
            return None;
        }
        let protocol = parts.headers.get(header::UPGRADE)?.clone();
        let connection = parts.extensions.remove::<OnUpgrade>()?;
        let tasks = parts.extensions.remove::<keel_http::ConnectionTasks>();
        Some(Self {
            protocol,
            connection,
            tasks,
        })
    }

    /// Puts the upgrade request headers back on the upstream request, after the header rewrite
    /// removed every hop-by-hop header.
    pub(crate) fn restore_request_headers(&self, headers: &mut HeaderMap) {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, self.protocol.clone());
    }

    /// Rewrites the upstream's answer to the upgrade request for the client, like any response
    /// (`headers::prepare_response`). When it is a `101`, also restores the upgrade headers on
    /// it and starts the tunnel, which begins once the client has the `101`; `service` labels
    /// the tunnel's metrics. Any other answer (the upstream refused the upgrade, e.g. with a 400
    /// or a 401) goes to the client as an ordinary response.
    pub(crate) fn complete<B>(self, mut response: Response<B>, service: &str) -> Response<B> {
        let protocol = response.headers().get(header::UPGRADE).cloned();
        headers::prepare_response(response.headers_mut());
        if response.status() != StatusCode::SWITCHING_PROTOCOLS {
            return response;
        }
        let protocol = protocol.unwrap_or(self.protocol);
        let upstream = hyper::upgrade::on(&mut response);
        let headers = response.headers_mut();
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, protocol);
        let span = tracing::debug_span!("gateway.tunnel", service);
        let tunnel = tunnel(self.connection, upstream, service.to_owned()).instrument(span);
        match self.tasks {
            Some(tasks) => tasks.spawn(tunnel),
            None => drop(tokio::spawn(tunnel)),
        }
        response
    }
}

/// Whether a `Connection` header of `headers` lists the `upgrade` token.
fn names_upgrade(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|token| token.trim().eq_ignore_ascii_case("upgrade"))
}

/// Copies bytes both ways between the client's upgraded connection and the upstream's until
/// either side closes or fails.
async fn tunnel(client: OnUpgrade, upstream: OnUpgrade, service: String) {
    let (client, upstream) = match tokio::try_join!(client, upstream) {
        Ok(both) => both,
        Err(error) => {
            tracing::debug!(%error, "the upgrade did not complete");
            metrics::tunnel_failed(&service);
            return;
        }
    };
    let _open = metrics::TunnelOpen::new(&service);
    let mut client = TokioIo::new(client);
    let mut upstream = TokioIo::new(upstream);
    match tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
        Ok((to_upstream, to_client)) => {
            tracing::debug!(to_upstream, to_client, "tunnel closed");
        }
        Err(error) => tracing::debug!(%error, "tunnel broken"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connection(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(
                header::CONNECTION,
                HeaderValue::from_str(value).unwrap_or_else(|e| panic!("{e}")),
            );
        }
        headers
    }

    #[test]
    fn the_connection_header_must_name_upgrade_among_its_tokens() {
        assert!(names_upgrade(&connection(&["keep-alive, Upgrade"])));
        assert!(names_upgrade(&connection(&["keep-alive", "upgrade"])));
        assert!(!names_upgrade(&connection(&["keep-alive"])));
        assert!(!names_upgrade(&connection(&["x-upgrade"])));
        assert!(!names_upgrade(&connection(&[])));
    }
}
