//! The client's address: the connection's peer, or, when that peer is a proxy the operator
//! trusts (a load balancer in front of the gateway), the address that proxy forwarded.
//!
//! Why a module of its own: the client address keys the per-address rate limits and the
//! services' login throttle and audit records, so who may set it is a security rule. Behind a load
//! balancer every connection comes from the balancer, and all clients would share one budget;
//! trusting every `X-Forwarded-For` instead would let any client choose its own address and
//! escape its limits. The rule (as nginx's `real_ip_recursive` and Envoy's trusted hops): only
//! when the peer is in `gateway.trusted_proxies` is `X-Forwarded-For` read, from its right end
//! (the entry the trusted proxy appended) leftwards, skipping addresses that are trusted proxies
//! themselves; the first address that is not one is the client. An entry that is not an IP
//! address stops the walk: what lies left of it cannot be vouched for.

use std::cell::RefCell;
use std::net::IpAddr;
use std::str::FromStr;

use http::{HeaderMap, HeaderValue};
use ipnet::IpNet;

/// Where a request comes from, resolved once per request: what the rate limits count and what the
/// upstream is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Origin {
    /// The connection's peer, as accepted.
    pub(crate) peer: IpAddr,
    /// The client: the peer, or behind trusted proxies the address they forwarded.
    pub(crate) client: IpAddr,
    /// Whether the peer is a trusted proxy (its `X-Forwarded-Proto` and `-Host` are believed).
    pub(crate) via_trusted_proxy: bool,
}

/// The proxies whose `X-Forwarded-*` headers are believed (`gateway.trusted_proxies`).
#[derive(Debug, Clone, Default)]
pub(crate) struct TrustedProxies {
    networks: Vec<IpNet>,
}

impl TrustedProxies {
    /// Parses `entries`: networks in CIDR notation (`10.0.0.0/8`, `fd00::/8`) or single
    /// addresses. Each entry that is neither is a problem naming its index.
    pub(crate) fn parse(entries: &[String]) -> Result<Self, Vec<String>> {
        let mut networks = Vec::with_capacity(entries.len());
        let mut problems = Vec::new();
        for (index, entry) in entries.iter().enumerate() {
            let entry = entry.trim();
            let parsed = IpNet::from_str(entry)
                .ok()
                .or_else(|| IpAddr::from_str(entry).ok().map(IpNet::from));
            match parsed {
                Some(network) => networks.push(network),
                None => problems.push(format!(
                    "gateway.trusted_proxies[{index}] `{entry}` is neither an IP address nor a network in CIDR notation"
                )),
            }
        }
        match problems.is_empty() {
            true => Ok(Self { networks }),
            false => Err(problems),
        }
    }

    /// Whether `address` is a trusted proxy.
    pub(crate) fn trusts(&self, address: IpAddr) -> bool {
        let address = address.to_canonical();
        self.networks.iter().any(|network| network.contains(&address))
    }

    /// The origin of a request from `peer` carrying `headers`: the client is `peer` itself unless
    /// it is trusted, else the rightmost `X-Forwarded-For` address that is not a trusted proxy (the
    /// leftmost valid one when all are).
    pub(crate) fn resolve(&self, peer: IpAddr, headers: &HeaderMap) -> Origin {
        let canonical = peer.to_canonical();
        let via_trusted_proxy = self.trusts(canonical);
        let client = match via_trusted_proxy {
            true => self.forwarded_client(canonical, headers),
            false => canonical,
        };
        Origin {
            peer,
            client,
            via_trusted_proxy,
        }
    }

    /// The walk of [`TrustedProxies::resolve`] over `X-Forwarded-For`, from a trusted `peer`.
    fn forwarded_client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let mut client = peer;
        // Later headers were added later: walk them, and each one's entries, from the right.
        for value in headers.get_all("x-forwarded-for").iter().rev() {
            let Ok(value) = value.to_str() else {
                return client;
            };
            for entry in value.rsplit(',').map(str::trim) {
                let Ok(address) = IpAddr::from_str(entry) else {
                    return client;
                };
                let address = address.to_canonical();
                if !self.trusts(address) {
                    return address;
                }
                client = address;
            }
        }
        client
    }
}

thread_local! {
    /// The address [`with_ip_text`] wrote last on this thread, and its text as a header value.
    static LAST_IP: RefCell<Option<(IpAddr, HeaderValue)>> = const { RefCell::new(None) };
}

/// Calls `use_text` with `ip` as text (a header value: what `Display` writes), made without the
/// formatting machinery for IPv4 (a dotted quad, digit by digit) and remembered per thread for
/// the next address: it is needed several times per request (rate-limit key, `X-Forwarded-For`,
/// `X-Keel-Client-Ip`), and requests come in runs from one client, over kept-alive connections.
pub(crate) fn with_ip_text<R>(ip: IpAddr, use_text: impl FnOnce(&HeaderValue) -> R) -> R {
    LAST_IP.with_borrow_mut(|last| {
        if let Some((known, text)) = last.as_ref()
            && *known == ip
        {
            return use_text(text);
        }
        let text = ip_text(ip);
        let used = use_text(&text);
        *last = Some((ip, text));
        used
    })
}

/// `ip` as a header value (cloning one shares its bytes).
pub(crate) fn ip_header_value(ip: IpAddr) -> HeaderValue {
    with_ip_text(ip, HeaderValue::clone)
}

