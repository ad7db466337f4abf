//! SCIM 2.0 provisioning through real HTTP: an identity provider creates, finds, updates,
//! deactivates and deletes users; deactivation stops keys and sessions at once, deletion
//! takes them; a provisioned user's first
//! OpenID Connect login (against a real provider) links to the provisioned record by
//! `externalId` = `sub`, or by userName only where the admin trusts the username claim (the
//! rules that need no provider are in the fast tier, tests/api/scim.rs).

use crate::harness::daemon::Daemon;
use crate::harness::oidc::{Account, OidcProvider};
use crate::oidc::browser_login;
use reqwest::StatusCode;
use serde_json::{json, Value};

const PUBLIC: &str = "http://accesskeyd.test";
const BEN: Account = Account {
    sub: "sub-ben",
    username: "ben",
    email: "ben@example.org",
    groups: &["staff"],
};

struct Scim {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl Scim {
    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self
            .http
            .request(method, format!("{}/scim/v2{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req
                .header("content-type", "application/scim+json")
                .body(b.to_string());
        }
        let r = req.send().await.unwrap();
        let status = r.status();
        let text = r.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }
}

async fn setup() -> (OidcProvider, Daemon, Scim) {
    setup_with("").await
}

async fn setup_with(directory_extra: &str) -> (OidcProvider, Daemon, Scim) {
    let p = OidcProvider::start(
        &[(
            "accesskeyd",
            "secret",
            &format!("{PUBLIC}/api/auth/oidc/idp/callback"),
        )],
        &[BEN],
    )
    .await;
    let extra = format!(
        "\n[server]\npublic_url = \"{PUBLIC}\"\n\n[[directories]]\nid = \"idp\"\nkind = \"oidc\"\n\
         issuer = \"{}\"\nclient_id = \"accesskeyd\"\nclient_secret = \"secret\"\n{directory_extra}",
        p.issuer()
    );
    let d = Daemon::start_with(None, &extra, &[]).await;
    let (_, token) = accesskeyd::scim::create_token(&d.app, &"idp".into(), "test provider")
        .await
        .unwrap();
    let scim = Scim {
        base: d.url.clone(),
        token: token.expose().to_string(),
        http: reqwest::Client::new(),
    };
    (p, d, scim)
}

fn assert_scim_error(
    status: StatusCode,
    body: &Value,
    expected: StatusCode,
    scim_type: Option<&str>,
) {
    assert_eq!(status, expected, "{body}");
    assert_eq!(
        body["schemas"][0], "urn:ietf:params:scim:api:messages:2.0:Error",
        "{body}"
    );
    assert_eq!(body["status"], expected.as_u16().to_string());
    if let Some(t) = scim_type {
        assert_eq!(body["scimType"], t, "{body}");
    }
}

#[tokio::test]
async fn provisioning_linking_and_deprovisioning() {
    use reqwest::Method;
    let (p, d, scim) = setup().await;

    // Discovery.
    let (s, cfg) = scim.send(Method::GET, "/ServiceProviderConfig", None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(cfg["patch"]["supported"], true);
    let (s, _) = scim.send(Method::GET, "/Schemas", None).await;
    assert_eq!(s, StatusCode::OK);

    // No token, a wrong token: SCIM errors.
    let wrong = Scim {
        token: "akscim_wrong".into(),
        base: scim.base.clone(),
        http: scim.http.clone(),
    };
    let (s, b) = wrong.send(Method::GET, "/Users", None).await;
    assert_scim_error(s, &b, StatusCode::UNAUTHORIZED, None);

    // Create, with the provider's subject as externalId.
    let ben = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": "ben", "externalId": "sub-ben", "active": true,
        "name": {"givenName": "Ben", "familyName": "Bell"},
        "emails": [{"value": "ben@example.org", "type": "work", "primary": true}]
    });
    let (s, created) = scim.send(Method::POST, "/Users", Some(ben.clone())).await;
    assert_eq!(s, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().unwrap().to_string();
    assert_eq!(created["userName"], "ben");
    assert_eq!(created["externalId"], "sub-ben");
    assert_eq!(
        created["meta"]["location"],
        format!("{PUBLIC}/scim/v2/Users/{id}")
    );
    let (s, b) = scim.send(Method::POST, "/Users", Some(ben)).await;
    assert_scim_error(s, &b, StatusCode::CONFLICT, Some("uniqueness"));

    // Find, by the filters identity providers send.
    for f in [
        "userName%20eq%20%22BEN%22",
        "externalId%20eq%20%22sub-ben%22",
    ] {
        let (s, list) = scim
            .send(Method::GET, &format!("/Users?filter={f}"), None)
            .await;
        assert_eq!(s, StatusCode::OK, "{list}");
        assert_eq!(list["totalResults"], 1, "{f}: {list}");
        assert_eq!(list["Resources"][0]["id"], id.as_str());
    }
    let (s, b) = scim
        .send(Method::GET, "/Users?filter=title%20co%20%22x%22", None)
        .await;
    assert_scim_error(s, &b, StatusCode::BAD_REQUEST, Some("invalidFilter"));
    let (s, b) = scim.send(Method::POST, "/Users", None).await;
    assert_scim_error(s, &b, StatusCode::BAD_REQUEST, Some("invalidSyntax"));

    // Ben's first OIDC login links to the provisioned record; he makes a key.
    let (r, _) = browser_login(&d, &p, "idp", BEN).await;
    assert_eq!(r.status(), StatusCode::OK);
    let token = r.headers()["x-sq-auth"].to_str().unwrap().to_string();
    let me: Value = r.json().await.unwrap();
    assert_eq!(
        me["id"],
        id.as_str(),
        "the login found the provisioned record"
    );
    let session = d.client().with_token(&token);
    let (key, pw, _) = session.create_key("provisioned").await;

    // An Entra-style update with attributes we do not keep.
    let patch = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [
        {"op": "Replace", "path": "displayName", "value": "Ben B."},
        {"op": "Add", "path": "title", "value": "Engineer"}
    ]});
    let (s, b) = scim
        .send(Method::PATCH, &format!("/Users/{id}"), Some(patch))
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["displayName"], "Ben B.");

    // Set inactive (Entra sends active "False" as a string): suspended at once, keys and
    // sessions refused; the record stays readable with active false until a DELETE.
    let off = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "Replace", "path": "active", "value": "False"}]});
    let (s, b) = scim
        .send(Method::PATCH, &format!("/Users/{id}"), Some(off.clone()))
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(
        (b["active"].clone(), b["displayName"].clone()),
        (json!(false), json!("Ben B."))
    );
    assert_eq!(
        d.client().with_basic(&key, &pw).me().await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(session.me().await.status, StatusCode::UNAUTHORIZED);
    let (s, b) = scim.send(Method::GET, &format!("/Users/{id}"), None).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["active"], false);
    let admin = d.admin().await;
    let audit = admin.get("/api/audit?action=user.suspend").await;
    assert_eq!(audit.body["totalResults"], 1, "{}", audit.body);
    assert!(audit.body["events"][0]["detail"]
        .as_str()
        .unwrap()
        .contains("1 session(s) ended"));
    // Signing in at the provider does not undo it.
    let (r, _) = browser_login(&d, &p, "idp", BEN).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    // Re-activated: the key works again; the session ended, so Ben signs in anew.
    let on = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "Replace", "path": "active", "value": "True"}]});
    let (s, b) = scim
        .send(Method::PATCH, &format!("/Users/{id}"), Some(on))
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["active"], true);
    assert_eq!(
        d.client().with_basic(&key, &pw).me().await.status,
        StatusCode::OK
    );
    assert_eq!(session.me().await.status, StatusCode::UNAUTHORIZED);
    let (r, _) = browser_login(&d, &p, "idp", BEN).await;
    assert_eq!(r.status(), StatusCode::OK);

    // Inactive again, then deleted (Entra's hard delete): gone with keys and sessions.
    scim.send(Method::PATCH, &format!("/Users/{id}"), Some(off))
        .await;
    let (s, _) = scim
        .send(Method::DELETE, &format!("/Users/{id}"), None)
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, b) = scim.send(Method::GET, &format!("/Users/{id}"), None).await;
    assert_scim_error(s, &b, StatusCode::NOT_FOUND, None);
    assert_eq!(
        d.client().with_basic(&key, &pw).me().await.status,
        StatusCode::UNAUTHORIZED
    );
    let audit = admin.get("/api/audit?action=user.deprovision").await;
    assert_eq!(audit.body["totalResults"], 1);
    assert!(audit.body["events"][0]["detail"]
        .as_str()
        .unwrap()
        .contains("1 access key(s)"));

    // DELETE, PUT.
    let carol =
        json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "carol"});
    let (_, c) = scim.send(Method::POST, "/Users", Some(carol)).await;
    let cid = c["id"].as_str().unwrap().to_string();
    let put = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "carol",
        "name": {"givenName": "Carol"}, "active": true});
    let (s, b) = scim
        .send(Method::PUT, &format!("/Users/{cid}"), Some(put))
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["name"]["givenName"], "Carol");
    // A PUT that sets the user inactive answers 200 with the resource too.
    let put = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "carol",
        "name": {"givenName": "Carol"}, "active": false});
    let (s, b) = scim
        .send(Method::PUT, &format!("/Users/{cid}"), Some(put))
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(
        (b["id"].as_str(), b["active"].as_bool()),
        (Some(cid.as_str()), Some(false))
    );
    let (s, _) = scim
        .send(Method::DELETE, &format!("/Users/{cid}"), None)
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = scim
        .send(Method::DELETE, &format!("/Users/{cid}"), None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // A revoked token stops working.
    let tokens = accesskeyd::bearer::list(&d.app, accesskeyd::bearer::Kind::Scim)
        .await
        .unwrap();
    accesskeyd::bearer::revoke(&d.app, accesskeyd::bearer::Kind::Scim, &tokens[0].id)
        .await
        .unwrap();
    let (s, b) = scim.send(Method::GET, "/Users", None).await;
    assert_scim_error(s, &b, StatusCode::UNAUTHORIZED, None);
    // Tokens are only for OpenID Connect directories.
    assert!(
        accesskeyd::scim::create_token(&d.app, &"builtin".into(), "x")
            .await
            .is_err()
    );
}

