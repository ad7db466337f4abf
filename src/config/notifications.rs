//! `[notifications]`: warnings before access keys stop working, by e-mail and/or a signed
//! webhook, on a cron schedule.

use super::credentials::credential_path_opt;
use super::error::{invalid, ConfigError};
use super::layering::{lenient_opt, secret_or_file};
use crate::secret::Secret;
use serde::Deserialize;
use std::path::PathBuf;
use std::str::FromStr;

/// The check runs at 07:00 unless the file says otherwise.
const DEFAULT_SCHEDULE: &str = "0 0 7 * * *";

/// Warnings before access keys stop working: by e-mail and/or a signed webhook.
#[derive(Debug, Clone)]
pub struct NotificationsConfig {
    /// Cron expression (seconds first) of the daily check, parsed at load (`source()` is the
    /// text as written); runs on the leader replica.
    pub schedule: cron::Schedule,
    pub smtp: Option<SmtpConfig>,
    pub webhook: Option<WebhookConfig>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpSecurity {
    /// Plain connection upgraded with STARTTLS (port 587); refuses servers without it.
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
    /// No encryption: only for a relay on the same host or a test server.
    None,
}

#[derive(Debug, Clone)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    pub security: SmtpSecurity,
    /// PEM CA certificate(s) for a relay with a private CA; default: the public web roots.
    pub ca_file: Option<PathBuf>,
    pub username: Option<String>,
    pub password: Option<Secret>,
    /// The sender address, e.g. `accesskeyd <noreply@example.com>`.
    pub from: String,
    pub timeout_seconds: u64,
}

#[derive(Debug, Clone)]
pub struct WebhookConfig {
    pub url: String,
    /// HMAC-SHA256 key of the `X-Accesskeyd-Signature` header.
    pub secret: Secret,
    /// Attempts per warning (the first included); waits double from `retry_base_ms`.
    pub max_attempts: u32,
    pub retry_base_ms: u64,
    pub timeout_seconds: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNotifications {
    schedule: Option<String>,
    smtp: Option<RawSmtp>,
    webhook: Option<RawWebhook>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSmtp {
    host: Option<String>,
    #[serde(default, deserialize_with = "lenient_opt")]
    port: Option<u16>,
    security: Option<SmtpSecurity>,
    ca_file: Option<PathBuf>,
    username: Option<String>,
    password: Option<Secret>,
    password_file: Option<PathBuf>,
    from: Option<String>,
    #[serde(default, deserialize_with = "lenient_opt")]
    timeout_seconds: Option<u64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWebhook {
    url: Option<String>,
    secret: Option<Secret>,
    secret_file: Option<PathBuf>,
    #[serde(default, deserialize_with = "lenient_opt")]
    max_attempts: Option<u32>,
    #[serde(default, deserialize_with = "lenient_opt")]
    retry_base_ms: Option<u64>,
    #[serde(default, deserialize_with = "lenient_opt")]
    timeout_seconds: Option<u64>,
}

impl RawNotifications {
    pub(super) fn validate(self) -> Result<NotificationsConfig, ConfigError> {
        let text = self.schedule.as_deref().unwrap_or(DEFAULT_SCHEDULE);
        let schedule = cron::Schedule::from_str(text).map_err(|_| {
            invalid(
                "notifications.schedule",
                format!("`{text}` is not a cron expression (seconds first, e.g. `0 0 7 * * *`)"),
            )
        })?;
        let smtp = self.smtp.map(RawSmtp::validate).transpose()?;
        let webhook = self.webhook.map(RawWebhook::validate).transpose()?;
        if smtp.is_none() && webhook.is_none() {
            return Err(invalid(
                "notifications",
                "configure [notifications.smtp], [notifications.webhook], or both",
            ));
        }
        Ok(NotificationsConfig {
            schedule,
            smtp,
            webhook,
        })
    }
}

impl RawSmtp {
    fn validate(self) -> Result<SmtpConfig, ConfigError> {
        let host = self
            .host
            .filter(|h| !h.trim().is_empty())
            .ok_or_else(|| invalid("notifications.smtp.host", "is required"))?;
        let from = self
            .from
            .filter(|f| !f.trim().is_empty())
            .ok_or_else(|| invalid("notifications.smtp.from", "is required"))?;
        if from.parse::<lettre::message::Mailbox>().is_err() {
            return Err(invalid(
                "notifications.smtp.from",
                format!("`{from}` is not an e-mail address"),
            ));
        }
        let security = self.security.unwrap_or(SmtpSecurity::Starttls);
        let password = secret_or_file(
            "notifications.smtp.password",
            self.password,
            self.password_file,
            false,
        )?;
        if password.is_some() != self.username.is_some() {
            return Err(invalid(
                "notifications.smtp.username",
                "username and password go together",
            ));
        }
        Ok(SmtpConfig {
            host,
            port: self.port.unwrap_or(match security {
                SmtpSecurity::Tls => 465,
                SmtpSecurity::Starttls => 587,
                SmtpSecurity::None => 25,
            }),
            security,
            ca_file: credential_path_opt("notifications.smtp.ca_file", self.ca_file)?,
            username: self.username,
            password,
            from,
            timeout_seconds: self.timeout_seconds.unwrap_or(30),
        })
    }
}

impl RawWebhook {
    fn validate(self) -> Result<WebhookConfig, ConfigError> {
        let url = self
            .url
            .ok_or_else(|| invalid("notifications.webhook.url", "is required"))?;
        if !(url.starts_with("https://") || url.starts_with("http://"))
            || url::Url::parse(&url).is_err()
        {
            return Err(invalid(
                "notifications.webhook.url",
                format!("`{url}` is not an http(s) URL"),
            ));
        }
        let secret = secret_or_file(
            "notifications.webhook.secret",
            self.secret,
            self.secret_file,
            true,
        )?
        .ok_or_else(|| invalid("notifications.webhook.secret", "is required"))?;
        if secret.expose().len() < 16 {
            return Err(invalid(
                "notifications.webhook.secret",
                "must be at least 16 characters",
            ));
        }
        Ok(WebhookConfig {
            url,
            secret,
            max_attempts: self.max_attempts.unwrap_or(5).clamp(1, 20),
            retry_base_ms: self.retry_base_ms.unwrap_or(1000),
            timeout_seconds: self.timeout_seconds.unwrap_or(10),
        })
    }
}
