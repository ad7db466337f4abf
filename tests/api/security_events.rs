//! Windows Security events from the domain controllers' forwarders (`POST
//! /api/events/windows`): the records are posted in the shapes Fluent Bit and NXLog send, and
//! the people of an LDAP directory keep their keys because they signed in to Windows. The
//! directory is never asked here (nothing answers at its address): its people are recorded
//! as their first login would record them.
//!
//! Sources of the shapes (only users, domains and times are ours):
//! - Fluent Bit, `winevtlog` input: the fields and their order are what
//!   `plugins/in_winevtlog/pack.c` (`winevtlog_pack_event`) packs, as its records print in
//!   https://github.com/fluent/fluent-bit/pull/8385 (`"TimeCreated"=>"2024-01-12 22:00:47
//!   +1000"`, `"StringInserts"=>[...]`); `String_Inserts` and `Render_Event_As_XML` are
//!   https://docs.fluentbit.io/manual/pipeline/inputs/windows-event-log-winevtlog. The `http`
//!   output with `Format json` posts a JSON array of the records, each with the time key
//!   `date` (`json_date_key`, default `date`, format `double`):
//!   https://docs.fluentbit.io/manual/pipeline/outputs/http.
//! - NXLog, `im_msvistalog`: the fields (`EventTime`, `Hostname`, `EventType`, `EventID`,
//!   `SourceName`, `Channel`, ..., and the event's own data by name, `TargetUserName`,
//!   `LogonType`, ...) of https://docs.nxlog.co/agent/current/im/msvistalog.html, written by
//!   `to_json()` with xm_json's default time format `YYYY-MM-DDThh:mm:ss.sTZ`
//!   (`"2024-02-22T20:38:56.221331+01:00"`,
//!   https://docs.nxlog.co/platform/current/log-collection/how-to/format-timestamps.html);
//!   `om_http` sends one record per request, or with `BatchMode multiline` one per line:
//!   https://docs.nxlog.co/agent/current/om/http.html.
//! - The event data of 4624 and 4768 (names, and the order Fluent Bit's `StringInserts`
//!   keeps): https://learn.microsoft.com/en-us/previous-versions/windows/it-pro/windows-10/security/threat-protection/auditing/event-4624
//!   and .../event-4768.

use crate::app::{assert_error, TestApp};
use accesskeyd::directory::DirectoryUser;
use accesskeyd::ids::DirectoryId;
use axum::http::StatusCode;
use chrono::{DateTime, Duration, FixedOffset, SecondsFormat, Utc};
use serde_json::{json, Value};

/// An Active Directory domain `corp.example` (NetBIOS `CORP`), never asked here.
const CORP: &str = r#"
[[directories]]
id = "corp"
kind = "ldap"
name = "Corp AD"
url = "ldap://127.0.0.1:1"
user_base = "CN=Users,DC=corp,DC=example"
username_attribute = "sAMAccountName"
id_attribute = "objectGUID"
timeout_seconds = 2
"#;

/// `TimeCreated` as Fluent Bit writes it: local time and its offset, to the second.
fn fluent_bit_time(at: DateTime<Utc>) -> String {
    let cest = FixedOffset::east_opt(2 * 3600).unwrap();
    at.with_timezone(&cest)
        .format("%Y-%m-%d %H:%M:%S %z")
        .to_string()
}

/// `EventTime` as NXLog's to_json() writes it by default: local time with its offset.
fn nxlog_time(at: DateTime<Utc>) -> String {
    let cet = FixedOffset::east_opt(3600).unwrap();
    at.with_timezone(&cet)
        .to_rfc3339_opts(SecondsFormat::Micros, false)
}

