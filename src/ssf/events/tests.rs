//! The mapping of events to actions and subjects, on SET payloads from the specifications'
//! examples (each test names its section).

use super::*;
use chrono::DateTime;
use serde_json::json;

const IDP: &str = "https://idp.example.com/";

fn set(claims: Value) -> VerifiedSet {
    VerifiedSet {
        issuer: claims["iss"].as_str().unwrap_or_default().to_string(),
        jti: "j".into(),
        issued_at: DateTime::from_timestamp(0, 0).unwrap(),
        claims: claims.as_object().unwrap().clone(),
    }
}

fn one(claims: Value, issuer: &str) -> Planned {
    let mut all = plan(&set(claims), issuer).unwrap();
    assert_eq!(all.len(), 1);
    all.remove(0)
}

/// SSF (draft) §"Example SETs": account-enabled with a simple email subject in the event.
#[test]
fn risc_account_enabled_lifts_the_person_named_by_email() {
    let p = one(
        json!({
          "iss": "https://idp.example.com/",
          "jti": "756E69717565206964656E746966696572",
          "iat": 1520364019,
          "aud": "636C69656E745F6964",
          "events": {
            "https://schemas.openid.net/secevent/risc/event-type/account-enabled": {
              "subject": {"format": "email", "email": "foo@example.com"}
            }
          }
        }),
        IDP,
    );
    assert_eq!(p.kind, EventKind::AccountEnabled);
    assert_eq!(p.action, Some(Action::Lift));
    assert_eq!(p.subject, Ok(SubjectRef::Email("foo@example.com".into())));
}

/// SSF (draft) §"Example SETs": session-revoked with a complex subject (user and device).
#[test]
fn caep_session_revoked_ends_the_sessions_of_the_complex_subjects_user() {
    let issuer = "https://idp.example.com/3957ea72-1b66-44d6-a044-d805712b9288/";
    let p = one(
        json!({
          "iss": "https://idp.example.com/",
          "jti": "756E69717565206964656E746966696572",
          "iat": 1520364019,
          "aud": "636C69656E745F6964",
          "events": {
            "https://schemas.openid.net/secevent/caep/event-type/session-revoked": {
              "subject": {
                "user": {"format": "iss_sub", "iss": issuer, "sub": "jane.smith@example.com"},
                "device": {"format": "iss_sub", "iss": issuer,
                           "sub": "e9297990-14d2-42ec-a4a9-4036db86509a"}
              },
              "initiating_entity": "policy",
              "reason_admin": "Policy Violation: C076E82F",
              "reason_user": "Landspeed violation.",
              "event_timestamp": 1600975810
            }
          }
        }),
        issuer,
    );
    assert_eq!(p.action, Some(Action::EndSessions));
    assert_eq!(
        p.subject,
        Ok(SubjectRef::ExternalId("jane.smith@example.com".into()))
    );
}

/// SSF 1.0 §4 with CAEP 1.0 §3.1: the subject as the top-level `sub_id`.
#[test]
fn caep_session_revoked_with_a_top_level_sub_id() {
    let p = one(
        json!({
            "iss": "https://idp.example.com/123456789/",
            "jti": "24c63fb56e5a2d77a6b512616ca9fa24",
            "iat": 1615305159,
            "aud": "https://sp.example.com/caep",
            "txn": 8675309,
            "sub_id": {"format": "opaque", "id": "dMTlD|1600802906337.16|16008.16"},
            "events": {
                "https://schemas.openid.net/secevent/caep/event-type/session-revoked": {
                    "event_timestamp": 1615304991643u64
                }
            }
        }),
        IDP,
    );
    assert_eq!(p.action, Some(Action::EndSessions));
    assert_eq!(
        p.subject,
        Ok(SubjectRef::ExternalId(
            "dMTlD|1600802906337.16|16008.16".into()
        ))
    );
}

fn credential_change(change_type: Option<&str>) -> Value {
    // CAEP 1.0 §3.2 example, change_type varied.
    let mut event = json!({
        "credential_type": "fido2-roaming",
        "fido2_aaguid": "accced6a-63f5-490a-9eea-e59bc1896cfc",
        "friendly_name": "Jane's USB authenticator",
        "initiating_entity": "user",
        "reason_admin": {"en": "User self-enrollment"},
        "event_timestamp": 1615304991643u64
    });
    if let Some(t) = change_type {
        event["change_type"] = json!(t);
    }
    json!({
        "iss": "https://idp.example.com/123456789/",
        "jti": "07efd930f0977e4fcc1149a733ce7f78",
        "iat": 1615305159,
        "aud": "https://sp.example2.net/caep",
        "txn": 8675309,
        "sub_id": {"format": "iss_sub", "iss": "https://idp.example.com/3456789/",
                   "sub": "jane.smith@example.com"},
        "events": {"https://schemas.openid.net/secevent/caep/event-type/credential-change": event}
    })
}

/// CAEP 1.0 §3.2: a revoked or deleted credential lapses keys; a new or updated one does
/// nothing; a change without change_type does not fit the event.
#[test]
fn caep_credential_change_lapses_keys_only_on_revoke_or_delete() {
    let issuer = "https://idp.example.com/3456789/";
    for (t, action) in [
        ("revoke", Some(Action::LapseKeys)),
        ("delete", Some(Action::LapseKeys)),
        ("create", None),
        ("update", None),
    ] {
        let p = one(credential_change(Some(t)), issuer);
        assert_eq!(p.action, action, "{t}");
        assert_eq!(p.kind, EventKind::CredentialChange);
    }
    for bad in [None, Some("shred")] {
        let e = plan(&set(credential_change(bad)), issuer).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidRequest, "{bad:?}");
    }
}

