//! The client's address as girok counts it (per-IP login limits, the address a session
//! records): the TCP peer, or, when the peer is one of `server.trusted_proxies`, the address
//! that proxy saw, from `X-Forwarded-For`: the rightmost entry that is not itself a trusted
//! proxy (entries further left were written by the client and prove nothing). Without trusted
//! proxies the header is ignored, so a client cannot pick its own address.

use anyhow::Context;
use axum::http::HeaderMap;
use ipnet::IpNet;
use std::net::{IpAddr, SocketAddr};

/// The proxies whose `X-Forwarded-For` girok believes.
#[derive(Clone, Debug, Default)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// Reads `server.trusted_proxies`: addresses (`10.0.0.5`) or networks (`10.0.0.0/8`).
    pub fn parse(list: &[String]) -> anyhow::Result<Self> {
        list.iter()
            .map(|entry| {
                let entry = entry.trim();
                entry
                    .parse::<IpNet>()
                    .or_else(|_| entry.parse::<IpAddr>().map(IpNet::from))
                    .with_context(|| {
                        format!("server.trusted_proxies: {entry:?} is not an address or network")
                    })
            })
            .collect::<anyhow::Result<_>>()
            .map(Self)
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// The client's address of a request that came from `peer` with `headers`.
    pub fn client_ip(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        // An IPv4 client of a dual-stack listener arrives as `::ffff:a.b.c.d`.
        let peer = peer.to_canonical();
        if !self.trusts(peer) {
            return peer;
        }
        // Right to left: the proxies' own entries come last.
        let hops = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .rev();
        let mut client = peer;
        for hop in hops {
            let Some(ip) = parse_hop(hop) else {
                break; // garbage: the last address we could trust stands
            };
            client = ip;
            if !self.trusts(ip) {
                break;
            }
        }
        client
    }
}

/// One `X-Forwarded-For` entry: an address, perhaps with a port.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    hop.parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<SocketAddr>().ok().map(|addr| addr.ip()))
        .map(|ip| ip.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append("x-forwarded-for", value.parse().unwrap());
        }
        headers
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn only_trusted_proxies_are_believed() {
        let proxies = TrustedProxies::parse(&["127.0.0.1".into(), "10.0.0.0/8".into()]).unwrap();
        let forwarded = headers(&["198.51.100.7, 203.0.113.9", "10.1.2.3"]);
        // From the proxy: the rightmost address that is not a proxy.
        assert_eq!(
            proxies.client_ip(ip("127.0.0.1"), &forwarded),
            ip("203.0.113.9")
        );
        // From anyone else: the header is ignored.
        assert_eq!(
            proxies.client_ip(ip("192.0.2.1"), &forwarded),
            ip("192.0.2.1")
        );
        let none = TrustedProxies::default();
        assert_eq!(none.client_ip(ip("127.0.0.1"), &forwarded), ip("127.0.0.1"));
    }

    #[test]
    fn garbage_and_ports_and_missing_headers() {
        let proxies = TrustedProxies::parse(&["127.0.0.1".into()]).unwrap();
        let peer = ip("127.0.0.1");
        assert_eq!(proxies.client_ip(peer, &HeaderMap::new()), peer);
        assert_eq!(
            proxies.client_ip(peer, &headers(&["198.51.100.7:5555"])),
            ip("198.51.100.7")
        );
        assert_eq!(
            proxies.client_ip(peer, &headers(&["198.51.100.7, nonsense"])),
            peer
        );
        assert_eq!(
            proxies.client_ip(peer, &headers(&["[2001:db8::1]:443"])),
            ip("2001:db8::1")
        );
        assert!(TrustedProxies::parse(&["not an ip".into()]).is_err());
    }
}