/// A 4624 as Fluent Bit's winevtlog packs it, in a `Format json` batch.
fn fluent_bit_4624(
    dc: &str,
    user: &str,
    domain: &str,
    logon_type: u32,
    at: DateTime<Utc>,
) -> Value {
    json!({
        "date": at.timestamp() as f64 + 0.2561861,
        "ProviderName": "Microsoft-Windows-Security-Auditing",
        "ProviderGuid": "{54849625-5478-4994-A5BA-3E3B0328C30D}",
        "Qualifiers": "",
        "EventID": 4624,
        "Version": 2,
        "Level": 0,
        "Task": 12544,
        "Opcode": 0,
        "Keywords": "0x8020000000000000",
        "TimeCreated": fluent_bit_time(at),
        "EventRecordID": 18_302_117,
        "ActivityID": "{4C2E6C1D-8B1F-0002-2A6D-2E4C1F8BDA01}",
        "RelatedActivityID": "",
        "ProcessID": 712,
        "ThreadID": 3140,
        "Channel": "Security",
        "Computer": format!("{dc}.corp.example"),
        "UserID": "",
        "Message": "An account was successfully logged on.\r\n\r\nSubject:\r\n\tSecurity ID:\t\tS-1-5-18\r\n\tAccount Name:\t\tWS01$\r\n\tAccount Domain:\t\tCORP\r\n\tLogon ID:\t\t0x3E7\r\n\r\nLogon Information:\r\n\tLogon Type:\t\t2\r\n...",
        "StringInserts": [
            "S-1-5-18", "WS01$", "CORP", "0x3e7",
            "S-1-5-21-3623811015-3361044348-30300820-1104", user, domain, "0x1b3c9e2",
            logon_type, "User32 ", "Negotiate", "WS01",
            "{00000000-0000-0000-0000-000000000000}", "-", "-", 0, "0x2a8",
            "C:\\Windows\\System32\\svchost.exe", "127.0.0.1", "0", "%%1833", "-", "-", "-",
            "%%1843", "0x0", "%%1842"
        ]
    })
}

/// A 4768 as Fluent Bit packs it: Status is a hex number written `0x…`.
fn fluent_bit_4768(user: &str, realm: &str, status: &str, at: DateTime<Utc>) -> Value {
    json!({
        "date": at.timestamp() as f64 + 0.5,
        "ProviderName": "Microsoft-Windows-Security-Auditing",
        "ProviderGuid": "{54849625-5478-4994-A5BA-3E3B0328C30D}",
        "Qualifiers": "",
        "EventID": 4768,
        "Version": 0,
        "Level": 0,
        "Task": 14339,
        "Opcode": 0,
        "Keywords": if status == "0x0" { "0x8020000000000000" } else { "0x8010000000000000" },
        "TimeCreated": fluent_bit_time(at),
        "EventRecordID": 18_302_120,
        "ActivityID": "",
        "RelatedActivityID": "",
        "ProcessID": 712,
        "ThreadID": 3188,
        "Channel": "Security",
        "Computer": "DC01.corp.example",
        "UserID": "",
        "Message": "A Kerberos authentication ticket (TGT) was requested.",
        "StringInserts": [
            user, realm, "S-1-5-21-3623811015-3361044348-30300820-1104", "krbtgt",
            "S-1-5-21-3623811015-3361044348-30300820-502", "0x40810010", status, "0x12", "2",
            "::ffff:10.0.0.21", "49731", "", "", ""
        ]
    })
}

/// A 4624 as NXLog's im_msvistalog and to_json() write it.
fn nxlog_4624(user: &str, domain: &str, logon_type: &str, event_time: &str) -> Value {
    let mut record = json!({
        "EventTime": event_time,
        "Hostname": "DC01.corp.example",
        "Keywords": -9214364837600034816i64,
        "EventType": "AUDIT_SUCCESS",
        "SeverityValue": 2,
        "Severity": "INFO",
        "EventID": 4624,
        "SourceName": "Microsoft-Windows-Security-Auditing",
        "ProviderGuid": "{54849625-5478-4994-A5BA-3E3B0328C30D}",
        "Version": 2,
        "Task": 12544,
        "OpcodeValue": 0,
        "RecordNumber": 18_302_131,
        "ProcessID": 712,
        "ThreadID": 2352,
        "Channel": "Security",
        "Message": "An account was successfully logged on.",
        "Category": "Logon",
        "Opcode": "Info",
        "EventReceivedTime": event_time,
        "SourceModuleName": "security",
        "SourceModuleType": "im_msvistalog"
    });
    // The event's own data, by name, in the same object.
    let data = json!({
        "SubjectUserSid": "S-1-5-18",
        "SubjectUserName": "DC01$",
        "SubjectDomainName": "CORP",
        "SubjectLogonId": "0x3e7",
        "TargetUserSid": "S-1-5-21-3623811015-3361044348-30300820-1105",
        "TargetUserName": user,
        "TargetDomainName": domain,
        "TargetLogonId": "0x1c2f6a1",
        "LogonType": logon_type,
        "LogonProcessName": "User32 ",
        "AuthenticationPackageName": "Negotiate",
        "WorkstationName": "DC01",
        "LogonGuid": "{6A1E3F0B-42C3-7D8E-1F20-3A4B5C6D7E8F}",
        "TransmittedServices": "-",
        "LmPackageName": "-",
        "KeyLength": "0",
        "ProcessName": "C:\\Windows\\System32\\svchost.exe",
        "IpAddress": "10.0.0.35",
        "IpPort": "0",
        "ImpersonationLevel": "%%1833"
    });
    record
        .as_object_mut()
        .unwrap()
        .extend(data.as_object().unwrap().clone());
    record
}

