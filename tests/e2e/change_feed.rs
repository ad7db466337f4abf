//! Change feeds end to end against a real slapd (syncprov) and Samba AD DC (DirSync): a
//! person deleted, disabled, or taken out of the required group loses their keys within
//! seconds without a sync run; re-enabled, they come back; a feed that drops suspends nobody
//! and resumes from its cookie; a mass deletion stops the feed instead of suspending everyone.

use crate::harness::daemon::{Client, Daemon, LDAP_DIR};
use crate::harness::slapd::Slapd;
use reqwest::StatusCode;
use serde_json::Value;
use std::time::{Duration, Instant};

/// The issue's promise: refused within 5 s of the change upstream.
const WITHIN: Duration = Duration::from_secs(5);

/// The daemon's change feeds, stopped when the test ends (the test daemon runs no jobs of
/// its own).
struct Feeds(Vec<tokio::task::JoinHandle<()>>);

impl Drop for Feeds {
    fn drop(&mut self) {
        for h in &self.0 {
            h.abort();
        }
    }
}

fn follow(d: &Daemon) -> Feeds {
    Feeds(accesskeyd::feeds::spawn_change_feeds(d.app.clone()))
}

async fn key_status(d: &Daemon, key: &str, pw: &str) -> StatusCode {
    d.client().with_basic(key, pw).me().await.status
}

