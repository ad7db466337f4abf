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
        if !k.trim().eq_ignore_ascii_case("for") {
            return None;
        }
        // A quoted value has exactly one quote at each end.
        let v = v.trim();
        match v.strip_prefix('"') {
            Some(quoted) => parse_node(quoted.strip_suffix('"')?),
            None => parse_node(v),
        }
    })
}

/// An address as proxies write it: `192.0.2.1`, `192.0.2.1:4711`, `2001:db8::1`,
/// `[2001:db8::1]` or `[2001:db8::1]:4711`.
fn parse_node(node: &str) -> Option<IpAddr> {
    if let Ok(ip) = node.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Some(rest) = node.strip_prefix('[') {
        let (inside, after) = rest.split_once(']')?;
        // Nothing but a port may follow the address.
        if !after.is_empty() {
            after.strip_prefix(':')?.parse::<u16>().ok()?;
        }
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

#[cfg(test)]
mod proptests {
    use super::*;
    use axum::http::HeaderValue;
    use proptest::prelude::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    const HEADERS: [ClientAddressHeader; 2] = [
        ClientAddressHeader::XForwardedFor,
        ClientAddressHeader::Forwarded,
    ];

    fn header_name(h: ClientAddressHeader) -> &'static str {
        match h {
            ClientAddressHeader::XForwardedFor => "x-forwarded-for",
            ClientAddressHeader::Forwarded => "forwarded",
        }
    }

    /// Addresses from a few small pools, so trusted networks and header entries meet often.
    fn addr() -> impl Strategy<Value = IpAddr> {
        prop_oneof![
            (0u8..4, 0u8..4).prop_map(|(a, b)| IpAddr::V4(Ipv4Addr::new(10, 0, a, b))),
            (0u8..4).prop_map(|b| IpAddr::V4(Ipv4Addr::new(203, 0, 113, b))),
            (0u16..4).prop_map(|b| IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, b))),
            // IPv4-mapped: the same host as 10.0.a.b.
            (0u8..4, 0u8..4)
                .prop_map(|(a, b)| IpAddr::V6(Ipv4Addr::new(10, 0, a, b).to_ipv6_mapped())),
            any::<IpAddr>(),
        ]
    }

    fn trusted() -> impl Strategy<Value = Vec<IpNet>> {
        proptest::collection::vec(
            prop_oneof![
                Just("10.0.0.0/8"),
                Just("10.0.1.0/24"),
                Just("10.0.0.1/32"),
                Just("2001:db8::/126"),
                Just("2001:db8::2/128"),
                Just("203.0.113.0/30"),
                Just("::/0"),
                Just("0.0.0.0/0"),
            ]
            .prop_map(|n| n.parse::<IpNet>().unwrap()),
            0..3,
        )
    }

    /// One address written the ways proxies write it.
    fn node(a: IpAddr, form: u8, port: u16) -> String {
        match (a, form % 4) {
            (IpAddr::V4(v4), 1) => format!("{v4}:{port}"),
            (IpAddr::V6(v6), 1) => format!("[{v6}]:{port}"),
            (IpAddr::V6(v6), 2) => format!("[{v6}]"),
            (a, 3) => format!("{a:?}").to_uppercase(),
            (a, _) => a.to_string(),
        }
    }

    /// One forwarding entry: an address (recorded in `used`) or something that is none.
    #[derive(Debug, Clone)]
    enum Entry {
        Addr(IpAddr, u8, u16),
        Junk(String),
    }

    fn entry() -> impl Strategy<Value = Entry> {
        prop_oneof![
            4 => (addr(), any::<u8>(), any::<u16>()).prop_map(|(a, f, p)| Entry::Addr(a, f, p)),
            // None of these is an address in any node form.
            1 => prop_oneof![
                Just("unknown".to_string()),
                Just("_hidden".to_string()),
                Just(String::new()),
                Just("192.0.2.1:99999".to_string()),
                "x[0-9a-f:.]{0,10}",
                "[0-9]{1,3}\\.[0-9]{1,3}(:[0-9]{1,2})?",
                "\\[[0-9a-f:]{0,8}",
            ]
            .prop_map(Entry::Junk),
        ]
    }

    fn write(e: &Entry, header: ClientAddressHeader) -> String {
        let text = match e {
            Entry::Addr(a, form, port) => node(*a, *form, *port),
            Entry::Junk(j) => j.clone(),
        };
        match header {
            ClientAddressHeader::XForwardedFor => format!(" {text} "),
            ClientAddressHeader::Forwarded => match e {
                Entry::Addr(IpAddr::V6(_), _, _) => format!("for=\"{text}\";proto=https"),
                _ => format!("proto=http; For={text}"),
            },
        }
    }

    fn lines_of(entries: &[Vec<Entry>], header: ClientAddressHeader) -> Vec<String> {
        entries
            .iter()
            .map(|line| {
                line.iter()
                    .map(|e| write(e, header))
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .collect()
    }

    fn header_map(name: &'static str, lines: &[String]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for l in lines {
            if let Ok(v) = HeaderValue::from_str(l) {
                h.append(name, v);
            }
        }
        h
    }

    /// Every address that appears in `text`: runs of address characters, read as an
    /// address, or as an IPv4 address with a port. Independent of the parser under test.
    fn appearing(text: &str) -> Vec<IpAddr> {
        text.split(|c: char| !(c.is_ascii_hexdigit() || c == ':' || c == '.'))
            .flat_map(|run| {
                let host = run.rsplit_once(':').map(|(h, _)| h);
                [
                    run.parse::<IpAddr>().ok(),
                    host.and_then(|h| h.parse().ok()),
                ]
            })
            .flatten()
            .map(|a: IpAddr| a.to_canonical())
            .collect()
    }

    /// Found by `node_forms_round_trip_and_leftovers_are_refused`: text after `]` was
    /// ignored, and any number of quotes was stripped from either end of a `for=` value.
    #[test]
    fn leftovers_after_a_node_are_refused() {
        for node in [
            "[2001:db8::1]x",
            "[2001:db8::1]:",
            "[2001:db8::1]:99999",
            "[2001:db8::1]:80x",
        ] {
            assert_eq!(parse_node(node), None, "{node}");
        }
        assert_eq!(
            parse_node("[2001:db8::1]:80"),
            Some("2001:db8::1".parse().unwrap())
        );
        for element in [
            r#"for="192.0.2.1"#,
            r#"for=192.0.2.1""#,
            r#"for=""192.0.2.1"""#,
            r#"for=""#,
        ] {
            assert_eq!(forwarded_for(element), None, "{element}");
        }
        assert_eq!(
            forwarded_for(r#"for="192.0.2.1:80""#),
            Some("192.0.2.1".parse().unwrap())
        );
    }

    proptest! {
        // Moderate counts; shrinking is bounded so that a failure reports in seconds.
        #![proptest_config(ProptestConfig {
            cases: 512,
            max_shrink_iters: 4096,
            ..ProptestConfig::default()
        })]

        /// Arbitrary header text (several lines, both headers) never panics; without trusted
        /// proxies, or from an untrusted peer, the answer is the peer; otherwise the peer
        /// or an address that appears in the header that was read.
        #[test]
        fn arbitrary_header_text(
            peer in addr(),
            trusted in trusted(),
            lines in proptest::collection::vec(
                prop_oneof!["[ -~]{0,40}", "[0-9a-fA-F:.,;=\"\\[\\] ]{0,40}", ".{0,20}"],
                0..4,
            ),
            raw in proptest::collection::vec(any::<u8>(), 0..24),
        ) {
            for header in HEADERS {
                let name = header_name(header);
                let mut h = header_map(name, &lines);
                // Header bytes that are not text (obs-text) are allowed on the wire too.
                if let Ok(v) = HeaderValue::from_bytes(&raw) {
                    h.append(name, v);
                }
                let got = resolve(peer, &h, &trusted, header);
                let canonical_peer = peer.to_canonical();
                if trusted.is_empty() {
                    prop_assert_eq!(got, canonical_peer);
                }
                if !trusted.iter().any(|n| n.contains(&canonical_peer)) {
                    prop_assert_eq!(got, canonical_peer);
                }
                let text: String = h
                    .get_all(name)
                    .iter()
                    .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                    .collect::<Vec<_>>()
                    .join("\n");
                prop_assert!(
                    got == canonical_peer || appearing(&text).contains(&got),
                    "{} from peer {} and {:?}",
                    got, peer, text
                );
            }
        }

        /// Well-formed forwarding chains: the answer is the rightmost address that is not
        /// trusted, walking from the peer while the hops are trusted; an entry that is no
        /// address stops the walk at the last trusted hop. Both headers give the same answer.
        #[test]
        fn forwarding_chains_resolve_to_the_nearest_untrusted_hop(
            peer in addr(),
            trusted in trusted(),
            entries in proptest::collection::vec(proptest::collection::vec(entry(), 1..4), 0..3),
        ) {
            let is_trusted = |a: IpAddr| trusted.iter().any(|n| n.contains(&a));
            // The expected answer, by a walk over the generated structure.
            let mut want = peer.to_canonical();
            if is_trusted(want) {
                for e in entries.iter().flatten().rev().take(MAX_HOPS) {
                    let Entry::Addr(a, _, _) = e else { break };
                    let a = a.to_canonical();
                    want = a;
                    if !is_trusted(a) {
                        break;
                    }
                }
            }
            for header in HEADERS {
                let name = header_name(header);
                let lines = lines_of(&entries, header);
                let h = header_map(name, &lines);
                prop_assume!(h.get_all(name).iter().count() == lines.len());
                let got = resolve(peer, &h, &trusted, header);
                let used: Vec<IpAddr> = entries
                    .iter()
                    .flatten()
                    .filter_map(|e| match e { Entry::Addr(a, _, _) => Some(a.to_canonical()), _ => None })
                    .collect();
                prop_assert!(got == peer.to_canonical() || used.contains(&got));
                prop_assert_eq!(got, want, "{:?}", lines);
            }
        }

        /// Every node form reads back as the address written; text left over after the
        /// address or its port, or an unpaired quote, makes it no address.
        #[test]
        fn node_forms_round_trip_and_leftovers_are_refused(
            a in any::<IpAddr>(),
            port in any::<u16>(),
            upper in any::<bool>(),
            junk in prop_oneof![
                Just("x"), Just(":"), Just(":x"), Just(":99999"), Just("]"), Just(" :80"),
                Just(":80x"), Just(":-1"), Just("%eth0"),
            ],
        ) {
            let text = if upper { a.to_string().to_uppercase() } else { a.to_string() };
            let mut good = vec![text.clone()];
            let mut bad = vec![format!("{text}x"), format!("\"{text}")];
            match a {
                IpAddr::V4(_) => {
                    good.push(format!("{text}:{port}"));
                    bad.push(format!("{text}:"));
                    bad.push(format!("{text}:{port}x"));
                }
                IpAddr::V6(_) => {
                    good.push(format!("[{text}]"));
                    good.push(format!("[{text}]:{port}"));
                    bad.push(format!("[{text}]{junk}"));
                    bad.push(format!("[{text}]:{port}{junk}"));
                    bad.push(format!("[{text}"));
                }
            }
            for g in &good {
                prop_assert_eq!(parse_node(g), Some(a), "{}", g);
                prop_assert_eq!(forwarded_for(&format!("for=\"{g}\"")), Some(a), "{}", g);
                prop_assert_eq!(forwarded_for(&format!("by=x;For = {g} ;proto=https")), Some(a), "{}", g);
                prop_assert_eq!(forwarded_for(&format!("for=\"{g}")), None, "{}", g);
                prop_assert_eq!(forwarded_for(&format!("for={g}\"")), None, "{}", g);
            }
            for b in &bad {
                prop_assert_eq!(parse_node(b), None, "{}", b);
                prop_assert_eq!(forwarded_for(&format!("for=\"{b}\"")), None, "{}", b);
            }
        }
    }
}
