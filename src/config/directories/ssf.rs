//! `[directories.ssf]` of an `oidc` directory: receiving OpenID Shared Signals (SSF 1.0,
//! CAEP and RISC events) from the provider's transmitter, pushed (RFC 8935) or polled
//! (RFC 8936). Every setting is checked here; `ssf` builds on a checked [`SsfConfig`].

use crate::config::error::{invalid, ConfigError};
use crate::config::layering::{lenient_opt, secret_or_file};
use crate::secret::Secret;
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

/// Default of `max_age_seconds`: how old a SET's `iat` may be, and how long its `jti` is
/// remembered to refuse a replay.
pub const DEFAULT_SSF_MAX_AGE_SECONDS: u64 = 300;

/// Default of `poll_interval_seconds`.
pub const DEFAULT_SSF_POLL_SECONDS: u64 = 5;

/// How shared signals reach a directory, as checked at load.
#[derive(Debug, Clone)]
pub struct SsfConfig {
    /// The transmitter's issuer URL: SETs must carry it as `iss`, and its metadata is read
    /// from `/.well-known/ssf-configuration` under it (SSF 1.0 §7.1).
    pub transmitter: String,
    /// Where the transmitter's metadata is, when not at the well-known place (Google's RISC
    /// transmitter serves `/.well-known/risc-configuration`).
    pub configuration_url: Option<String>,
    /// What a SET's `aud` must contain; None: the daemon's `server.public_url`.
    pub audience: Option<String>,
    /// Pushed SETs are accepted at `/api/ssf/{directory}/events`.
    pub push: bool,
    /// A push must carry `Authorization: Bearer <this>` (compared in constant time).
    pub push_token: Option<Secret>,
    /// RFC 8936 polling, when `poll_url` is set.
    pub poll: Option<SsfPoll>,
    /// How old a SET's `iat` may be; also how long a `jti` is remembered.
    pub max_age: chrono::Duration,
    /// More signal suspensions than this within `window` stop the directory's signals
    /// from suspending until an admin resumes them.
    pub suspension_threshold: u64,
    pub window: chrono::Duration,
}

/// RFC 8936 polling of the transmitter's poll endpoint.
#[derive(Debug, Clone)]
pub struct SsfPoll {
    pub url: String,
    pub interval: Duration,
    /// Sent as `Authorization: Bearer <this>` with each poll.
    pub token: Option<Secret>,
}

/// `[directories.ssf]` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(in crate::config) struct RawSsf {
    transmitter: Option<String>,
    configuration_url: Option<String>,
    audience: Option<String>,
    #[serde(default, deserialize_with = "lenient_opt")]
    push: Option<bool>,
    push_token: Option<Secret>,
    push_token_file: Option<PathBuf>,
    poll_url: Option<String>,
    #[serde(default, deserialize_with = "lenient_opt")]
    poll_interval_seconds: Option<u64>,
    poll_token: Option<Secret>,
    poll_token_file: Option<PathBuf>,
    #[serde(default, deserialize_with = "lenient_opt")]
    max_age_seconds: Option<u64>,
    #[serde(default, deserialize_with = "lenient_opt")]
    suspension_threshold: Option<u64>,
    #[serde(default, deserialize_with = "lenient_opt")]
    window_minutes: Option<u64>,
}

/// `url` is an absolute http(s) URL.
fn http_url(key: &str, url: &str) -> Result<(), ConfigError> {
    match url::Url::parse(url) {
        Ok(u) if matches!(u.scheme(), "https" | "http") && u.host().is_some() => Ok(()),
        _ => Err(invalid(key, format!("`{url}` is not an http(s) URL"))),
    }
}

