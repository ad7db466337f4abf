//! `[server]`: the API listener (plain HTTP, or HTTPS with a certificate), the management
//! listener, and the limits every connection and request gets.

use super::credentials::credential_path_opt;
use super::error::{invalid, ConfigError};
use super::layering::{cidr_list, lenient};
use serde::{Deserialize, Deserializer};
use std::path::PathBuf;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address and port the HTTP API listens on.
    pub listen: String,
    /// Largest request body accepted, in bytes; larger bodies get 413.
    #[serde(deserialize_with = "lenient")]
    pub max_body_bytes: usize,
    /// The base URL people reach accesskeyd at (OIDC redirect URIs are built from it).
    /// Default `http://{listen}`, or `https://{listen}` with a TLS certificate; required
    /// behind a reverse proxy.
    pub public_url: Option<String>,
    /// Reverse proxies (CIDRs or addresses) whose client-address header is believed. Empty:
    /// the TCP peer is the client, and forwarding headers are ignored.
    #[serde(deserialize_with = "cidr_list")]
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Which header trusted proxies name the client in.
    pub client_address_header: ClientAddressHeader,
    /// A connection must deliver a whole request head within this many seconds of its
    /// first byte (or of being opened).
    #[serde(deserialize_with = "lenient")]
    pub header_read_timeout_seconds: u64,
    /// An idle keep-alive connection is closed after this many seconds.
    #[serde(deserialize_with = "lenient")]
    pub keep_alive_timeout_seconds: u64,
    /// A request (body read and handler) taking longer gets 503 and is abandoned.
    #[serde(deserialize_with = "lenient")]
    pub request_timeout_seconds: u64,
    /// Open connections at most; further ones wait in the kernel's accept queue.
    /// 0 = three quarters of the process's open-file limit.
    #[serde(deserialize_with = "lenient")]
    pub max_connections: usize,
    /// Address:port of the management listener (`/metrics`, `/healthz`, `/readyz`); empty =
    /// none. `/metrics` is not served on `listen`.
    pub management_listen: String,
    /// PEM certificate (leaf first, then the chain) of `listen`; with `tls_key_file`,
    /// `listen` serves HTTPS only. Read at start and at every reload.
    pub tls_cert_file: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1) of `tls_cert_file`.
    pub tls_key_file: Option<PathBuf>,
    /// The oldest TLS version accepted.
    pub tls_min_version: TlsVersion,
}

/// The certificate and key files of the HTTPS listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub min_version: TlsVersion,
}

/// A TLS protocol version, as `server.tls_min_version` names it ("1.2" or "1.3").
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum TlsVersion {
    #[default]
    V1_2,
    V1_3,
}

impl std::str::FromStr for TlsVersion {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let bare = s
            .strip_prefix("TLSv")
            .or_else(|| s.strip_prefix("tlsv"))
            .unwrap_or(s);
        match bare {
            "1.2" => Ok(TlsVersion::V1_2),
            "1.3" => Ok(TlsVersion::V1_3),
            _ => Err(format!(
                "`{s}` is not a TLS version this server offers: use \"1.2\" or \"1.3\""
            )),
        }
    }
}

impl std::fmt::Display for TlsVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TlsVersion::V1_2 => "1.2",
            TlsVersion::V1_3 => "1.3",
        })
    }
}

impl<'de> Deserialize<'de> for TlsVersion {
    /// A string, or the bare number TOML reads from `tls_min_version = 1.3`.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Either {
            Text(String),
            Number(f64),
        }
        let text = match Either::deserialize(d)? {
            Either::Text(s) => s,
            Either::Number(n) => format!("{n:.1}"),
        };
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// The header a trusted proxy puts the client's address in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
pub enum ClientAddressHeader {
    /// `X-Forwarded-For: client, proxy1, proxy2` (nginx, Traefik, HAProxy, most balancers).
    #[default]
    #[serde(rename = "x-forwarded-for", alias = "X-Forwarded-For")]
    XForwardedFor,
    /// RFC 7239 `Forwarded: for=client;proto=https, for=proxy1`.
    #[serde(rename = "forwarded", alias = "Forwarded")]
    Forwarded,
}

