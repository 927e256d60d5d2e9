//! Instances written in `registry.services`: the static backend's address syntax.
//!
//! An entry is one instance: one host and one or more named ports,
//!
//! ```text
//! entry := part ("," part)*
//! part  := [port-name "="] host ":" port
//! ```
//!
//! - `127.0.0.1:8081`: port `http` 8081 (a bare address is the REST port, the one the gateway
//!   routes to and health checks use);
//! - `http=10.0.0.5:8081,grpc=10.0.0.5:9081`: both ports of one instance; every part names the same
//!   host;
//! - `[::1]:8081`, `identity.internal:8081`: IPv6 in brackets, DNS names as they are.
//!
//! The instance's id is the first part's `host:port` (`10.0.0.5:8081`): deterministic, so every
//! process reading the same configuration agrees on it, and unchanged when entries are reordered.

use std::net::SocketAddr;

use crate::instance::{authority, host_problem};
use crate::{RegistryError, ServiceInstance};

/// Parses entry `index` of `service`'s list into an instance.
pub(crate) fn parse_entry(
    service: &str,
    index: usize,
    entry: &str,
) -> Result<ServiceInstance, RegistryError> {
    let invalid = |reason: String| RegistryError::InvalidAddress {
        service: service.to_owned(),
        index,
        entry: entry.to_owned(),
        reason,
    };
    let mut parts = entry.split(',').map(str::trim);
    let first = parts.next().unwrap_or_default();
    let (first_name, host, first_port) = parse_part(first).map_err(&invalid)?;
    let mut instance =
        ServiceInstance::new(service, authority(&host, first_port), host).with_port(first_name, first_port);
    for part in parts {
        let (name, host, port) = parse_part(part).map_err(&invalid)?;
        if host != instance.host {
            return Err(invalid(format!(
                "every part must name the same host, found `{}` and `{host}`",
                instance.host
            )));
        }
        if instance.ports.insert(name.clone(), port).is_some() {
            return Err(invalid(format!("port `{name}` is given twice")));
        }
    }
    match instance.problem() {
        Some(reason) => Err(invalid(reason)),
        None => Ok(instance),
    }
}

/// `[name=]host:port` → (name, host without brackets, port).
fn parse_part(part: &str) -> Result<(String, String, u16), String> {
    let (name, address) = match part.split_once('=') {
        Some((name, address)) => (name.trim(), address.trim()),
        None => (ServiceInstance::HTTP, part),
    };
    if name.is_empty() {
        return Err(format!("`{part}` has `=` but no port name before it"));
    }
    let (host, port) = split_host_port(address)?;
    Ok((name.to_owned(), host, port))
}

fn split_host_port(address: &str) -> Result<(String, u16), String> {
    const EXPECTED: &str = "expected host:port, e.g. 127.0.0.1:8081, [::1]:8081 or identity.internal:8081";
    if let Ok(socket) = address.parse::<SocketAddr>() {
        return match socket.port() {
            0 => Err("port must be between 1 and 65535".to_owned()),
            port => Ok((socket.ip().to_string(), port)),
        };
    }
    let Some((host, port)) = address.rsplit_once(':') else {
        return Err(format!("`{address}` has no port; {EXPECTED}"));
    };
    if host.contains(':') || host.starts_with('[') {
        return Err(format!(
            "`{address}` is not an address; IPv6 addresses go in brackets: [::1]:8081"
        ));
    }
    let port = match port.parse::<u16>() {
        Ok(0) | Err(_) => {
            return Err(format!("port `{port}` must be a number between 1 and 65535"));
        }
        Ok(port) => port,
    };
    if let Some(problem) = host_problem(host) {
        return Err(format!("{problem}; {EXPECTED}"));
    }
    Ok((host.to_owned(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(entry: &str) -> Result<ServiceInstance, RegistryError> {
        parse_entry("identity", 2, entry)
    }

    #[test]
    fn a_bare_address_is_the_http_port_and_gives_the_instance_its_id() -> Result<(), RegistryError> {
        let instance = parse(" 10.0.0.5:8081 ")?;
        assert_eq!(instance.service, "identity");
        assert_eq!(instance.id, "10.0.0.5:8081");
        assert_eq!(instance.host, "10.0.0.5");
        assert_eq!(
            instance.ports.into_iter().collect::<Vec<_>>(),
            [("http".to_owned(), 8081)]
        );
        assert_eq!(instance.version, None);
        assert_eq!(instance.health_endpoint, None);
        Ok(())
    }

    #[test]
    fn named_parts_give_one_instance_several_ports() -> Result<(), RegistryError> {
        let instance = parse("grpc=10.0.0.5:9081, http=10.0.0.5:8081")?;
        assert_eq!(instance.id, "10.0.0.5:9081");
        assert_eq!(instance.port("grpc"), Some(9081));
        assert_eq!(instance.port("http"), Some(8081));
        Ok(())
    }

    #[test]
    fn ipv6_and_dns_hosts_are_accepted() -> Result<(), RegistryError> {
        let v6 = parse("[::1]:8081")?;
        assert_eq!((v6.host.as_str(), v6.id.as_str()), ("::1", "[::1]:8081"));
        let named = parse("identity.keel.svc.cluster.local:8081")?;
        assert_eq!(
            named.endpoint("http").as_deref(),
            Some("identity.keel.svc.cluster.local:8081")
        );
        Ok(())
    }

    #[test]
    fn bad_entries_are_rejected_naming_the_service_the_entry_and_the_reason() {
        let cases = [
            ("localhost", "has no port"),
            ("", "has no port"),
            ("localhost:http", "must be a number between 1 and 65535"),
            ("localhost:70000", "must be a number between 1 and 65535"),
            ("127.0.0.1:0", "between 1 and 65535"),
            ("::1:8081", "IPv6 addresses go in brackets"),
            ("exa mple:80", "neither an IP address nor a DNS name"),
            ("=127.0.0.1:80", "no port name"),
            ("http=10.0.0.5:8081,grpc=10.0.0.6:9081", "same host"),
            ("10.0.0.5:8081,http=10.0.0.5:8082", "port `http` is given twice"),
            ("10.0.0.5:8081,", "has no port"),
        ];
        for (entry, reason) in cases {
            let message = match parse(entry) {
                Ok(instance) => panic!("{entry:?} was accepted as {instance:?}"),
                Err(error) => error.to_string(),
            };
            let prefix = format!("registry.services.identity[2]: invalid instance address `{entry}`: ");
            assert!(message.starts_with(&prefix), "{message}");
            assert!(message.contains(reason), "{entry:?}: {message}");
        }
    }
}