impl RawSsf {
    /// `key` names a key of this table (`directories[i].ssf.…`).
    pub(super) fn validate(self, key: impl Fn(&str) -> String) -> Result<SsfConfig, ConfigError> {
        let transmitter = self
            .transmitter
            .filter(|t| !t.trim().is_empty())
            .ok_or_else(|| {
                invalid(
                    key("transmitter"),
                    "is required (the transmitter's issuer URL)",
                )
            })?;
        http_url(&key("transmitter"), &transmitter)?;
        if let Some(u) = &self.configuration_url {
            http_url(&key("configuration_url"), u)?;
        }
        if self.audience.as_ref().is_some_and(|a| a.trim().is_empty()) {
            return Err(invalid(
                key("audience"),
                "must not be empty (leave it out for server.public_url)",
            ));
        }
        let push = self.push.unwrap_or(true);
        let push_token = secret_or_file(
            &key("push_token"),
            self.push_token,
            self.push_token_file,
            false,
        )?;
        if push_token.is_some() && !push {
            return Err(invalid(
                key("push_token_file"),
                "only applies with push = true",
            ));
        }
        if push_token.as_ref().is_some_and(|t| t.expose().is_empty()) {
            return Err(invalid(key("push_token_file"), "holds an empty token"));
        }
        let poll_token = secret_or_file(
            &key("poll_token"),
            self.poll_token,
            self.poll_token_file,
            false,
        )?;
        let poll = match self.poll_url {
            Some(url) => {
                http_url(&key("poll_url"), &url)?;
                let every = self
                    .poll_interval_seconds
                    .unwrap_or(DEFAULT_SSF_POLL_SECONDS);
                if !(1..=3600).contains(&every) {
                    return Err(invalid(
                        key("poll_interval_seconds"),
                        "must be between 1 and 3600",
                    ));
                }
                Some(SsfPoll {
                    url,
                    interval: Duration::from_secs(every),
                    token: poll_token,
                })
            }
            None => {
                if poll_token.is_some() || self.poll_interval_seconds.is_some() {
                    return Err(invalid(
                        key("poll_url"),
                        "is required by poll_interval_seconds and poll_token_file",
                    ));
                }
                None
            }
        };
        if !push && poll.is_none() {
            return Err(invalid(
                key("push"),
                "is false and there is no poll_url: no signal could arrive",
            ));
        }
        let max_age = self.max_age_seconds.unwrap_or(DEFAULT_SSF_MAX_AGE_SECONDS);
        if !(10..=86_400).contains(&max_age) {
            return Err(invalid(
                key("max_age_seconds"),
                "must be between 10 and 86400 (a day)",
            ));
        }
        let suspension_threshold = self.suspension_threshold.unwrap_or(100);
        if suspension_threshold == 0 {
            return Err(invalid(key("suspension_threshold"), "must be at least 1"));
        }
        let window = self.window_minutes.unwrap_or(60);
        if !(1..=10_080).contains(&window) {
            return Err(invalid(
                key("window_minutes"),
                "must be between 1 and 10080 (a week)",
            ));
        }
        Ok(SsfConfig {
            transmitter,
            configuration_url: self.configuration_url,
            audience: self.audience,
            push,
            push_token,
            poll,
            // Both bounded above (a day, a week): the conversions cannot fail.
            max_age: chrono::Duration::seconds(i64::try_from(max_age).unwrap_or(300)),
            suspension_threshold,
            window: chrono::Duration::minutes(i64::try_from(window).unwrap_or(60)),
        })
    }
}

impl SsfConfig {
    /// Where the transmitter's metadata is: `configuration_url`, else the well-known path
    /// inserted between the host and any path of the issuer (SSF 1.0 §7.1, as RFC 8414 does).
    pub fn metadata_url(&self) -> String {
        if let Some(u) = &self.configuration_url {
            return u.clone();
        }
        match url::Url::parse(&self.transmitter) {
            Ok(mut u) => {
                let path = u.path().trim_end_matches('/').to_string();
                u.set_path(&format!("/.well-known/ssf-configuration{path}"));
                u.set_query(None);
                u.to_string()
            }
            // Checked at load; kept total rather than panicking.
            Err(_) => format!(
                "{}/.well-known/ssf-configuration",
                self.transmitter.trim_end_matches('/')
            ),
        }
    }

    /// The audience a SET must name: `audience`, else `public_url`.
    pub fn audience_or(&self, public_url: &str) -> String {
        self.audience
            .clone()
            .unwrap_or_else(|| public_url.to_string())
    }
}