impl ServerConfig {
    /// `public_url` without a trailing slash, or `http(s)://{listen}` (https with TLS).
    pub fn public_url(&self) -> String {
        let scheme = if self.tls().is_some() {
            "https"
        } else {
            "http"
        };
        self.public_url
            .clone()
            .unwrap_or_else(|| format!("{scheme}://{}", self.listen))
            .trim_end_matches('/')
            .to_string()
    }

    /// The certificate and key of `listen` when both are set (validation refuses one alone).
    pub fn tls(&self) -> Option<TlsFiles> {
        match (&self.tls_cert_file, &self.tls_key_file) {
            (Some(cert), Some(key)) => Some(TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
                min_version: self.tls_min_version,
            }),
            _ => None,
        }
    }

    /// The TLS files may name systemd credentials (`$CREDENTIALS_DIRECTORY/...`), so that
    /// a root-only key reaches the service through `LoadCredential=`.
    pub(super) fn resolve(mut self) -> Result<Self, ConfigError> {
        self.tls_cert_file = credential_path_opt("server.tls_cert_file", self.tls_cert_file)?;
        self.tls_key_file = credential_path_opt("server.tls_key_file", self.tls_key_file)?;
        Ok(self)
    }

    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        let empty = |p: &Option<PathBuf>| p.as_ref().is_some_and(|p| p.as_os_str().is_empty());
        for (key, value) in [
            ("server.tls_cert_file", &self.tls_cert_file),
            ("server.tls_key_file", &self.tls_key_file),
        ] {
            if empty(value) {
                return Err(invalid(key, "is empty: name a PEM file, or leave it out"));
            }
        }
        match (&self.tls_cert_file, &self.tls_key_file) {
            (Some(_), None) => {
                return Err(invalid(
                    "server.tls_key_file",
                    "missing: server.tls_cert_file is set, and HTTPS needs both the \
                     certificate and its private key",
                ))
            }
            (None, Some(_)) => {
                return Err(invalid(
                    "server.tls_cert_file",
                    "missing: server.tls_key_file is set, and HTTPS needs both the \
                     certificate and its private key",
                ))
            }
            _ => {}
        }
        if self.listen.parse::<std::net::SocketAddr>().is_err() {
            return Err(invalid(
                "server.listen",
                format!("`{}` is not an address:port", self.listen),
            ));
        }
        if !self.management_listen.trim().is_empty()
            && self
                .management_listen
                .trim()
                .parse::<std::net::SocketAddr>()
                .is_err()
        {
            return Err(invalid(
                "server.management_listen",
                format!(
                    "`{}` is not an address:port (empty turns the management listener off)",
                    self.management_listen
                ),
            ));
        }
        if let Some(u) = &self.public_url {
            match url::Url::parse(u) {
                Ok(p) if matches!(p.scheme(), "http" | "https") && p.query().is_none() => {}
                _ => {
                    return Err(invalid(
                        "server.public_url",
                        format!("`{u}` is not an http(s) base URL"),
                    ))
                }
            }
        }
        if self.max_body_bytes < 1024 {
            return Err(invalid("server.max_body_bytes", "must be at least 1024"));
        }
        for (key, value) in [
            (
                "server.header_read_timeout_seconds",
                self.header_read_timeout_seconds,
            ),
            (
                "server.keep_alive_timeout_seconds",
                self.keep_alive_timeout_seconds,
            ),
            (
                "server.request_timeout_seconds",
                self.request_timeout_seconds,
            ),
        ] {
            if value == 0 {
                return Err(invalid(key, "must be at least 1"));
            }
        }
        Ok(())
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: "127.0.0.1:8080".into(),
            max_body_bytes: 64 * 1024,
            public_url: None,
            trusted_proxies: Vec::new(),
            client_address_header: ClientAddressHeader::XForwardedFor,
            header_read_timeout_seconds: 10,
            keep_alive_timeout_seconds: 60,
            request_timeout_seconds: 60,
            max_connections: 0,
            management_listen: "127.0.0.1:9464".into(),
            tls_cert_file: None,
            tls_key_file: None,
            tls_min_version: TlsVersion::V1_2,
        }
    }
}
