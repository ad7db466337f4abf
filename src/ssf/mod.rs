//! OpenID Shared Signals (SSF 1.0) receiver for OpenID Connect directories: Security Event
//! Tokens pushed to us (RFC 8935) or polled (RFC 8936) are verified against the
//! transmitter's keys, refused when replayed, and their CAEP and RISC events become change
//! signals (suspend, lift, end sessions, lapse keys) about the people they name.
//!
//! Nothing is stored for a SET that does not verify: whoever can reach the push endpoint
//! can send anything, and only a transmitter's signed, fresh SET may cost a row.

pub mod events;
pub mod poll;

use crate::audit::{self, Actor, Event};
use crate::config::{OidcDirectoryConfig, SsfConfig};
use crate::directory::ssf::set::{self, refuse, ErrorCode, Expected, Refusal};
use crate::directory::Directory;
use crate::error::Error;
use crate::ids::DirectoryId;
use crate::services::Services;
use crate::signals::{self, Applied, Effect, Signal, Subject};
use crate::store::schema::ssf_seen;
use crate::store::timestamp::Timestamp;
use crate::store::DbConn;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use events::{Action, EventKind, Planned, SubjectRef};

/// Why a SET was not taken.
#[derive(Debug)]
pub enum SetError {
    /// The directory does not exist or takes no shared signals.
    NotHere,
    /// A bad SET: answered with its RFC 8935 error code.
    Refused(Refusal),
    /// A SET already taken (its `jti` was seen): a push is answered `invalid_request`; a
    /// poll acknowledges it (the transmitter did not hear our first acknowledgement).
    Replayed(Refusal),
    /// The transmitter's keys could not be fetched: the transmitter should try again.
    Unavailable(String),
    /// Our own failure (the database).
    Internal(Error),
}

impl From<Refusal> for SetError {
    fn from(r: Refusal) -> Self {
        SetError::Refused(r)
    }
}

/// What became of one event of a taken SET.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventOutcome {
    /// The signal was applied (changed, already so, or withheld by the guard).
    Applied(Applied),
    /// Nothing to do: verification, an unknown event, a change we do not act on.
    Ignored,
    /// The subject names nobody of this directory: acknowledged, audited, nothing changed.
    UnknownSubject,
}

impl EventOutcome {
    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            EventOutcome::Applied(Applied::Changed) => "applied",
            EventOutcome::Applied(Applied::Unchanged) => "unchanged",
            EventOutcome::Applied(Applied::Withheld) => "withheld",
            EventOutcome::Ignored => "ignored",
            EventOutcome::UnknownSubject => "unknown_subject",
        }
    }
}

/// A SET taken: its id, and each event's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    pub jti: String,
    pub events: Vec<(EventKind, EventOutcome)>,
}

/// The directory's settings, when it takes shared signals.
pub fn settings(app: &Services, dir: &DirectoryId) -> Option<(OidcDirectoryConfig, SsfConfig)> {
    match app.directory(dir) {
        Some(Directory::Oidc(o)) => {
            let c = o.config();
            c.ssf.clone().map(|s| (c.clone(), s))
        }
        _ => None,
    }
}

