//! Security Event Token verification (RFC 8417, as SSF 1.0 §4 profiles it): a pure function
//! of the token, the transmitter's keys, what we expect, and the time. Failures carry the
//! RFC 8935 §2.4 error code the push answer (and a poll's `setErrs`) gives.

use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::{Map, Value};

/// Tolerated clock difference with the transmitter for an `iat` in the future.
pub const CLOCK_SKEW: Duration = Duration::seconds(60);

/// Longest SET read, in bytes: the push body limit, and a polled SET's too.
pub const MAX_SET_BYTES: usize = 64 * 1024;

/// The error codes of RFC 8935 §2.4 (the IANA "Security Event Token Error Codes").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// Not a SET we can parse, or an event that does not fit its definition (also: stale,
    /// from the future, or already received).
    InvalidRequest,
    /// The signing key is unacceptable: not in the transmitter's JWKS, a shared-secret
    /// (HMAC) algorithm, or an algorithm its key does not have.
    InvalidKey,
    /// `iss` is not the transmitter's issuer.
    InvalidIssuer,
    /// `aud` does not name us.
    InvalidAudience,
    /// The SET is not authentic: its signature does not verify, or it has none.
    AuthenticationFailed,
    /// The transmitter may not send us SETs (a push without the configured bearer token).
    AccessDenied,
}

impl ErrorCode {
    /// The code as the RFC spells it (the `err` member).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::InvalidKey => "invalid_key",
            ErrorCode::InvalidIssuer => "invalid_issuer",
            ErrorCode::InvalidAudience => "invalid_audience",
            ErrorCode::AuthenticationFailed => "authentication_failed",
            ErrorCode::AccessDenied => "access_denied",
        }
    }

    /// A description for the answer's `description`: generic on purpose, since the caller
    /// is not authenticated; the particulars go to the log.
    pub fn description(self) -> &'static str {
        match self {
            ErrorCode::InvalidRequest => "the request is not an acceptable SET",
            ErrorCode::InvalidKey => "the SET's signing key is not acceptable",
            ErrorCode::InvalidIssuer => "the SET's issuer is not the expected transmitter",
            ErrorCode::InvalidAudience => "the SET's audience does not name this receiver",
            ErrorCode::AuthenticationFailed => "the SET could not be authenticated",
            ErrorCode::AccessDenied => "the transmitter may not send SETs here",
        }
    }
}

/// A refused SET: the code to answer, and what exactly was wrong (for the log only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: ErrorCode,
    pub detail: String,
}

pub(crate) fn refuse(code: ErrorCode, detail: impl Into<String>) -> Refusal {
    Refusal {
        code,
        detail: detail.into(),
    }
}

/// The JWS header members we read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetHeader {
    pub alg: Algorithm,
    pub kid: Option<String>,
}

#[derive(Deserialize)]
struct RawHeader {
    alg: String,
    kid: Option<String>,
    typ: Option<String>,
    crit: Option<Value>,
}

/// Reads the header of `token`: a compact JWS with an asymmetric algorithm, typed as a SET
/// when typed at all (RFC 8417 §2.3).
pub fn header(token: &str) -> Result<SetHeader, Refusal> {
    let parts: Vec<&str> = token.split('.').collect();
    if parts.len() == 5 {
        return Err(refuse(
            ErrorCode::InvalidRequest,
            "an encrypted (JWE) SET; only signed SETs are taken",
        ));
    }
    if parts.len() != 3 {
        return Err(refuse(
            ErrorCode::InvalidRequest,
            "not a compact JWS (three dot-separated parts)",
        ));
    }
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(parts[0])
        .map_err(|_| refuse(ErrorCode::InvalidRequest, "the header is not base64url"))?;
    let h: RawHeader = serde_json::from_slice(&raw)
        .map_err(|e| refuse(ErrorCode::InvalidRequest, format!("the header: {e}")))?;
    if let Some(typ) = &h.typ {
        // RFC 8417 §2.3: `secevent+jwt`, the `application/` prefix may be left out.
        let t = typ.to_ascii_lowercase();
        if t != "secevent+jwt" && t != "application/secevent+jwt" {
            return Err(refuse(
                ErrorCode::InvalidRequest,
                format!("typ `{typ}` is not secevent+jwt"),
            ));
        }
    }
    if h.crit.is_some() {
        // RFC 7515 §4.1.11: extensions we do not understand must make the JWS invalid.
        return Err(refuse(
            ErrorCode::InvalidRequest,
            "the header has `crit` extensions, which this receiver does not understand",
        ));
    }
    let alg = match h.alg.as_str() {
        "none" => {
            return Err(refuse(
                ErrorCode::AuthenticationFailed,
                "an unsigned SET (alg none)",
            ))
        }
        "HS256" | "HS384" | "HS512" => {
            return Err(refuse(
                ErrorCode::InvalidKey,
                format!("{}: shared-secret algorithms are not taken", h.alg),
            ))
        }
        "RS256" => Algorithm::RS256,
        "RS384" => Algorithm::RS384,
        "RS512" => Algorithm::RS512,
        "PS256" => Algorithm::PS256,
        "PS384" => Algorithm::PS384,
        "PS512" => Algorithm::PS512,
        "ES256" => Algorithm::ES256,
        "ES384" => Algorithm::ES384,
        "EdDSA" => Algorithm::EdDSA,
        other => {
            return Err(refuse(
                ErrorCode::InvalidKey,
                format!("unsupported algorithm `{}`", crate::audit::cut(other, 32)),
            ))
        }
    };
    Ok(SetHeader { alg, kid: h.kid })
}