/// A 4768 as NXLog writes it.
fn nxlog_4768(user: &str, realm: &str, status: &str, event_time: &str) -> Value {
    json!({
        "EventTime": event_time,
        "Hostname": "DC02.corp.example",
        "EventType": "AUDIT_SUCCESS",
        "SeverityValue": 2,
        "Severity": "INFO",
        "EventID": 4768,
        "SourceName": "Microsoft-Windows-Security-Auditing",
        "ProviderGuid": "{54849625-5478-4994-A5BA-3E3B0328C30D}",
        "Version": 0,
        "Task": 14339,
        "OpcodeValue": 0,
        "RecordNumber": 9_420_017,
        "Channel": "Security",
        "Message": "A Kerberos authentication ticket (TGT) was requested.",
        "Category": "Kerberos Authentication Service",
        "Opcode": "Info",
        "TargetUserName": user,
        "TargetDomainName": realm,
        "TargetSid": "S-1-5-21-3623811015-3361044348-30300820-1106",
        "ServiceName": "krbtgt",
        "ServiceSid": "S-1-5-21-3623811015-3361044348-30300820-502",
        "TicketOptions": "0x40810010",
        "Status": status,
        "TicketEncryptionType": "0x12",
        "PreAuthType": "2",
        "IpAddress": "::ffff:10.0.0.36",
        "IpPort": "50112",
        "CertIssuerName": "",
        "CertSerialNumber": "",
        "CertThumbprint": "",
        "EventReceivedTime": event_time,
        "SourceModuleName": "security",
        "SourceModuleType": "im_msvistalog"
    })
}

/// A person of the corp directory as their first sign-in records them; their id.
async fn person(app: &TestApp, name: &str) -> String {
    let info = accesskeyd::users::upsert_login(
        &app.app,
        &DirectoryId::from("corp"),
        DirectoryUser {
            external_id: format!("0b7c{name:0>4}-1d2e-4f30-8a41-52c6d7e8f901"),
            username: name.into(),
            display_name: None,
            first_name: None,
            last_name: None,
            email: None,
            is_admin: false,
        },
    )
    .await
    .expect("record");
    info.row.id.to_string()
}

async fn token(app: &TestApp, directories: &[&str]) -> String {
    let ids: Vec<DirectoryId> = directories.iter().map(|d| DirectoryId::from(*d)).collect();
    let (_, token) = accesskeyd::events::create_token(&app.app, "dc forwarder", &ids)
        .await
        .unwrap();
    token.expose().to_string()
}

/// POST /api/events/windows`query` with `body` as the forwarder sends it.
async fn post(
    app: &TestApp,
    query: &str,
    token: &str,
    body: impl Into<Vec<u8>>,
) -> (StatusCode, Value) {
    let r = app
        .post(&format!("/api/events/windows{query}"))
        .bearer(token)
        .body("application/json", body)
        .send()
        .await;
    (
        r.status,
        serde_json::from_str(&r.body).unwrap_or(Value::Null),
    )
}

async fn last_login(app: &TestApp, id: &str) -> DateTime<Utc> {
    let admin = app.admin().await;
    app.get(&format!("/api/users/{id}"))
        .auth(&admin)
        .send()
        .await
        .json()["lastLoginAt"]
        .as_str()
        .expect("a last login")
        .parse()
        .unwrap()
}

