//! The client's address behind reverse proxies: from a trusted proxy, the rightmost address
//! in `X-Forwarded-For` (or RFC 7239 `Forwarded`) that is not itself a trusted proxy; from
//! anyone else, the TCP peer, whatever headers it sends. This address is the one the
//! throttle, the argon2 queue, the audit trail, the logs and `[proxy_auth]` see.

use crate::config::ClientAddressHeader;
use axum::http::HeaderMap;
use ipnet::IpNet;
use std::net::IpAddr;

/// Forwarding entries looked at, from the right, at most: past that the nearest one wins.
const MAX_HOPS: usize = 32;

/// Resolves the client of a request that came from `peer`. Pure: the configuration is given.
pub fn resolve(
    peer: IpAddr,
    headers: &HeaderMap,
    trusted: &[IpNet],
    header: ClientAddressHeader,
) -> IpAddr {
    // An IPv4 proxy reaching a dual-stack listener shows as ::ffff:a.b.c.d.
    let peer = peer.to_canonical();
    if trusted.is_empty() || !is_trusted(peer, trusted) {
        return peer;
    }
    let mut hop = peer;
    for entry in entries(headers, header).take(MAX_HOPS) {
        // An entry that is no address ("unknown", an obfuscated name) ends the walk: the
        // nearest proxy that named it is the best we know.
        let Some(addr) = entry else {
            return hop;
        };
        let addr = addr.to_canonical();
        if !is_trusted(addr, trusted) {
            return addr;
        }
        hop = addr;
    }
    hop
}

fn is_trusted(addr: IpAddr, trusted: &[IpNet]) -> bool {
    trusted.iter().any(|net| net.contains(&addr))
}

/// The forwarding entries of a request, rightmost (nearest) first; `None` for an entry that
/// is not an address. Several header lines count in order, as one list.
fn entries(
    headers: &HeaderMap,
    header: ClientAddressHeader,
) -> Box<dyn Iterator<Item = Option<IpAddr>> + '_> {
    let name = match header {
        ClientAddressHeader::XForwardedFor => "x-forwarded-for",
        ClientAddressHeader::Forwarded => "forwarded",
    };
    let lines: Vec<&str> = headers
        .get_all(name)
        .iter()
        // A line that is not text is not an address either: it ends the walk.
        .map(|v| v.to_str().unwrap_or("\u{0}"))
        .collect();
    Box::new(lines.into_iter().rev().flat_map(move |line| {
        line.rsplit(',').map(move |item| match header {
            ClientAddressHeader::XForwardedFor => parse_node(item.trim()),
            ClientAddressHeader::Forwarded => forwarded_for(item),
        })
    }))
}

/// The `for=` node of one `Forwarded` element (`for=192.0.2.1;proto=https`).
fn forwarded_for(element: &str) -> Option<IpAddr> {
    element.split(';').find_map(|pair| {
        let (k, v) = pair.trim().split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("for")
            .then(|| parse_node(v.trim().trim_matches('"')))
            .flatten()
    })
}

/// An address as proxies write it: `192.0.2.1`, `192.0.2.1:4711`, `2001:db8::1`,
/// `[2001:db8::1]` or `[2001:db8::1]:4711`.
fn parse_node(node: &str) -> Option<IpAddr> {
    if let Ok(ip) = node.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Some(rest) = node.strip_prefix('[') {
        let (inside, _) = rest.split_once(']')?;
        return inside.parse().ok();
    }
    let (host, port) = node.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    host.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|n| n.parse().unwrap()).collect()
    }

    fn headers(name: &'static str, lines: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for l in lines {
            h.append(name, HeaderValue::from_str(l).unwrap());
        }
        h
    }

    const XFF: ClientAddressHeader = ClientAddressHeader::XForwardedFor;
    const FWD: ClientAddressHeader = ClientAddressHeader::Forwarded;

    #[test]
    fn untrusted_peers_are_the_client_whatever_they_send() {
        let h = headers("x-forwarded-for", &["203.0.113.9"]);
        assert_eq!(
            resolve(ip("198.51.100.7"), &h, &nets(&["10.0.0.0/8"]), XFF),
            ip("198.51.100.7")
        );
        assert_eq!(
            resolve(ip("10.0.0.5"), &h, &[], XFF),
            ip("10.0.0.5"),
            "no trusted proxies: headers ignored"
        );
    }

    #[test]
    fn the_rightmost_untrusted_entry_is_the_client() {
        let trusted = nets(&["10.0.0.0/8"]);
        // The client forged a first entry; the proxy appended the real address.
        let h = headers("x-forwarded-for", &["1.2.3.4, 203.0.113.9"]);
        assert_eq!(
            resolve(ip("10.0.0.5"), &h, &trusted, XFF),
            ip("203.0.113.9")
        );
        // Two proxies: the balancer (10.0.0.5) and an inner proxy (10.1.1.1).
        let h = headers("x-forwarded-for", &["1.2.3.4", "203.0.113.9, 10.1.1.1"]);
        assert_eq!(
            resolve(ip("10.0.0.5"), &h, &trusted, XFF),
            ip("203.0.113.9")
        );
        // Only trusted hops: the farthest of them.
        let h = headers("x-forwarded-for", &["10.1.1.1"]);
        assert_eq!(resolve(ip("10.0.0.5"), &h, &trusted, XFF), ip("10.1.1.1"));
        // No header: the proxy itself.
        assert_eq!(
            resolve(ip("10.0.0.5"), &HeaderMap::new(), &trusted, XFF),
            ip("10.0.0.5")
        );
        // Garbage nearest: the proxy that wrote it.
        let h = headers("x-forwarded-for", &["203.0.113.9, unknown"]);
        assert_eq!(resolve(ip("10.0.0.5"), &h, &trusted, XFF), ip("10.0.0.5"));
    }

    #[test]
    fn forwarded_and_its_node_forms() {
        let trusted = nets(&["10.0.0.0/8", "2001:db8:ffff::/48"]);
        let h = headers(
            "forwarded",
            &[r#"for=1.2.3.4, for="[2001:db8::7]:4711";proto=https, for=10.1.1.1:80"#],
        );
        assert_eq!(
            resolve(ip("10.0.0.5"), &h, &trusted, FWD),
            ip("2001:db8::7")
        );
        // The other header is not read.
        assert_eq!(resolve(ip("10.0.0.5"), &h, &trusted, XFF), ip("10.0.0.5"));
        let h = headers("forwarded", &["for=_hidden, for=203.0.113.9:1"]);
        assert_eq!(
            resolve(ip("10.0.0.5"), &h, &trusted, FWD),
            ip("203.0.113.9")
        );
        assert_eq!(
            resolve(ip("::ffff:10.0.0.5"), &h, &trusted, FWD),
            ip("203.0.113.9"),
            "IPv4-mapped peer"
        );
    }

    #[test]
    fn node_forms() {
        assert_eq!(parse_node("192.0.2.1"), Some(ip("192.0.2.1")));
        assert_eq!(parse_node("192.0.2.1:80"), Some(ip("192.0.2.1")));
        assert_eq!(parse_node("2001:db8::1"), Some(ip("2001:db8::1")));
        assert_eq!(parse_node("[2001:db8::1]:80"), Some(ip("2001:db8::1")));
        assert_eq!(parse_node("unknown"), None);
        assert_eq!(parse_node(""), None);
    }
}
