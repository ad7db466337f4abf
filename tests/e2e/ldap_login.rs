//! People log in through LDAP: records created on first login, attributes and admin standing
//! refreshed, wrong passwords refused, an unreachable directory reported as 503 (throttling
//! and an outage's error id are in the fast tier, tests/api/logins.rs).

use crate::harness::daemon::{assert_error, Daemon, LDAP_DIR};
use crate::harness::log::CapturedLog;
use crate::harness::slapd::Slapd;
use reqwest::StatusCode;

#[tokio::test]
async fn an_ldap_user_logs_in_and_gets_a_record_with_their_attributes() {
    let slapd = Slapd::start().await;
    let d = Daemon::start(Some(&slapd)).await;

    let providers = d.client().get("/api/auth/providers").await;
    assert_eq!(providers.status, StatusCode::OK);
    let list = providers.body["authProviders"].as_array().unwrap();
    let ids: Vec<&str> = list
        .iter()
        .map(|p| p["datasourceId"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["builtin", LDAP_DIR]);
    assert_eq!(list[0]["name"], "Seeq");
    assert_eq!(list[1]["datasourceClass"], "LDAP");

    let only = d
        .client()
        .get(&format!(
            "/api/auth/providers?includeAuthProviderIds={LDAP_DIR}"
        ))
        .await;
    assert_eq!(only.body["authProviders"].as_array().unwrap().len(), 1);
    assert_eq!(only.body["authProviders"][0]["id"], LDAP_DIR);

    let before = d.app.clock.now();
    let alice = d.login("alice", "alice-pw", Some(LDAP_DIR)).await;
    let me = alice.me().await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.body["username"], "alice");
    assert_eq!(me.body["email"], "alice@example.org");
    assert_eq!(me.body["firstName"], "Alice");
    assert_eq!(me.body["lastName"], "Liddell");
    assert_eq!(me.body["name"], "Alice Liddell");
    assert_eq!(me.body["isAdmin"], true, "alice is in the admin group");
    assert_eq!(me.body["datasourceId"], LDAP_DIR);
    assert_eq!(me.body["datasourceName"], "Corp LDAP");
    assert_eq!(me.body["type"], "User");
    let last: chrono::DateTime<chrono::Utc> =
        me.body["lastLoginAt"].as_str().unwrap().parse().unwrap();
    assert!(
        last >= before - chrono::Duration::seconds(1),
        "lastLoginAt is the login time"
    );
    assert_eq!(
        me.body["effectiveAccessKeyValidityDuration"],
        serde_json::json!({"value": 14 * 24 * 60, "uom": "min"})
    );
    assert!(me.body["accessKeyValidityDuration"].is_null());

    // Without authProviderId the directories are tried in order.
    let (status, body, _) = d.client().login("bob", "bob-pw", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["isAdmin"], false);

    // A second login reuses the record (same id) and refreshes admin standing.
    let id = me.body["id"].as_str().unwrap().to_string();
    slapd.remove_from_admins("alice").await;
    let again = d
        .login("alice", "alice-pw", Some(LDAP_DIR))
        .await
        .me()
        .await;
    assert_eq!(again.body["id"], id.as_str());
    assert_eq!(
        again.body["isAdmin"], false,
        "admin standing follows the group"
    );
    // The session of the old login still works, as the user it now is.
    assert_eq!(alice.me().await.body["isAdmin"], false);
}

