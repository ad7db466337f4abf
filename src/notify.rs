//! Warnings before access keys stop working, so that no script dies silently because its
//! owner forgot to sign in: a daily job (leader only) finds people whose keys stop within
//! `Authentication/AccessKey/WarningDays` and service-account keys near their expiry, and
//! tells them once per lapse — by e-mail (SMTP) and/or a webhook signed with HMAC-SHA256.
//! The same channels tell owners that a key was deleted because a secret scanner found it
//! in public (`LeakNotice`).

use crate::config::{NotificationsConfig, SmtpConfig, SmtpSecurity, WebhookConfig};
use crate::error::{Error, Result};
use crate::ids::UserId;
use crate::options::RuntimeOptions;
use crate::services::Services;
use crate::store::models::{AccessKeyRow, UserRow};
use crate::store::schema::{access_keys, key_warnings, users};
use crate::store::timestamp::Timestamp;
use crate::store::user_rows;
use crate::validity::{self, KeyRules};
use chrono::{DateTime, Duration, Utc};
use diesel::prelude::*;
use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::Sha256;
use std::collections::BTreeMap;

/// Header carrying `sha256=<hex HMAC-SHA256 of the body>`.
pub const SIGNATURE_HEADER: &str = "X-Accesskeyd-Signature";

/// Whose keys a warning is about (the webhook's `kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WarningKind {
    /// A person's keys, which stop together unless they sign in.
    Person,
    /// One service-account key, which expires; its manager is told.
    ServiceAccount,
    /// One key that stops for going unused (`MaxIdleDays`) before anything else stops it;
    /// its owner (a service account's manager) is told.
    IdleKey,
}

/// One warning: a person whose keys stop together, or one service-account key.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Warning {
    pub kind: WarningKind,
    /// Dedup subject: the person's user id, or `key:<key row id>`.
    #[serde(skip)]
    pub subject: String,
    pub user_id: UserId,
    pub username: String,
    /// Who is told by e-mail: the person, or the service account's manager.
    pub recipient: Option<String>,
    pub recipient_username: String,
    pub keys: Vec<KeyRef>,
    /// When the keys stop working (unless the person signs in first).
    pub valid_until: DateTime<Utc>,
    pub sign_in_url: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyRef {
    pub key_id: String,
    pub label: String,
}

/// What one run did, for the log, the CLI and the tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    pub due: usize,
    pub emails: usize,
    pub webhooks: usize,
    pub already_sent: usize,
    pub failed: usize,
    pub no_email: usize,
}

