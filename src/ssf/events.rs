//! What a verified SET asks of us: each event's type, who it is about, and what to do —
//! pure, from the claims. The CAEP and RISC event types we act on, and how subjects
//! (RFC 9493 subject identifiers, SSF 1.0 complex subjects) become a person we may know.

use crate::directory::ssf::set::{refuse, ErrorCode, Refusal, VerifiedSet};
use serde_json::{Map, Value};

const RISC: &str = "https://schemas.openid.net/secevent/risc/event-type/";
const CAEP: &str = "https://schemas.openid.net/secevent/caep/event-type/";
const SSF: &str = "https://schemas.openid.net/secevent/ssf/event-type/";

/// The event types we know; anything else is [`EventKind::Unknown`] (acknowledged, counted,
/// nothing done). The names are bounded label values for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum EventKind {
    AccountDisabled,
    AccountEnabled,
    AccountPurged,
    CredentialCompromise,
    /// RISC's older `sessions-revoked` (Google's RISC transmitter still sends it).
    SessionsRevoked,
    SessionRevoked,
    CredentialChange,
    Verification,
    Unknown,
}

impl EventKind {
    pub const ALL: [EventKind; 9] = [
        EventKind::AccountDisabled,
        EventKind::AccountEnabled,
        EventKind::AccountPurged,
        EventKind::CredentialCompromise,
        EventKind::SessionsRevoked,
        EventKind::SessionRevoked,
        EventKind::CredentialChange,
        EventKind::Verification,
        EventKind::Unknown,
    ];

    /// The kind of an event-type URI.
    pub fn from_uri(uri: &str) -> EventKind {
        let risc = uri.strip_prefix(RISC);
        let caep = uri.strip_prefix(CAEP);
        match (risc, caep, uri.strip_prefix(SSF)) {
            (Some("account-disabled"), _, _) => EventKind::AccountDisabled,
            (Some("account-enabled"), _, _) => EventKind::AccountEnabled,
            (Some("account-purged"), _, _) => EventKind::AccountPurged,
            (Some("credential-compromise"), _, _) => EventKind::CredentialCompromise,
            (Some("sessions-revoked"), _, _) => EventKind::SessionsRevoked,
            // RISC transmitters that predate SSF (Google) send their verification here.
            (Some("verification"), _, _) | (_, _, Some("verification")) => EventKind::Verification,
            (_, Some("session-revoked"), _) => EventKind::SessionRevoked,
            (_, Some("credential-change"), _) => EventKind::CredentialChange,
            _ => EventKind::Unknown,
        }
    }

    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            EventKind::AccountDisabled => "account-disabled",
            EventKind::AccountEnabled => "account-enabled",
            EventKind::AccountPurged => "account-purged",
            EventKind::CredentialCompromise => "credential-compromise",
            EventKind::SessionsRevoked => "sessions-revoked",
            EventKind::SessionRevoked => "session-revoked",
            EventKind::CredentialChange => "credential-change",
            EventKind::Verification => "verification",
            EventKind::Unknown => "unknown",
        }
    }

    /// The short name audit events and suspensions carry ("RISC account-disabled").
    pub fn signal_name(self) -> &'static str {
        match self {
            EventKind::AccountDisabled => "RISC account-disabled",
            EventKind::AccountEnabled => "RISC account-enabled",
            EventKind::AccountPurged => "RISC account-purged",
            EventKind::CredentialCompromise => "RISC credential-compromise",
            EventKind::SessionsRevoked => "RISC sessions-revoked",
            EventKind::SessionRevoked => "CAEP session-revoked",
            EventKind::CredentialChange => "CAEP credential-change",
            EventKind::Verification => "SSF verification",
            EventKind::Unknown => "unknown event",
        }
    }
}

/// What an event does to the person it is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Keys and sessions stop, reversibly.
    Suspend,
    /// A suspension by a signal ends.
    Lift,
    /// Interactive sessions end.
    EndSessions,
    /// Sessions end and keys are refused until the next interactive login.
    LapseKeys,
}

/// Who an event is about, in the terms the directory knows people by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubjectRef {
    /// The provider's `sub` (or an opaque id the provider uses as such): our external id.
    ExternalId(String),
    Email(String),
}

/// One event of a SET, decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    pub kind: EventKind,
    /// The full event-type URI, for the log.
    pub uri: String,
    /// None: acknowledged, nothing done (verification, unknown, a change we ignore).
    pub action: Option<Action>,
    /// Who: None when the event has no subject we can read as a person of this directory
    /// (the reason is said); only looked at when there is an action.
    pub subject: Result<SubjectRef, String>,
}

