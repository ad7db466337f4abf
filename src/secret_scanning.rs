//! Leaked-token reports from a secret scanner (GitHub's secret scanning partner program):
//! the report's signature is checked against the scanner's public keys
//! (`directory::scanner`), each reported token that is one of our key ids or key passwords
//! deletes that key (`keys::leaked`), its owner is told after the commit
//! (`notify::LeakNotice`), and every token gets GitHub's verdict: `true_positive` or
//! `false_positive`.

use crate::audit::cut;
use crate::directory::scanner::{keys, signature};
use crate::error::Error;
use crate::key_format;
use crate::key_lookup::KeyLookup;
use crate::keys::leaked::{self, Credential, Sighting};
use crate::notify::{self, LeakNotice};
use crate::services::Services;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Largest report body accepted (413 beyond).
pub const MAX_REPORT_BYTES: usize = 1024 * 1024;

/// Most tokens in one report (413 beyond): each costs an HMAC and a place in one query.
pub const MAX_TOKENS: usize = 1000;

/// Longest `url` and `source` kept from a report (audit trail, notices), in characters.
pub const MAX_PLACE_CHARS: usize = 512;

/// One token as the scanner reports it.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct ReportedToken {
    /// The token found.
    pub token: String,
    /// The scanner's name for the kind of token (as registered with it).
    #[serde(rename = "type", default)]
    pub token_type: String,
    /// Where it was found.
    #[serde(default)]
    pub url: Option<String>,
    /// What kind of place: `content`, `commit`, `pull_request_description`, `npm`, ...
    #[serde(default)]
    pub source: Option<String>,
}

/// Our verdict on a reported token, in GitHub's format.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct TokenVerdict {
    /// SHA-256 of the token, hex: the scanner knows which token this is, nobody else learns it.
    pub token_hash: String,
    /// The reported `type`, as sent.
    pub token_type: String,
    pub label: TokenLabel,
}

/// `true_positive`: one of our keys, deleted by this report; `false_positive`: anything else
/// (a key an earlier report deleted is gone; a password cannot be matched without
/// `access_keys.lookup_pepper`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TokenLabel {
    TruePositive,
    FalsePositive,
}

/// Why a report was not taken.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// No `[secret_scanning]` here.
    #[error("secret scanning reports are not configured")]
    NotConfigured,
    /// The signature is missing, names an unknown key or does not match (the detail is for
    /// the log only).
    #[error("report refused: {0}")]
    Refused(signature::Refusal),
    /// Not a JSON list of tokens (after a good signature).
    #[error("{0}")]
    Malformed(String),
    /// More than [`MAX_TOKENS`] tokens.
    #[error("a report may hold at most {MAX_TOKENS} tokens; it held {0}")]
    TooMany(usize),
    /// The scanner's keys cannot be read now.
    #[error("{0}")]
    Unavailable(keys::Unavailable),
    #[error(transparent)]
    Failed(#[from] Error),
}

/// SHA-256 of `token`, hex.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// What a reported token can be, before any database read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Candidate {
    /// One of our key ids or passwords.
    Ours(Credential),
    /// A well-formed password, but without a pepper there is no lookup hash to find it by.
    UnmatchablePassword,
    /// Not ours (another format, a broken checksum).
    NotOurs,
}

/// Classifies one token: the format (prefix, length, checksum) decides, then the password's
/// lookup hash is computed.
pub fn candidate(token: &str, lookup: Option<&KeyLookup>) -> Candidate {
    if key_format::is_key_id(token) {
        return Candidate::Ours(Credential::KeyId(token.to_string()));
    }
    if key_format::is_password(token) {
        return match lookup {
            Some(l) => Candidate::Ours(Credential::Password {
                lookup_hash: l.hash(token),
            }),
            None => Candidate::UnmatchablePassword,
        };
    }
    Candidate::NotOurs
}

/// The verdicts, one per reported token in order: `matched[i]` is whether the i-th of the
/// tokens that could be ours (`ours[j] == Some(i)` for token j) named a key.
pub fn verdicts(
    reported: &[ReportedToken],
    ours: &[Option<usize>],
    matched: &[bool],
) -> Vec<TokenVerdict> {
    reported
        .iter()
        .zip(ours)
        .map(|(t, o)| TokenVerdict {
            token_hash: token_hash(&t.token),
            token_type: t.token_type.clone(),
            label: match o {
                Some(i) if matched.get(*i).copied().unwrap_or(false) => TokenLabel::TruePositive,
                _ => TokenLabel::FalsePositive,
            },
        })
        .collect()
}