fn reason(body: &Value, outcome: &str, needle: &str) -> u64 {
    body["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["outcome"] == outcome && r["message"].as_str().unwrap().contains(needle))
        .unwrap_or_else(|| panic!("no {outcome} reason with {needle:?} in {body}"))["count"]
        .as_u64()
        .unwrap()
}

#[tokio::test]
async fn a_windows_sign_in_forwarded_by_fluent_bit_revives_the_persons_keys() {
    let app = TestApp::spawn_with(CORP).await;
    let alice = person(&app, "alice").await;
    let bob = person(&app, "bob").await;
    let admin = app.admin().await;
    let r = app
        .post("/api/accesskeys")
        .auth(&admin)
        .json(json!({"name": "alice's notebook", "userId": alice}))
        .send()
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let key = crate::app::Key::from_created(&r.json());
    let long_ago = app.now() - Duration::days(20);
    app.set_last_login(&alice, long_ago).await;
    app.set_last_login(&bob, long_ago).await;
    assert!(!app.key_works(&key).await, "lapsed before");

    // Alice signs in at her desk at 08:55; both domain controllers forward it. Around it
    // the Security log holds what must not count.
    let signed_in = (Utc::now() - Duration::hours(1)).with_nanosecond_zero();
    let later = signed_in + Duration::minutes(5);
    let batch = json!([
        fluent_bit_4624("DC01", "alice", "CORP", 2, signed_in),
        fluent_bit_4624("DC02", "alice", "CORP", 2, signed_in),
        // The workstation's own account, and bob's file share access (a network logon).
        fluent_bit_4624("DC01", "WS01$", "CORP", 3, later),
        fluent_bit_4624("DC01", "bob", "CORP", 3, later),
        // Someone mistyping alice's password: a refused ticket (0x18 bad password).
        fluent_bit_4768("alice", "CORP.EXAMPLE", "0x18", later),
        // A local account of a workstation named like her.
        fluent_bit_4624("WS07", "alice", "WS07", 2, later),
    ]);
    let tok = token(&app, &["corp"]).await;
    let (s, b) = post(&app, "", &tok, batch.to_string()).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["directoryId"], "corp");
    assert_eq!(b["records"], 6);
    assert_eq!(b["updated"], 1, "{b}");
    assert_eq!(b["collapsed"], 1, "two DCs' copies are one sign-in: {b}");
    assert_eq!(b["ignored"], 4, "{b}");
    assert_eq!(b["rejected"], 0);
    assert_eq!(reason(&b, "ignored", "machine account"), 1);
    assert_eq!(reason(&b, "ignored", "logon type 3 (network)"), 1);
    assert_eq!(reason(&b, "ignored", "status 0x18"), 1);
    assert_eq!(reason(&b, "ignored", "domain `WS07`"), 1);

    assert_eq!(last_login(&app, &alice).await, signed_in);
    assert!(app.key_works(&key).await, "the key works again");
    assert_eq!(
        last_login(&app, &bob).await.timestamp(),
        long_ago.timestamp()
    );

    // The forwarder sends the batch again (it retries on any doubt): nothing moves.
    let (s, b) = post(&app, "", &tok, batch.to_string()).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(
        (b["updated"].as_u64(), b["unchanged"].as_u64()),
        (Some(0), Some(1)),
        "{b}"
    );
    assert_eq!(last_login(&app, &alice).await, signed_in);

    // The audit trail says who reported it and how she signed in.
    let audit = app
        .get("/api/audit?action=login.event")
        .auth(&admin)
        .send()
        .await
        .json();
    assert_eq!(audit["totalResults"], 1, "{audit}");
    assert_eq!(audit["events"][0]["actor"], "events:dc forwarder");
    let detail = audit["events"][0]["detail"].as_str().unwrap();
    assert!(detail.contains("windows 4624 logon type 2: 1"), "{detail}");
}

