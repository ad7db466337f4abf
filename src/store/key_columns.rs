//! Typed columns of an access key: its scope (what methods it may use) and the networks it
//! may be used from, as the `access_keys.scope` and `access_keys.allowed_networks` columns
//! store them.

use diesel::backend::Backend;
use diesel::deserialize::{self, FromSql, FromSqlRow};
use diesel::expression::AsExpression;
use diesel::serialize::{self, Output, ToSql};
use diesel::sql_types::Text;
use ipnet::IpNet;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// What a key may do. The stored strings are also what the API and the pages show.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, AsExpression, FromSqlRow)]
#[diesel(sql_type = Text)]
pub enum KeyScope {
    /// Everything its owner may do (every key before scopes existed).
    #[default]
    Full,
    /// Only reading: GET, HEAD and OPTIONS.
    Read,
}

impl KeyScope {
    pub const ALL: [KeyScope; 2] = [KeyScope::Full, KeyScope::Read];

    pub fn as_str(self) -> &'static str {
        match self {
            KeyScope::Full => "full",
            KeyScope::Read => "read",
        }
    }

    /// May a caller with this scope use the HTTP `method`? A read key only reads.
    pub fn allows(self, method: &str) -> bool {
        match self {
            KeyScope::Full => true,
            KeyScope::Read => matches!(method, "GET" | "HEAD" | "OPTIONS"),
        }
    }
}

impl fmt::Display for KeyScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A scope this version does not know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownScope(pub String);

impl fmt::Display for UnknownScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown access key scope `{}` (full or read)", self.0)
    }
}

impl std::error::Error for UnknownScope {}

impl FromStr for KeyScope {
    type Err = UnknownScope;

    fn from_str(s: &str) -> Result<KeyScope, UnknownScope> {
        KeyScope::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| UnknownScope(s.to_string()))
    }
}

impl<DB: Backend> ToSql<Text, DB> for KeyScope
where
    str: ToSql<Text, DB>,
{
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, DB>) -> serialize::Result {
        self.as_str().to_sql(out)
    }
}

impl<DB: Backend> FromSql<Text, DB> for KeyScope
where
    String: FromSql<Text, DB>,
{
    fn from_sql(bytes: DB::RawValue<'_>) -> deserialize::Result<Self> {
        Ok(String::from_sql(bytes)?.parse()?)
    }
}

/// Most networks one key may list: a restriction is a handful of office and VPN ranges.
pub const MAX_NETWORKS: usize = 32;

/// The client networks a key may be used from; never empty (no restriction is `None`).
/// The stored text is kept beside the parsed list: `ToSql` hands diesel a reference to it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, AsExpression, FromSqlRow)]
#[diesel(sql_type = Text)]
pub struct Networks {
    nets: Vec<IpNet>,
    stored: String,
}

/// Why a list of networks was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadNetworks {
    #[error("`{0}` is not an IP address or a CIDR network (e.g. 10.20.0.0/16, 2001:db8::/32)")]
    NotANetwork(String),
    #[error("at most {MAX_NETWORKS} networks")]
    TooMany,
    #[error("an empty list would refuse every use; leave it out (or null) for no restriction")]
    Empty,
}