#[tokio::test]
async fn with_a_grace_deprovisioned_users_are_suspended_restorable_then_removed() {
    use reqwest::Method;
    let (p, d, scim) = setup_with("removal_grace_hours = 24\n").await;
    let body = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": "ben", "externalId": "sub-ben"});
    let (_, created) = scim.send(Method::POST, "/Users", Some(body)).await;
    let id = created["id"].as_str().unwrap().to_string();
    // Ben logs in and makes a key.
    let (r, _) = browser_login(&d, &p, "idp", BEN).await;
    let session = d
        .client()
        .with_token(r.headers()["x-sq-auth"].to_str().unwrap());
    let (key, pw, _) = session.create_key("k").await;
    let basic = d.client().with_basic(&key, &pw);

    // Set inactive: suspended, not deleted; the key is refused at once.
    let off = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "value": {"active": false}}]});
    let (s, b) = scim
        .send(Method::PATCH, &format!("/Users/{id}"), Some(off))
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["active"], false);
    assert_eq!(basic.me().await.status, StatusCode::UNAUTHORIZED);

    // Signing in at the provider does not undo a deprovisioning.
    let (r, _) = browser_login(&d, &p, "idp", BEN).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(basic.me().await.status, StatusCode::UNAUTHORIZED);

    // Re-activated within the grace: restored, key intact.
    let on = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "path": "active", "value": true}]});
    let (s, b) = scim
        .send(Method::PATCH, &format!("/Users/{id}"), Some(on))
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["active"], true);
    assert_eq!(basic.me().await.status, StatusCode::OK);

    // Deleted: suspended; after the grace the cleanup job removes user and key, and so a
    // user who was only set inactive.
    let carol = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": "carol", "active": true});
    let (_, c) = scim.send(Method::POST, "/Users", Some(carol)).await;
    let cid = c["id"].as_str().unwrap().to_string();
    let off = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "path": "active", "value": false}]});
    let (s, _) = scim
        .send(Method::PATCH, &format!("/Users/{cid}"), Some(off))
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = scim
        .send(Method::DELETE, &format!("/Users/{id}"), None)
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert_eq!(basic.me().await.status, StatusCode::UNAUTHORIZED);
    let (s, _) = scim.send(Method::GET, &format!("/Users/{id}"), None).await;
    assert_eq!(s, StatusCode::OK, "still there within the grace");
    d.advance(chrono::Duration::hours(25));
    let app = d.app.clone();
    let detail = tokio::task::spawn_blocking(move || {
        let now = app.clock.now();
        let graces = accesskeyd::jobs::scim_graces(&app);
        app.leadership
            .run_blocking("session-cleanup", app.clock.as_ref(), |conn| {
                accesskeyd::jobs::cleanup(conn, now, &graces)
            })
    })
    .await
    .unwrap()
    .unwrap()
    .unwrap();
    assert!(detail.ends_with(" 2 deprovisioned user(s)"), "{detail}");
    for gone in [&id, &cid] {
        let (s, _) = scim
            .send(Method::GET, &format!("/Users/{gone}"), None)
            .await;
        assert_eq!(s, StatusCode::NOT_FOUND);
    }
    let audit = d
        .admin()
        .await
        .get("/api/audit?action=user.deprovision")
        .await;
    assert!(audit.body["events"][0]["detail"]
        .as_str()
        .unwrap()
        .contains("grace ended"));
}