/// The key of `keys` that `header` names: by `kid`, or the only key when the header names
/// none and there is exactly one. None: not there (the caller may fetch the keys again).
pub fn key_for<'a>(header: &SetHeader, keys: &'a [Jwk]) -> Option<&'a Jwk> {
    match &header.kid {
        Some(kid) => keys
            .iter()
            .find(|k| k.common.key_id.as_deref() == Some(kid.as_str())),
        None if keys.len() == 1 => keys.first(),
        None => None,
    }
}

/// What a SET must say to be taken.
#[derive(Debug, Clone)]
pub struct Expected<'a> {
    /// The transmitter's issuer, from its metadata.
    pub issuer: &'a str,
    /// What `aud` must contain.
    pub audience: &'a str,
    /// How old `iat` may be.
    pub max_age: Duration,
}

/// A SET whose signature, issuer, audience and freshness were checked.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedSet {
    pub issuer: String,
    pub jti: String,
    pub issued_at: DateTime<Utc>,
    /// The whole claim set (`events`, `sub_id`, `txn`…), for the events' mapping.
    pub claims: Map<String, Value>,
}

/// Verifies `token` (whose `header` was read) with `key` and checks its claims at `now`.
pub fn verify(
    token: &str,
    header: &SetHeader,
    key: &Jwk,
    expected: &Expected<'_>,
    now: DateTime<Utc>,
) -> Result<VerifiedSet, Refusal> {
    if let Some(alg) = key.common.key_algorithm {
        if alg.to_string().parse::<Algorithm>().ok() != Some(header.alg) {
            return Err(refuse(
                ErrorCode::InvalidKey,
                format!(
                    "the key {:?} is for {alg:?}, the SET says {:?}",
                    header.kid, header.alg
                ),
            ));
        }
    }
    let decoding = DecodingKey::from_jwk(key).map_err(|e| {
        refuse(
            ErrorCode::InvalidKey,
            format!("the key {:?} is not usable: {e}", header.kid),
        )
    })?;
    let mut validation = Validation::new(header.alg);
    // Claims are checked below, by the SET rules: no `exp` (SETs have none), our audience.
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    let data =
        jsonwebtoken::decode::<Map<String, Value>>(token, &decoding, &validation).map_err(|e| {
            match e.kind() {
                jsonwebtoken::errors::ErrorKind::InvalidSignature => refuse(
                    ErrorCode::AuthenticationFailed,
                    format!("the signature does not verify with key {:?}", header.kid),
                ),
                jsonwebtoken::errors::ErrorKind::InvalidAlgorithm => refuse(
                    ErrorCode::InvalidKey,
                    format!("the key {:?} does not fit {:?}", header.kid, header.alg),
                ),
                jsonwebtoken::errors::ErrorKind::InvalidEcdsaKey
                | jsonwebtoken::errors::ErrorKind::InvalidRsaKey(_)
                | jsonwebtoken::errors::ErrorKind::InvalidKeyFormat => refuse(
                    ErrorCode::InvalidKey,
                    format!("the key {:?} is not usable: {e}", header.kid),
                ),
                _ => refuse(ErrorCode::InvalidRequest, format!("the SET: {e}")),
            }
        })?;
    check_claims(data.claims, expected, now)
}

/// The claim rules of RFC 8417 and SSF 1.0 §4 on a signature-checked claim set.
pub fn check_claims(
    claims: Map<String, Value>,
    expected: &Expected<'_>,
    now: DateTime<Utc>,
) -> Result<VerifiedSet, Refusal> {
    let issuer = match claims.get("iss") {
        Some(Value::String(iss)) => iss.clone(),
        _ => return Err(refuse(ErrorCode::InvalidIssuer, "no `iss`")),
    };
    if issuer != expected.issuer {
        return Err(refuse(
            ErrorCode::InvalidIssuer,
            format!(
                "iss `{}` is not `{}`",
                crate::audit::cut(&issuer, 200),
                expected.issuer
            ),
        ));
    }
    let names_us = match claims.get("aud") {
        Some(Value::String(a)) => a == expected.audience,
        Some(Value::Array(list)) => list.iter().any(|a| a.as_str() == Some(expected.audience)),
        _ => false,
    };
    if !names_us {
        return Err(refuse(
            ErrorCode::InvalidAudience,
            format!("aud does not contain `{}`", expected.audience),
        ));
    }
    let iat = claims
        .get("iat")
        .and_then(Value::as_i64)
        .and_then(|s| DateTime::from_timestamp(s, 0))
        .ok_or_else(|| refuse(ErrorCode::InvalidRequest, "no numeric `iat`"))?;
    if iat > now + CLOCK_SKEW {
        return Err(refuse(
            ErrorCode::InvalidRequest,
            format!("iat {iat} is in the future"),
        ));
    }
    if now - iat > expected.max_age {
        return Err(refuse(
            ErrorCode::InvalidRequest,
            format!(
                "iat {iat} is older than {} seconds",
                expected.max_age.num_seconds()
            ),
        ));
    }
    let jti = match claims.get("jti") {
        Some(Value::String(j)) if !j.is_empty() && j.len() <= 256 => j.clone(),
        _ => {
            return Err(refuse(
                ErrorCode::InvalidRequest,
                "no `jti` (or longer than 256 bytes)",
            ))
        }
    };
    match claims.get("events") {
        Some(Value::Object(events)) if !events.is_empty() => {}
        _ => {
            return Err(refuse(
                ErrorCode::InvalidRequest,
                "`events` is not an object with at least one event",
            ))
        }
    }
    Ok(VerifiedSet {
        issuer,
        jti,
        issued_at: iat,
        claims,
    })
}

#[cfg(test)]
mod tests;