impl Networks {
    /// Parses what a caller gives: CIDRs or single addresses, in any order; host bits are
    /// cleared and duplicates dropped, so what is stored is what is enforced. `None` for an
    /// absent list; an empty list is refused (it would lock the key out for good).
    pub fn parse<S: AsRef<str>>(items: &[S]) -> Result<Networks, BadNetworks> {
        if items.is_empty() {
            return Err(BadNetworks::Empty);
        }
        if items.len() > MAX_NETWORKS {
            return Err(BadNetworks::TooMany);
        }
        let mut nets: Vec<IpNet> = Vec::with_capacity(items.len());
        for item in items {
            let text = item.as_ref().trim();
            let net = text
                .parse::<IpNet>()
                .map(|n| n.trunc())
                .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| {
                    BadNetworks::NotANetwork(crate::text::visible(
                        &text.chars().take(60).collect::<String>(),
                    ))
                })?;
            if !nets.contains(&net) {
                nets.push(net);
            }
        }
        let stored = nets
            .iter()
            .map(IpNet::to_string)
            .collect::<Vec<_>>()
            .join(",");
        Ok(Networks { nets, stored })
    }

    /// Does the list admit a client at `addr`? An IPv4 client seen as an IPv4-mapped IPv6
    /// address is the same client. An unknown address is never admitted.
    pub fn admits(&self, addr: Option<IpAddr>) -> bool {
        let Some(addr) = addr else {
            return false;
        };
        let addr = match addr {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(addr, IpAddr::V4),
            v4 => v4,
        };
        self.nets.iter().any(|n| n.contains(&addr))
    }

    /// The networks as text, for the API and the pages.
    pub fn to_strings(&self) -> Vec<String> {
        self.nets.iter().map(IpNet::to_string).collect()
    }
}

impl fmt::Display for Networks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_strings().join(", "))
    }
}

impl<DB: Backend> ToSql<Text, DB> for Networks
where
    str: ToSql<Text, DB>,
{
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, DB>) -> serialize::Result {
        self.stored.as_str().to_sql(out)
    }
}

impl<DB: Backend> FromSql<Text, DB> for Networks
where
    String: FromSql<Text, DB>,
{
    fn from_sql(bytes: DB::RawValue<'_>) -> deserialize::Result<Self> {
        let text = String::from_sql(bytes)?;
        let items: Vec<&str> = text.split(',').collect();
        Ok(Networks::parse(&items)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().expect("an address"))
    }

    #[test]
    fn a_read_key_only_reads() {
        for m in ["GET", "HEAD", "OPTIONS"] {
            assert!(KeyScope::Read.allows(m));
        }
        for m in ["POST", "PUT", "PATCH", "DELETE", "get", "TRACE", ""] {
            assert!(!KeyScope::Read.allows(m), "{m}");
            assert!(KeyScope::Full.allows(m));
        }
        assert_eq!("read".parse(), Ok(KeyScope::Read));
        assert_eq!("full".parse(), Ok(KeyScope::Full));
        assert!("Read".parse::<KeyScope>().is_err());
        assert_eq!(KeyScope::default(), KeyScope::Full);
    }

    #[test]
    fn networks_admit_what_they_contain() {
        let n = Networks::parse(&["10.20.0.0/16", "192.0.2.7", "2001:db8::/32"]).expect("valid");
        assert!(n.admits(ip("10.20.255.1")));
        assert!(!n.admits(ip("10.21.0.1")));
        assert!(n.admits(ip("192.0.2.7")));
        assert!(!n.admits(ip("192.0.2.8")));
        assert!(n.admits(ip("2001:db8::1")));
        assert!(n.admits(ip("::ffff:10.20.1.1")), "an IPv4-mapped client");
        assert!(!n.admits(None), "an unknown client is never admitted");
        assert_eq!(
            n.to_strings(),
            ["10.20.0.0/16", "192.0.2.7/32", "2001:db8::/32"]
        );
    }

    #[test]
    fn networks_are_normalised_and_bad_ones_refused() {
        let n = Networks::parse(&[" 10.1.2.3/8 ", "10.0.0.0/8"]).expect("valid");
        assert_eq!(
            n.to_strings(),
            ["10.0.0.0/8"],
            "host bits cleared, duplicate dropped"
        );
        assert_eq!(Networks::parse::<&str>(&[]), Err(BadNetworks::Empty));
        assert!(matches!(
            Networks::parse(&["10.0.0.0/33"]),
            Err(BadNetworks::NotANetwork(_))
        ));
        assert!(matches!(
            Networks::parse(&["office"]),
            Err(BadNetworks::NotANetwork(_))
        ));
        let many: Vec<String> = (0..=MAX_NETWORKS)
            .map(|i| format!("10.0.{i}.0/24"))
            .collect();
        assert_eq!(Networks::parse(&many), Err(BadNetworks::TooMany));
    }
}
