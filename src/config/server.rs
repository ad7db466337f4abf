//! `[server]`: the API listener, the management listener, and the limits every connection
//! and request gets.

use super::error::{invalid, ConfigError};
use super::layering::{cidr_list, lenient};
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address and port the HTTP API listens on.
    pub listen: String,
    /// Largest request body accepted, in bytes; larger bodies get 413.
    #[serde(deserialize_with = "lenient")]
    pub max_body_bytes: usize,
    /// The base URL people reach accesskeyd at (OIDC redirect URIs are built from it).
    /// Default `http://{listen}`; required behind a reverse proxy.
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
    /// `public_url` without a trailing slash, or `http://{listen}`.
    pub fn public_url(&self) -> String {
        self.public_url
            .clone()
            .unwrap_or_else(|| format!("http://{}", self.listen))
            .trim_end_matches('/')
            .to_string()
    }

    pub(super) fn validate(&self) -> Result<(), ConfigError> {
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
        }
    }
}