/// Who must be warned at `now`: keys stopping within `days` (people: last login + window;
/// service accounts: each key's expiry). Keys already stopped, disabled or of inactive users
/// are not warned about.
pub fn due(
    keys: &[(AccessKeyRow, UserRow)],
    managers: &BTreeMap<UserId, UserRow>,
    rules: KeyRules,
    warning_days: i64,
    now: DateTime<Utc>,
    sign_in_url: &str,
) -> Vec<Warning> {
    if warning_days <= 0 {
        return Vec::new();
    }
    let horizon = now + Duration::days(warning_days);
    let mut people: BTreeMap<UserId, Warning> = BTreeMap::new();
    let mut out = Vec::new();
    for (key, owner) in keys {
        if !owner.is_active() {
            continue;
        }
        let window = rules.window(owner.access_key_validity_minutes);
        let holder = owner.key_holder(key);
        let idle = rules.idle(key.last_active());
        let Some(until) = validity::key_valid_until(holder, window, idle) else {
            continue;
        };
        if until <= now || until > horizon {
            continue;
        }
        let key_ref = KeyRef {
            key_id: key.key_id.clone(),
            label: key.name.clone(),
        };
        let by_rule =
            validity::key_valid_until(holder, window, validity::Idle::off(idle.last_active));
        if idle.until().is_some_and(|i| by_rule.is_none_or(|r| i < r)) {
            // Idle first: a use keeps this key, a sign-in would not.
            let manager = owner.manager_id.as_ref().and_then(|m| managers.get(m));
            let (recipient, recipient_username) = if owner.is_service_account {
                (
                    manager.and_then(|m| m.email.clone()),
                    manager.map(|m| m.username.clone()).unwrap_or_default(),
                )
            } else {
                (owner.email.clone(), owner.username.clone())
            };
            out.push(Warning {
                kind: WarningKind::IdleKey,
                subject: format!("idle:{}", key.id),
                user_id: owner.id.clone(),
                username: owner.username.clone(),
                recipient,
                recipient_username,
                keys: vec![key_ref],
                valid_until: until,
                sign_in_url: sign_in_url.to_string(),
            });
            continue;
        }
        if owner.is_service_account {
            let manager = owner.manager_id.as_ref().and_then(|m| managers.get(m));
            out.push(Warning {
                kind: WarningKind::ServiceAccount,
                subject: format!("key:{}", key.id),
                user_id: owner.id.clone(),
                username: owner.username.clone(),
                recipient: manager.and_then(|m| m.email.clone()),
                recipient_username: manager.map(|m| m.username.clone()).unwrap_or_default(),
                keys: vec![key_ref],
                valid_until: until,
                sign_in_url: sign_in_url.to_string(),
            });
        } else {
            people
                .entry(owner.id.clone())
                .or_insert_with(|| Warning {
                    kind: WarningKind::Person,
                    subject: owner.id.to_string(),
                    user_id: owner.id.clone(),
                    username: owner.username.clone(),
                    recipient: owner.email.clone(),
                    recipient_username: owner.username.clone(),
                    keys: Vec::new(),
                    valid_until: until,
                    sign_in_url: sign_in_url.to_string(),
                })
                .keys
                .push(key_ref);
        }
    }
    out.extend(people.into_values());
    out
}

/// Finds what is due and sends each warning on every configured channel that has not sent
/// it for this lapse yet. A failed send is retried at the next run.
pub async fn run(app: &Services) -> Result<Report> {
    let Some(cfg) = app.config.notifications.clone() else {
        return Ok(Report::default());
    };
    let now = app.clock.now();
    let config = app.config.clone();
    let sign_in_url = format!("{}/ui/login", app.config.server.public_url());
    let warnings = app
        .store
        .read(move |conn| {
            let keys: Vec<(AccessKeyRow, UserRow)> = access_keys::table
                .inner_join(users::table)
                .select((AccessKeyRow::as_select(), UserRow::as_select()))
                .load(conn)?;
            let manager_ids: Vec<UserId> = keys
                .iter()
                .filter_map(|(_, u)| u.manager_id.clone())
                .collect();
            let managers: BTreeMap<UserId, UserRow> = user_rows::by_ids(conn, &manager_ids)?
                .into_iter()
                .map(|u| (u.id.clone(), u))
                .collect();
            let o = RuntimeOptions::load(conn, &config)?;
            Ok(due(
                &keys,
                &managers,
                o.key_rules(),
                o.warning_days,
                now,
                &sign_in_url,
            ))
        })
        .await?;
    let mut report = Report {
        due: warnings.len(),
        ..Report::default()
    };
    for w in &warnings {
        if let Some(smtp) = &cfg.smtp {
            match &w.recipient {
                None => {
                    report.no_email += 1;
                    tracing::warn!(user = %w.recipient_username, "key lapse warning: no e-mail address to send it to");
                }
                Some(to) => {
                    let to = to.clone();
                    let outcome = once(app, w, "email", now, || send_email(smtp, w, &to)).await?;
                    tally(&mut report, outcome, |r| r.emails += 1);
                }
            }
        }
        if let Some(hook) = &cfg.webhook {
            let outcome = once(app, w, "webhook", now, || send_webhook(hook, w)).await?;
            tally(&mut report, outcome, |r| r.webhooks += 1);
        }
    }
    tracing::info!(
        due = report.due,
        emails = report.emails,
        webhooks = report.webhooks,
        already_sent = report.already_sent,
        failed = report.failed,
        "key lapse warnings"
    );
    Ok(report)
}

