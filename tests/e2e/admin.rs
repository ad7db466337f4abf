//! Admins: every key with its owner, deleting keys and users, options, the audit trail; and
//! everyone else kept out.

use crate::harness::daemon::{assert_error, Daemon, LDAP_DIR};
use crate::harness::slapd::Slapd;
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test]
async fn admins_see_every_key_with_owner_and_admin_flag() {
    let slapd = Slapd::start().await;
    let d = Daemon::start(Some(&slapd)).await;
    let alice = d.login("alice", "alice-pw", Some(LDAP_DIR)).await; // admin via group
    let bob = d.login("bob", "bob-pw", Some(LDAP_DIR)).await;
    let (bob_key, _, _) = bob.create_key("bob's export").await;
    let (alice_key, _, _) = alice.create_key("alice's notebook").await;
    let bob_id = bob.me().await.body["id"].as_str().unwrap().to_string();

    let all = alice.get("/api/accesskeys?getAll=true").await;
    assert_eq!(all.status, StatusCode::OK, "{}", all.body);
    let keys = all.body["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 2);
    let find = |k: &str| keys.iter().find(|x| x["keyId"] == k).unwrap().clone();
    let b = find(&bob_key);
    assert_eq!(b["name"], "bob's export");
    assert_eq!(b["username"], "bob");
    assert_eq!(b["userId"], bob_id.as_str());
    assert_eq!(b["isAdmin"], false);
    assert!(b["createdAt"].is_string());
    assert!(b.get("lastUsed").is_some());
    assert_eq!(find(&alice_key)["isAdmin"], true);

    let only_bob = alice.get(&format!("/api/accesskeys?userId={bob_id}")).await;
    assert_eq!(only_bob.body["keys"].as_array().unwrap().len(), 1);

    // Paging with next/prev links.
    let p1 = alice.get("/api/accesskeys?getAll=true&limit=1").await;
    assert_eq!(p1.body["keys"].as_array().unwrap().len(), 1);
    assert_eq!(
        p1.body["next"],
        "/api/accesskeys?offset=1&limit=1&getAll=true"
    );
    assert!(p1.body["prev"].is_null());
    let p2 = alice.get(p1.body["next"].as_str().unwrap()).await;
    assert_eq!(p2.body["keys"].as_array().unwrap().len(), 1);
    assert!(p2.body["next"].is_null());
    assert_eq!(
        p2.body["prev"],
        "/api/accesskeys?offset=0&limit=1&getAll=true"
    );

    // An admin deletes Bob's key.
    let del = alice.delete(&format!("/api/accesskeys/{bob_key}")).await;
    assert_eq!(del.status, StatusCode::OK);
    assert_eq!(
        bob.get("/api/accesskeys").await.body["keys"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
}

#[tokio::test]
async fn non_admins_get_403_on_admin_endpoints() {
    let slapd = Slapd::start().await;
    let d = Daemon::start(Some(&slapd)).await;
    let bob = d.login("bob", "bob-pw", Some(LDAP_DIR)).await;
    let carol = d.login("carol", "carol-pw", Some(LDAP_DIR)).await;
    let carol_id = carol.me().await.body["id"].as_str().unwrap().to_string();
    let (key, pw, _) = bob.create_key("k").await;
    for client in [bob.clone(), d.client().with_basic(&key, &pw)] {
        for a in [
            client.get("/api/users").await,
            client.get(&format!("/api/users/{carol_id}")).await,
            client.post(&format!("/api/users/{carol_id}/update"), json!({"accessKeyValidityDuration": 0})).await,
            client.delete(&format!("/api/users/{carol_id}")).await,
            client.get("/api/system/configuration/options").await,
            client.post("/api/system/configuration/options", json!({"configurationOptions": [{"path": "Authentication/AccessKey/ValidityWithoutUserLogin", "value": 0}]})).await,
            client.get("/api/audit").await,
        ] {
            assert_error(&a, StatusCode::FORBIDDEN, "admin");
        }
    }
    // Nothing changed.
    let admin = d.admin().await;
    let c = admin.get(&format!("/api/users/{carol_id}")).await;
    assert!(c.body["accessKeyValidityDuration"].is_null());
    // Everyone may read themselves.
    let me = bob.me().await.body["id"].as_str().unwrap().to_string();
    assert_eq!(
        bob.get(&format!("/api/users/{me}")).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn deleting_a_user_takes_keys_and_sessions_and_nothing_passes_to_a_new_user() {
    let slapd = Slapd::start().await;
    let d = Daemon::start(Some(&slapd)).await;
    let admin = d.admin().await;
    let bob = d.login("bob", "bob-pw", Some(LDAP_DIR)).await;
    let bob_id = bob.me().await.body["id"].as_str().unwrap().to_string();
    let (key, pw, _) = bob.create_key("etl").await;
    let key_session = d.login(&key, &pw, None).await;

    let del = admin.delete(&format!("/api/users/{bob_id}")).await;
    assert_eq!(del.status, StatusCode::OK, "{}", del.body);
    assert!(del.body["statusMessage"]
        .as_str()
        .unwrap()
        .contains("1 access key(s)"));
    assert_eq!(
        bob.me().await.status,
        StatusCode::UNAUTHORIZED,
        "interactive session gone"
    );
    assert_eq!(
        key_session.me().await.status,
        StatusCode::UNAUTHORIZED,
        "key session gone"
    );
    assert_eq!(
        d.client().with_basic(&key, &pw).me().await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        admin.get(&format!("/api/users/{bob_id}")).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        admin.delete(&format!("/api/users/{bob_id}")).await.status,
        StatusCode::NOT_FOUND
    );

    // Upstream, bob leaves and a new bob joins (new entryUUID).
    slapd.delete_user("bob").await;
    slapd.add_user("bob", "new-bob-pw").await;
    let new_bob = d.login("bob", "new-bob-pw", Some(LDAP_DIR)).await;
    let me = new_bob.me().await;
    assert_ne!(me.body["id"], bob_id.as_str(), "a new id, never reused");
    assert_eq!(
        new_bob.get("/api/accesskeys").await.body["keys"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
    assert_eq!(
        d.client().with_basic(&key, &pw).me().await.status,
        StatusCode::UNAUTHORIZED
    );

    // The admin cannot delete themself (no lock-out by accident).
    let admin_id = admin.me().await.body["id"].as_str().unwrap().to_string();
    let a = admin.delete(&format!("/api/users/{admin_id}")).await;
    assert_error(&a, StatusCode::CONFLICT, "own user");

    let audit = admin.get("/api/audit?action=user.delete").await;
    assert_eq!(audit.body["totalResults"], 1);
    assert_eq!(audit.body["events"][0]["targetId"], bob_id.as_str());
    assert_eq!(audit.body["events"][0]["actor"], "root");
}

#[tokio::test]
async fn a_recreated_upstream_account_does_not_inherit_the_old_record() {
    let slapd = Slapd::start().await;
    let d = Daemon::start(Some(&slapd)).await;
    let bob = d.login("bob", "bob-pw", Some(LDAP_DIR)).await;
    let old_id = bob.me().await.body["id"].as_str().unwrap().to_string();
    let (key, pw, _) = bob.create_key("etl").await;
    // Nobody deleted bob here; upstream simply replaced the account.
    slapd.delete_user("bob").await;
    slapd.add_user("bob", "new-bob-pw").await;
    let new_bob = d.login("bob", "new-bob-pw", Some(LDAP_DIR)).await;
    assert_ne!(new_bob.me().await.body["id"], old_id.as_str());
    assert_eq!(
        new_bob.get("/api/accesskeys").await.body["keys"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
    // The old record is disabled, so its key stops working at once.
    assert_eq!(
        d.client().with_basic(&key, &pw).me().await.status,
        StatusCode::UNAUTHORIZED
    );
    let old = d.admin().await.get(&format!("/api/users/{old_id}")).await;
    assert_eq!(old.body["isEnabled"], false);
}

#[tokio::test]
async fn a_renamed_person_keeps_their_record_and_the_new_holder_of_the_name_gets_none() {
    let slapd = Slapd::start().await;
    let d = Daemon::start(Some(&slapd)).await;
    let bob = d.login("bob", "bob-pw", Some(LDAP_DIR)).await;
    let old_id = bob.me().await.body["id"].as_str().unwrap().to_string();
    let (key, pw, _) = bob.create_key("etl").await;

    // Upstream: bob becomes robert, and a different person is hired as bob.
    slapd.rename_user("bob", "robert").await;
    slapd.add_user("bob", "second-bob-pw").await;
    let second = d.login("bob", "second-bob-pw", Some(LDAP_DIR)).await;
    assert_ne!(second.me().await.body["id"], old_id.as_str());
    assert_eq!(
        second.get("/api/accesskeys").await.body["keys"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
    assert_eq!(
        d.client().with_basic(&key, &pw).me().await.status,
        StatusCode::UNAUTHORIZED
    );

    // Robert signs in: same record (stable id), new name, enabled again, his key works.
    let robert = d.login("robert", "bob-pw", Some(LDAP_DIR)).await;
    let me = robert.me().await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.body);
    assert_eq!(me.body["id"], old_id.as_str());
    assert_eq!(me.body["username"], "robert");
    assert_eq!(me.body["isEnabled"], true);
    assert_eq!(
        d.client().with_basic(&key, &pw).me().await.body["username"],
        "robert"
    );
    let audit = d
        .admin()
        .await
        .get("/api/audit?action=user.superseded")
        .await;
    assert_eq!(audit.body["totalResults"], 1, "{}", audit.body);
}

#[tokio::test]
async fn options_validate_before_changing_anything_and_are_audited() {
    let d = Daemon::start(None).await;
    let admin = d.admin().await;
    let path = "Authentication/AccessKey/ValidityWithoutUserLogin";
    for (body, needle) in [
        (
            json!({"configurationOptions": [{"path": "Nope/Nope", "value": 1}]}),
            "unknown option",
        ),
        (
            json!({"configurationOptions": [{"path": path, "value": "7"}]}),
            "integer",
        ),
        (
            json!({"configurationOptions": [{"path": path, "value": -1}]}),
            "between",
        ),
        (
            json!({"configurationOptions": [{"path": path, "value": 3}, {"path": "X/Y", "value": 1}]}),
            "unknown option",
        ),
        (json!({"configurationOptions": []}), "at least one"),
        (json!({"options": []}), "configurationOptions"),
    ] {
        let a = admin
            .post("/api/system/configuration/options", body.clone())
            .await;
        assert_error(&a, StatusCode::BAD_REQUEST, needle);
    }
    let opts = admin.get("/api/system/configuration/options").await;
    assert_eq!(
        opts.body["configurationOptions"][0]["value"], 14,
        "nothing changed"
    );

    let dry = admin
        .post(
            "/api/system/configuration/options",
            json!({"configurationOptions": [{"path": path, "value": 3}], "dryRun": true}),
        )
        .await;
    assert_eq!(dry.status, StatusCode::OK);
    assert_eq!(dry.body["configurationOptions"][0]["value"], 3);
    let opts = admin.get("/api/system/configuration/options").await;
    assert_eq!(
        opts.body["configurationOptions"][0]["value"], 14,
        "dry run changed nothing"
    );

    let set = admin
        .post(
            "/api/system/configuration/options",
            json!({"configurationOptions": [{"path": path, "value": 7, "note": "policy 2026-11"}]}),
        )
        .await;
    assert_eq!(set.status, StatusCode::OK);
    assert_eq!(set.body["configurationOptions"][0]["value"], 7);
    let audit = admin.get("/api/audit?action=option.set").await;
    assert_eq!(audit.body["totalResults"], 1);
    let detail = audit.body["events"][0]["detail"].as_str().unwrap();
    assert!(
        detail.contains("14 -> 7") && detail.contains("policy 2026-11"),
        "{detail}"
    );
}

#[tokio::test]
async fn the_audit_trail_records_key_and_login_events_without_secrets() {
    let slapd = Slapd::start().await;
    let d = Daemon::start(Some(&slapd)).await;
    let admin = d.admin().await;
    let bob = d.login("bob", "bob-pw", Some(LDAP_DIR)).await;
    let (key, pw, _) = bob.create_key("etl").await;
    d.login(&key, &pw, None).await;
    bob.delete(&format!("/api/accesskeys/{key}")).await;
    let audit = admin.get("/api/audit?limit=100").await;
    assert_eq!(audit.status, StatusCode::OK);
    let events = audit.body["events"].as_array().unwrap();
    let actions: Vec<&str> = events
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for expected in ["login", "access_key.create", "access_key.delete"] {
        assert!(
            actions.contains(&expected),
            "{expected} missing from {actions:?}"
        );
    }
    let created = events
        .iter()
        .find(|e| e["action"] == "access_key.create")
        .unwrap();
    assert_eq!(created["actor"], "bob");
    assert_eq!(created["targetId"], key.as_str());
    assert!(created["at"].is_string());
    let text = audit.body.to_string();
    assert!(!text.contains(&pw) && !text.contains("bob-pw") && !text.contains(&admin.token()));
    // Paging of the audit trail.
    let page = admin.get("/api/audit?limit=2").await;
    assert_eq!(page.body["events"].as_array().unwrap().len(), 2);
    assert!(page.body["next"].is_string());
}

#[tokio::test]
async fn an_admins_key_cannot_loosen_the_rules_that_bind_keys() {
    use crate::harness::daemon::ADMIN;
    let d = Daemon::start(None).await;
    let admin = d.admin().await;
    let admin_id = admin.me().await.body["id"].as_str().unwrap().to_string();
    accesskeyd::users::create_local(
        &d.app,
        &accesskeyd::audit::Actor::system("test"),
        "alice",
        accesskeyd::secret::Secret::new("alice-password-123"),
        false,
    )
    .await
    .unwrap();
    let alice = d
        .login("alice", "alice-password-123", Some("builtin"))
        .await;
    let alice_id = alice.me().await.body["id"].as_str().unwrap().to_string();
    let sa = admin
        .post(
            "/api/users",
            json!({"name": "Nightly ETL", "isApplicationServicePrincipal": true, "manager": "builtin:alice"}),
        )
        .await;
    assert_eq!(sa.status, StatusCode::CREATED, "{}", sa.body);
    let sa_id = sa.body["id"].as_str().unwrap().to_string();

    // The admin's automation holds a key of theirs, used directly and as a key session.
    let (key, pw, _) = admin.create_key("admin automation").await;
    let basic = d.client().with_basic(&key, &pw);
    let key_session = d.login(&key, &pw, None).await;
    let validity = "Authentication/AccessKey/ValidityWithoutUserLogin";
    for (how, client) in [("Basic", &basic), ("key session", &key_session)] {
        let refused = [
            (
                client
                    .post(
                        &format!("/api/users/{admin_id}/update"),
                        json!({"accessKeyValidityDuration": 52_704_000}),
                    )
                    .await,
                "`accessKeyValidityDuration` cannot be changed with an access key",
            ),
            (
                client
                    .post(
                        &format!("/api/users/{alice_id}/update"),
                        json!({"sessionDuration": 525_600}),
                    )
                    .await,
                "`sessionDuration` cannot be changed with an access key",
            ),
            (
                client
                    .post(
                        &format!("/api/users/{sa_id}/update"),
                        json!({"manager": format!("builtin:{ADMIN}")}),
                    )
                    .await,
                "service account's `manager` cannot be changed with an access key",
            ),
            (
                client
                    .post(
                        "/api/users",
                        json!({"name": "Backdoor", "isApplicationServicePrincipal": true, "manager": "builtin:alice"}),
                    )
                    .await,
                "`manager` cannot be changed with an access key",
            ),
            (
                client
                    .post(
                        "/api/system/configuration/options",
                        json!({"configurationOptions": [{"path": validity, "value": 36_500}]}),
                    )
                    .await,
                "`Authentication/AccessKey/ValidityWithoutUserLogin` cannot be changed with an access key",
            ),
            (
                // A dry run answers as the change would: refused.
                client
                    .post(
                        "/api/system/configuration/options",
                        json!({"configurationOptions": [{"path": "authentication/accesskey/creation/enabled", "value": false}], "dryRun": true}),
                    )
                    .await,
                "cannot be changed with an access key",
            ),
        ];
        for (a, reason) in &refused {
            assert_eq!(a.status, StatusCode::FORBIDDEN, "{how}: {}", a.body);
            assert_error(a, StatusCode::FORBIDDEN, reason);
            assert_error(a, StatusCode::FORBIDDEN, "sign in interactively");
        }
    }

    // Nothing changed.
    let me = admin.get(&format!("/api/users/{admin_id}")).await.body;
    assert!(me["accessKeyValidityDuration"].is_null(), "{me}");
    let a = admin.get(&format!("/api/users/{alice_id}")).await.body;
    assert!(a["sessionDuration"].is_null(), "{a}");
    let s = admin.get(&format!("/api/users/{sa_id}")).await.body;
    assert_eq!(s["manager"]["name"], "alice");
    let opts = admin.get("/api/system/configuration/options").await.body;
    assert_eq!(opts["configurationOptions"][0]["value"], 14);
    let accounts = admin
        .get("/api/users?isApplicationServicePrincipal=true")
        .await
        .body;
    assert_eq!(
        accounts["totalResults"], 1,
        "no service account was created"
    );

    // Other admin work with the key still works: keys act with their owner's rights.
    let (alices_key, _, _) = alice.create_key("alice's export").await;
    assert_eq!(basic.get("/api/users").await.status, StatusCode::OK);
    assert_eq!(
        basic.get("/api/system/configuration/options").await.status,
        StatusCode::OK
    );
    assert_eq!(key_session.get("/api/audit").await.status, StatusCode::OK);
    let del = basic.delete(&format!("/api/accesskeys/{alices_key}")).await;
    assert_eq!(del.status, StatusCode::OK, "{}", del.body);

    // The same admin, signed in interactively, changes all of it.
    for (path, body) in [
        (
            format!("/api/users/{admin_id}/update"),
            json!({"accessKeyValidityDuration": 52_704_000}),
        ),
        (
            format!("/api/users/{alice_id}/update"),
            json!({"sessionDuration": 600}),
        ),
        (
            format!("/api/users/{sa_id}/update"),
            json!({"manager": format!("builtin:{ADMIN}")}),
        ),
        (
            "/api/system/configuration/options".to_string(),
            json!({"configurationOptions": [{"path": validity, "value": 36_500}]}),
        ),
    ] {
        let a = admin.post(&path, body).await;
        assert_eq!(a.status, StatusCode::OK, "{path}: {}", a.body);
    }
    let opts = admin.get("/api/system/configuration/options").await.body;
    assert_eq!(opts["configurationOptions"][0]["value"], 36_500);
}

#[tokio::test]
async fn paging_past_the_largest_number_is_refused_not_wrapped() {
    let d = Daemon::start(None).await;
    let admin = d.admin().await;
    for list in ["/api/users", "/api/accesskeys", "/api/audit"] {
        let a = admin
            .get(&format!("{list}?offset=9223372036854775807"))
            .await;
        assert_error(&a, StatusCode::BAD_REQUEST, "offset: must be at most");
        // The last offset whose next page still has a number: an empty page, no next.
        let a = admin
            .get(&format!("{list}?offset=9223372036854775767&limit=40"))
            .await;
        assert_eq!(a.status, StatusCode::OK, "{list}: {}", a.body);
        assert!(a.body["next"].is_null(), "{list}: {}", a.body);
        assert_eq!(
            a.body["prev"],
            format!("{list}?offset=9223372036854775727&limit=40")
        );
    }
}
