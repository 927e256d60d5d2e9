//! Who sent a request, for audit records: the client's address and user agent.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use http::request::Parts;
use http::{HeaderMap, header};
use keel_clients::Origin;
use uuid::Uuid;

/// Longest user agent kept in an audit record.
const MAX_USER_AGENT: usize = 512;

/// The request's client: the last address of `X-Forwarded-For` (the one the gateway, the only way
/// in from outside, appended; earlier entries are whatever the client sent and cannot be trusted),
/// else the peer address; and the `User-Agent`. Never rejects.
#[derive(Debug, Clone, Default)]
pub(crate) struct ClientOrigin(pub(crate) Origin);

impl ClientOrigin {
    /// The origin with the authenticated user as actor.
    pub(crate) fn acting(self, actor: Uuid) -> Origin {
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
            ip: forwarded_for(&parts.headers).or(peer).map(|ip| ip.to_string()),
            user_agent: user_agent(&parts.headers),
        }))
    }
}

/// The last hop of `X-Forwarded-For`, when it is an IP address.
fn forwarded_for(headers: &HeaderMap) -> Option<IpAddr> {
    let value = headers.get("x-forwarded-for")?.to_str().ok()?;
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
