//! Poll-based delivery (RFC 8936): we ask the transmitter's poll endpoint for SETs, take each
//! as a push would be taken, and acknowledge in the next request what we took (`ack`) or
//! refused (`setErrs`). A SET we could not take for our own reasons (the database, the
//! transmitter's keys) is neither: the transmitter delivers it again.

use super::{receive, SetError};
use crate::config::SsfPoll;
use crate::directory::fetched::read_capped;
use crate::directory::ssf::set::Refusal;
use crate::ids::DirectoryId;
use crate::services::Services;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// SETs asked for per poll.
pub const MAX_EVENTS: usize = 100;

/// Longest poll answer read: [`MAX_EVENTS`] SETs of the largest size, and room.
const MAX_POLL_BYTES: usize = 8 * 1024 * 1024;

/// What the next poll tells the transmitter.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Acks {
    pub ack: Vec<String>,
    pub errs: BTreeMap<String, Refusal>,
}

#[derive(Serialize)]
struct SetErr {
    err: &'static str,
    description: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PollRequest<'a> {
    ack: &'a [String],
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    set_errs: BTreeMap<&'a str, SetErr>,
    max_events: usize,
    return_immediately: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PollResponse {
    #[serde(default)]
    sets: BTreeMap<String, String>,
    #[serde(default)]
    more_available: bool,
}

/// The body of a poll that acknowledges `acks` (RFC 8936 §2.2, §2.4).
pub fn request_body(acks: &Acks) -> serde_json::Value {
    let req = PollRequest {
        ack: &acks.ack,
        set_errs: acks
            .errs
            .iter()
            .map(|(jti, r)| {
                (
                    jti.as_str(),
                    SetErr {
                        err: r.code.as_str(),
                        description: r.code.description(),
                    },
                )
            })
            .collect(),
        max_events: MAX_EVENTS,
        return_immediately: true,
    };
    serde_json::to_value(req).unwrap_or_default()
}

/// What one poll did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Polled {
    /// To tell the transmitter next time.
    pub acks: Acks,
    /// SETs received in this answer.
    pub received: usize,
    /// The transmitter has more: poll again at once.
    pub more: bool,
}

/// Polls once, acknowledging `acks`, and takes the SETs the answer holds. On an error the
/// acknowledgements were perhaps not heard: the caller keeps them for the next try.
pub async fn poll_once(
    app: &Services,
    dir: &DirectoryId,
    poll: &SsfPoll,
    acks: &Acks,
) -> Result<Polled, String> {
    let transmitter = app
        .ssf
        .get(dir)
        .ok_or_else(|| format!("directory {dir} has no transmitter"))?;
    let mut req = transmitter
        .http()
        .post(&poll.url)
        .header(reqwest::header::ACCEPT, "application/json")
        .json(&request_body(acks));
    if let Some(token) = &poll.token {
        req = req.bearer_auth(token.expose());
    }
    let mut resp = req.send().await.map_err(|e| format!("{}: {e}", poll.url))?;
    if !resp.status().is_success() {
        return Err(format!("{}: HTTP {}", poll.url, resp.status()));
    }
    let body = read_capped(&mut resp, MAX_POLL_BYTES)
        .await
        .map_err(|e| format!("{}: {e}", poll.url))?;
    let answer: PollResponse = serde_json::from_slice(&body)
        .map_err(|e| format!("{}: not a poll answer: {e}", poll.url))?;
    let mut next = Acks::default();
    let received = answer.sets.len();
    for (jti, token) in answer.sets.into_iter().take(MAX_EVENTS) {
        match receive(app, dir, token.as_bytes(), app.clock.now()).await {
            Ok(_) | Err(SetError::Replayed(_)) => next.ack.push(jti),
            Err(SetError::Refused(r)) => {
                tracing::info!(directory = %dir, %jti, err = r.code.as_str(), detail = %r.detail, "polled SET refused");
                next.errs.insert(jti, r);
            }
            Err(SetError::Unavailable(e)) => {
                tracing::warn!(directory = %dir, %jti, error = %e, "polled SET not taken; it will come again");
            }
            Err(SetError::Internal(e)) => {
                tracing::warn!(directory = %dir, %jti, error = %e, "polled SET not taken; it will come again");
            }
            Err(SetError::NotHere) => {
                return Err(format!("directory {dir} takes no shared signals"))
            }
        }
    }
    Ok(Polled {
        acks: next,
        received,
        more: answer.more_available,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directory::ssf::set::ErrorCode;
    use serde_json::json;

    #[test]
    fn a_poll_acknowledges_what_was_taken_and_reports_what_was_refused() {
        let mut acks = Acks {
            ack: vec!["4d3559ec67504aaba65d40b0363faad8".into()],
            errs: BTreeMap::new(),
        };
        acks.errs.insert(
            "3d0c3cf797584bd193bd0fb1bd4e7d30".into(),
            Refusal {
                code: ErrorCode::InvalidKey,
                detail: "not sent".into(),
            },
        );
        // RFC 8936 §2.4.3's shape: ack, setErrs with err and description.
        assert_eq!(
            request_body(&acks),
            json!({
                "ack": ["4d3559ec67504aaba65d40b0363faad8"],
                "setErrs": {"3d0c3cf797584bd193bd0fb1bd4e7d30": {
                    "err": "invalid_key",
                    "description": "the SET's signing key is not acceptable"
                }},
                "maxEvents": 100,
                "returnImmediately": true
            })
        );
        // The first poll acknowledges nothing.
        assert_eq!(
            request_body(&Acks::default()),
            json!({"ack": [], "maxEvents": 100, "returnImmediately": true})
        );
    }

    #[test]
    fn a_poll_answer_reads_with_or_without_more() {
        let a: PollResponse =
            serde_json::from_value(json!({"sets": {"j1": "a.b.c"}, "moreAvailable": true}))
                .unwrap();
        assert_eq!((a.sets.len(), a.more_available), (1, true));
        let a: PollResponse = serde_json::from_value(json!({"sets": {}})).unwrap();
        assert!(a.sets.is_empty() && !a.more_available);
    }
}