#[tokio::test]
async fn nxlog_records_one_at_a_time_or_in_lines_count_without_regard_to_case() {
    let app = TestApp::spawn_with(CORP).await;
    let bob = person(&app, "bob").await;
    let carol = person(&app, "carol").await;
    let long_ago = app.now() - Duration::days(20);
    app.set_last_login(&bob, long_ago).await;
    app.set_last_login(&carol, long_ago).await;
    let tok = token(&app, &["corp"]).await;

    // Without BatchMode: one record per request.
    let at = (Utc::now() - Duration::minutes(30)).with_nanosecond_zero();
    let (s, b) = post(
        &app,
        "?directory=corp",
        &tok,
        nxlog_4624("bob", "CORP", "10", &nxlog_time(at)).to_string(),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["updated"], 1, "{b}");
    assert_eq!(last_login(&app, &bob).await, at);

    // BatchMode multiline: one record per line. Carol typed her name in capitals; Windows
    // compares names without case, and so do we. The realm comes as she typed it too.
    let morning = at + Duration::minutes(2);
    let logoff = json!({"EventTime": nxlog_time(morning), "EventID": 4634,
        "SourceName": "Microsoft-Windows-Security-Auditing", "Channel": "Security",
        "TargetUserName": "carol", "TargetDomainName": "CORP", "LogonType": "2"});
    let lines = [
        nxlog_4768("CAROL", "corp.example", "0x0", &nxlog_time(morning)),
        nxlog_4768(
            "carol",
            "CORP.EXAMPLE",
            "0x0",
            &nxlog_time(morning - Duration::seconds(40)),
        ),
        logoff,
        // NXLog Community Edition's to_json(): a local time without its offset.
        nxlog_4624(
            "bob",
            "CORP",
            "2",
            &morning.format("%Y-%m-%d %H:%M:%S").to_string(),
        ),
    ]
    .iter()
    .map(Value::to_string)
    .collect::<Vec<_>>()
    .join("\n");
    let (s, b) = post(&app, "?directory=corp", &tok, lines).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["records"], 4);
    assert_eq!(b["updated"], 1, "{b}");
    assert_eq!(
        b["collapsed"], 1,
        "the older ticket folds into the newer: {b}"
    );
    assert_eq!(b["ignored"], 1);
    assert_eq!(b["rejected"], 1);
    assert_eq!(reason(&b, "ignored", "event 4634 is not a sign-in"), 1);
    assert_eq!(reason(&b, "rejected", "no offset from UTC"), 1);
    assert_eq!(last_login(&app, &carol).await, morning);
    assert_eq!(
        last_login(&app, &bob).await,
        at,
        "the record without an offset moved nothing"
    );

    // A sign-in of someone with no record here, and one from the future.
    let lines = [
        nxlog_4624("dave", "CORP", "2", &nxlog_time(at)),
        nxlog_4624(
            "bob",
            "CORP",
            "2",
            &nxlog_time(Utc::now() + Duration::hours(2)),
        ),
    ]
    .iter()
    .map(Value::to_string)
    .collect::<Vec<_>>()
    .join("\n");
    let (s, b) = post(&app, "?directory=corp", &tok, lines).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(
        (b["unknownUsers"].as_u64(), b["rejected"].as_u64()),
        (Some(1), Some(1)),
        "{b}"
    );
    assert_eq!(reason(&b, "rejected", "the time is in the future"), 1);
    assert_eq!(reason(&b, "unknown_user", "no record"), 1);
    assert_eq!(last_login(&app, &bob).await, at);
}

#[tokio::test]
async fn the_directory_is_the_tokens_only_one_or_named_and_must_be_ldap() {
    let app = TestApp::spawn_with(CORP).await;
    person(&app, "alice").await;
    let at = Utc::now() - Duration::minutes(10);
    let body = json!([fluent_bit_4624("DC01", "alice", "CORP", 2, at)]).to_string();

    let both = token(&app, &["corp", "builtin"]).await;
    let r = app
        .post("/api/events/windows")
        .bearer(&both)
        .body("application/json", body.clone())
        .send()
        .await;
    assert_error(
        &r,
        StatusCode::BAD_REQUEST,
        "name the directory with ?directory=",
    );
    let (s, b) = post(&app, "?directory=CORP", &both, body.clone()).await;
    assert_eq!(s, StatusCode::OK, "any case: {b}");
    assert_eq!(b["directoryId"], "corp");
    let r = app
        .post("/api/events/windows?directory=builtin")
        .bearer(&both)
        .body("application/json", body.clone())
        .send()
        .await;
    assert_error(&r, StatusCode::BAD_REQUEST, "not an LDAP directory");
    let r = app
        .post("/api/events/windows?directory=nope")
        .bearer(&both)
        .body("application/json", body.clone())
        .send()
        .await;
    assert_error(&r, StatusCode::BAD_REQUEST, "no directory `nope`");
    let builtin_only = token(&app, &["builtin"]).await;
    let r = app
        .post("/api/events/windows?directory=corp")
        .bearer(&builtin_only)
        .body("application/json", body.clone())
        .send()
        .await;
    assert_error(&r, StatusCode::FORBIDDEN, "reports logins of builtin only");
}