enum Outcome {
    Sent,
    AlreadySent,
    Failed,
}

fn tally(report: &mut Report, o: Outcome, sent: impl FnOnce(&mut Report)) {
    match o {
        Outcome::Sent => sent(report),
        Outcome::AlreadySent => report.already_sent += 1,
        Outcome::Failed => report.failed += 1,
    }
}

/// Claims (subject, lapse, channel) before sending, so that replicas or overlapping runs
/// never send twice; a failed send gives the claim back for the next run.
async fn once<F, Fut>(
    app: &Services,
    w: &Warning,
    channel: &'static str,
    now: DateTime<Utc>,
    send: F,
) -> Result<Outcome>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = std::result::Result<(), String>>,
{
    let (subject, lapse) = (w.subject.clone(), Timestamp::from(w.valid_until));
    let claim = app
        .store
        .write(move |conn| {
            let sent: i64 = key_warnings::table
                .filter(key_warnings::subject.eq(&subject))
                .filter(key_warnings::lapse_at.eq(lapse))
                .filter(key_warnings::channel.eq(channel))
                .count()
                .get_result(conn)?;
            if sent > 0 {
                return Ok(false);
            }
            diesel::insert_into(key_warnings::table)
                .values((
                    key_warnings::subject.eq(&subject),
                    key_warnings::lapse_at.eq(lapse),
                    key_warnings::channel.eq(channel),
                    key_warnings::sent_at.eq(Timestamp::from(now)),
                ))
                .execute(conn)?;
            Ok(true)
        })
        .await;
    let claimed = match claim {
        Ok(c) => c,
        // Another replica claimed it between our check and insert.
        Err(Error::Conflict(_)) => false,
        Err(e) => return Err(e),
    };
    if !claimed {
        return Ok(Outcome::AlreadySent);
    }
    match send().await {
        Ok(()) => Ok(Outcome::Sent),
        Err(e) => {
            tracing::warn!(user = %w.username, channel, error = %e, "key lapse warning not sent; retried at the next run");
            let (subject, lapse) = (w.subject.clone(), Timestamp::from(w.valid_until));
            app.store
                .write(move |conn| {
                    diesel::delete(
                        key_warnings::table
                            .filter(key_warnings::subject.eq(&subject))
                            .filter(key_warnings::lapse_at.eq(lapse))
                            .filter(key_warnings::channel.eq(channel)),
                    )
                    .execute(conn)?;
                    Ok(())
                })
                .await?;
            Ok(Outcome::Failed)
        }
    }
}

