//! Directory reconciliation against a real slapd: people deleted, renamed, moved out of scope
//! or disabled upstream; failed reads that must remove nobody; thresholds, approval, dry runs,
//! grace, last logins from the directory, and the schedule.

use crate::harness::daemon::{assert_error, Client, Daemon, LDAP_DIR};
use crate::harness::slapd::Slapd;
use reqwest::StatusCode;
use serde_json::{json, Value};

async fn sync(admin: &Client, body: Value) -> Value {
    let a = admin
        .post(&format!("/api/directories/{LDAP_DIR}/sync"), body)
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    a.body
}

async fn user_count(admin: &Client) -> i64 {
    admin.get("/api/users").await.body["totalResults"]
        .as_i64()
        .unwrap()
}

fn removed_names(run: &Value) -> Vec<String> {
    let mut v: Vec<String> = run["removals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["username"].as_str().unwrap().to_string())
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn a_user_deleted_upstream_is_removed_with_keys_and_sessions() {
    let slapd = Slapd::start().await;
    let d = Daemon::start(Some(&slapd)).await;
    let admin = d.admin().await;
    let bob = d.login("bob", "bob-pw", Some(LDAP_DIR)).await;
    let bob_id = bob.me().await.body["id"].as_str().unwrap().to_string();
    let (key, pw, _) = bob.create_key("etl").await;
    d.login("carol", "carol-pw", Some(LDAP_DIR)).await;

    // Nothing to do while everyone is there.
    let run = sync(&admin, json!({})).await;
    assert_eq!(run["status"], "ok", "{run}");
    assert_eq!(run["counts"]["removed"], 0);
    assert_eq!(run["counts"]["matched"], 2);
    assert!(run["counts"]["read"].as_i64().unwrap() >= 3);

    slapd.delete_user("bob").await;
    let run = sync(&admin, json!({})).await;
    assert_eq!(run["status"], "ok", "{run}");
    assert_eq!(run["counts"]["removed"], 1);
    assert_eq!(removed_names(&run), ["bob"]);
    assert_eq!(run["removals"][0]["keys"], 1);
    assert_eq!(run["removals"][0]["reason"], "absent");
    assert_eq!(
        d.client().with_basic(&key, &pw).me().await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(bob.me().await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        admin.get(&format!("/api/users/{bob_id}")).await.status,
        StatusCode::NOT_FOUND
    );
    let audit = admin.get("/api/audit?action=user.remove").await;
    assert_eq!(audit.body["totalResults"], 1);
    let detail = audit.body["events"][0]["detail"].as_str().unwrap();
    assert!(
        detail.contains("1 access key(s)") && detail.contains(LDAP_DIR),
        "{detail}"
    );

    // A new bob upstream is a new person with nothing.
    slapd.add_user("bob", "new-bob-pw").await;
    let new_bob = d.login("bob", "new-bob-pw", Some(LDAP_DIR)).await;
    assert_ne!(new_bob.me().await.body["id"], bob_id.as_str());
    assert_eq!(new_bob.get("/api/accesskeys").await.body["totalResults"], 0);

    // Status and history.
    let dirs = admin.get("/api/directories").await;
    let corp = dirs.body["directories"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["id"] == LDAP_DIR)
        .unwrap()
        .clone();
    assert_eq!(corp["kind"], "ldap");
    assert_eq!(corp["schedule"], "0 */15 * * * *");
    assert!(corp["nextRun"].is_string());
    assert_eq!(corp["lastRun"]["id"], run["id"]);
    let runs = admin
        .get(&format!("/api/directories/{LDAP_DIR}/runs"))
        .await;
    assert_eq!(runs.body["totalResults"], 2);
    let m = d.metrics().await;
    assert!(
        m.contains(&format!(
            "accesskeyd_sync_runs_total{{directory=\"{LDAP_DIR}\",status=\"ok\"}} 2"
        )),
        "{m}"
    );
    assert!(m.contains(&format!(
        "accesskeyd_sync_removed_users_total{{directory=\"{LDAP_DIR}\"}} 1"
    )));
}

#[tokio::test]
async fn renames_keep_people_and_keys_and_leaving_the_required_group_removes() {
    let slapd = Slapd::start().await;
    let group = slapd.users_group_dn().to_string();
    let d = Daemon::start_with(
        Some(&slapd),
        "",
        &[("ACCESSKEYD_DIRECTORIES__1__REQUIRED_GROUP", group.as_str())],
    )
    .await;
    let admin = d.admin().await;
    let bob = d.login("bob", "bob-pw", Some(LDAP_DIR)).await;
    let bob_id = bob.me().await.body["id"].as_str().unwrap().to_string();
    let (key, pw, _) = bob.create_key("etl").await;
    d.login("carol", "carol-pw", Some(LDAP_DIR)).await;

    slapd.rename_user("bob", "robert").await;
    let run = sync(&admin, json!({})).await;
    assert_eq!(run["status"], "ok", "{run}");
    assert_eq!(run["counts"]["renamed"], 1);
    assert_eq!(run["counts"]["removed"], 0);
    let user = admin.get(&format!("/api/users/{bob_id}")).await;
    assert_eq!(user.body["username"], "robert");
    assert_eq!(
        d.client().with_basic(&key, &pw).me().await.body["username"],
        "robert"
    );

    slapd.remove_from_group(&group, "carol").await;
    let run = sync(&admin, json!({})).await;
    assert_eq!(removed_names(&run), ["carol"]);
    // Outside the group nobody logs in either.
    let (status, _, _) = d.client().login("carol", "carol-pw", Some(LDAP_DIR)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_failed_or_partial_read_removes_nobody() {
    let mut slapd = Slapd::start().await;
    let limited_dn = slapd.limited_dn().to_string();
    let limited_pw = slapd.limited_password().to_string();
    // A service account that hits a size limit after a few entries.
    let d = Daemon::start_with(
        Some(&slapd),
        "",
        &[
            ("ACCESSKEYD_DIRECTORIES__1__BIND_DN", limited_dn.as_str()),
            (
                "ACCESSKEYD_DIRECTORIES__1__BIND_PASSWORD",
                limited_pw.as_str(),
            ),
            ("ACCESSKEYD_DIRECTORIES__1__PAGE_SIZE", "1"),
        ],
    )
    .await;
    let admin = d.admin().await;
    for (u, p) in [
        ("alice", "alice-pw"),
        ("bob", "bob-pw"),
        ("carol", "carol-pw"),
    ] {
        d.login(u, p, Some(LDAP_DIR)).await;
    }
    slapd.add_users_bulk("filler", 20, "filler-pw").await;
    let before = user_count(&admin).await;
    let run = sync(&admin, json!({})).await;
    assert_eq!(run["status"], "failed", "{run}");
    assert!(
        run["error"]
            .as_str()
            .unwrap()
            .contains("nobody was removed"),
        "{run}"
    );
    assert_eq!(user_count(&admin).await, before);

    // The directory is down: failed, nobody removed.
    slapd.stop();
    let run = sync(&admin, json!({})).await;
    assert_eq!(run["status"], "failed");
    assert_eq!(user_count(&admin).await, before);
    let audit = admin.get("/api/audit?action=sync.run").await;
    assert_eq!(audit.body["totalResults"], 2);
}

#[tokio::test]
async fn mass_removals_are_blocked_until_approved_and_an_empty_read_always_is() {
    let slapd = Slapd::start().await;
    let d = Daemon::start_with(
        Some(&slapd),
        "",
        &[("ACCESSKEYD_DIRECTORIES__1__DELETION_THRESHOLD", "1")],
    )
    .await;
    let admin = d.admin().await;
    for (u, p) in [
        ("alice", "alice-pw"),
        ("bob", "bob-pw"),
        ("carol", "carol-pw"),
    ] {
        d.login(u, p, Some(LDAP_DIR)).await;
    }
    slapd.delete_user("bob").await;
    slapd.delete_user("carol").await;

    // A dry run says who would go and changes nothing.
    let dry = sync(&admin, json!({"dryRun": true})).await;
    assert_eq!(
        dry["status"], "blocked",
        "the threshold applies to dry runs too: {dry}"
    );
    assert_eq!(removed_names(&dry), ["bob", "carol"]);
    let a = admin
        .post(
            &format!("/api/directories/{LDAP_DIR}/runs/{}/approve", dry["id"]),
            json!({}),
        )
        .await;
    assert_error(&a, StatusCode::CONFLICT, "dry run");

    let blocked = sync(&admin, json!({})).await;
    assert_eq!(blocked["status"], "blocked", "{blocked}");
    assert!(blocked["error"]
        .as_str()
        .unwrap()
        .contains("deletion_threshold = 1"));
    assert_eq!(removed_names(&blocked), ["bob", "carol"]);
    assert_eq!(
        blocked["counts"]["removed"], 2,
        "counts say what would have been removed"
    );
    assert_eq!(
        user_count(&admin).await,
        4,
        "root + alice, bob, carol still there"
    );

    // An admin approves once: removed.
    let id = blocked["id"].as_i64().unwrap();
    let a = admin
        .post(
            &format!("/api/directories/{LDAP_DIR}/runs/{id}/approve"),
            json!({}),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.body["status"], "ok");
    assert_eq!(a.body["approvesRunId"], id);
    assert_eq!(removed_names(&a.body), ["bob", "carol"]);
    assert_eq!(user_count(&admin).await, 2);
    // Approving twice is refused.
    let again = admin
        .post(
            &format!("/api/directories/{LDAP_DIR}/runs/{id}/approve"),
            json!({}),
        )
        .await;
    assert_error(&again, StatusCode::CONFLICT, "already approved");
    let runs = admin
        .get(&format!("/api/directories/{LDAP_DIR}/runs"))
        .await;
    let approved = runs.body["runs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == id)
        .unwrap()
        .clone();
    assert_eq!(approved["approvedBy"], "root");
}

#[tokio::test]
async fn an_empty_directory_read_is_always_blocked_and_dry_runs_change_nothing() {
    let slapd = Slapd::start().await;
    let d = Daemon::start(Some(&slapd)).await;
    let admin = d.admin().await;
    d.login("bob", "bob-pw", Some(LDAP_DIR)).await;
    d.login("carol", "carol-pw", Some(LDAP_DIR)).await;
    slapd.delete_user("carol").await;

    let dry = sync(&admin, json!({"dryRun": true})).await;
    assert_eq!(dry["status"], "dry-run");
    assert_eq!(removed_names(&dry), ["carol"]);
    assert_eq!(user_count(&admin).await, 3, "a dry run removed nobody");

    // The same installation after someone broke the filter: the search finds nobody.
    let broken = d
        .sibling(
            Some(&slapd),
            "",
            &[(
                "ACCESSKEYD_DIRECTORIES__1__USER_FILTER",
                "(uid=matches-nobody)",
            )],
        )
        .await;
    let admin = broken.admin().await;
    for body in [json!({}), json!({"dryRun": true})] {
        let run = sync(&admin, body).await;
        assert_eq!(run["status"], "blocked", "{run}");
        assert!(run["error"].as_str().unwrap().contains("no users"), "{run}");
        assert_eq!(run["counts"]["read"], 0);
    }
    assert_eq!(user_count(&admin).await, 3, "nobody removed");
}

#[tokio::test]
async fn with_a_grace_period_leavers_are_suspended_restored_if_back_and_deleted_after() {
    let slapd = Slapd::start().await;
    let group = slapd.users_group_dn().to_string();
    let d = Daemon::start_with(
        Some(&slapd),
        "",
        &[
            ("ACCESSKEYD_DIRECTORIES__1__REQUIRED_GROUP", group.as_str()),
            ("ACCESSKEYD_DIRECTORIES__1__REMOVAL_GRACE_HOURS", "24"),
        ],
    )
    .await;
    let admin = d.admin().await;
    let bob = d.login("bob", "bob-pw", Some(LDAP_DIR)).await;
    let (key, pw, _) = bob.create_key("etl").await;
    let basic = d.client().with_basic(&key, &pw);

    // Out of scope: suspended, keys refused at once, but nothing deleted yet.
    slapd.remove_from_group(&group, "bob").await;
    let run = sync(&admin, json!({})).await;
    assert_eq!(run["status"], "ok", "{run}");
    assert_eq!(run["counts"]["suspended"], 1);
    assert_eq!(run["counts"]["removed"], 0);
    assert_error(&basic.me().await, StatusCode::UNAUTHORIZED, "suspended");
    assert_eq!(bob.me().await.status, StatusCode::UNAUTHORIZED);
    let bob_id = run["removals"][0]["userId"].as_str().unwrap().to_string();
    let shown = admin.get(&format!("/api/users/{bob_id}")).await;
    assert!(shown.body["suspendedAt"].is_string(), "{}", shown.body);

    // Back within the grace: restored with the key intact.
    slapd.add_to_group(&group, "bob").await;
    let run = sync(&admin, json!({})).await;
    assert_eq!(run["counts"]["restored"], 1, "{run}");
    assert_eq!(basic.me().await.status, StatusCode::OK);

    // Out again and the grace passes: deleted.
    slapd.remove_from_group(&group, "bob").await;
    sync(&admin, json!({})).await;
    d.advance(chrono::Duration::hours(25));
    let admin = d.admin().await;
    let run = sync(&admin, json!({})).await;
    assert_eq!(run["counts"]["removed"], 1, "{run}");
    assert_eq!(run["expired"][0]["username"], "bob");
    assert_error(
        &basic.me().await,
        StatusCode::UNAUTHORIZED,
        "invalid access key",
    );
}

#[tokio::test]
async fn a_bind_upstream_moves_last_login_forward_and_revives_keys() {
    let slapd = Slapd::start().await;
    let d = Daemon::start_with(
        Some(&slapd),
        "",
        &[(
            "ACCESSKEYD_DIRECTORIES__1__LAST_LOGIN_ATTRIBUTE",
            "authTimestamp",
        )],
    )
    .await;
    let admin = d.admin().await;
    let bob = d.login("bob", "bob-pw", Some(LDAP_DIR)).await;
    let bob_id = bob.me().await.body["id"].as_str().unwrap().to_string();
    let (key, pw, _) = bob.create_key("etl").await;
    let basic = d.client().with_basic(&key, &pw);

    // Bob's last login here was 20 days ago: his key has stopped working.
    let old = d.app.clock.now() - chrono::Duration::days(20);
    d.set_last_login(&bob_id, old).await;
    assert_eq!(basic.me().await.status, StatusCode::UNAUTHORIZED);

    // Bob signs in somewhere else against the same directory (a plain LDAP bind).
    slapd.bind_as("bob", "bob-pw").await;
    let run = sync(&admin, json!({})).await;
    assert_eq!(run["counts"]["lastLogins"], 1, "{run}");
    let last: chrono::DateTime<chrono::Utc> = admin.get(&format!("/api/users/{bob_id}")).await.body
        ["lastLoginAt"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(last > old + chrono::Duration::days(19), "{last}");
    assert_eq!(
        basic.me().await.status,
        StatusCode::OK,
        "the key works again"
    );

    // An older upstream value never moves it back.
    let run = sync(&admin, json!({})).await;
    assert_eq!(run["counts"]["lastLogins"], 0);
}

#[tokio::test]
async fn the_schedule_fires_and_runs_never_overlap() {
    let slapd = Slapd::start().await;
    let d = Daemon::start_with(
        Some(&slapd),
        "",
        &[("ACCESSKEYD_DIRECTORIES__1__SYNC_SCHEDULE", "* * * * * *")],
    )
    .await;
    let admin = d.admin().await;
    d.login("bob", "bob-pw", Some(LDAP_DIR)).await;
    let schedulers = accesskeyd::jobs::spawn_sync_schedulers(d.app.clone());
    // Manual runs race the schedule: each either runs or is told one is running.
    let mut conflicts = 0;
    for _ in 0..10 {
        let a = admin
            .post(&format!("/api/directories/{LDAP_DIR}/sync"), json!({}))
            .await;
        match a.status {
            StatusCode::OK => {}
            StatusCode::CONFLICT => conflicts += 1,
            other => panic!("unexpected {other}: {}", a.body),
        }
        tokio::time::sleep(std::time::Duration::from_millis(150)).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    for s in schedulers {
        s.abort();
    }
    let runs = admin
        .get(&format!("/api/directories/{LDAP_DIR}/runs?limit=1000"))
        .await
        .body["runs"]
        .as_array()
        .unwrap()
        .clone();
    let scheduled = runs.iter().filter(|r| r["trigger"] == "schedule").count();
    assert!(scheduled >= 2, "the schedule fired {scheduled} times");
    let at = |v: &Value| {
        v.as_str()
            .unwrap()
            .parse::<chrono::DateTime<chrono::Utc>>()
            .unwrap()
    };
    let mut spans: Vec<_> = runs
        .iter()
        .filter(|r| r["finishedAt"].is_string())
        .map(|r| (at(&r["startedAt"]), at(&r["finishedAt"])))
        .collect();
    spans.sort();
    for w in spans.windows(2) {
        assert!(
            w[1].0 >= w[0].1,
            "overlapping runs {w:?} (conflicts seen: {conflicts})"
        );
    }
}
