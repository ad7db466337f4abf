//! Windows sign-in with Kerberos: what an HTTP `Negotiate` header carries, how a client
//! principal (`user@REALM`) maps to a directory, and the acceptor behind the `kerberos`
//! cargo feature (GSSAPI; without the feature there is no acceptor at all).

#[cfg(feature = "kerberos")]
mod gss;

#[cfg(feature = "kerberos")]
pub use gss::Acceptor;

use crate::config::{RealmMapping, WindowsConfig};
use base64::Engine;

/// The 404 answer of Windows sign-in when neither Kerberos nor a trusted proxy is set up
/// (the sign-in is not there; a 5xx would tell monitoring the server failed): what to
/// configure, or, in a build without the feature, which feature to build with.
pub const NOT_AVAILABLE: &str = if cfg!(feature = "kerberos") {
    "Windows sign-in is not configured: set [windows] (keytab and realms) for Kerberos, \
     or [proxy_auth] for a reverse proxy that does the Negotiate handshake"
} else {
    "Windows sign-in with Kerberos (SPNEGO) needs a build with the cargo feature \
     `kerberos`; or configure [proxy_auth] for a reverse proxy that does the Negotiate \
     handshake"
};

/// What a client sent in `Authorization` to the Windows sign-in endpoint.
#[derive(Debug, PartialEq, Eq)]
pub enum Offer {
    /// No Negotiate credentials (or another scheme): the client must be challenged.
    None,
    /// NTLM, raw or wrapped in SPNEGO: a non-domain client; refused.
    Ntlm,
    /// A SPNEGO or raw Kerberos token for the acceptor.
    Token(Vec<u8>),
    /// `Negotiate` with something that is not base64.
    Malformed,
}

/// Reads an `Authorization` header value.
pub fn offer(authorization: Option<&str>) -> Offer {
    let Some(value) = authorization.map(str::trim) else {
        return Offer::None;
    };
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    if scheme.eq_ignore_ascii_case("NTLM") {
        return Offer::Ntlm;
    }
    if !scheme.eq_ignore_ascii_case("Negotiate") {
        return Offer::None;
    }
    let rest = rest.trim();
    if rest.is_empty() {
        return Offer::Malformed;
    }
    match base64::engine::general_purpose::STANDARD.decode(rest) {
        Ok(token) if is_ntlm(&token) => Offer::Ntlm,
        Ok(token) => Offer::Token(token),
        Err(_) => Offer::Malformed,
    }
}

const NTLMSSP_SIGNATURE: &[u8] = b"NTLMSSP\0";
/// DER of the NTLMSSP mechanism OID 1.3.6.1.4.1.311.2.2.10.
const NTLM_OID: &[u8] = &[
    0x06, 0x0a, 0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0x37, 0x02, 0x02, 0x0a,
];
/// DER of the Kerberos OIDs a SPNEGO offer may list: 1.2.840.113554.1.2.2 and Microsoft's
/// 1.2.840.48018.1.2.2.
const KRB5_OIDS: [&[u8]; 2] = [
    &[
        0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x12, 0x01, 0x02, 0x02,
    ],
    &[
        0x06, 0x09, 0x2a, 0x86, 0x48, 0x82, 0xf7, 0x12, 0x01, 0x02, 0x02,
    ],
];

/// True for a raw NTLM message, or a SPNEGO offer that lists NTLM and no Kerberos mechanism
/// (what Windows sends when it has no ticket: a machine outside the domain, or a name the
/// browser did not map to an SPN).
pub fn is_ntlm(token: &[u8]) -> bool {
    let contains = |needle: &[u8]| token.windows(needle.len()).any(|w| w == needle);
    token.starts_with(NTLMSSP_SIGNATURE)
        || (token.first() == Some(&0x60)
            && (contains(NTLMSSP_SIGNATURE)
                || (contains(NTLM_OID) && !KRB5_OIDS.iter().any(|o| contains(o)))))
}

/// `alice@CORP.EXAMPLE.COM` → (`alice`, `CORP.EXAMPLE.COM`). Enterprise names keep their
/// inner `@` (`alice@corp.example.com@CORP.EXAMPLE.COM`).
pub fn split_principal(principal: &str) -> Option<(&str, &str)> {
    let (name, realm) = principal.rsplit_once('@')?;
    (!name.is_empty() && !realm.is_empty()).then_some((name, realm))
}