fn day(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// What a warning e-mail says, in its two forms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailContent {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// The e-mail of a warning.
pub fn email_content(w: &Warning) -> EmailContent {
    let when = day(w.valid_until);
    let labels: Vec<String> = w
        .keys
        .iter()
        .map(|k| format!("\"{}\" ({})", k.label, k.key_id))
        .collect();
    let items: String = w
        .keys
        .iter()
        .map(|k| {
            format!(
                "<li><strong>{}</strong> <code>{}</code></li>",
                escape(&k.label),
                escape(&k.key_id)
            )
        })
        .collect();
    if w.kind == WarningKind::IdleKey {
        let subject = format!(
            "Access key \"{}\" stops on {when}: it has not been used",
            w.keys[0].label
        );
        let text = format!(
            "Hello {},\n\nthe access key {} of {} has not been used for a long time and stops \
             working on {when} (Authentication/AccessKey/MaxIdleDays). A use before then keeps \
             it; signing in does not. If nothing uses it any more, delete it.\n\n{}\n",
            w.recipient_username,
            labels.join(", "),
            w.username,
            w.sign_in_url
        );
        let html = format!(
            "<p>Hello {},</p><p>this access key of <strong>{}</strong> has not been used for a \
             long time and stops working on <strong>{when}</strong>:</p><ul>{items}</ul><p>A use \
             before then keeps it; signing in does not. If nothing uses it any more, delete \
             it.</p><p><a href=\"{url}\">{url}</a></p>",
            escape(&w.recipient_username),
            escape(&w.username),
            url = escape(&w.sign_in_url)
        );
        return EmailContent {
            subject,
            text,
            html,
        };
    }
    if w.kind == WarningKind::ServiceAccount {
        let subject = format!(
            "Service account {}: access key \"{}\" expires on {when}",
            w.username, w.keys[0].label
        );
        let text = format!(
            "Hello {},\n\nyou are responsible for the service account {}. Its access key {} \
             expires on {when} and then stops working for every script that uses it.\n\n\
             Create a new key for it before then (an admin can, with an expiry), and switch the \
             scripts over.\n\n{}\n",
            w.recipient_username,
            w.username,
            labels.join(", "),
            w.sign_in_url
        );
        let html = format!(
            "<p>Hello {},</p><p>you are responsible for the service account <strong>{}</strong>. \
             Its access key expires on <strong>{when}</strong> and then stops working for every \
             script that uses it:</p><ul>{items}</ul><p>Create a new key for it before then \
             (an admin can, with an expiry), and switch the scripts over.</p>\
             <p><a href=\"{url}\">{url}</a></p>",
            escape(&w.recipient_username),
            escape(&w.username),
            url = escape(&w.sign_in_url)
        );
        return EmailContent {
            subject,
            text,
            html,
        };
    }
    let subject = format!("Your access keys stop working on {when}");
    let text = format!(
        "Hello {},\n\nyour access keys stop working on {when} unless you sign in before then:\n\n{}\n\n\
         Sign in once to keep them working (each sign-in extends them):\n{}\n",
        w.username,
        labels.iter().map(|l| format!("  - {l}")).collect::<Vec<_>>().join("\n"),
        w.sign_in_url
    );
    let html = format!(
        "<p>Hello {},</p><p>your access keys stop working on <strong>{when}</strong> unless you \
         sign in before then:</p><ul>{items}</ul><p>Sign in once to keep them working (each \
         sign-in extends them): <a href=\"{url}\">{url}</a></p>",
        escape(&w.username),
        url = escape(&w.sign_in_url)
    );
    EmailContent {
        subject,
        text,
        html,
    }
}

/// The `type` (and `X-Accesskeyd-Event`) of a leaked-key notice's webhook delivery.
pub const LEAK_EVENT: &str = "access_keys.leaked";

/// What a notice is about (its `kind` in the webhook's `notice`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NoticeKind {
    /// A key a secret scanner found in public, deleted for it.
    LeakedKey,
}

/// A key deleted because a secret scanner found it in public. Its owner is told (a service
/// account's manager instead), once: only the report that deleted the key sends it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LeakNotice {
    pub kind: NoticeKind,
    /// The key's owner.
    pub user_id: UserId,
    pub username: String,
    /// Who is told by e-mail: the owner, or the service account's manager.
    pub recipient: Option<String>,
    pub recipient_username: String,
    pub key: KeyRef,
    /// Where the scanner found it (a URL), as it said.
    pub found_at: Option<String>,
    /// What kind of place (`content`, `commit`, `npm`, ...), as the scanner said.
    pub source: Option<String>,
    pub deleted_at: DateTime<Utc>,
    pub sign_in_url: String,
}

