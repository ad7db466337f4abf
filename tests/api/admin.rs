//! Admins: every key with its owner, deleting keys and users, options, the audit trail; and
//! everyone else kept out.

use crate::app::{assert_error, Caller, TestApp, ADMIN};
use axum::http::StatusCode;
use serde_json::{json, Value};

#[tokio::test]
async fn admins_see_every_key_with_owner_and_admin_flag() {
    let app = TestApp::spawn().await;
    let alice = app.another_admin("alice").await;
    let bob = app.user("bob").await;
    let bob_key = app.create_key(&bob, "bob's export").await;
    let alice_key = app.create_key(&alice, "alice's notebook").await;
    let bob_id = app.me(&bob).await.json()["id"]
        .as_str()
        .unwrap()
        .to_string();

    let all = app
        .get("/api/accesskeys?getAll=true")
        .auth(&alice)
        .send()
        .await;
    assert_eq!(all.status, StatusCode::OK, "{}", all.body);
    let body = all.json();
    let keys = body["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 2);
    let find = |k: &str| keys.iter().find(|x| x["keyId"] == k).unwrap().clone();
    let b = find(&bob_key.id);
    assert_eq!(b["name"], "bob's export");
    assert_eq!(b["username"], "bob");
    assert_eq!(b["userId"], bob_id.as_str());
    assert_eq!(b["isAdmin"], false);
    assert!(b["createdAt"].is_string());
    assert!(b.get("lastUsed").is_some());
    assert_eq!(find(&alice_key.id)["isAdmin"], true);

    let only_bob = app
        .get(&format!("/api/accesskeys?userId={bob_id}"))
        .auth(&alice)
        .send()
        .await
        .json();
    assert_eq!(only_bob["keys"].as_array().unwrap().len(), 1);

    // Paging with next/prev links.
    let p1 = app
        .get("/api/accesskeys?getAll=true&limit=1")
        .auth(&alice)
        .send()
        .await
        .json();
    assert_eq!(p1["keys"].as_array().unwrap().len(), 1);
    assert_eq!(p1["next"], "/api/accesskeys?offset=1&limit=1&getAll=true");
    assert!(p1["prev"].is_null());
    let p2 = app
        .get(p1["next"].as_str().unwrap())
        .auth(&alice)
        .send()
        .await
        .json();
    assert_eq!(p2["keys"].as_array().unwrap().len(), 1);
    assert!(p2["next"].is_null());
    assert_eq!(p2["prev"], "/api/accesskeys?offset=0&limit=1&getAll=true");

    // An admin deletes Bob's key.
    let del = app
        .delete(&format!("/api/accesskeys/{}", bob_key.id))
        .auth(&alice)
        .send()
        .await;
    assert_eq!(del.status, StatusCode::OK);
    let left = app.get("/api/accesskeys").auth(&bob).send().await.json();
    assert_eq!(left["keys"].as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn non_admins_get_403_on_admin_endpoints() {
    let app = TestApp::spawn().await;
    let bob = app.user("bob").await;
    let carol = app.user("carol").await;
    let carol_id = app.me(&carol).await.json()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let key = app.create_key(&bob, "k").await;
    for who in [Caller::Session(&bob), Caller::Key(&key)] {
        for a in [
            app.get("/api/users").by(who).send().await,
            app.get(&format!("/api/users/{carol_id}")).by(who).send().await,
            app.post(&format!("/api/users/{carol_id}/update")).by(who)
                .json(json!({"accessKeyValidityDuration": 0}))
                .send()
                .await,
            app.delete(&format!("/api/users/{carol_id}")).by(who).send().await,
            app.get("/api/system/configuration/options").by(who).send().await,
            app.post("/api/system/configuration/options").by(who)
                .json(json!({"configurationOptions": [{"path": "Authentication/AccessKey/ValidityWithoutUserLogin", "value": 0}]}))
                .send()
                .await,
            app.get("/api/audit").by(who).send().await,
        ] {
            assert_error(&a, StatusCode::FORBIDDEN, "admin");
        }
    }
    // Nothing changed.
    let admin = app.admin().await;
    let c = app
        .get(&format!("/api/users/{carol_id}"))
        .auth(&admin)
        .send()
        .await
        .json();
    assert!(c["accessKeyValidityDuration"].is_null());
    // Everyone may read themselves.
    let me = app.me(&bob).await.json()["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        app.get(&format!("/api/users/{me}"))
            .auth(&bob)
            .send()
            .await
            .status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn deleting_a_user_takes_keys_and_sessions_and_nothing_passes_to_a_new_user() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let bob = app.user("bob").await;
    let bob_id = bob.id();
    let key = app.create_key(&bob, "etl").await;
    let key_session = app.key_session(&key).await;

    let del = app
        .delete(&format!("/api/users/{bob_id}"))
        .auth(&admin)
        .send()
        .await;
    assert_eq!(del.status, StatusCode::OK, "{}", del.body);
    assert!(del.json()["statusMessage"]
        .as_str()
        .unwrap()
        .contains("1 access key(s)"));
    assert_eq!(
        app.me(&bob).await.status,
        StatusCode::UNAUTHORIZED,
        "interactive session gone"
    );
    assert_eq!(
        app.me(&key_session).await.status,
        StatusCode::UNAUTHORIZED,
        "key session gone"
    );
    assert_eq!(app.me_with_key(&key).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        app.get(&format!("/api/users/{bob_id}"))
            .auth(&admin)
            .send()
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.delete(&format!("/api/users/{bob_id}"))
            .auth(&admin)
            .send()
            .await
            .status,
        StatusCode::NOT_FOUND
    );

    // A new bob is created under the same name.
    let new_bob = app.user("bob").await;
    let me = app.me(&new_bob).await.json();
    assert_ne!(me["id"], bob_id.as_str(), "a new id, never reused");
    let keys = app
        .get("/api/accesskeys")
        .auth(&new_bob)
        .send()
        .await
        .json();
    assert_eq!(keys["keys"].as_array().unwrap().len(), 0);
    assert_eq!(app.me_with_key(&key).await.status, StatusCode::UNAUTHORIZED);

    // The admin cannot delete themself (no lock-out by accident).
    let admin_id = app.me(&admin).await.json()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let a = app
        .delete(&format!("/api/users/{admin_id}"))
        .auth(&admin)
        .send()
        .await;
    assert_error(&a, StatusCode::CONFLICT, "own user");

    let audit = app
        .get("/api/audit?action=user.delete")
        .auth(&admin)
        .send()
        .await
        .json();
    assert_eq!(audit["totalResults"], 1);
    assert_eq!(audit["events"][0]["targetId"], bob_id.as_str());
    assert_eq!(audit["events"][0]["actor"], "root");
}

#[tokio::test]
async fn options_validate_before_changing_anything_and_are_audited() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let options = |body: Value| {
        app.post("/api/system/configuration/options")
            .auth(&admin)
            .json(body)
            .send()
    };
    let current = || async {
        app.get("/api/system/configuration/options")
            .auth(&admin)
            .send()
            .await
            .json()["configurationOptions"][0]["value"]
            .clone()
    };
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
        assert_error(&options(body).await, StatusCode::BAD_REQUEST, needle);
    }
    assert_eq!(current().await, 14, "nothing changed");

    let dry =
        options(json!({"configurationOptions": [{"path": path, "value": 3}], "dryRun": true}))
            .await;
    assert_eq!(dry.status, StatusCode::OK);
    assert_eq!(dry.json()["configurationOptions"][0]["value"], 3);
    assert_eq!(current().await, 14, "dry run changed nothing");

    let set = options(
        json!({"configurationOptions": [{"path": path, "value": 7, "note": "policy 2026-11"}]}),
    )
    .await;
    assert_eq!(set.status, StatusCode::OK);
    assert_eq!(set.json()["configurationOptions"][0]["value"], 7);
    let audit = app
        .get("/api/audit?action=option.set")
        .auth(&admin)
        .send()
        .await
        .json();
    assert_eq!(audit["totalResults"], 1);
    let detail = audit["events"][0]["detail"].as_str().unwrap();
    assert!(
        detail.contains("14 -> 7") && detail.contains("policy 2026-11"),
        "{detail}"
    );
}

#[tokio::test]
async fn the_audit_trail_records_key_and_login_events_without_secrets() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let bob_user = app.add_user("bob").await;
    let bob = app.login(&bob_user.name, &bob_user.password).await;
    let key = app.create_key(&bob, "etl").await;
    app.key_session(&key).await;
    app.delete(&format!("/api/accesskeys/{}", key.id))
        .auth(&bob)
        .send()
        .await;
    let audit = app.get("/api/audit?limit=100").auth(&admin).send().await;
    assert_eq!(audit.status, StatusCode::OK);
    let body = audit.json();
    let events = body["events"].as_array().unwrap();
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
    assert_eq!(created["targetId"], key.id.as_str());
    assert!(created["at"].is_string());
    let text = &audit.body;
    assert!(
        !text.contains(&key.password)
            && !text.contains(&bob_user.password)
            && !text.contains(&admin.token)
    );
    // Paging of the audit trail.
    let page = app
        .get("/api/audit?limit=2")
        .auth(&admin)
        .send()
        .await
        .json();
    assert_eq!(page["events"].as_array().unwrap().len(), 2);
    assert!(page["next"].is_string());
}

#[tokio::test]
async fn an_admins_key_cannot_loosen_the_rules_that_bind_keys() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let admin_id = app.me(&admin).await.json()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let alice = app.user("alice").await;
    let alice_id = app.me(&alice).await.json()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let sa = app
        .post("/api/users")
        .auth(&admin)
        .json(json!({"name": "Nightly ETL", "isApplicationServicePrincipal": true, "manager": "builtin:alice"}))
        .send()
        .await;
    assert_eq!(sa.status, StatusCode::CREATED, "{}", sa.body);
    let sa_id = sa.json()["id"].as_str().unwrap().to_string();

    // The admin's automation holds a key of theirs, used directly and as a key session.
    let key = app.create_key(&admin, "admin automation").await;
    let key_session = app.key_session(&key).await;
    let validity = "Authentication/AccessKey/ValidityWithoutUserLogin";
    for (how, who) in [
        ("Basic", Caller::Key(&key)),
        ("key session", Caller::Session(&key_session)),
    ] {
        let refused = [
            (
                app.post(&format!("/api/users/{admin_id}/update")).by(who)
                    .json(json!({"accessKeyValidityDuration": 52_704_000}))
                    .send()
                    .await,
                "`accessKeyValidityDuration` cannot be changed with an access key",
            ),
            (
                app.post(&format!("/api/users/{alice_id}/update")).by(who)
                    .json(json!({"sessionDuration": 525_600}))
                    .send()
                    .await,
                "`sessionDuration` cannot be changed with an access key",
            ),
            (
                app.post(&format!("/api/users/{sa_id}/update")).by(who)
                    .json(json!({"manager": format!("builtin:{ADMIN}")}))
                    .send()
                    .await,
                "service account's `manager` cannot be changed with an access key",
            ),
            (
                app.post("/api/users").by(who)
                    .json(json!({"name": "Backdoor", "isApplicationServicePrincipal": true, "manager": "builtin:alice"}))
                    .send()
                    .await,
                "`manager` cannot be changed with an access key",
            ),
            (
                app.post("/api/system/configuration/options").by(who)
                    .json(json!({"configurationOptions": [{"path": validity, "value": 36_500}]}))
                    .send()
                    .await,
                "`Authentication/AccessKey/ValidityWithoutUserLogin` cannot be changed with an access key",
            ),
            (
                // A dry run answers as the change would: refused.
                app.post("/api/system/configuration/options").by(who)
                    .json(json!({"configurationOptions": [{"path": "authentication/accesskey/creation/enabled", "value": false}], "dryRun": true}))
                    .send()
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
    let user = |id: String| {
        let admin = &admin;
        let app = &app;
        async move {
            app.get(&format!("/api/users/{id}"))
                .auth(admin)
                .send()
                .await
                .json()
        }
    };
    let me = user(admin_id.clone()).await;
    assert!(me["accessKeyValidityDuration"].is_null(), "{me}");
    let a = user(alice_id.clone()).await;
    assert!(a["sessionDuration"].is_null(), "{a}");
    let s = user(sa_id.clone()).await;
    assert_eq!(s["manager"]["name"], "alice");
    let opts = app
        .get("/api/system/configuration/options")
        .auth(&admin)
        .send()
        .await
        .json();
    assert_eq!(opts["configurationOptions"][0]["value"], 14);
    let accounts = app
        .get("/api/users?isApplicationServicePrincipal=true")
        .auth(&admin)
        .send()
        .await
        .json();
    assert_eq!(
        accounts["totalResults"], 1,
        "no service account was created"
    );

    // Other admin work with the key still works: keys act with their owner's rights.
    let alices_key = app.create_key(&alice, "alice's export").await;
    assert_eq!(
        app.get("/api/users").key(&key).send().await.status,
        StatusCode::OK
    );
    assert_eq!(
        app.get("/api/system/configuration/options")
            .key(&key)
            .send()
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        app.get("/api/audit").auth(&key_session).send().await.status,
        StatusCode::OK
    );
    let del = app
        .delete(&format!("/api/accesskeys/{}", alices_key.id))
        .key(&key)
        .send()
        .await;
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
        let a = app.post(&path).auth(&admin).json(body).send().await;
        assert_eq!(a.status, StatusCode::OK, "{path}: {}", a.body);
    }
    let opts = app
        .get("/api/system/configuration/options")
        .auth(&admin)
        .send()
        .await
        .json();
    assert_eq!(opts["configurationOptions"][0]["value"], 36_500);
}

#[tokio::test]
async fn paging_past_the_largest_number_is_refused_not_wrapped() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    for list in ["/api/users", "/api/accesskeys", "/api/audit"] {
        let a = app
            .get(&format!("{list}?offset=9223372036854775807"))
            .auth(&admin)
            .send()
            .await;
        assert_error(&a, StatusCode::BAD_REQUEST, "offset: must be at most");
        // The last offset whose next page still has a number: an empty page, no next.
        let a = app
            .get(&format!("{list}?offset=9223372036854775767&limit=40"))
            .auth(&admin)
            .send()
            .await;
        assert_eq!(a.status, StatusCode::OK, "{list}: {}", a.body);
        let body = a.json();
        assert!(body["next"].is_null(), "{list}: {body}");
        assert_eq!(
            body["prev"],
            format!("{list}?offset=9223372036854775727&limit=40")
        );
    }
}
