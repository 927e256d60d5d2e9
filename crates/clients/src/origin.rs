//! Who sent a REST request, for the [`Origin`] of the calls and audit records it causes.
//!
//! Why one extractor for every service: the rule for the client's address is a security rule.
//! Services are reached only through the gateway, which tells them the client's address in
//! `X-Keel-Client-Ip` (an internal header: one a client sends is dropped at the gateway; behind a
//! trusted load balancer it is the address the balancer forwarded, see docs/gateway.md). Without it
//! (a request that did not come through a gateway that sets it), the last entry of
//! `X-Forwarded-For` is used, the one a proxy appended (earlier ones are whatever the client
//! claimed); without either, the connection's peer address.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use http::request::Parts;
use http::{HeaderMap, header};
use uuid::Uuid;

use crate::Origin;

/// Longest user agent kept (characters).
const MAX_USER_AGENT: usize = 512;

/// The client of a request: its address and user agent, no actor yet. Never rejects.
#[derive(Debug, Clone, Default)]
pub struct ClientOrigin(pub Origin);

impl ClientOrigin {
    /// The origin of a change made by `actor` from this client.
    pub fn acting(self, actor: Uuid) -> Origin {
        Origin {
            actor_id: Some(actor),
            ..self.0
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for ClientOrigin {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(address)| address.ip());
        Ok(Self(Origin {
            actor_id: None,
            ip: resolved_client(&parts.headers)
                .or_else(|| forwarded_for(&parts.headers))
                .or(peer)
                .map(|ip| ip.to_string()),
            user_agent: user_agent(&parts.headers),
        }))
    }
}

/// The gateway's `X-Keel-Client-Ip`, when it is an IP address.
fn resolved_client(headers: &HeaderMap) -> Option<IpAddr> {
    headers
        .get("x-keel-client-ip")?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// The last hop of the last `X-Forwarded-For` header, when it is an IP address.
fn forwarded_for(headers: &HeaderMap) -> Option<IpAddr> {
    let value = headers
        .get_all("x-forwarded-for")
        .iter()
        .next_back()?
        .to_str()
        .ok()?;
    value.rsplit(',').next()?.trim().parse().ok()
}

fn user_agent(headers: &HeaderMap) -> Option<String> {
    let agent = headers.get(header::USER_AGENT)?.to_str().ok()?.trim();
    (!agent.is_empty()).then(|| agent.chars().take(MAX_USER_AGENT).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn the_hop_the_gateway_appended_wins_and_garbage_is_ignored() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            HeaderValue::from_static(" 198.51.100.1 (spoofed by the client), 203.0.113.7 "),
        );
        assert_eq!(forwarded_for(&headers), Some("203.0.113.7".parse().expect("ip")));
        headers.insert("x-forwarded-for", HeaderValue::from_static("10.0.0.1, not-an-ip"));
        assert_eq!(forwarded_for(&headers), None);
    }

    #[tokio::test]
    async fn the_gateways_resolved_client_wins_over_forwarded_for_and_the_peer() {
        let request = http::Request::builder()
            .header("x-keel-client-ip", "203.0.113.50")
            .header("x-forwarded-for", "203.0.113.50, 10.0.0.2")
            .body(())
            .expect("request");
        let (mut parts, ()) = request.into_parts();
        parts
            .extensions
            .insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 40_000))));
        let ClientOrigin(origin) = ClientOrigin::from_request_parts(&mut parts, &())
            .await
            .unwrap_or_default();
        assert_eq!(origin.ip.as_deref(), Some("203.0.113.50"));

        parts.headers.remove("x-keel-client-ip");
        let ClientOrigin(origin) = ClientOrigin::from_request_parts(&mut parts, &())
            .await
            .unwrap_or_default();
        assert_eq!(origin.ip.as_deref(), Some("10.0.0.2"));

        parts.headers.remove("x-forwarded-for");
        let ClientOrigin(origin) = ClientOrigin::from_request_parts(&mut parts, &())
            .await
            .unwrap_or_default();
        assert_eq!(origin.ip.as_deref(), Some("127.0.0.1"));
    }

    #[test]
    fn long_user_agents_are_cut_and_empty_ones_dropped() {
        let mut headers = HeaderMap::new();
        let long = "a".repeat(2000);
        headers.insert(header::USER_AGENT, HeaderValue::from_str(&long).expect("ascii"));
        assert_eq!(user_agent(&headers).map(|a| a.len()), Some(MAX_USER_AGENT));
        headers.insert(header::USER_AGENT, HeaderValue::from_static("  "));
        assert_eq!(user_agent(&headers), None);
    }
}
