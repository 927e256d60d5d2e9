//! Who made a REST request, for the audit records of the changes it causes.
//!
//! Why this module exists: every write is audited with the acting user, the client's address and
//! its user agent. Services are reached only through the gateway, which appends the address it saw
//! to `X-Forwarded-For`; the last entry of that header is therefore the one hop we trust (earlier
//! entries are whatever the client claimed). Without the header, the connection's peer address is
//! used when the server recorded it.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts};
use http::request::Parts;
use http::{HeaderMap, header};
use keel_authn::Principal;
use keel_clients::Origin;

/// The client's address and user agent.
#[derive(Debug, Clone, Default)]
pub(crate) struct ClientInfo {
    ip: Option<String>,
    user_agent: Option<String>,
}

impl ClientInfo {
    /// The origin of a change made by `principal` from this client.
    pub(crate) fn origin(self, principal: &Principal) -> Origin {
        Origin {
            actor_id: Some(principal.user_id),
            ip: self.ip,
            user_agent: self.user_agent,
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for ClientInfo {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let ip = forwarded_for(&parts.headers).or_else(|| {
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|ConnectInfo(addr)| addr.ip().to_string())
        });
        let user_agent = parts
            .headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.chars().take(512).collect());
        Ok(Self { ip, user_agent })
    }
}

/// The last address of the last `X-Forwarded-For` header.
fn forwarded_for(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all("x-forwarded-for")
        .iter()
        .next_back()
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.rsplit(',').next())
        .map(str::trim)
        .filter(|ip| ip.parse::<std::net::IpAddr>().is_ok())
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn the_hop_the_gateway_appended_is_trusted_not_what_the_client_claimed() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            HeaderValue::from_static("10.9.9.9, 203.0.113.7"),
        );
        assert_eq!(forwarded_for(&headers).as_deref(), Some("203.0.113.7"));
        headers.insert("x-forwarded-for", HeaderValue::from_static("not-an-ip"));
        assert_eq!(forwarded_for(&headers), None);
    }
}