impl LeakNotice {
    /// The notice of `key` of `owner` (`manager`: a service account's).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        key: &AccessKeyRow,
        owner: &UserRow,
        manager: Option<&UserRow>,
        found_at: Option<String>,
        source: Option<String>,
        deleted_at: DateTime<Utc>,
        sign_in_url: String,
    ) -> LeakNotice {
        let (recipient, recipient_username) = if owner.is_service_account {
            (
                manager.and_then(|m| m.email.clone()),
                manager.map(|m| m.username.clone()).unwrap_or_default(),
            )
        } else {
            (owner.email.clone(), owner.username.clone())
        };
        LeakNotice {
            kind: NoticeKind::LeakedKey,
            user_id: owner.id.clone(),
            username: owner.username.clone(),
            recipient,
            recipient_username,
            key: KeyRef {
                key_id: key.key_id.clone(),
                label: key.name.clone(),
            },
            found_at,
            source,
            deleted_at,
            sign_in_url,
        }
    }
}

/// The e-mail of a leak notice.
pub fn leak_email_content(n: &LeakNotice) -> EmailContent {
    let when = day(n.deleted_at);
    let whose = if n.username == n.recipient_username {
        "your access key".to_string()
    } else {
        format!("the access key of {}", n.username)
    };
    let place = n
        .found_at
        .as_deref()
        .unwrap_or("(the scanner gave no address)");
    let source = n.source.as_deref().unwrap_or("unknown");
    let subject = format!(
        "Access key \"{}\" was found in public and has been deleted",
        n.key.label
    );
    let text = format!(
        "Hello {},\n\n{whose} \"{}\" ({}) was found in public by a secret scanner and was \
         deleted on {when}: it no longer works, and sessions opened with it have ended.\n\n\
         Where it was found ({source}): {place}\n\n\
         Anyone who saw it could use it until then: check what it could reach. Create a new key \
         for the scripts that used it, and keep its password out of source code (a secret store \
         or an environment variable).\n\n{}\n",
        n.recipient_username, n.key.label, n.key.key_id, n.sign_in_url
    );
    let html = format!(
        "<p>Hello {},</p><p>{} <strong>{}</strong> <code>{}</code> was found in public by a \
         secret scanner and was deleted on <strong>{when}</strong>: it no longer works, and \
         sessions opened with it have ended.</p><p>Where it was found ({}): <code>{}</code></p>\
         <p>Anyone who saw it could use it until then: check what it could reach. Create a new \
         key for the scripts that used it, and keep its password out of source code (a secret \
         store or an environment variable).</p><p><a href=\"{url}\">{url}</a></p>",
        escape(&n.recipient_username),
        escape(&whose),
        escape(&n.key.label),
        escape(&n.key.key_id),
        escape(source),
        escape(place),
        url = escape(&n.sign_in_url)
    );
    EmailContent {
        subject,
        text,
        html,
    }
}

/// Sends a leak notice on every configured channel, once: a failure is logged and not
/// retried (the key is gone either way, and the audit trail has it).
pub async fn send_leak_notice(cfg: &NotificationsConfig, n: &LeakNotice) -> Report {
    let mut report = Report {
        due: 1,
        ..Report::default()
    };
    if let Some(smtp) = &cfg.smtp {
        match &n.recipient {
            None => {
                report.no_email += 1;
                tracing::warn!(user = %n.recipient_username, key_id = %n.key.key_id, "leaked key notice: no e-mail address to send it to");
            }
            Some(to) => match send_mail(smtp, leak_email_content(n), to).await {
                Ok(()) => report.emails += 1,
                Err(e) => {
                    report.failed += 1;
                    tracing::warn!(user = %n.recipient_username, key_id = %n.key.key_id, error = %e, "leaked key notice not mailed");
                }
            },
        }
    }
    if let Some(hook) = &cfg.webhook {
        match deliver(hook, LEAK_EVENT, "notice", n).await {
            Ok(()) => report.webhooks += 1,
            Err(e) => {
                report.failed += 1;
                tracing::warn!(key_id = %n.key.key_id, error = %e, "leaked key notice not delivered to the webhook");
            }
        }
    }
    report
}

async fn send_email(cfg: &SmtpConfig, w: &Warning, to: &str) -> std::result::Result<(), String> {
    send_mail(cfg, email_content(w), to).await
}