#[tokio::test]
async fn bad_tokens_bodies_that_are_not_json_and_oversized_batches_are_refused_whole() {
    let app = TestApp::spawn_with(CORP).await;
    let alice = person(&app, "alice").await;
    let long_ago = app.now() - Duration::days(20);
    app.set_last_login(&alice, long_ago).await;
    let tok = token(&app, &["corp"]).await;
    let at = Utc::now() - Duration::minutes(10);
    let sign_in = fluent_bit_4624("DC01", "alice", "CORP", 2, at);

    let r = app
        .post("/api/events/windows")
        .bearer("akevt_not-a-token-000000000000000000000000000000")
        .body("application/json", json!([sign_in]).to_string())
        .send()
        .await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "ingestion token");
    let r = app
        .post("/api/events/windows")
        .body("application/json", json!([sign_in]).to_string())
        .send()
        .await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "ingestion token");
    // An unknown caller's body is not read at all, whatever its size.
    let r = app
        .post("/api/events/windows")
        .bearer("akevt_not-a-token-000000000000000000000000000000")
        .body("application/json", vec![b' '; 9 * 1024 * 1024])
        .send()
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);

    // Fluent Bit with Format msgpack, or a proxy's error page: not JSON.
    let r = app
        .post("/api/events/windows")
        .bearer(&tok)
        .body(
            "application/msgpack",
            vec![0x92, 0xa5, b'h', b'e', b'l', b'l', b'o', 0x01],
        )
        .send()
        .await;
    assert_error(&r, StatusCode::BAD_REQUEST, "not JSON");
    let r = app
        .post("/api/events/windows")
        .bearer(&tok)
        .body("text/plain", "")
        .send()
        .await;
    assert_error(&r, StatusCode::BAD_REQUEST, "empty");

    // More records than one request may carry, and more bytes.
    let mut many = vec![json!({"EventID": 4634}); 20_000];
    many.push(sign_in.clone());
    let r = app
        .post("/api/events/windows")
        .bearer(&tok)
        .body("application/json", Value::Array(many).to_string())
        .send()
        .await;
    assert_error(&r, StatusCode::BAD_REQUEST, "at most 20000 records");
    let padding = "x".repeat(9 * 1024 * 1024);
    let mut huge = sign_in.clone();
    huge["Message"] = json!(padding);
    let r = app
        .post("/api/events/windows")
        .bearer(&tok)
        .body("application/json", json!([huge]).to_string())
        .send()
        .await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", r.body);
    assert!(r.json()["statusMessage"].is_string(), "our error shape");

    assert_eq!(
        last_login(&app, &alice).await.timestamp(),
        long_ago.timestamp(),
        "nothing refused moved anything"
    );
    // Exactly the limit is one batch.
    let mut full = vec![json!({"EventID": 4634}); 19_999];
    full.push(sign_in);
    let (s, b) = post(&app, "", &tok, Value::Array(full).to_string()).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(
        (b["updated"].as_u64(), b["ignored"].as_u64()),
        (Some(1), Some(19_999))
    );
}

/// Fluent Bit writes `TimeCreated` to the second.
trait WholeSeconds {
    fn with_nanosecond_zero(self) -> Self;
}

impl WholeSeconds for DateTime<Utc> {
    fn with_nanosecond_zero(self) -> Self {
        use chrono::Timelike;
        self.with_nanosecond(0).unwrap()
    }
}
