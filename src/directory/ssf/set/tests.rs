//! SET verification: signature, algorithms, issuer, audience, freshness, identifiers.

use super::*;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{EncodingKey, Header};
use serde_json::json;

/// A transmitter's ES256 key: signs SETs, and its public half as a JWK.
struct Key {
    kid: String,
    signing: EncodingKey,
    jwk: Jwk,
}

fn key(kid: &str) -> Key {
    let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let raw = pair.public_key_raw();
    let (x, y) = raw[1..].split_at(32);
    let jwk: Jwk = serde_json::from_value(json!({
        "kty": "EC", "crv": "P-256", "kid": kid, "use": "sig", "alg": "ES256",
        "x": URL_SAFE_NO_PAD.encode(x), "y": URL_SAFE_NO_PAD.encode(y),
    }))
    .unwrap();
    Key {
        kid: kid.into(),
        signing: EncodingKey::from_ec_der(&pair.serialize_der()),
        jwk,
    }
}

const ISS: &str = "https://tr.example.com";
const AUD: &str = "https://keys.example.com";

fn now() -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000, 0).unwrap()
}

fn claims() -> Value {
    json!({
        "iss": ISS,
        "aud": AUD,
        "iat": now().timestamp() - 5,
        "jti": "756E69717565206964656E746966696572",
        "sub_id": {"format": "iss_sub", "iss": "https://idp.example.com", "sub": "u1"},
        "events": {"https://schemas.openid.net/secevent/risc/event-type/account-disabled": {}},
    })
}

fn sign(k: &Key, claims: &Value) -> String {
    let mut h = Header::new(Algorithm::ES256);
    h.kid = Some(k.kid.clone());
    h.typ = Some("secevent+jwt".into());
    jsonwebtoken::encode(&h, claims, &k.signing).unwrap()
}

fn expected() -> Expected<'static> {
    Expected {
        issuer: ISS,
        audience: AUD,
        max_age: Duration::seconds(300),
    }
}

/// Header, key lookup and verification, as the receiver runs them.
fn check(token: &str, keys: &[Jwk]) -> Result<VerifiedSet, Refusal> {
    let h = header(token)?;
    let k = key_for(&h, keys).ok_or_else(|| refuse(ErrorCode::InvalidKey, "unknown kid"))?;
    verify(token, &h, k, &expected(), now())
}

fn code(r: Result<VerifiedSet, Refusal>) -> ErrorCode {
    r.expect_err("refused").code
}

#[test]
fn a_set_signed_by_the_transmitter_for_us_is_taken() {
    let k = key("k1");
    let set = check(&sign(&k, &claims()), std::slice::from_ref(&k.jwk)).unwrap();
    assert_eq!(set.issuer, ISS);
    assert_eq!(set.jti, "756E69717565206964656E746966696572");
    assert_eq!(set.issued_at, now() - Duration::seconds(5));
    assert!(set.claims.contains_key("events"));
}

#[test]
fn another_key_or_a_changed_payload_does_not_authenticate() {
    let (k, other) = (key("k1"), key("k1"));
    // Same kid, another key: the signature does not verify.
    assert_eq!(
        code(check(
            &sign(&other, &claims()),
            std::slice::from_ref(&k.jwk)
        )),
        ErrorCode::AuthenticationFailed
    );
    // A payload swapped under a valid signature.
    let token = sign(&k, &claims());
    let mut parts: Vec<String> = token.split('.').map(str::to_string).collect();
    let mut c = claims();
    c["sub_id"]["sub"] = json!("someone-else");
    parts[1] = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&c).unwrap());
    assert_eq!(
        code(check(&parts.join("."), std::slice::from_ref(&k.jwk))),
        ErrorCode::AuthenticationFailed
    );
}

#[test]
fn unsigned_and_shared_secret_sets_are_refused() {
    let enc = |v: Value| URL_SAFE_NO_PAD.encode(serde_json::to_vec(&v).unwrap());
    let body = enc(claims());
    let none = format!(
        "{}.{body}.",
        enc(json!({"alg": "none", "typ": "secevent+jwt"}))
    );
    assert_eq!(
        header(&none).unwrap_err().code,
        ErrorCode::AuthenticationFailed
    );
    let mut typed = Header::new(Algorithm::HS256);
    typed.typ = Some("secevent+jwt".into());
    let hs =
        jsonwebtoken::encode(&typed, &claims(), &EncodingKey::from_secret(b"guessable")).unwrap();
    assert_eq!(header(&hs).unwrap_err().code, ErrorCode::InvalidKey);
    // An HMAC key in the JWKS is no way around it: the header is refused first.
    let oct: Jwk = serde_json::from_value(json!({"kty": "oct", "k": "Z3Vlc3NhYmxl"})).unwrap();
    assert!(check(&hs, &[oct]).is_err());
}