/// Sends `content` to `to` through the configured relay.
async fn send_mail(
    cfg: &SmtpConfig,
    content: EmailContent,
    to: &str,
) -> std::result::Result<(), String> {
    use lettre::message::{Mailbox, MultiPart};
    use lettre::transport::smtp::authentication::Credentials;
    use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
    use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

    let EmailContent {
        subject,
        text,
        html,
    } = content;
    let from: Mailbox = cfg.from.parse().map_err(|e| format!("from: {e}"))?;
    let to: Mailbox = to.parse().map_err(|e| format!("recipient `{to}`: {e}"))?;
    let message = Message::builder()
        .from(from)
        .to(to)
        .subject(subject)
        .multipart(MultiPart::alternative_plain_html(text, html))
        .map_err(|e| format!("message: {e}"))?;
    let tls = || -> std::result::Result<TlsParameters, String> {
        let mut b = TlsParameters::builder(cfg.host.clone());
        if let Some(ca) = &cfg.ca_file {
            let pem = std::fs::read(ca).map_err(|e| format!("ca_file {}: {e}", ca.display()))?;
            b = b.add_root_certificate(
                Certificate::from_pem(&pem).map_err(|e| format!("ca_file: {e}"))?,
            );
        }
        b.build_rustls().map_err(|e| format!("tls: {e}"))
    };
    let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&cfg.host)
        .port(cfg.port)
        .timeout(Some(std::time::Duration::from_secs(cfg.timeout_seconds)));
    builder = match cfg.security {
        SmtpSecurity::None => builder.tls(Tls::None),
        SmtpSecurity::Starttls => builder.tls(Tls::Required(tls()?)),
        SmtpSecurity::Tls => builder.tls(Tls::Wrapper(tls()?)),
    };
    if let (Some(user), Some(password)) = (&cfg.username, &cfg.password) {
        builder = builder.credentials(Credentials::new(
            user.clone(),
            password.expose().to_string(),
        ));
    }
    builder
        .build()
        .send(message)
        .await
        .map(|_| ())
        .map_err(|e| format!("smtp {}:{}: {e}", cfg.host, cfg.port))
}

/// `sha256=<hex HMAC-SHA256(secret, body)>`.
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret) {
        Ok(m) => m,
        // HMAC takes keys of any length; this branch cannot happen.
        Err(_) => return String::new(),
    };
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// A webhook URL as the log may show it: scheme, host and port. Webhook URLs often carry a
/// secret in their path or query (a Slack or Teams hook, a `token=` parameter), and the
/// user-info part may hold a password, so none of those are shown.
pub fn redact_webhook(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(u) => match (u.host_str(), u.port()) {
            (Some(h), Some(p)) => format!("{}://{h}:{p}/***", u.scheme()),
            (Some(h), None) => format!("{}://{h}/***", u.scheme()),
            _ => "***".into(),
        },
        Err(_) => "***".into(),
    }
}

/// A reqwest error with its causes, without the URL reqwest puts in its message.
fn without_url(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut text = e.to_string();
    let mut cause = std::error::Error::source(&e);
    while let Some(c) = cause {
        text.push_str(&format!(": {c}"));
        cause = c.source();
    }
    text
}

/// The `type` (and `X-Accesskeyd-Event`) of a lapse warning's webhook delivery.
pub const LAPSE_WARNING_EVENT: &str = "access_keys.lapse_warning";

/// POSTs the warning as JSON, retrying 5xx answers and connection errors with doubling waits.
async fn send_webhook(cfg: &WebhookConfig, w: &Warning) -> std::result::Result<(), String> {
    deliver(cfg, LAPSE_WARNING_EVENT, "warning", w).await
}

