//! Warnings before keys lapse: a real SMTP server (aiosmtpd) and a webhook receiver on
//! loopback get each warning once, signed, retried after a 500; a sign-in re-arms it.

use crate::harness::daemon::{Daemon, LDAP_DIR};
use crate::harness::slapd::Slapd;
use crate::harness::smtp::SmtpSink;
use crate::harness::webhook::WebhookReceiver;
use chrono::Duration;
use serde_json::json;
use std::time::Duration as StdDuration;

const HOOK_SECRET: &str = "webhook-signing-secret-0123456789";

fn notifications_toml(
    smtp: &SmtpSink,
    hook: &WebhookReceiver,
    password_file: &std::path::Path,
) -> String {
    format!(
        r#"
[server]
public_url = "https://akd.example.com"

[notifications]
schedule = "0 0 7 * * *"

[notifications.smtp]
host = "127.0.0.1"
port = {}
security = "none"
username = "{}"
password_file = "{}"
from = "accesskeyd <noreply@example.com>"

[notifications.webhook]
url = "{}"
secret = "{HOOK_SECRET}"
retry_base_ms = 50
"#,
        smtp.port(),
        smtp.username(),
        password_file.display(),
        hook.url()
    )
}

/// slapd, the SMTP sink (with AUTH), a webhook receiver answering 500 `fail_first` times, and
/// the `[notifications]` TOML pointing at them (the SMTP password in a file, newline included).
struct Peers {
    slapd: Slapd,
    smtp: SmtpSink,
    hook: WebhookReceiver,
    dir: tempfile::TempDir,
    toml: String,
}

async fn peers(fail_first: usize) -> Peers {
    let slapd = Slapd::start().await;
    let smtp = SmtpSink::start_with_auth().await;
    let hook = WebhookReceiver::start(HOOK_SECRET, fail_first).await;
    let dir = tempfile::tempdir().unwrap();
    let password_file = dir.path().join("smtp-password");
    std::fs::write(&password_file, format!("{}\n", smtp.password())).unwrap();
    let toml = notifications_toml(&smtp, &hook, &password_file);
    Peers {
        slapd,
        smtp,
        hook,
        dir,
        toml,
    }
}

impl Peers {
    async fn daemon(&self) -> Daemon {
        Daemon::start_with(Some(&self.slapd), &self.toml, &[]).await
    }
}

#[tokio::test]
async fn owners_are_warned_once_per_lapse_by_mail_and_signed_webhook() {
    let p = peers(1).await;
    let (smtp, hook) = (&p.smtp, &p.hook);
    let d = p.daemon().await;

    // Bob's keys stop in 2 days (last sign-in 12 of 14 days ago); alice's in 14.
    let bob = d.login("bob", "bob-pw", Some(LDAP_DIR)).await;
    let bob_id = bob.me().await.body["id"].as_str().unwrap().to_string();
    bob.create_key("etl nightly").await;
    bob.create_key("power bi sales").await;
    let alice = d.login("alice", "alice-pw", Some(LDAP_DIR)).await;
    alice.create_key("alice notebook").await;
    d.set_last_login(&bob_id, d.app.clock.now() - Duration::days(12))
        .await;
    // Key lists already say so.
    let keys = bob.get("/api/accesskeys").await.body;
    let until = keys["keys"][0]["validUntil"].as_str().unwrap().to_string();

    let report = accesskeyd::notify::run(&d.app).await.unwrap();
    assert_eq!(
        (report.due, report.emails, report.webhooks, report.failed),
        (1, 1, 1, 0),
        "{report:?}"
    );

    let mails = smtp.wait_for(1, StdDuration::from_secs(10)).await;
    let m = &mails[0];
    assert_eq!(m.rcpt_tos, ["bob@example.org"]);
    assert_eq!(
        m.auth_user.as_deref(),
        Some("notifier"),
        "sent with the configured credentials"
    );
    assert!(m.mail_from.contains("noreply@example.com"));
    let day = &until[..10];
    assert!(m.subject.contains(day), "{} vs {until}", m.subject);
    for part in [&m.text, &m.html] {
        assert!(
            part.contains("etl nightly") && part.contains("power bi sales"),
            "{part}"
        );
        assert!(part.contains("https://akd.example.com/ui/login"), "{part}");
    }

    // The webhook: first answered 500, retried, then 200; every delivery signed.
    let deliveries = hook.wait_for(2, StdDuration::from_secs(10)).await;
    assert_eq!(
        deliveries.iter().map(|x| x.answered).collect::<Vec<_>>(),
        [500, 200]
    );
    assert!(deliveries.iter().all(|x| x.signature_valid));
    assert_eq!(
        deliveries[0].body, deliveries[1].body,
        "a retry sends the same delivery"
    );
    let payload = deliveries[1].json();
    assert_eq!(payload["type"], "access_keys.lapse_warning");
    assert_eq!(payload["warning"]["username"], "bob");
    assert_eq!(payload["warning"]["validUntil"], json!(until));
    assert_eq!(payload["warning"]["keys"].as_array().unwrap().len(), 2);

    // The next day's run sends nothing again for the same lapse.
    d.advance(Duration::days(1));
    let again = accesskeyd::notify::run(&d.app).await.unwrap();
    assert_eq!(
        (again.emails, again.webhooks, again.already_sent),
        (0, 0, 2),
        "{again:?}"
    );
    assert_eq!(smtp.messages().len(), 1);
    assert_eq!(hook.deliveries().len(), 2);

    // Bob signs in: nothing is due; 12 days later the new lapse is warned about again.
    d.login("bob", "bob-pw", Some(LDAP_DIR)).await;
    assert_eq!(accesskeyd::notify::run(&d.app).await.unwrap().due, 0);
    d.advance(Duration::days(12));
    // (By now alice's keys are 13 days into their 14 as well: she is warned too.)
    let rearmed = accesskeyd::notify::run(&d.app).await.unwrap();
    assert_eq!((rearmed.emails, rearmed.webhooks), (2, 2), "{rearmed:?}");
    let mails = smtp.wait_for(3, StdDuration::from_secs(10)).await;
    let mut to: Vec<&str> = mails[1..].iter().map(|m| m.rcpt_tos[0].as_str()).collect();
    to.sort();
    assert_eq!(to, ["alice@example.org", "bob@example.org"]);
    let _ = alice;
}