/// The text kept of a `url` or `source`: cut, control characters dropped (they would end up
/// in mails and log lines).
fn place(text: Option<&str>) -> Option<String> {
    text.map(|t| {
        let clean: String = t.chars().filter(|c| !c.is_control()).collect();
        cut(clean.trim(), MAX_PLACE_CHARS).into_owned()
    })
    .filter(|t| !t.is_empty())
}

/// Takes a report: checks its signature (`key_identifier` and `signature` are the
/// `Github-Public-Key-*` headers), deletes the keys it names and answers a verdict per
/// token. The owners are told in the background after the commit; a failed notice is
/// logged and never fails the report. `from`: the sender's address, for the audit trail.
pub async fn receive(
    app: &Services,
    key_identifier: Option<&str>,
    sig: Option<&str>,
    body: &[u8],
    from: Option<String>,
) -> Result<Vec<TokenVerdict>, ReportError> {
    let Some(scanner) = &app.secret_scanning else {
        return Err(ReportError::NotConfigured);
    };
    let (Some(key_identifier), Some(sig)) = (key_identifier, sig) else {
        return Err(ReportError::Refused(signature::Refusal::Missing));
    };
    let public_keys = scanner
        .keys_for(key_identifier)
        .await
        .map_err(ReportError::Unavailable)?;
    signature::verify(&public_keys, key_identifier, sig, body).map_err(ReportError::Refused)?;
    let reported: Vec<ReportedToken> = serde_json::from_slice(body).map_err(|e| {
        ReportError::Malformed(format!(
            "the report is not a JSON list of {{\"token\", \"type\", \"url\", \"source\"}}: {e}"
        ))
    })?;
    if reported.len() > MAX_TOKENS {
        return Err(ReportError::TooMany(reported.len()));
    }
    let mut sightings = Vec::new();
    let mut ours = Vec::with_capacity(reported.len());
    let mut unmatchable = 0usize;
    for t in &reported {
        match candidate(&t.token, app.key_lookup.as_ref()) {
            Candidate::Ours(credential) => {
                ours.push(Some(sightings.len()));
                sightings.push(Sighting {
                    credential,
                    url: place(t.url.as_deref()),
                    source: place(t.source.as_deref()),
                });
            }
            Candidate::UnmatchablePassword => {
                unmatchable += 1;
                ours.push(None);
            }
            Candidate::NotOurs => ours.push(None),
        }
    }
    if unmatchable > 0 {
        tracing::warn!(
            passwords = unmatchable,
            "a secret scanner reported access key passwords, which cannot be matched without \
             access_keys.lookup_pepper: they were answered false_positive and their keys still work"
        );
    }
    let places: Vec<(Option<String>, Option<String>)> = sightings
        .iter()
        .map(|s| (s.url.clone(), s.source.clone()))
        .collect();
    let outcome = if sightings.is_empty() {
        leaked::Outcome::default()
    } else {
        leaked::revoke(app, sightings, from).await?
    };
    let answer = verdicts(&reported, &ours, &outcome.matched);
    tracing::info!(
        tokens = reported.len(),
        matched = outcome.matched.iter().filter(|m| **m).count(),
        deleted = outcome.revoked.len(),
        "secret scanning report"
    );
    if let Some(cfg) = app.config.notifications.clone() {
        let now = app.clock.now();
        let sign_in_url = format!("{}/ui/login", app.config.server.public_url());
        let notices: Vec<LeakNotice> = outcome
            .revoked
            .iter()
            .map(|l| {
                let (url, source) = places[l.sighting].clone();
                LeakNotice::new(
                    &l.key,
                    &l.owner,
                    l.manager.as_ref(),
                    url,
                    source,
                    now,
                    sign_in_url.clone(),
                )
            })
            .collect();
        if !notices.is_empty() {
            // The scanner waits for the answer, not for mail relays and webhook retries.
            tokio::spawn(async move {
                for n in &notices {
                    notify::send_leak_notice(&cfg, n).await;
                }
            });
        }
    }
    Ok(answer)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;

    #[test]
    fn only_our_formats_are_candidates_and_passwords_need_the_pepper() {
        let lookup = KeyLookup::new(Secret::new("p".repeat(32)));
        let id = key_format::new_key_id();
        let pw = key_format::new_password();
        assert_eq!(
            candidate(&id, Some(&lookup)),
            Candidate::Ours(Credential::KeyId(id.clone()))
        );
        assert_eq!(
            candidate(&pw, Some(&lookup)),
            Candidate::Ours(Credential::Password {
                lookup_hash: lookup.hash(&pw)
            })
        );
        assert_eq!(candidate(&pw, None), Candidate::UnmatchablePassword);
        assert_eq!(
            candidate(&id, None),
            Candidate::Ours(Credential::KeyId(id.clone())),
            "key ids need no pepper"
        );
        let broken = format!("{}A", &pw[..pw.len() - 1]);
        for other in ["ghp_abc", "", "akd_", &id[..id.len() - 1], &broken] {
            if other != pw {
                assert_eq!(
                    candidate(other, Some(&lookup)),
                    Candidate::NotOurs,
                    "{other}"
                );
            }
        }
    }

    #[test]
    fn the_answer_is_githubs_shape_one_verdict_per_token() {
        let t = |token: &str| ReportedToken {
            token: token.into(),
            token_type: "accesskeyd_password".into(),
            url: None,
            source: None,
        };
        let reported = [t("akp_A"), t("other"), t("akd_B")];
        let answer = verdicts(&reported, &[Some(0), None, Some(1)], &[true, false]);
        assert_eq!(
            serde_json::to_value(&answer).unwrap(),
            serde_json::json!([
                {"token_hash": token_hash("akp_A"), "token_type": "accesskeyd_password", "label": "true_positive"},
                {"token_hash": token_hash("other"), "token_type": "accesskeyd_password", "label": "false_positive"},
                {"token_hash": token_hash("akd_B"), "token_type": "accesskeyd_password", "label": "false_positive"},
            ])
        );
        assert_eq!(
            token_hash("some_token"),
            "9a45520a1213f15016d2d768b5fb3d904492a44ee274b44d4de8803e00fb536a"
        );
    }

    #[test]
    fn places_are_cut_and_lose_control_characters() {
        assert_eq!(
            place(Some(" https://github.com/o/r/blob/x/.env\n")).as_deref(),
            Some("https://github.com/o/r/blob/x/.env")
        );
        assert_eq!(place(Some("\u{7}")), None);
        assert_eq!(place(None), None);
        let long = place(Some(&"u".repeat(5000))).unwrap();
        assert!(long.len() < 700, "{}", long.len());
    }

    /// The rules of docs/gitleaks-accesskeyd.toml, by id.
    fn gitleaks_rules() -> Vec<(String, regex::Regex)> {
        let doc: toml::Table =
            toml::from_str(include_str!("../docs/gitleaks-accesskeyd.toml")).unwrap();
        doc["rules"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["id"].as_str().unwrap().to_string(),
                    regex::Regex::new(r["regex"].as_str().unwrap()).unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn the_shipped_gitleaks_rules_find_generated_keys_and_nothing_shorter_or_longer() {
        let rules = gitleaks_rules();
        let rule = |id: &str| &rules.iter().find(|(r, _)| r == id).unwrap().1;
        let (ids, passwords) = (rule("accesskeyd-key-id"), rule("accesskeyd-key-password"));
        for _ in 0..64 {
            let (id, pw) = (key_format::new_key_id(), key_format::new_password());
            for (re, token, other) in [(ids, &id, &pw), (passwords, &pw, &id)] {
                let line = format!("export ACCESSKEYD_KEY=\"{token}\"  # {other}");
                let found: Vec<&str> = re
                    .captures_iter(&line)
                    .map(|c| c.get(1).unwrap().as_str())
                    .collect();
                assert_eq!(found, [token.as_str()], "{line}");
                assert!(re.is_match(&format!("https://{id}:{pw}@akd.example.com/")));
                for near in [
                    token[..token.len() - 1].to_string(),
                    format!("{token}A"),
                    format!("x{token}"),
                    token.to_lowercase(),
                    format!("{}1{}", &token[..10], &token[11..]),
                ] {
                    assert!(!re.is_match(&near), "{near}");
                }
            }
        }
    }
}