#[test]
fn an_es256_header_over_an_rsa_key_or_a_key_for_another_algorithm_is_an_invalid_key() {
    let k = key("k1");
    let mut jwk = k.jwk.clone();
    jwk.common.key_algorithm = Some(jsonwebtoken::jwk::KeyAlgorithm::ES384);
    assert_eq!(
        code(check(&sign(&k, &claims()), &[jwk])),
        ErrorCode::InvalidKey
    );
}

#[test]
fn the_type_when_given_must_be_a_security_event() {
    let k = key("k1");
    let mut h = Header::new(Algorithm::ES256);
    h.kid = Some("k1".into());
    h.typ = Some("JWT".into());
    let t = jsonwebtoken::encode(&h, &claims(), &k.signing).unwrap();
    assert_eq!(
        code(check(&t, std::slice::from_ref(&k.jwk))),
        ErrorCode::InvalidRequest
    );
    // Untyped is allowed (RFC 8417 makes `typ` optional), and so is the long form.
    for typ in [None, Some("application/secevent+jwt")] {
        h.typ = typ.map(str::to_string);
        let t = jsonwebtoken::encode(&h, &claims(), &k.signing).unwrap();
        assert!(check(&t, std::slice::from_ref(&k.jwk)).is_ok(), "{typ:?}");
    }
}

#[test]
fn issuer_audience_freshness_jti_and_events_are_each_checked() {
    let k = key("k1");
    let keys = [k.jwk.clone()];
    let with = |f: &dyn Fn(&mut Value)| {
        let mut c = claims();
        f(&mut c);
        check(&sign(&k, &c), &keys)
    };
    assert_eq!(
        code(with(&|c| c["iss"] = json!("https://evil.example.com"))),
        ErrorCode::InvalidIssuer
    );
    assert_eq!(
        code(with(&|c| c["aud"] = json!("https://other.example.com"))),
        ErrorCode::InvalidAudience
    );
    assert_eq!(
        code(with(&|c| {
            c.as_object_mut().unwrap().remove("aud");
        })),
        ErrorCode::InvalidAudience
    );
    // An audience list that includes us is fine.
    assert!(with(&|c| c["aud"] = json!(["https://x.example.com", AUD])).is_ok());
    let at = |secs: i64| move |c: &mut Value| c["iat"] = json!(now().timestamp() + secs);
    assert_eq!(code(with(&at(-301))), ErrorCode::InvalidRequest);
    assert!(with(&at(-299)).is_ok());
    assert!(with(&at(59)).is_ok(), "within the clock skew");
    assert_eq!(code(with(&at(61))), ErrorCode::InvalidRequest);
    assert_eq!(
        code(with(&|c| {
            c.as_object_mut().unwrap().remove("jti");
        })),
        ErrorCode::InvalidRequest
    );
    assert_eq!(
        code(with(&|c| c["events"] = json!({}))),
        ErrorCode::InvalidRequest
    );
    assert_eq!(
        code(with(&|c| c["events"] = json!(["x"]))),
        ErrorCode::InvalidRequest
    );
    // No `exp` is needed (SETs have none).
    assert!(claims().get("exp").is_none());
}

#[test]
fn keys_are_found_by_kid_or_as_the_only_key() {
    let (a, b) = (key("a"), key("b"));
    let both = [a.jwk.clone(), b.jwk.clone()];
    let named = |kid: Option<&str>| SetHeader {
        alg: Algorithm::ES256,
        kid: kid.map(str::to_string),
    };
    assert_eq!(
        key_for(&named(Some("b")), &both).and_then(|k| k.common.key_id.clone()),
        Some("b".into())
    );
    assert!(key_for(&named(Some("c")), &both).is_none());
    assert!(key_for(&named(None), &both).is_none(), "ambiguous");
    assert!(key_for(&named(None), &both[..1]).is_some());
}

#[test]
fn what_is_not_a_signed_jwt_is_an_invalid_request() {
    for t in ["", "abc", "a.b", "a.b.c.d.e", "!!.e30.sig", "e30.e30.sig"] {
        assert_eq!(
            header(t).unwrap_err().code,
            ErrorCode::InvalidRequest,
            "{t}"
        );
    }
}

#[test]
fn error_codes_are_spelled_as_rfc_8935_registers_them() {
    let all = [
        ErrorCode::InvalidRequest,
        ErrorCode::InvalidKey,
        ErrorCode::InvalidIssuer,
        ErrorCode::InvalidAudience,
        ErrorCode::AuthenticationFailed,
        ErrorCode::AccessDenied,
    ];
    let names: Vec<&str> = all.iter().map(|c| c.as_str()).collect();
    assert_eq!(
        names,
        [
            "invalid_request",
            "invalid_key",
            "invalid_issuer",
            "invalid_audience",
            "authentication_failed",
            "access_denied"
        ]
    );
}