/// Decides each event of `set` for a directory whose OpenID Connect issuer is
/// `directory_issuer` (an `iss_sub` subject must name it). A malformed event refuses the
/// SET (`invalid_request`, RFC 8935 §2.4: the payload does not fit the event's definition).
pub fn plan(set: &VerifiedSet, directory_issuer: &str) -> Result<Vec<Planned>, Refusal> {
    let Some(Value::Object(events)) = set.claims.get("events") else {
        return Err(refuse(ErrorCode::InvalidRequest, "no events"));
    };
    let top_subject = set.claims.get("sub_id");
    let mut out = Vec::with_capacity(events.len());
    for (uri, payload) in events {
        let Value::Object(payload) = payload else {
            return Err(refuse(
                ErrorCode::InvalidRequest,
                format!("the event {uri} is not an object"),
            ));
        };
        let kind = EventKind::from_uri(uri);
        let action = action_of(kind, payload, uri)?;
        let subject = match top_subject.or_else(|| payload.get("subject")) {
            Some(s) => subject_of(s, directory_issuer, 0),
            None => Err("the SET names no subject (no sub_id, no event subject)".to_string()),
        };
        out.push(Planned {
            kind,
            uri: crate::audit::cut(uri, 200).into_owned(),
            action,
            subject,
        });
    }
    Ok(out)
}

/// The action of one event; errors when its payload lacks what the action depends on.
fn action_of(
    kind: EventKind,
    payload: &Map<String, Value>,
    uri: &str,
) -> Result<Option<Action>, Refusal> {
    Ok(match kind {
        EventKind::AccountDisabled | EventKind::AccountPurged => Some(Action::Suspend),
        EventKind::AccountEnabled => Some(Action::Lift),
        EventKind::CredentialCompromise => Some(Action::LapseKeys),
        EventKind::SessionRevoked | EventKind::SessionsRevoked => Some(Action::EndSessions),
        EventKind::CredentialChange => {
            // CAEP 1.0 §3.2: change_type is required (create, revoke, update, delete).
            match payload.get("change_type").and_then(Value::as_str) {
                Some("revoke" | "delete") => Some(Action::LapseKeys),
                Some("create" | "update") => None,
                Some(other) => {
                    return Err(refuse(
                        ErrorCode::InvalidRequest,
                        format!(
                            "{uri}: change_type `{}` is not one CAEP defines",
                            crate::audit::cut(other, 32)
                        ),
                    ))
                }
                None => {
                    return Err(refuse(
                        ErrorCode::InvalidRequest,
                        format!("{uri}: no change_type"),
                    ))
                }
            }
        }
        EventKind::Verification | EventKind::Unknown => None,
    })
}

/// A subject identifier as a person of this directory. `depth` bounds nesting (a complex
/// subject's `user`, an `aliases` list).
fn subject_of(v: &Value, directory_issuer: &str, depth: u8) -> Result<SubjectRef, String> {
    let Value::Object(s) = v else {
        return Err("the subject is not an object".into());
    };
    let text = |k: &str| s.get(k).and_then(Value::as_str).filter(|t| !t.is_empty());
    // RFC 9493 says `format`; RISC's drafts (Google) said `subject_type`, with `iss-sub`.
    let format = text("format").or_else(|| text("subject_type"));
    match format {
        Some("iss_sub" | "iss-sub" | "id_token_claims") => {
            let (Some(iss), Some(sub)) = (text("iss"), text("sub")) else {
                return Err("an iss_sub subject without iss and sub".into());
            };
            if !same_issuer(iss, directory_issuer) {
                return Err(format!(
                    "an iss_sub subject of issuer `{}`, not this directory's",
                    crate::audit::cut(iss, 200)
                ));
            }
            Ok(SubjectRef::ExternalId(sub.to_string()))
        }
        Some("email") => text("email")
            .map(|e| SubjectRef::Email(e.to_string()))
            .ok_or_else(|| "an email subject without email".into()),
        Some("opaque") => text("id")
            .map(|id| SubjectRef::ExternalId(id.to_string()))
            .ok_or_else(|| "an opaque subject without id".into()),
        Some("aliases") if depth < 2 => {
            let Some(Value::Array(ids)) = s.get("identifiers") else {
                return Err("an aliases subject without identifiers".into());
            };
            let mut why = String::from("an aliases subject with no identifier we can map");
            for id in ids.iter().take(16) {
                match subject_of(id, directory_issuer, depth + 1) {
                    Ok(found) => return Ok(found),
                    Err(e) => why = e,
                }
            }
            Err(why)
        }
        // SSF 1.0 §3.2: a complex subject (format "complex", or none in its drafts) names
        // the person in its `user` member.
        Some("complex") | None if depth < 2 => match s.get("user") {
            Some(user) => subject_of(user, directory_issuer, depth + 1),
            None => Err("a complex subject without a user".into()),
        },
        Some(other) => Err(format!(
            "a subject of format `{}`, which does not name a person here",
            crate::audit::cut(other, 32)
        )),
        None => Err("a subject without format".into()),
    }
}

/// Issuer URLs are compared as the provider writes them, but a trailing slash is not a
/// different issuer to us (providers differ between their metadata and their SETs).
fn same_issuer(a: &str, b: &str) -> bool {
    a.trim_end_matches('/') == b.trim_end_matches('/')
}

#[cfg(test)]
mod tests;