#[tokio::test]
async fn a_first_login_links_a_provisioned_record_by_external_id_not_by_a_name_alone() {
    use reqwest::Method;
    let (p, d, scim) = setup().await;
    // Provisioned under Ben's name, but with an externalId that is not his subject at the
    // provider: the name alone must not hand this record to whoever signs in as `ben`.
    let body = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": "ben", "externalId": "00u-okta-ben"});
    let (s, created) = scim.send(Method::POST, "/Users", Some(body)).await;
    assert_eq!(s, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().unwrap().to_string();
    let (r, _) = browser_login(&d, &p, "idp", BEN).await;
    assert_eq!(r.status(), StatusCode::CONFLICT);
    assert!(r.headers().get("x-sq-auth").is_none());
    let (_, record) = scim.send(Method::GET, &format!("/Users/{id}"), None).await;
    assert_eq!(
        record["meta"]["lastModified"], record["meta"]["created"],
        "the provisioned record was not touched: {record}"
    );
    let admin = d.admin().await;
    let audit = admin.get("/api/audit?action=login.name_conflict").await;
    assert_eq!(audit.body["totalResults"], 1, "{}", audit.body);

    // The provider sends his subject as externalId: his next login links the record.
    let fix = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "path": "externalId", "value": "sub-ben"}]});
    let (s, b) = scim
        .send(Method::PATCH, &format!("/Users/{id}"), Some(fix))
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (r, _) = browser_login(&d, &p, "idp", BEN).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json::<Value>().await.unwrap()["id"], id.as_str());
}

#[tokio::test]
async fn where_the_admin_trusts_the_username_claim_a_first_login_links_by_user_name() {
    use reqwest::Method;
    let (p, d, scim) = setup_with("username_claim_is_provider_controlled = true\n").await;
    // Entra-style: userName is the UPN, no externalId the login knows.
    let body =
        json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "ben"});
    let (_, created) = scim.send(Method::POST, "/Users", Some(body)).await;
    let id = created["id"].as_str().unwrap().to_string();
    let (r, _) = browser_login(&d, &p, "idp", BEN).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json::<Value>().await.unwrap()["id"], id.as_str());
    let (_, record) = scim.send(Method::GET, &format!("/Users/{id}"), None).await;
    assert_ne!(record["meta"]["lastModified"], record["meta"]["created"]);
}