/// Appends `ip` as text to `out` ([`with_ip_text`]).
pub(crate) fn push_ip(out: &mut String, ip: IpAddr) {
    with_ip_text(ip, |text| out.push_str(text.to_str().unwrap_or_default()));
}

/// The text of `ip` as a header value of its own (kept per thread past any request: not cut from
/// `keel_http::shared_header_value`'s blocks, which it would hold; its clones share its bytes).
fn ip_text(ip: IpAddr) -> HeaderValue {
    let value = match ip {
        IpAddr::V4(v4) => {
            let mut text = [0_u8; 15];
            let mut len = 0;
            for (index, octet) in v4.octets().into_iter().enumerate() {
                let digits = [octet / 100, octet / 10 % 10, octet % 10];
                let skip = match octet {
                    100.. => 0,
                    10.. => 1,
                    _ => 2,
                };
                if index > 0 {
                    text[len] = b'.';
                    len += 1;
                }
                for digit in &digits[skip..] {
                    text[len] = b'0' + digit;
                    len += 1;
                }
            }
            HeaderValue::from_bytes(&text[..len])
        }
        IpAddr::V6(v6) => HeaderValue::from_str(&v6.to_string()),
    };
    // An address's text is always a valid header value.
    value.unwrap_or_else(|_| HeaderValue::from_static(""))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn trusted(entries: &[&str]) -> TrustedProxies {
        let entries: Vec<String> = entries.iter().map(|entry| (*entry).to_owned()).collect();
        TrustedProxies::parse(&entries).unwrap_or_default()
    }

    fn forwarded(values: &[&'static str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append("x-forwarded-for", HeaderValue::from_static(value));
        }
        headers
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap_or(IpAddr::from([0, 0, 0, 0]))
    }

    #[test]
    fn entries_are_networks_or_addresses_and_bad_ones_are_named() {
        let parsed = trusted(&["10.0.0.0/8", "192.0.2.7", "fd00::/8"]);
        assert!(parsed.trusts(ip("10.1.2.3")));
        assert!(parsed.trusts(ip("192.0.2.7")));
        assert!(!parsed.trusts(ip("192.0.2.8")));
        assert!(parsed.trusts(ip("fd12::1")));
        assert!(
            parsed.trusts(ip("::ffff:10.9.9.9")),
            "IPv4-mapped peers count as IPv4"
        );

        let entries = vec![
            "10.0.0.0/8".to_owned(),
            "proxy.internal".to_owned(),
            "10.0.0.0/33".to_owned(),
        ];
        let problems = TrustedProxies::parse(&entries).err().unwrap_or_default();
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(
            problems[0].contains("gateway.trusted_proxies[1] `proxy.internal`"),
            "{problems:?}"
        );
        assert!(problems[1].contains("gateway.trusted_proxies[2]"), "{problems:?}");
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_forwards() {
        let none = TrustedProxies::default();
        let headers = forwarded(&["203.0.113.9"]);
        assert_eq!(
            none.resolve(ip("198.51.100.4"), &headers).client,
            ip("198.51.100.4")
        );
        let some = trusted(&["10.0.0.0/8"]);
        assert_eq!(
            some.resolve(ip("198.51.100.4"), &headers).client,
            ip("198.51.100.4")
        );
    }

    #[test]
    fn behind_trusted_proxies_the_rightmost_untrusted_address_is_the_client() {
        let proxies = trusted(&["10.0.0.0/8"]);
        let balancer = ip("10.0.0.2");
        // The client claims 1.2.3.4; the balancer appended what it saw, 203.0.113.9.
        let headers = forwarded(&["1.2.3.4, 203.0.113.9"]);
        assert_eq!(proxies.resolve(balancer, &headers).client, ip("203.0.113.9"));
        // Two trusted hops, in two headers.
        let headers = forwarded(&["1.2.3.4, 203.0.113.9", "10.0.0.7"]);
        assert_eq!(proxies.resolve(balancer, &headers).client, ip("203.0.113.9"));
        // Nothing forwarded: the balancer is all there is.
        assert_eq!(proxies.resolve(balancer, &HeaderMap::new()).client, balancer);
        // Only trusted hops: the leftmost.
        let headers = forwarded(&["10.0.0.9, 10.0.0.8"]);
        assert_eq!(proxies.resolve(balancer, &headers).client, ip("10.0.0.9"));
        // Garbage stops the walk at the last address vouched for.
        let headers = forwarded(&["203.0.113.9, not-an-ip, 10.0.0.8"]);
        assert_eq!(proxies.resolve(balancer, &headers).client, ip("10.0.0.8"));
    }

    #[test]
    fn addresses_are_written_as_display_writes_them() {
        for text in [
            "127.0.0.1",
            "10.0.255.7",
            "0.0.0.0",
            "255.255.255.255",
            "100.99.10.9",
            "1.20.199.250",
            "::1",
            "2001:db8::8a2e:370:7334",
            "::ffff:192.0.2.1",
        ] {
            let ip: IpAddr = text.parse().unwrap_or_else(|e| panic!("{text}: {e}"));
            // Twice in a row (the remembered text), then after another address.
            for other in [ip, ip, IpAddr::from([9, 9, 9, 9]), ip] {
                let mut out = String::from("x:");
                push_ip(&mut out, other);
                assert_eq!(out, format!("x:{other}"));
                assert_eq!(ip_header_value(other), other.to_string().as_str());
            }
        }
    }
}
