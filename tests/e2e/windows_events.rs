//! Windows sign-ins from the domain controllers' Security log against a real Samba AD
//! domain (CORP / corp.test): events posted over HTTP as NXLog's om_http sends them move the
//! lastLoginAt of people of the domain, and the domain's own machine account moves nothing.
//! The rules of the mapping are in the fast tier (tests/api/security_events.rs). One DC per
//! machine: the test holds `samba::exclusive()`.

use crate::harness::daemon::Daemon;
use crate::harness::samba::{self, SambaDc};
use chrono::{DateTime, Duration, FixedOffset, SecondsFormat, Utc};
use reqwest::StatusCode;
use serde_json::{json, Value};

const AD: &str = "ad";
const PW: &str = "Passw0rd!Str0ng";

/// The domain as an LDAP directory; `windows_domains` is left to its default, which the
/// user base gives: CORP and corp.test, the names Samba provisioned.
fn ad_directory(dc: &SambaDc) -> String {
    format!(
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
timeout_seconds = 15
create_users_from_events = true
"#,
        dc.url(),
        dc.admin_bind_dn(),
        dc.admin_password(),
        dc.users_dn(),
    )
}

/// A Security event as NXLog's im_msvistalog and to_json() write it (fields of
/// https://docs.nxlog.co/agent/current/im/msvistalog.html; `EventTime` in xm_json's default
/// `YYYY-MM-DDThh:mm:ss.sTZ`, local time with its offset,
/// https://docs.nxlog.co/platform/current/log-collection/how-to/format-timestamps.html).
fn nxlog_event(event_id: u32, data: Value, at: DateTime<Utc>) -> Value {
    let cet = FixedOffset::east_opt(3600).unwrap();
    let time = at
        .with_timezone(&cet)
        .to_rfc3339_opts(SecondsFormat::Micros, false);
    let mut record = json!({
        "EventTime": time,
        "Hostname": "dc1.corp.test",
        "Keywords": -9214364837600034816i64,
        "EventType": "AUDIT_SUCCESS",
        "SeverityValue": 2,
        "Severity": "INFO",
        "EventID": event_id,
        "SourceName": "Microsoft-Windows-Security-Auditing",
        "ProviderGuid": "{54849625-5478-4994-A5BA-3E3B0328C30D}",
        "Version": 2,
        "OpcodeValue": 0,
        "RecordNumber": 48_211,
        "ProcessID": 640,
        "ThreadID": 1880,
        "Channel": "Security",
        "Opcode": "Info",
        "EventReceivedTime": time,
        "SourceModuleName": "security",
        "SourceModuleType": "im_msvistalog"
    });
    record
        .as_object_mut()
        .unwrap()
        .extend(data.as_object().unwrap().clone());
    record
}

/// A 4624: `user` of `domain` logged on with `logon_type`.
fn logon(user: &str, domain: &str, logon_type: &str, at: DateTime<Utc>) -> Value {
    nxlog_event(
        4624,
        json!({
            "Message": "An account was successfully logged on.",
            "Category": "Logon",
            "Task": 12544,
            "SubjectUserSid": "S-1-5-18",
            "SubjectUserName": "DC1$",
            "SubjectDomainName": "CORP",
            "SubjectLogonId": "0x3e7",
            "TargetUserSid": "S-1-5-21-1004336348-1177238915-682003330-1107",
            "TargetUserName": user,
            "TargetDomainName": domain,
            "TargetLogonId": "0x2d41f7",
            "LogonType": logon_type,
            "LogonProcessName": "User32 ",
            "AuthenticationPackageName": "Negotiate",
            "WorkstationName": "DC1",
            "IpAddress": "127.0.0.1",
            "IpPort": "0",
            "ImpersonationLevel": "%%1833"
        }),
        at,
    )
}

