//! The credential report (`GET /api/accesskeys/report.csv`), the key uses per day and the
//! Admin Panel's overview, as an admin opens them; everyone else kept out.

use crate::app::{assert_error, Session, TestApp};
use axum::http::StatusCode;
use serde_json::{json, Value};
use std::collections::HashMap;

/// The report as an admin downloads it: header and rows, parsed with the `csv` crate.
async fn download(app: &TestApp, admin: &Session) -> (Vec<String>, Vec<HashMap<String, String>>) {
    let r = app
        .get("/api/accesskeys/report.csv")
        .auth(admin)
        .send()
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(r.header("content-type").starts_with("text/csv"));
    assert!(
        r.header("content-disposition")
            .starts_with("attachment; filename=\"accesskeyd-keys-"),
        "{}",
        r.header("content-disposition")
    );
    let mut reader = csv::Reader::from_reader(r.body.as_bytes());
    let header: Vec<String> = reader
        .headers()
        .expect("a header row")
        .iter()
        .map(str::to_string)
        .collect();
    let rows = reader
        .records()
        .map(|rec| {
            let rec = rec.expect("a well-formed CSV row");
            assert_eq!(rec.len(), header.len(), "every row has every column");
            header
                .iter()
                .cloned()
                .zip(rec.iter().map(str::to_string))
                .collect()
        })
        .collect();
    (header, rows)
}

/// Polls the owner's keys until the one with `key_id` shows a recent use (written after
/// the answer, in the background).
async fn used_from(app: &TestApp, owner: &Session, key_id: &str) -> Value {
    for _ in 0..100 {
        let list = app.get("/api/accesskeys").auth(owner).send().await.json();
        let key = list["keys"]
            .as_array()
            .and_then(|ks| ks.iter().find(|k| k["keyId"] == key_id).cloned())
            .unwrap_or(Value::Null);
        if key["recentUses"].as_array().is_some_and(|u| !u.is_empty()) {
            return key;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("the use of {key_id} was never recorded");
}

#[tokio::test]
async fn an_admin_downloads_every_key_as_csv_with_formulas_neutralised() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let bob = app.user("bob").await;
    let carol = app.user("carol").await;
    let trap = app
        .create_key(&bob, "=HYPERLINK(\"http://evil.example/\",\"Click\")")
        .await;
    let read = app
        .post("/api/accesskeys")
        .auth(&bob)
        .json(json!({"name": "dashboard", "scope": "read", "allowedNetworks": ["10.1.0.0/16"]}))
        .send()
        .await;
    assert_eq!(read.status, StatusCode::CREATED, "{}", read.body);
    let read_id = read.json()["keyId"].as_str().expect("keyId").to_string();
    let carols = app.create_key(&carol, "-carol's export").await;
    let own = app.create_key(&admin, "root's notebook").await;
    // Carol's key is used from 10.9.8.7.
    let used = app
        .get("/api/users/me")
        .key(&carols)
        .peer("10.9.8.7")
        .send()
        .await;
    assert_eq!(used.status, StatusCode::OK, "{}", used.body);
    used_from(&app, &carol, &carols.id).await;

    let (header, rows) = download(&app, &admin).await;
    assert_eq!(
        header,
        [
            "key_id",
            "label",
            "owner_username",
            "owner_id",
            "directory",
            "scope",
            "allowed_networks",
            "created",
            "last_used",
            "last_address",
            "expiry",
            "valid_until",
            "owner_last_login",
            "owner_suspended",
            "owner_disabled",
        ]
    );
    assert_eq!(rows.len(), 4, "exactly one row per key");
    let row = |id: &str| {
        rows.iter()
            .find(|r| r["key_id"] == id)
            .unwrap_or_else(|| panic!("no row for {id}"))
            .clone()
    };

    let t = row(&trap.id);
    assert_eq!(
        t["label"], "'=HYPERLINK(\"http://evil.example/\",\"Click\")",
        "a formula is text to a spreadsheet"
    );
    assert_eq!(t["owner_username"], "bob");
    assert_eq!(t["owner_id"], bob.id());
    assert_eq!(t["directory"], "builtin");
    assert_eq!(t["scope"], "full");
    assert_eq!(t["last_used"], "");
    assert_eq!(t["last_address"], "");
    assert_eq!(t["expiry"], "");
    assert!(!t["valid_until"].is_empty(), "bob signed in: his keys work");
    assert!(!t["owner_last_login"].is_empty());
    assert_eq!(
        (t["owner_suspended"].as_str(), t["owner_disabled"].as_str()),
        ("no", "no")
    );

    let r = row(&read_id);
    assert_eq!(r["scope"], "read");
    assert_eq!(r["allowed_networks"], "10.1.0.0/16");

    let c = row(&carols.id);
    assert_eq!(c["label"], "'-carol's export");
    assert_eq!(c["last_address"], "10.9.8.7");
    assert!(!c["last_used"].is_empty());
    assert_eq!(row(&own.id)["owner_username"], "root");

    // The Admin Panel's inventory shows the same: scope, networks, last address.
    let page = app
        .get("/ui/admin/keys?q=dashboard")
        .session_cookie(&admin)
        .send()
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains(">read-only</span>"), "{}", page.body);
    assert!(page.body.contains("from 10.1.0.0/16"), "{}", page.body);
    let page = app
        .get("/ui/admin/keys?q=carol")
        .session_cookie(&admin)
        .send()
        .await;
    assert!(page.body.contains("<code>10.9.8.7</code>"), "{}", page.body);
    assert!(
        !page.body.contains(">read-only</span>"),
        "a full key has no badge"
    );
    assert!(page.body.contains("href=\"/api/accesskeys/report.csv\""));
}