/// POSTs `{"type": event, "deliveryId", <field>: payload}`, signed, retrying 5xx answers and
/// connection errors with doubling waits; the same delivery id and body on each attempt.
async fn deliver(
    cfg: &WebhookConfig,
    event: &str,
    field: &str,
    payload: &impl Serialize,
) -> std::result::Result<(), String> {
    let delivery = uuid::Uuid::new_v4().to_string();
    let mut doc = serde_json::Map::new();
    doc.insert("type".into(), serde_json::Value::from(event));
    doc.insert(
        "deliveryId".into(),
        serde_json::Value::from(delivery.clone()),
    );
    doc.insert(
        field.into(),
        serde_json::to_value(payload).map_err(|e| e.to_string())?,
    );
    let body = serde_json::to_vec(&doc).map_err(|e| e.to_string())?;
    let sig = signature(cfg.secret.expose().as_bytes(), &body);
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(cfg.timeout_seconds))
        .build()
        .map_err(without_url)?;
    let mut wait = std::time::Duration::from_millis(cfg.retry_base_ms);
    let mut last = String::new();
    for attempt in 1..=cfg.max_attempts {
        let result = client
            .post(&cfg.url)
            .header("Content-Type", "application/json")
            .header(SIGNATURE_HEADER, &sig)
            .header("X-Accesskeyd-Event", event)
            .header("X-Accesskeyd-Delivery", &delivery)
            .body(body.clone())
            .send()
            .await;
        match result {
            Ok(r) if r.status().is_success() => return Ok(()),
            // A 4xx will not get better by asking again.
            Ok(r) if r.status().is_client_error() => {
                return Err(format!("webhook answered {}", r.status()))
            }
            Ok(r) => last = format!("webhook answered {}", r.status()),
            Err(e) => last = format!("webhook {}: {}", redact_webhook(&cfg.url), without_url(e)),
        }
        if attempt < cfg.max_attempts {
            tracing::debug!(attempt, error = %last, "webhook delivery failed; retrying");
            tokio::time::sleep(wait).await;
            wait = wait.saturating_mul(2);
        }
    }
    Err(format!("{last} (after {} attempts)", cfg.max_attempts))
}

#[cfg(test)]
mod tests {
    #[test]
    fn webhook_urls_lose_their_secrets_in_the_log() {
        assert_eq!(
            super::redact_webhook("https://hooks.slack.com/services/T0/B0/s3cr3t?token=x"),
            "https://hooks.slack.com/***"
        );
        assert_eq!(
            super::redact_webhook("http://user:pw@127.0.0.1:9/hook/s3cr3t"),
            "http://127.0.0.1:9/***"
        );
        assert_eq!(super::redact_webhook("not a url s3cr3t"), "***");
    }

    use super::*;
    use crate::store::timestamp::Timestamp;

    fn user(id: &str, last_login: Option<DateTime<Utc>>) -> UserRow {
        UserRow {
            last_login_at: last_login.map(Timestamp::from),
            ..UserRow::fixture(id)
        }
    }

    fn key(id: &str, owner: &str, expires: Option<DateTime<Utc>>) -> AccessKeyRow {
        AccessKeyRow {
            id: id.into(),
            key_id: format!("akd_{id}"),
            user_id: owner.into(),
            name: format!("label {id}"),
            description: None,
            password_hash: String::new(),
            created_at: Timestamp::default(),
            last_used_at: None,
            expires_at: expires.map(Timestamp::from),
            ..AccessKeyRow::new_for_tests()
        }
    }