/// om_http without BatchMode: one record per POST, ContentType as the shipped config sets.
async fn forward(d: &Daemon, token: &str, body: String) -> (StatusCode, Value) {
    let r = reqwest::Client::new()
        .post(format!("{}/api/events/windows?directory={AD}", d.url))
        .bearer_auth(token)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn domain_sign_ins_forwarded_as_nxlog_sends_them_keep_keys_alive_machine_accounts_do_not_count(
) {
    let _one_dc = samba::exclusive().await;
    let dc = SambaDc::start().await;
    dc.create_user("wendy", PW).await;
    dc.create_user("xavier", PW).await;
    let d = Daemon::start_with(None, &ad_directory(&dc), &[]).await;
    let admin = d.admin().await;

    // Wendy used accesskeyd once, a month ago, and made a key; it has lapsed since.
    let wendy = d.login("wendy", PW, Some(AD)).await;
    let wendy_id = wendy.me().await.body["id"].as_str().unwrap().to_string();
    let (key, key_pw, _) = wendy.create_key("wendy's report").await;
    d.set_last_login(&wendy_id, d.app.clock.now() - Duration::days(30))
        .await;
    let lapsed = d.client().with_basic(&key, &key_pw).me().await;
    assert_eq!(lapsed.status, StatusCode::UNAUTHORIZED, "{}", lapsed.body);
    let users_before = admin.get("/api/users").await.body["totalResults"].clone();

    let (_, token) = accesskeyd::events::create_token(&d.app, "domain controllers", &[AD.into()])
        .await
        .unwrap();
    let token = token.expose().to_string();

    // This morning she signed in at her desk: the DC's 4624 reaches accesskeyd.
    let at = Utc::now() - Duration::hours(1);
    let (s, b) = forward(&d, &token, logon("wendy", "CORP", "2", at).to_string()).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["updated"], 1, "{b}");
    let last: DateTime<Utc> = admin.get(&format!("/api/users/{wendy_id}")).await.body
        ["lastLoginAt"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((last - at).num_milliseconds().abs() < 1, "{last} vs {at}");
    let revived = d.client().with_basic(&key, &key_pw).me().await;
    assert_eq!(revived.status, StatusCode::OK, "{}", revived.body);

    // The DC's own machine account logs on all the time: nothing moves, nobody appears.
    let (s, b) = forward(
        &d,
        &token,
        logon("DC1$", "CORP", "3", Utc::now() - Duration::minutes(1)).to_string(),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["ignored"], 1, "{b}");
    assert_eq!(
        b["reasons"][0]["message"],
        "a machine account (the name ends in $)"
    );
    assert_eq!(
        admin.get("/api/users").await.body["totalResults"],
        users_before,
        "nobody created"
    );
    let after: DateTime<Utc> = admin.get(&format!("/api/users/{wendy_id}")).await.body
        ["lastLoginAt"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(after, last);

    // Xavier never opened accesskeyd: his ticket (the realm as he typed it, his name in
    // capitals) creates his record from the domain, the same his first sign-in would make.
    let ticket = nxlog_event(
        4768,
        json!({
            "Message": "A Kerberos authentication ticket (TGT) was requested.",
            "Category": "Kerberos Authentication Service",
            "Task": 14339,
            "TargetUserName": "XAVIER",
            "TargetDomainName": "corp.test",
            "TargetSid": "S-1-5-21-1004336348-1177238915-682003330-1108",
            "ServiceName": "krbtgt",
            "ServiceSid": "S-1-5-21-1004336348-1177238915-682003330-502",
            "TicketOptions": "0x40810010",
            "Status": "0x0",
            "TicketEncryptionType": "0x12",
            "PreAuthType": "2",
            "IpAddress": "::ffff:127.0.0.1",
            "IpPort": "50112",
            "CertIssuerName": "",
            "CertSerialNumber": "",
            "CertThumbprint": ""
        }),
        at,
    );
    let (s, b) = forward(&d, &token, ticket.to_string()).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["created"], 1, "{b}");
    let xavier = d.login("xavier", PW, Some(AD)).await;
    assert_eq!(xavier.me().await.body["username"], "xavier");
    assert_eq!(
        admin.get("/api/users").await.body["totalResults"].as_u64(),
        users_before.as_u64().map(|n| n + 1),
        "his sign-in found the record the event created"
    );
}