#[tokio::test]
async fn managers_are_warned_before_a_service_account_key_expires() {
    let p = peers(0).await;
    let (smtp, hook) = (&p.smtp, &p.hook);
    let d = p.daemon().await;
    d.login("bob", "bob-pw", Some(LDAP_DIR)).await;
    let admin = d.admin().await;
    let sa = admin
        .post(
            "/api/users",
            json!({"name": "Nightly ETL", "isApplicationServicePrincipal": true, "manager": "corp:bob"}),
        )
        .await;
    let sa_id = sa.body["id"].as_str().unwrap().to_string();
    let soon = admin
        .post(
            "/api/accesskeys",
            json!({"name": "etl feed", "userId": sa_id, "expiry": d.app.clock.now() + Duration::days(2)}),
        )
        .await;
    assert_eq!(soon.status, reqwest::StatusCode::CREATED, "{}", soon.body);
    admin
        .post(
            "/api/accesskeys",
            json!({"name": "far away", "userId": sa_id, "expiry": d.app.clock.now() + Duration::days(90)}),
        )
        .await;

    let report = accesskeyd::notify::run(&d.app).await.unwrap();
    assert_eq!(
        (report.due, report.emails, report.webhooks),
        (1, 1, 1),
        "{report:?}"
    );
    let m = &smtp.wait_for(1, StdDuration::from_secs(10)).await[0];
    assert_eq!(m.rcpt_tos, ["bob@example.org"], "the manager is told");
    assert!(
        m.subject.contains("nightly-etl") && m.subject.contains("etl feed"),
        "{}",
        m.subject
    );
    let payload = hook.wait_for(1, StdDuration::from_secs(10)).await[0].json();
    assert_eq!(payload["warning"]["kind"], "service_account");
    assert_eq!(payload["warning"]["keys"][0]["label"], "etl feed");
}

#[tokio::test]
async fn an_operator_sends_the_warnings_now_from_the_command_line() {
    use crate::harness::db::TestDatabase;
    use crate::harness::process::{accesskeyd, text};
    let p = peers(0).await;
    let dir = p.dir.path();
    let db = TestDatabase::new(dir);
    let cfg = dir.join("accesskeyd.toml");
    let toml = crate::harness::daemon::config_toml(db.url(), Some(&p.slapd), &p.toml);
    std::fs::write(&cfg, toml).unwrap();
    let run = || {
        accesskeyd(dir)
            .arg("--config")
            .arg(&cfg)
            .arg("notify")
            .output()
            .unwrap()
    };
    let o = run();
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("warnings due: 0"), "{}", text(&o));
    // Without the section the command says what is missing.
    std::fs::write(
        &cfg,
        crate::harness::daemon::config_toml(db.url(), None, ""),
    )
    .unwrap();
    let o = run();
    assert!(!o.status.success());
    assert!(text(&o).contains("[notifications]"), "{}", text(&o));
}

#[tokio::test]
async fn records_of_past_lapses_are_pruned_by_the_cleanup_job() {
    use accesskeyd::store::schema::key_warnings;
    use diesel::prelude::*;
    let p = peers(0).await;
    let d = p.daemon().await;
    let bob = d.login("bob", "bob-pw", Some(LDAP_DIR)).await;
    let bob_id = bob.me().await.body["id"].as_str().unwrap().to_string();
    bob.create_key("etl").await;
    d.set_last_login(&bob_id, d.app.clock.now() - Duration::days(12))
        .await;
    assert_eq!(accesskeyd::notify::run(&d.app).await.unwrap().emails, 1);
    let count = || async {
        d.app
            .store
            .read(|c| Ok(key_warnings::table.count().get_result::<i64>(c)?))
            .await
            .unwrap()
    };
    assert_eq!(count().await, 2, "one record per channel");
    let cleanup = |now| {
        d.app
            .store
            .write(move |c| accesskeyd::jobs::cleanup(c, now, &[]))
    };
    cleanup(d.app.clock.now()).await.unwrap();
    assert_eq!(count().await, 2, "the lapse has not passed: kept");
    d.advance(Duration::days(4));
    cleanup(d.app.clock.now()).await.unwrap();
    assert_eq!(count().await, 0, "a day after the lapse: pruned");
}

