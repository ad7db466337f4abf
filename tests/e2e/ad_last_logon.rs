//! Windows sign-ins seen at whichever domain controller handled them: two Samba AD DCs of
//! CORP.TEST (dc1 on 127.0.0.1, dc2 joined on 127.0.0.2), each keeping its own `lastLogon`
//! (never replicated), and a sync that reads it from every controller, listed or found by
//! DNS SRV in the domain's own DNS server. A Windows sign-in is a Kerberos TGT request
//! (`kinit`): Samba moves `lastLogon` at each one, but not at an LDAP simple bind (see
//! tests/e2e/harness/samba.rs). One DC set per machine: every test here holds
//! `samba::exclusive()`.

use crate::harness::daemon::{Client, Daemon};
use crate::harness::samba::{self, SambaDc};
use chrono::{DateTime, Duration, Utc};
use reqwest::StatusCode;
use serde_json::{json, Value};

const AD: &str = "ad";
const PW: &str = "Passw0rd!Str0ng";

/// The domain as a directory at `url` (dc1) reading `lastLogon`, with `settings` (TOML lines
/// naming the domain controllers).
fn ad_directory(dc: &SambaDc, url: &str, settings: &str) -> String {
    format!(
        r#"
[[directories]]
id = "{AD}"
kind = "ldap"
name = "Corp AD"
url = "{url}"
bind_dn = "{}"
bind_password = "{}"
user_base = "{}"
user_filter = "(&(objectCategory=person)(objectClass=user))"
username_attribute = "sAMAccountName"
id_attribute = "objectGUID"
last_login_attribute = "lastLogon"
timeout_seconds = 5
{settings}
"#,
        dc.admin_bind_dn(),
        dc.admin_password(),
        dc.users_dn(),
    )
}

async fn sync(admin: &Client) -> Value {
    let a = admin
        .post(&format!("/api/directories/{AD}/sync"), json!({}))
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    a.body
}

async fn last_login_at(admin: &Client, user_id: &str) -> DateTime<Utc> {
    let user = admin.get(&format!("/api/users/{user_id}")).await;
    user.body["lastLoginAt"]
        .as_str()
        .unwrap_or_else(|| panic!("no lastLoginAt: {}", user.body))
        .parse()
        .unwrap()
}

async fn user_count(admin: &Client) -> i64 {
    admin.get("/api/users").await.body["totalResults"]
        .as_i64()
        .unwrap()
}

/// The value of `accesskeyd_domain_controller_up` for `controller`, if the metric names it.
fn controller_up(metrics: &str, controller: &str) -> Option<u8> {
    let series = format!(
        "accesskeyd_domain_controller_up{{directory=\"{AD}\",controller=\"{controller}\"}} "
    );
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&series))
        .map(|v| v.trim().parse().unwrap())
}

fn assert_near(at: DateTime<Utc>, expected: DateTime<Utc>, what: &str) {
    assert!(
        (at - expected).abs() < Duration::seconds(3),
        "{what}: {at} is not within 3 s of {expected}"
    );
}