#[tokio::test]
async fn the_report_is_for_admins_only() {
    let app = TestApp::spawn().await;
    let bob = app.user("bob").await;
    let key = app.create_key(&bob, "bob's export").await;
    let r = app
        .get("/api/accesskeys/report.csv")
        .auth(&bob)
        .send()
        .await;
    assert_error(&r, StatusCode::FORBIDDEN, "admin");
    let r = app.get("/api/accesskeys/report.csv").key(&key).send().await;
    assert_error(&r, StatusCode::FORBIDDEN, "admin");
    let r = app.get("/api/accesskeys/report.csv").send().await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    // The Admin Panel's link: the browser sends its session cookie.
    let admin = app.admin().await;
    let r = app
        .get("/api/accesskeys/report.csv")
        .session_cookie(&admin)
        .send()
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}

#[tokio::test]
async fn a_report_of_more_keys_than_one_chunk_has_each_key_once() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let owner = app.add_user("many").await;
    let chunk = usize::try_from(accesskeyd::key_report::CHUNK).expect("a size");
    let n = chunk + 7;
    // Arranged in the database: hashing a thousand passwords through the API adds nothing.
    let owner_id = owner.id.clone();
    app.app
        .store
        .write(move |conn| {
            use accesskeyd::store::schema::access_keys;
            use diesel::prelude::*;
            for i in 0..n {
                diesel::insert_into(access_keys::table)
                    .values((
                        access_keys::id.eq(format!("row-{i:05}")),
                        access_keys::key_id.eq(format!("akd_arranged{i:05}")),
                        access_keys::user_id.eq(&owner_id),
                        access_keys::name.eq(format!("key {i}")),
                        access_keys::password_hash.eq("unused"),
                        access_keys::created_at.eq(0i64),
                        access_keys::scope.eq("full"),
                    ))
                    .execute(conn)?;
            }
            Ok(())
        })
        .await
        .expect("arrange keys");
    let (_, rows) = download(&app, &admin).await;
    let mut ids: Vec<&str> = rows.iter().map(|r| r["key_id"].as_str()).collect();
    assert_eq!(ids.len(), n);
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), n, "no key twice across chunks");
}

#[tokio::test]
async fn key_uses_are_added_to_todays_count_and_the_overview_draws_them() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let bob = app.user("bob").await;
    let key = app.create_key(&bob, "bob's export").await;
    let tally = std::sync::Arc::new(tokio::sync::Mutex::new(accesskeyd::key_usage::Tally::from(
        accesskeyd::key_usage::requests(&app.app.metrics),
    )));
    for _ in 0..3 {
        assert!(app.key_works(&key).await);
    }
    accesskeyd::jobs::flush_key_uses(&app.app, &tally).await;
    assert!(app.key_works(&key).await);
    accesskeyd::jobs::flush_key_uses(&app.app, &tally).await;
    // Nothing new: the next flush adds nothing.
    accesskeyd::jobs::flush_key_uses(&app.app, &tally).await;

    let page = app.get("/ui/admin").session_cookie(&admin).send().await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(
        page.body.contains("4 key use(s) in the last 30 days."),
        "{}",
        page.body
    );
    // Bob's key works, beyond the warning days.
    assert!(
        page.body.contains("data-testid=\"state-working\">1<"),
        "{}",
        page.body
    );
    assert!(page.body.contains("<svg class=\"chart\" role=\"img\""));
    assert!(page.body.contains("href=\"/api/accesskeys/report.csv\""));
    assert!(page.body.contains("<td data-label=\"Day\">"));
}