/// Takes one SET (`body`, the compact JWS) for directory `dir` at `now`: verifies it,
/// refuses a replay, and applies its events.
pub async fn receive(
    app: &Services,
    dir: &DirectoryId,
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<Receipt, SetError> {
    let (oidc, ssf) = settings(app, dir).ok_or(SetError::NotHere)?;
    let result = verify_and_apply(app, &oidc, &ssf, body, now).await;
    if let Err(SetError::Refused(r) | SetError::Replayed(r)) = &result {
        app.metrics.ssf_refused(dir.as_str(), r.code.as_str());
    }
    result
}

async fn verify_and_apply(
    app: &Services,
    oidc: &OidcDirectoryConfig,
    ssf: &SsfConfig,
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<Receipt, SetError> {
    if body.len() > set::MAX_SET_BYTES {
        return Err(refuse(ErrorCode::InvalidRequest, "longer than 64 KiB").into());
    }
    let token = std::str::from_utf8(body)
        .map_err(|_| refuse(ErrorCode::InvalidRequest, "not UTF-8"))?
        .trim();
    let header = set::header(token)?;
    let transmitter = app
        .ssf
        .get(&oidc.id)
        .ok_or_else(|| SetError::Internal(Error::Internal("no transmitter built".into())))?;
    let keys = transmitter
        .keys_for(&header)
        .await
        .map_err(|e| SetError::Unavailable(e.to_string()))?;
    let key = set::key_for(&header, &keys.keys).ok_or_else(|| {
        refuse(
            ErrorCode::InvalidKey,
            format!(
                "key {:?} is not in the transmitter's JWKS",
                header.kid.as_deref().map(|k| audit::cut(k, 64))
            ),
        )
    })?;
    let audience = ssf.audience_or(&app.config.server.public_url());
    let expected = Expected {
        issuer: &keys.issuer,
        audience: &audience,
        max_age: ssf.max_age,
    };
    let verified = set::verify(token, &header, key, &expected, now)?;
    let planned = events::plan(&verified, &oidc.issuer)?;
    claim(app, &oidc.id, &verified.issuer, &verified.jti, ssf, now).await?;
    let detail = format!("SET {} from {}", verified.jti, verified.issuer);
    let mut outcomes = Vec::with_capacity(planned.len());
    for p in planned {
        match apply_one(app, &oidc.id, &p, &detail).await {
            Ok(outcome) => {
                app.metrics
                    .ssf_event(oidc.id.as_str(), p.kind.label(), outcome.label());
                outcomes.push((p.kind, outcome));
            }
            Err(e) => {
                // The transmitter will send it again: it must not be taken as a replay then.
                if let Err(release) = release(app, &verified.issuer, &verified.jti).await {
                    tracing::warn!(error = %release, "could not release a SET's jti after a failure");
                }
                return Err(SetError::Internal(e));
            }
        }
    }
    Ok(Receipt {
        jti: verified.jti,
        events: outcomes,
    })
}

/// Records `jti` of `issuer` as received, unless it already was (a replay: refused with
/// `invalid_request`, since the request is not a new SET). Rows older than the freshness
/// window go first: a SET that old is refused by its `iat` anyway.
async fn claim(
    app: &Services,
    dir: &DirectoryId,
    issuer: &str,
    jti: &str,
    ssf: &SsfConfig,
    now: DateTime<Utc>,
) -> Result<(), SetError> {
    let (dir, issuer, jti) = (dir.clone(), issuer.to_string(), jti.to_string());
    let cutoff = Timestamp::from(now - ssf.max_age - set::CLOCK_SKEW);
    let fresh = app
        .store
        .write(move |conn| {
            let fresh = claim_in(conn, &issuer, &jti, cutoff, Timestamp::from(now))?;
            if fresh {
                signals::state::event_seen(conn, &dir, now)?;
            }
            Ok(fresh)
        })
        .await
        .map_err(SetError::Internal)?;
    if fresh {
        Ok(())
    } else {
        Err(SetError::Replayed(refuse(
            ErrorCode::InvalidRequest,
            "the SET was already received (jti)",
        )))
    }
}

/// Inside a transaction: false if the jti is already there.
fn claim_in(
    conn: &mut DbConn,
    issuer: &str,
    jti: &str,
    cutoff: Timestamp,
    now: Timestamp,
) -> crate::error::Result<bool> {
    diesel::delete(
        ssf_seen::table
            .filter(ssf_seen::issuer.eq(issuer))
            .filter(ssf_seen::seen_at.lt(cutoff)),
    )
    .execute(conn)?;
    let seen: i64 = ssf_seen::table
        .filter(ssf_seen::issuer.eq(issuer))
        .filter(ssf_seen::jti.eq(jti))
        .count()
        .get_result(conn)?;
    if seen > 0 {
        return Ok(false);
    }
    // In a savepoint: on PostgreSQL a failed statement would spoil the whole transaction.
    let inserted = conn.transaction::<_, diesel::result::Error, _>(|conn| {
        diesel::insert_into(ssf_seen::table)
            .values((
                ssf_seen::issuer.eq(issuer),
                ssf_seen::jti.eq(jti),
                ssf_seen::seen_at.eq(now),
            ))
            .execute(conn)
    });
    match inserted {
        Ok(_) => Ok(true),
        // Another request with the same SET got there first.
        Err(diesel::result::Error::DatabaseError(
            diesel::result::DatabaseErrorKind::UniqueViolation,
            _,
        )) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

async fn release(app: &Services, issuer: &str, jti: &str) -> crate::error::Result<()> {
    let (issuer, jti) = (issuer.to_string(), jti.to_string());
    app.store
        .write(move |conn| {
            diesel::delete(
                ssf_seen::table
                    .filter(ssf_seen::issuer.eq(&issuer))
                    .filter(ssf_seen::jti.eq(&jti)),
            )
            .execute(conn)?;
            Ok(())
        })
        .await
}

fn effect_of(a: Action) -> Effect {
    match a {
        Action::Suspend => Effect::Suspend,
        Action::Lift => Effect::Lift,
        Action::EndSessions => Effect::EndSessions,
        Action::LapseKeys => Effect::LapseKeys,
    }
}

/// The actor of every shared signal in the audit trail.
fn actor() -> Actor {
    Actor::system("shared-signals")
}

async fn apply_one(
    app: &Services,
    dir: &DirectoryId,
    p: &Planned,
    detail: &str,
) -> crate::error::Result<EventOutcome> {
    let Some(action) = p.action else {
        tracing::info!(directory = %dir, event = %p.uri, %detail, "shared signal acknowledged, nothing to do");
        return Ok(EventOutcome::Ignored);
    };
    let user = match &p.subject {
        Ok(subject) => {
            let subject = match subject {
                SubjectRef::ExternalId(id) => Subject::ExternalId(id.clone()),
                SubjectRef::Email(e) => Subject::Email(e.clone()),
            };
            signals::resolve(app, dir, &subject).await?
        }
        Err(_) => None,
    };
    let Some(user) = user else {
        let why = match &p.subject {
            Ok(SubjectRef::ExternalId(_)) => "no user of this directory has that id".to_string(),
            Ok(SubjectRef::Email(_)) => {
                "no single user of this directory has that email".to_string()
            }
            Err(why) => why.clone(),
        };
        unknown_subject(app, dir, p.kind, &format!("{why}; {detail}")).await?;
        return Ok(EventOutcome::UnknownSubject);
    };
    let signal = Signal {
        directory: dir.clone(),
        user,
        effect: effect_of(action),
        name: p.kind.signal_name().to_string(),
        detail: detail.to_string(),
    };
    Ok(EventOutcome::Applied(
        signals::apply(app, &actor(), signal).await?,
    ))
}

/// An audit event (failed) for a signal about someone we do not know.
async fn unknown_subject(
    app: &Services,
    dir: &DirectoryId,
    kind: EventKind,
    detail: &str,
) -> crate::error::Result<()> {
    let now = app.clock.now();
    let (dir, detail) = (dir.clone(), format!("{}: {detail}", kind.signal_name()));
    app.store
        .write(move |conn| {
            let who = actor();
            audit::record(
                conn,
                now,
                &Event::new("signal.unknown_subject", &who)
                    .failed()
                    .target("directory", &dir, dir.as_str())
                    .detail(detail),
            )
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_have_distinct_labels() {
        let all = [
            EventOutcome::Applied(Applied::Changed),
            EventOutcome::Applied(Applied::Unchanged),
            EventOutcome::Applied(Applied::Withheld),
            EventOutcome::Ignored,
            EventOutcome::UnknownSubject,
        ];
        let mut labels: Vec<_> = all.iter().map(|o| o.label()).collect();
        labels.sort();
        labels.dedup();
        assert_eq!(labels.len(), all.len());
    }
}