/// The realm's mapping, if the realm is one of ours.
pub fn mapping<'a>(cfg: &'a WindowsConfig, realm: &str) -> Option<&'a RealmMapping> {
    cfg.realms
        .iter()
        .find(|m| m.realm.eq_ignore_ascii_case(realm))
}

/// A completed handshake: who the client is, and the token that proves to the client that
/// it reached the service it asked for (mutual authentication).
#[derive(Debug)]
pub struct Accepted {
    pub principal: String,
    pub mutual_token: Option<Vec<u8>>,
}

/// Why a token was not accepted; messages are for the client and hold no secrets.
#[derive(Debug)]
pub enum Rejected {
    /// Not a well-formed token at all.
    Malformed(String),
    /// A token that does not verify here (another service's ticket, expired, replayed).
    Refused(String),
}

/// Without the `kerberos` feature there is no acceptor: this type has no values.
#[cfg(not(feature = "kerberos"))]
#[derive(Debug)]
pub enum Acceptor {}

#[cfg(not(feature = "kerberos"))]
impl Acceptor {
    pub fn new(_: &WindowsConfig) -> Result<Acceptor, String> {
        Err("[windows] needs a build with the cargo feature `kerberos` \
             (cargo build --release --features kerberos; see docs/windows.md)"
            .into())
    }

    pub fn accept(&self, _: &[u8]) -> Result<Accepted, Rejected> {
        match *self {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(bytes: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    #[test]
    fn offers_are_told_apart() {
        assert_eq!(offer(None), Offer::None);
        assert_eq!(offer(Some("Basic YTpi")), Offer::None);
        assert_eq!(offer(Some("Negotiate")), Offer::Malformed);
        assert_eq!(offer(Some("Negotiate !!!")), Offer::Malformed);
        assert_eq!(offer(Some("NTLM TlRMTVNTUAAB")), Offer::Ntlm);
        let raw_ntlm = b64(b"NTLMSSP\0\x01\0\0\0\x07\x82\x08\xa2");
        assert_eq!(offer(Some(&format!("Negotiate {raw_ntlm}"))), Offer::Ntlm);
        // A SPNEGO NegTokenInit that offers only NTLMSSP.
        let mut spnego_ntlm = vec![0x60, 0x28, 0x06, 0x06, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x02];
        spnego_ntlm.extend_from_slice(NTLM_OID);
        assert_eq!(
            offer(Some(&format!("negotiate {}", b64(&spnego_ntlm)))),
            Offer::Ntlm
        );
        // Kerberos offered first, NTLM as a fallback: the acceptor decides.
        let mut both = spnego_ntlm.clone();
        both.extend_from_slice(KRB5_OIDS[1]);
        assert_eq!(
            offer(Some(&format!("Negotiate {}", b64(&both)))),
            Offer::Token(both)
        );
    }

    /// The default build has no acceptor: a `[windows]` section is refused at start, and the
    /// endpoint's 404 names the feature (scripts/test.sh runs this without features).
    #[cfg(not(feature = "kerberos"))]
    #[test]
    fn without_the_feature_windows_is_refused_naming_it() {
        let cfg = WindowsConfig {
            keytab: "/etc/http.keytab".into(),
            service_principal: None,
            realms: vec![],
        };
        let err = Acceptor::new(&cfg).unwrap_err();
        assert!(
            err.contains("`kerberos`") && err.contains("--features kerberos"),
            "{err}"
        );
        assert!(NOT_AVAILABLE.contains("`kerberos`") && NOT_AVAILABLE.contains("[proxy_auth]"));
    }

    #[test]
    fn principals_split_at_the_last_at() {
        assert_eq!(
            split_principal("alice@CORP.TEST"),
            Some(("alice", "CORP.TEST"))
        );
        assert_eq!(
            split_principal("alice@corp.test@CORP.TEST"),
            Some(("alice@corp.test", "CORP.TEST"))
        );
        assert_eq!(split_principal("alice"), None);
        assert_eq!(split_principal("@CORP"), None);
        assert_eq!(split_principal("alice@"), None);
    }
}