/// Waits until the key gets `want`, at most `limit`; returns how long it took.
async fn key_becomes(
    d: &Daemon,
    key: &str,
    pw: &str,
    want: StatusCode,
    limit: Duration,
) -> Duration {
    let start = Instant::now();
    loop {
        let got = key_status(d, key, pw).await;
        if got == want {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < limit,
            "the key still answers {got} after {:?} (wanted {want})",
            start.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until the directory's feed says it is connected (the initial refresh is done).
async fn connected(admin: &Client, dir: &str) -> Value {
    let start = Instant::now();
    loop {
        let d = admin.get(&format!("/api/directories/{dir}")).await;
        assert_eq!(d.status, StatusCode::OK, "{}", d.body);
        if d.body["signals"]["connected"] == true && d.body["signals"]["cookieAgeSeconds"].is_i64()
        {
            return d.body;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the feed did not connect: {}",
            d.body
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn run_count(admin: &Client, dir: &str) -> i64 {
    admin
        .get(&format!("/api/directories/{dir}/runs"))
        .await
        .body["totalResults"]
        .as_i64()
        .unwrap()
}

#[tokio::test]
async fn a_person_deleted_in_openldap_loses_their_key_within_seconds_without_a_sync_run() {
    let slapd = Slapd::start().await;
    let d = Daemon::start_with(
        Some(&slapd),
        "",
        &[("ACCESSKEYD_DIRECTORIES__1__CHANGE_FEED", "true")],
    )
    .await;
    let admin = d.admin().await;
    let bob = d.login("bob", "bob-pw", Some(LDAP_DIR)).await;
    let bob_id = bob.me().await.body["id"].as_str().unwrap().to_string();
    let (key, pw, _) = bob.create_key("etl").await;
    let carol = d.login("carol", "carol-pw", Some(LDAP_DIR)).await;
    let (carol_key, carol_pw, _) = carol.create_key("report").await;
    let _feeds = follow(&d);
    let state = connected(&admin, LDAP_DIR).await;
    assert_eq!(state["signals"]["source"], "syncrepl", "{state}");
    assert_eq!(key_status(&d, &key, &pw).await, StatusCode::OK);

    slapd.delete_user("bob").await;
    let took = key_becomes(&d, &key, &pw, StatusCode::UNAUTHORIZED, WITHIN).await;
    println!("bob's key refused {took:?} after his deletion");
    assert_eq!(
        bob.me().await.status,
        StatusCode::UNAUTHORIZED,
        "sessions end too"
    );
    // Suspended, not deleted, and no reconciliation ran.
    let user = admin.get(&format!("/api/users/{bob_id}")).await;
    assert_eq!(user.status, StatusCode::OK);
    assert!(user.body["suspendedAt"].is_string(), "{}", user.body);
    assert_eq!(run_count(&admin, LDAP_DIR).await, 0);
    // Carol is untouched.
    assert_eq!(key_status(&d, &carol_key, &carol_pw).await, StatusCode::OK);

    let audit = admin.get("/api/audit?action=user.suspend").await;
    assert_eq!(audit.body["totalResults"], 1, "{}", audit.body);
    let event = &audit.body["events"][0];
    assert!(
        event["actor"]
            .as_str()
            .unwrap_or("")
            .contains("LDAP change feed: deleted"),
        "the audit event names the signal: {event}"
    );
    let state = admin
        .get(&format!("/api/directories/{LDAP_DIR}"))
        .await
        .body;
    assert_eq!(state["signals"]["suspensionsToday"], 1, "{state}");
    assert!(state["signals"]["lastEventAt"].is_string(), "{state}");
    let m = d.metrics().await;
    assert!(
        m.contains(&format!(
            "accesskeyd_signals_total{{directory=\"{LDAP_DIR}\",effect=\"suspend\",outcome=\"changed\"}} 1"
        )),
        "{m}"
    );

    // The next sync deletes him, counted as one of its removals.
    let run = admin
        .post(
            &format!("/api/directories/{LDAP_DIR}/sync"),
            serde_json::json!({}),
        )
        .await;
    assert_eq!(run.body["status"], "ok", "{}", run.body);
    assert_eq!(run.body["counts"]["removed"], 1, "{}", run.body);
    assert_eq!(
        admin.get(&format!("/api/users/{bob_id}")).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn leaving_the_required_group_suspends_and_coming_back_lifts() {
    let slapd = Slapd::start().await;
    let group = slapd.users_group_dn().to_string();
    let d = Daemon::start_with(
        Some(&slapd),
        "",
        &[
            ("ACCESSKEYD_DIRECTORIES__1__REQUIRED_GROUP", group.as_str()),
            ("ACCESSKEYD_DIRECTORIES__1__CHANGE_FEED", "true"),
        ],
    )
    .await;
    let admin = d.admin().await;
    let carol = d.login("carol", "carol-pw", Some(LDAP_DIR)).await;
    let (key, pw, _) = carol.create_key("etl").await;
    let _feeds = follow(&d);
    connected(&admin, LDAP_DIR).await;

    slapd.remove_from_group(&group, "carol").await;
    key_becomes(&d, &key, &pw, StatusCode::UNAUTHORIZED, WITHIN).await;
    let audit = admin.get("/api/audit?action=user.suspend").await;
    assert!(
        audit.body["events"][0]["actor"]
            .as_str()
            .unwrap_or("")
            .contains("out of the directory's scope"),
        "{}",
        audit.body
    );

    // Back in the group: the feed lifts its own suspension, keys intact.
    slapd.add_to_group(&group, "carol").await;
    key_becomes(&d, &key, &pw, StatusCode::OK, WITHIN).await;
    let restored = admin.get("/api/audit?action=user.restore").await;
    assert_eq!(restored.body["totalResults"], 1, "{}", restored.body);
    assert_eq!(run_count(&admin, LDAP_DIR).await, 0);
}

#[tokio::test]
async fn a_mass_deletion_through_the_feed_stops_it_and_alerts_instead_of_suspending_everyone() {
    let slapd = Slapd::start().await;
    slapd.add_users_bulk("temp", 6, "temp-pw").await;
    let d = Daemon::start_with(
        Some(&slapd),
        "",
        &[
            ("ACCESSKEYD_DIRECTORIES__1__CHANGE_FEED", "true"),
            ("ACCESSKEYD_DIRECTORIES__1__DELETION_THRESHOLD", "2"),
        ],
    )
    .await;
    let admin = d.admin().await;
    let mut keys = Vec::new();
    for i in 0..6 {
        let name = format!("temp{i}");
        let c = d.login(&name, "temp-pw", Some(LDAP_DIR)).await;
        let (k, p, _) = c.create_key("etl").await;
        keys.push((name, k, p));
    }
    let _feeds = follow(&d);
    connected(&admin, LDAP_DIR).await;

    for (name, _, _) in &keys {
        slapd.delete_user(name).await;
    }
    // The feed stops and says so.
    let start = Instant::now();
    let state = loop {
        let s = admin
            .get(&format!("/api/directories/{LDAP_DIR}"))
            .await
            .body;
        if s["signals"]["stopped"] == true {
            break s;
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "never stopped: {s}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(
        state["signals"]["stoppedReason"]
            .as_str()
            .unwrap_or("")
            .contains("deletion_threshold = 2"),
        "{state}"
    );
    // Give the feed time to deliver the rest, then count: only the threshold's worth
    // were suspended.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut refused = 0;
    for (_, k, p) in &keys {
        if key_status(&d, k, p).await == StatusCode::UNAUTHORIZED {
            refused += 1;
        }
    }
    assert_eq!(refused, 2, "the threshold's worth are suspended, no more");
    let tripped = admin.get("/api/audit?action=signals.tripped").await;
    assert_eq!(tripped.body["totalResults"], 1, "{}", tripped.body);
    let m = d.metrics().await;
    assert!(m.contains("outcome=\"withheld\""), "{m}");

    // An admin resumes: the feed suspends again (the scheduled sync would handle the rest).
    let resumed = admin
        .post(
            &format!("/api/directories/{LDAP_DIR}/signals/resume"),
            serde_json::json!({}),
        )
        .await;
    assert_eq!(resumed.status, StatusCode::OK, "{}", resumed.body);
    assert_eq!(resumed.body["signals"]["stopped"], false);
    let again = admin
        .post(
            &format!("/api/directories/{LDAP_DIR}/signals/resume"),
            serde_json::json!({}),
        )
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{}", again.body);
}

#[tokio::test]
async fn slapd_killed_mid_feed_suspends_nobody_and_the_feed_resumes_from_its_cookie() {
    let mut slapd = Slapd::start().await;
    let d = Daemon::start_with(
        Some(&slapd),
        "",
        &[("ACCESSKEYD_DIRECTORIES__1__CHANGE_FEED", "true")],
    )
    .await;
    let admin = d.admin().await;
    let bob = d.login("bob", "bob-pw", Some(LDAP_DIR)).await;
    let (key, pw, _) = bob.create_key("etl").await;
    let carol = d.login("carol", "carol-pw", Some(LDAP_DIR)).await;
    let (carol_key, carol_pw, _) = carol.create_key("etl").await;
    let _feeds = follow(&d);
    connected(&admin, LDAP_DIR).await;

    slapd.stop();
    // The feed notices, says so, and suspends nobody.
    let start = Instant::now();
    let state = loop {
        let s = admin
            .get(&format!("/api/directories/{LDAP_DIR}"))
            .await
            .body;
        if s["signals"]["connected"] == false {
            break s;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "still connected: {s}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(state["signals"]["lastError"].is_string(), "{state}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(key_status(&d, &key, &pw).await, StatusCode::OK);
    assert_eq!(key_status(&d, &carol_key, &carol_pw).await, StatusCode::OK);
    let suspended = admin.get("/api/audit?action=user.suspend").await;
    assert_eq!(suspended.body["totalResults"], 0, "{}", suspended.body);

    // Back, on the same data: the feed reconnects from its cookie and sees what happens next.
    slapd.restart().await;
    let state = connected(&admin, LDAP_DIR).await;
    assert!(
        state["signals"]["reconnects"].as_i64().unwrap() >= 1,
        "{state}"
    );
    assert_eq!(
        key_status(&d, &key, &pw).await,
        StatusCode::OK,
        "nobody suspended by the restart"
    );
    slapd.delete_user("bob").await;
    key_becomes(&d, &key, &pw, StatusCode::UNAUTHORIZED, WITHIN).await;
    assert_eq!(key_status(&d, &carol_key, &carol_pw).await, StatusCode::OK);
    let m = d.metrics().await;
    assert!(
        m.contains(&format!(
            "accesskeyd_feed_reconnects_total{{directory=\"{LDAP_DIR}\"}}"
        )),
        "{m}"
    );
}

const AD: &str = "ad";
const AD_PW: &str = "Passw0rd!Str0ng";

#[tokio::test]
async fn a_person_disabled_in_active_directory_loses_their_key_within_seconds_and_gets_it_back() {
    use crate::harness::samba::{self, SambaDc};
    let _one_dc = samba::exclusive().await;
    let dc = SambaDc::start().await;
    let users = dc.create_group("akd-users").await;
    for u in ["erin", "gus"] {
        dc.create_user(u, AD_PW).await;
    }
    dc.add_members("akd-users", &["erin", "gus"]).await;
    let config = format!(
        r#"
[[directories]]
id = "{AD}"
kind = "ldap"
name = "Corp AD"
url = "{}"
bind_dn = "{}"
bind_password = "{}"
user_base = "{}"
user_filter = "(&(objectCategory=person)(objectClass=user))"
username_attribute = "sAMAccountName"
id_attribute = "objectGUID"
required_group = "{users}"
timeout_seconds = 15
change_feed = true
change_feed_poll_seconds = 1
"#,
        dc.url(),
        dc.admin_bind_dn(),
        dc.admin_password(),
        dc.users_dn(),
    );
    let d = Daemon::start_with(None, &config, &[]).await;
    let admin = d.admin().await;
    let erin = d.login("erin", AD_PW, Some(AD)).await;
    let (key, pw, _) = erin.create_key("etl").await;
    let gus = d.login("gus", AD_PW, Some(AD)).await;
    let (gus_key, gus_pw, _) = gus.create_key("etl").await;
    let _feeds = follow(&d);
    let state = connected(&admin, AD).await;
    assert_eq!(state["signals"]["source"], "dirsync", "{state}");

    dc.disable_user("erin").await;
    let took = key_becomes(&d, &key, &pw, StatusCode::UNAUTHORIZED, WITHIN).await;
    println!("erin's key refused {took:?} after her account was disabled");
    assert_eq!(key_status(&d, &gus_key, &gus_pw).await, StatusCode::OK);
    dc.enable_user("erin").await;
    key_becomes(&d, &key, &pw, StatusCode::OK, WITHIN).await;

    // Out of the required group, and back.
    dc.remove_members("akd-users", &["gus"]).await;
    key_becomes(&d, &gus_key, &gus_pw, StatusCode::UNAUTHORIZED, WITHIN).await;
    dc.add_members("akd-users", &["gus"]).await;
    key_becomes(&d, &gus_key, &gus_pw, StatusCode::OK, WITHIN).await;

    // Deleted: refused, and no sync ran for any of it.
    dc.delete_user("erin").await;
    key_becomes(&d, &key, &pw, StatusCode::UNAUTHORIZED, WITHIN).await;
    assert_eq!(run_count(&admin, AD).await, 0);
    let suspended = admin.get("/api/audit?action=user.suspend").await;
    assert_eq!(suspended.body["totalResults"], 3, "{}", suspended.body);
    let restored = admin.get("/api/audit?action=user.restore").await;
    assert_eq!(restored.body["totalResults"], 2, "{}", restored.body);
}