#[tokio::test]
async fn a_failed_webhook_delivery_is_logged_without_the_secret_in_its_url() {
    use crate::harness::process::{accesskeyd, free_port, text};
    // Nothing listens there; the path and query hold the hook's secret, as Slack's and
    // Teams' do.
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}/services/T000/B000/hook-s3cr3t?token=query-s3cr3t");
    let toml = format!(
        "\n[notifications]\nschedule = \"0 0 7 * * *\"\n\n[notifications.webhook]\nurl = \"{url}\"\n\
         secret = \"{HOOK_SECRET}\"\nmax_attempts = 1\n"
    );
    let d = Daemon::start_with(None, &toml, &[]).await;
    let admin = d.admin().await;
    let admin_id = admin.me().await.body["id"].as_str().unwrap().to_string();
    admin.create_key("nightly export").await;
    // The key lapses in two days: a warning is due.
    d.set_last_login(&admin_id, d.app.clock.now() - Duration::days(12))
        .await;

    let cfg = d.dir.path().join("notify.toml");
    std::fs::write(
        &cfg,
        crate::harness::daemon::config_toml(d.db.url(), None, &toml),
    )
    .unwrap();
    let o = accesskeyd(d.dir.path())
        .arg("--config")
        .arg(&cfg)
        .arg("notify")
        .output()
        .unwrap();
    let out = text(&o);
    assert!(!o.status.success(), "{out}");
    assert!(out.contains("1 warning(s) could not be sent"), "{out}");
    assert!(
        out.contains(&format!("webhook http://127.0.0.1:{port}/***")),
        "the log names the hook's host: {out}"
    );
    assert!(
        !out.contains("s3cr3t"),
        "the webhook URL's secret is in the log: {out}"
    );
}

#[tokio::test]
async fn a_key_about_to_stop_for_going_unused_is_warned_about_by_name() {
    let p = peers(0).await;
    let d = p.daemon().await;
    let admin = d.admin().await;
    let set = admin
        .post(
            "/api/system/configuration/options",
            json!({"configurationOptions": [{"path": "Authentication/AccessKey/MaxIdleDays", "value": 5}]}),
        )
        .await;
    assert_eq!(set.status, reqwest::StatusCode::OK, "{}", set.body);

    // Bob signs in every day, but one of his keys has been forgotten for 3 of 5 days.
    let bob = d.login("bob", "bob-pw", Some(LDAP_DIR)).await;
    let (forgotten, _, created) = bob.create_key("old report").await;
    d.advance(Duration::days(3));
    let bob = d.login("bob", "bob-pw", Some(LDAP_DIR)).await;
    let (_fresh, fresh_pw, fresh) = bob.create_key("new report").await;
    let fresh_id = fresh["keyId"].as_str().unwrap();
    assert_eq!(
        d.client().with_basic(fresh_id, &fresh_pw).me().await.status,
        reqwest::StatusCode::OK
    );

    let report = accesskeyd::notify::run(&d.app).await.unwrap();
    assert_eq!(
        (report.due, report.emails, report.webhooks),
        (1, 1, 1),
        "{report:?}"
    );
    let mails = p.smtp.wait_for(1, StdDuration::from_secs(10)).await;
    let m = &mails[0];
    assert_eq!(m.rcpt_tos, ["bob@example.org"]);
    assert!(
        m.subject.contains("old report") && m.subject.contains("has not been used"),
        "{}",
        m.subject
    );
    let until = created["validUntil"].as_str().unwrap();
    assert!(m.subject.contains(&until[..10]), "{} vs {until}", m.subject);
    assert!(
        m.text.contains("signing in does not") && !m.text.contains("new report"),
        "{}",
        m.text
    );
    let hook = p.hook.wait_for(1, StdDuration::from_secs(10)).await;
    let body: serde_json::Value = serde_json::from_slice(&hook[0].body).unwrap();
    assert_eq!(body["type"], "access_keys.lapse_warning");
    assert_eq!(body["warning"]["kind"], "idle_key");
    assert_eq!(body["warning"]["keys"][0]["keyId"], forgotten.as_str());

    // Once per lapse: the next run sends nothing new.
    let again = accesskeyd::notify::run(&d.app).await.unwrap();
    assert_eq!((again.emails, again.webhooks), (0, 0), "{again:?}");
}