    #[test]
    fn warnings_are_due_inside_the_warning_window_only() {
        let now = Timestamp::from_millis(1_800_000_000_000).at();
        let soon = user("soon", Some(now - Duration::days(12)));
        let fine = user("fine", Some(now - Duration::days(1)));
        let gone = user("gone", Some(now - Duration::days(20)));
        let mut sa = user("etl", None);
        sa.is_service_account = true;
        sa.manager_id = Some("fine".into());
        let keys = vec![
            (key("a", "soon", None), soon.clone()),
            (key("b", "soon", None), soon.clone()),
            (key("c", "fine", None), fine.clone()),
            (key("d", "gone", None), gone),
            (key("e", "etl", Some(now + Duration::days(2))), sa.clone()),
            (key("f", "etl", Some(now + Duration::days(200))), sa),
        ];
        let managers = BTreeMap::from([(UserId::from("fine"), fine)]);
        let due = due(&keys, &managers, rules(14, 0), 3, now, "https://x/ui/login");
        assert_eq!(due.len(), 2, "{due:?}");
        let sa_w = due
            .iter()
            .find(|w| w.kind == WarningKind::ServiceAccount)
            .unwrap();
        assert_eq!(sa_w.recipient.as_deref(), Some("fine@example.org"));
        assert_eq!(sa_w.subject, "key:e");
        let p = due.iter().find(|w| w.kind == WarningKind::Person).unwrap();
        assert_eq!(p.keys.len(), 2, "one warning names all of a person's keys");
        assert_eq!(p.valid_until, now + Duration::days(2));
        assert!(
            super::due(&keys, &managers, rules(14, 0), 0, now, "").is_empty(),
            "0 days: none"
        );
    }

    fn rules(validity_days: i64, max_idle_days: i64) -> KeyRules {
        KeyRules {
            validity_days,
            max_idle_days,
        }
    }

    #[test]
    fn a_key_about_to_stop_for_idleness_is_warned_about_alone() {
        let now = Timestamp::from_millis(1_800_000_000_000).at();
        let fine = user("fine", Some(now - Duration::days(1)));
        let mut idle = key("idle", "fine", None);
        idle.created_at = Timestamp::from(now - Duration::days(100));
        idle.last_used_at = Some(Timestamp::from(now - Duration::days(28)));
        let mut busy = key("busy", "fine", None);
        busy.last_used_at = Some(Timestamp::from(now - Duration::hours(1)));
        let mut never = key("never", "fine", None);
        never.created_at = Timestamp::from(now - Duration::days(5));
        let keys = vec![(idle, fine.clone()), (busy, fine.clone()), (never, fine)];
        let due = due(&keys, &BTreeMap::new(), rules(14, 30), 3, now, "u");
        assert_eq!(due.len(), 1, "{due:?}");
        assert_eq!(due[0].kind, WarningKind::IdleKey);
        assert_eq!(due[0].subject, "idle:idle");
        assert_eq!(due[0].valid_until, now + Duration::days(2));
        assert_eq!(due[0].recipient.as_deref(), Some("fine@example.org"));
        let mail = email_content(&due[0]);
        assert!(mail.subject.contains("label idle"), "{}", mail.subject);
        assert!(mail.text.contains("signing in does not"), "{}", mail.text);
        assert!(
            super::due(&keys, &BTreeMap::new(), rules(14, 0), 3, now, "u").is_empty(),
            "idle limit off: nothing lapses within 3 days"
        );
    }

    #[test]
    fn the_signature_is_hmac_sha256_of_the_body() {
        // RFC 4231 test case 2.
        assert_eq!(
            signature(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn email_names_keys_date_and_link() {
        let w = Warning {
            kind: WarningKind::Person,
            subject: "u".into(),
            user_id: "u".into(),
            username: "bob".into(),
            recipient: Some("bob@example.org".into()),
            recipient_username: "bob".into(),
            keys: vec![KeyRef {
                key_id: "akd_X".into(),
                label: "etl <nightly>".into(),
            }],
            valid_until: Timestamp::from_millis(1_800_000_000_000).at(),
            sign_in_url: "https://akd.example.com/ui/login".into(),
        };
        let EmailContent {
            subject,
            text,
            html,
        } = email_content(&w);
        assert!(subject.contains("2027-01-15"), "{subject}");
        assert!(
            text.contains("etl <nightly>") && text.contains("https://akd.example.com/ui/login")
        );
        assert!(html.contains("etl &lt;nightly&gt;"), "{html}");
    }
}