/// RISC 1.0 §2.4-2.6 (and Google's RISC form, `subject_type` = `iss-sub`).
#[test]
fn risc_disabled_and_purged_suspend_and_credential_compromise_lapses_keys() {
    for (event, extra, kind, action) in [
        (
            "account-disabled",
            json!({"reason": "hijacking"}),
            EventKind::AccountDisabled,
            Action::Suspend,
        ),
        (
            "account-purged",
            json!({}),
            EventKind::AccountPurged,
            Action::Suspend,
        ),
        (
            "credential-compromise",
            json!({"credential_type": "password"}),
            EventKind::CredentialCompromise,
            Action::LapseKeys,
        ),
    ] {
        let mut payload = extra;
        payload["subject"] =
            json!({"subject_type": "iss-sub", "iss": IDP, "sub": "7375626A656374"});
        let p = one(
            json!({
              "iss": "https://idp.example.com/",
              "jti": "756E69717565206964656E746966696572",
              "iat": 1508184845,
              "aud": "636C69656E745F6964",
              "events": {
                format!("https://schemas.openid.net/secevent/risc/event-type/{event}"): payload
              }
            }),
            IDP,
        );
        assert_eq!((p.kind, p.action), (kind, Some(action)), "{event}");
        assert_eq!(
            p.subject,
            Ok(SubjectRef::ExternalId("7375626A656374".into()))
        );
    }
}

/// SSF 1.0 §8.1.4: the verification event is acknowledged and does nothing.
#[test]
fn the_verification_event_does_nothing() {
    let p = one(
        json!({
          "jti": "123456",
          "iss": "https://transmitter.example.com",
          "aud": "receiver.example.com",
          "iat": 1493856000,
          "sub_id": {"format": "opaque", "id": "f67e39a0a4d34d56b3aa1bc4cff0069f"},
          "events": {
            "https://schemas.openid.net/secevent/ssf/event-type/verification": {
              "state": "VGhpcyBpcyBhbiBleGFtcGxlIHN0YXRlIHZhbHVlLgo="
            }
          }
        }),
        IDP,
    );
    assert_eq!((p.kind, p.action), (EventKind::Verification, None));
}

/// SSF (draft) §"Example SETs": token-claims-change, which we do not act on.
#[test]
fn an_unknown_event_is_acknowledged_and_ignored() {
    let p = one(
        json!({
          "iss": "https://sp.example2.com/",
          "jti": "756E69717565206964656E746966696572",
          "iat": 1520364019,
          "aud": "636C69656E745F6964",
          "events": {
            "https://schemas.openid.net/secevent/caep/event-type/token-claims-change": {
              "subject": {"format": "email", "email": "foo@example2.com"},
              "event_timestamp": 1600975810,
              "claims": {"role": "ro-admin"}
            }
          }
        }),
        IDP,
    );
    assert_eq!((p.kind, p.action), (EventKind::Unknown, None));
    assert_eq!(p.kind.label(), "unknown");
}

#[test]
fn subjects_that_name_nobody_here_say_why() {
    let with = |sub: Value| {
        one(
            json!({"iss": "x", "sub_id": sub, "events": {
                "https://schemas.openid.net/secevent/risc/event-type/account-disabled": {}}}),
            IDP,
        )
        .subject
    };
    // Another provider's `sub` is not our person, even if the value matches.
    assert!(
        with(json!({"format": "iss_sub", "iss": "https://other.example.com", "sub": "u"}))
            .unwrap_err()
            .contains("not this directory's")
    );
    // A trailing slash is the same issuer.
    assert_eq!(
        with(json!({"format": "iss_sub", "iss": "https://idp.example.com", "sub": "u"})),
        Ok(SubjectRef::ExternalId("u".into()))
    );
    assert!(with(json!({"format": "phone_number", "phone_number": "+12065550100"})).is_err());
    assert!(with(json!({"format": "complex", "device": {"format": "opaque", "id": "d"}})).is_err());
    assert!(with(json!("not an object")).is_err());
    // RFC 9493 §3.2.9 aliases: the first identifier we can map.
    assert_eq!(
        with(json!({"format": "aliases", "identifiers": [
            {"format": "phone_number", "phone_number": "+12065550100"},
            {"format": "email", "email": "user@example.com"}
        ]})),
        Ok(SubjectRef::Email("user@example.com".into()))
    );
    // Nesting is bounded.
    let deep = json!({"format": "complex", "user": {"format": "complex", "user":
        {"format": "complex", "user": {"format": "opaque", "id": "x"}}}});
    assert!(with(deep).is_err());
}

#[test]
fn every_kind_round_trips_through_its_uri_and_has_a_distinct_label() {
    let mut labels: Vec<&str> = EventKind::ALL.iter().map(|k| k.label()).collect();
    labels.sort();
    labels.dedup();
    assert_eq!(labels.len(), EventKind::ALL.len());
    for (uri, kind) in [
        (
            "https://schemas.openid.net/secevent/risc/event-type/sessions-revoked",
            EventKind::SessionsRevoked,
        ),
        (
            "https://schemas.openid.net/secevent/risc/event-type/verification",
            EventKind::Verification,
        ),
        (
            "https://schemas.openid.net/secevent/caep/event-type/account-disabled",
            EventKind::Unknown,
        ),
        ("urn:example:event", EventKind::Unknown),
    ] {
        assert_eq!(EventKind::from_uri(uri), kind, "{uri}");
    }
}