#[tokio::test]
async fn wrong_passwords_and_unknown_users_get_401_and_are_audited() {
    let slapd = Slapd::start().await;
    let d = Daemon::start(Some(&slapd)).await;
    for (user, pw) in [("alice", "wrong"), ("nobody", "x"), ("alice", "alice-pw ")] {
        let (status, body, token) = d.client().login(user, pw, Some(LDAP_DIR)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{user}/{pw}: {body}");
        assert!(token.is_none());
        assert!(body["statusMessage"].as_str().unwrap().contains("invalid"));
    }
    // An LDAP user cannot log in through the built-in directory.
    let (status, _, _) = d.client().login("alice", "alice-pw", Some("builtin")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // Unknown directory: a clear 400 naming the field.
    let a = d
        .client()
        .post(
            "/api/auth/login",
            serde_json::json!({"username": "alice", "password": "alice-pw", "authProviderId": "nope"}),
        )
        .await;
    assert_error(&a, StatusCode::BAD_REQUEST, "authProviderId");

    let admin = d.admin().await;
    let audit = admin.get("/api/audit?action=login").await;
    let events = audit.body["events"].as_array().unwrap();
    let failures = events.iter().filter(|e| e["outcome"] == "failure").count();
    assert!(failures >= 4, "{}", audit.body);
    let text = audit.body.to_string();
    assert!(
        !text.contains("alice-pw"),
        "a password reached the audit trail"
    );
}

#[tokio::test]
async fn an_unreachable_directory_gives_503_not_401() {
    let mut slapd = Slapd::start().await;
    let d = Daemon::start(Some(&slapd)).await;
    d.login("bob", "bob-pw", Some(LDAP_DIR)).await;
    slapd.stop();

    let (status, body, token) = d.client().login("bob", "bob-pw", Some(LDAP_DIR)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(token.is_none());
    assert!(body["statusMessage"]
        .as_str()
        .unwrap()
        .contains("the directory is unavailable"));
    // Where the directory is, and how the connection failed, is for the log.
    assert!(body["errorId"].is_string(), "{body}");
    assert!(!body.to_string().contains(&slapd.url()), "{body}");
    // Trying every directory: the built-in one says no, LDAP cannot answer: still 503.
    let (status, _, _) = d.client().login("bob", "bob-pw", None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    // The break-glass admin still gets in.
    d.admin().await;
    assert!(d
        .metrics()
        .await
        .contains("accesskeyd_directory_unavailable_total 2"));
}

#[tokio::test]
async fn ldaps_and_starttls_directories_work_with_the_ca_file() {
    let slapd = Slapd::start().await;
    for (url, starttls) in [(slapd.ldaps_url(), "false"), (slapd.url(), "true")] {
        let d = Daemon::start_with(
            Some(&slapd),
            "",
            &[
                ("ACCESSKEYD_DIRECTORIES__1__URL", url.as_str()),
                ("ACCESSKEYD_DIRECTORIES__1__STARTTLS", starttls),
                (
                    "ACCESSKEYD_DIRECTORIES__1__CA_FILE",
                    slapd.ca_file().to_str().unwrap(),
                ),
            ],
        )
        .await;
        let (status, body, _) = d.client().login("carol", "carol-pw", Some(LDAP_DIR)).await;
        assert_eq!(status, StatusCode::OK, "{url} starttls={starttls}: {body}");
        assert_eq!(body["username"], "carol");
    }
}

#[tokio::test]
async fn a_login_that_collides_in_the_database_gets_409_without_its_sql() {
    let slapd = Slapd::start().await;
    let log = CapturedLog::start();
    let d = Daemon::start(Some(&slapd)).await;
    // Bob has a record; so does someone whose name is what Bob's record would be renamed
    // to if another account took the name `bob`.
    let bob = d.login("bob", "bob-pw", Some(LDAP_DIR)).await;
    let bob_id = bob.me().await.body["id"].as_str().unwrap().to_string();
    let twin = format!("bob#{}", &bob_id[..8]);
    slapd.add_user(&twin, "twin-password-1").await;
    d.login(&twin, "twin-password-1", Some(LDAP_DIR)).await;

    // Upstream, Bob becomes Robert and a new Bob is hired. His first login must move the
    // old record out of the way, to a name the database already holds.
    slapd.rename_user("bob", "robert").await;
    slapd.add_user("bob", "second-bob-pw").await;
    let (status, body, token) = d
        .client()
        .login("bob", "second-bob-pw", Some(LDAP_DIR))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(token.is_none());
    let id = body["errorId"].as_str().expect("an errorId").to_string();
    let text = body.to_string();
    for internal in [
        "UNIQUE",
        "constraint",
        "users.",
        "duplicate key",
        "username",
    ] {
        assert!(!text.contains(internal), "{internal:?} in {body}");
    }
    assert!(text.contains(&format!("(error id {id})")), "{body}");
    // The database's own words are in the log line with that id.
    assert!(log.line_with(&id).contains("already exists"));
}