#[tokio::test]
async fn a_windows_sign_in_at_the_second_controller_revives_a_lapsed_key_and_a_controller_down_is_reported(
) {
    let _one_dc = samba::exclusive().await;
    let dc = SambaDc::start().await;
    let mut dc2 = dc.join_second_dc().await;
    // Alice's account is made at dc1 and replicates to dc2, as in any domain.
    dc.create_user("alice", PW).await;
    dc.create_user("bob", PW).await;
    dc2.wait_for_user("alice").await;

    let both = format!("domain_controllers = [\"{}\", \"{}\"]", dc.url(), dc2.url());
    let d = Daemon::start_with(None, &ad_directory(&dc, &dc.url(), &both), &[]).await;
    let admin = d.admin().await;
    let alice = d.login("alice", PW, Some(AD)).await;
    let alice_id = alice.me().await.body["id"].as_str().unwrap().to_string();
    let (key, key_pw) = {
        let (k, p, _) = alice.create_key("nightly export").await;
        (k, p)
    };
    let basic = d.client().with_basic(&key, &key_pw);
    d.login("bob", PW, Some(AD)).await;

    // Alice has not been here for 20 days: her key has lapsed.
    let old = d.app.clock.now() - Duration::days(20);
    d.set_last_login(&alice_id, old).await;
    assert_eq!(basic.me().await.status, StatusCode::UNAUTHORIZED);

    // She signs in to Windows at her branch office, where dc2 answers (a Kerberos TGT).
    dc2.kinit("alice", PW).await;
    let signed_in = Utc::now();
    let at_dc2 = dc2
        .last_logon("alice")
        .await
        .expect("dc2 recorded her sign-in");
    assert_near(at_dc2, signed_in, "dc2's lastLogon");
    assert_eq!(
        dc.last_logon("alice").await,
        None,
        "dc1 never saw a sign-in of hers (lastLogon is not replicated; accesskeyd's LDAP bind \
         at dc1 does not set it on Samba)"
    );

    // The same installation reading dc1 only would not have seen it.
    let dc1_only = format!("domain_controllers = [\"{}\"]", dc.url());
    let blind = d
        .sibling(None, &ad_directory(&dc, &dc.url(), &dc1_only), &[])
        .await;
    let run = sync(&blind.admin().await).await;
    assert_eq!(run["status"], "ok", "{run}");
    assert_eq!(run["counts"]["lastLogins"], 0, "{run}");
    assert_near(last_login_at(&admin, &alice_id).await, old, "unchanged");
    assert_eq!(basic.me().await.status, StatusCode::UNAUTHORIZED);

    // Reading both controllers, the next sync moves her last login to that sign-in.
    let run = sync(&admin).await;
    assert_eq!(run["status"], "ok", "{run}");
    assert_eq!(run["counts"]["lastLogins"], 1, "{run}");
    assert_eq!(run["unreadControllers"], json!([]), "{run}");
    assert_near(
        last_login_at(&admin, &alice_id).await,
        at_dc2,
        "alice's lastLoginAt",
    );
    assert_eq!(
        basic.me().await.status,
        StatusCode::OK,
        "her key works again"
    );
    let m = d.metrics().await;
    assert_eq!(controller_up(&m, &dc.url()), Some(1), "{m}");
    assert_eq!(controller_up(&m, &dc2.url()), Some(1), "{m}");

    // dc2 goes down: the run still ends ok, names it, and removes nobody.
    dc2.stop();
    let people = user_count(&admin).await;
    let run = sync(&admin).await;
    assert_eq!(run["status"], "ok", "{run}");
    assert_eq!(run["counts"]["removed"], 0, "{run}");
    let unread = run["unreadControllers"].as_array().unwrap().clone();
    assert_eq!(unread.len(), 1, "{run}");
    let line = unread[0].as_str().unwrap();
    assert!(
        line.starts_with(&format!("{}: ", dc2.url())),
        "names the controller and why: {line}"
    );
    assert_eq!(user_count(&admin).await, people, "nobody removed");
    assert_eq!(
        basic.me().await.status,
        StatusCode::OK,
        "alice's key still works"
    );
    assert_near(
        last_login_at(&admin, &alice_id).await,
        at_dc2,
        "a missing value moves nothing back",
    );
    let m = d.metrics().await;
    assert_eq!(controller_up(&m, &dc.url()), Some(1), "{m}");
    assert_eq!(controller_up(&m, &dc2.url()), Some(0), "{m}");
    let runs = admin.get(&format!("/api/directories/{AD}/runs")).await;
    assert_eq!(
        runs.body["runs"][0]["unreadControllers"],
        json!(unread),
        "the run record keeps it: {}",
        runs.body
    );

    // Back up: the next run reads it again.
    dc2.restart().await;
    let run = sync(&admin).await;
    assert_eq!(run["unreadControllers"], json!([]), "{run}");
    assert_eq!(controller_up(&d.metrics().await, &dc2.url()), Some(1));
}

#[tokio::test]
async fn the_domain_controllers_are_found_in_the_domains_dns_and_each_is_read() {
    let _one_dc = samba::exclusive().await;
    let dc = SambaDc::start_with_dns().await;
    let dc2 = dc.join_second_dc().await;
    dc.create_user("carol", PW).await;
    dc2.wait_for_user("carol").await;

    // As Windows clients find them: SRV _ldap._tcp.dc._msdcs.corp.test, asked of the domain's
    // own DNS server (Samba's, on the first DC). Over LDAPS, as docs/ldap.md suggests: each
    // controller is then reached by its DNS name on 636, its certificate checked.
    let srv = format!(
        "domain_controllers_srv = \"corp.test\"\ndns_servers = [\"{}\"]\nca_file = \"{}\"",
        dc.dns_server(),
        dc.ca_file().display()
    );
    let d = Daemon::start_with(None, &ad_directory(&dc, &dc.ldaps_url(), &srv), &[]).await;
    let admin = d.admin().await;
    let carol = d.login("carol", PW, Some(AD)).await;
    let carol_id = carol.me().await.body["id"].as_str().unwrap().to_string();
    let old = d.app.clock.now() - Duration::days(20);
    d.set_last_login(&carol_id, old).await;

    dc2.kinit("carol", PW).await;
    let at_dc2 = dc2
        .last_logon("carol")
        .await
        .expect("dc2 recorded her sign-in");

    let run = sync(&admin).await;
    assert_eq!(run["status"], "ok", "{run}");
    assert_eq!(run["unreadControllers"], json!([]), "{run}");
    assert_eq!(run["counts"]["lastLogins"], 1, "{run}");
    assert_near(
        last_login_at(&admin, &carol_id).await,
        at_dc2,
        "carol's lastLoginAt",
    );
    // Both controllers were found by their DNS names and read.
    let m = d.metrics().await;
    for name in ["dc1.corp.test", dc2.fqdn().as_str()] {
        assert_eq!(
            controller_up(&m, &format!("ldaps://{name}:636")),
            Some(1),
            "{name}: {m}"
        );
    }
}
