//! `GET /api/accesskeys/report.csv`: the credential report, every key with its owner as
//! one CSV line, for admins; streamed one chunk of keys at a time.

use super::error::ApiError;
use super::extract::Admin;
use super::openapi::{Forbidden, Refused};
use super::state::AppState;
use crate::app::App;
use crate::caller::Principal;
use crate::error::Error;
use crate::ids::KeyRowId;
use crate::key_report::{self, Line, CHUNK, COLUMNS};
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(report))
}

/// The CSV text of `lines`, with the header row first when `header` is set.
fn csv_text(lines: &[Line], header: bool) -> Result<Bytes, Error> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let hidden = |e: csv::Error| Error::Internal(format!("writing the credential report: {e}"));
    if header {
        w.write_record(COLUMNS).map_err(hidden)?;
    }
    for l in lines {
        w.write_record(key_report::record(l)).map_err(hidden)?;
    }
    w.into_inner()
        .map(Bytes::from)
        .map_err(|e| Error::Internal(format!("writing the credential report: {e}")))
}

/// Where the stream of chunks stands.
struct Cursor {
    app: Arc<App>,
    caller: Principal,
    /// The last key written; None once the last chunk is out.
    after: Option<KeyRowId>,
}

/// The chunk after the cursor, as CSV; None when every key is written. A failure midway
/// ends the body early (the client sees a cut download) and is logged.
async fn next_chunk(c: Cursor) -> Option<(Result<Bytes, std::io::Error>, Cursor)> {
    let after = c.after.clone()?;
    let result = key_report::chunk(&c.app, &c.caller, Some(after)).await;
    let lines = match result {
        Ok(lines) => lines,
        Err(e) => {
            tracing::warn!(error = %e, "the credential report stopped midway");
            return Some((
                Err(std::io::Error::other("the credential report stopped")),
                Cursor { after: None, ..c },
            ));
        }
    };
    let after = last_if_full(&lines);
    let bytes = csv_text(&lines, false).map_err(|e| std::io::Error::other(e.to_string()));
    Some((bytes, Cursor { after, ..c }))
}

/// Where the next chunk starts: after the last key of a full chunk, none after a short one.
fn last_if_full(lines: &[Line]) -> Option<KeyRowId> {
    if (lines.len() as i64) < CHUNK {
        return None;
    }
    lines.last().map(|l| l.view.row.id.clone())
}

/// The credential report (CSV)
///
/// Every access key with its owner, one line each: `key_id`, `label`, `owner_username`,
/// `owner_id`, `directory`, `scope`, `allowed_networks`, `created`, `last_used`,
/// `last_address`, `expiry`, `valid_until`, `owner_last_login`, `owner_suspended`,
/// `owner_disabled`. Times are RFC 3339 UTC, empty when none. A field that a spreadsheet
/// would take for a formula (starting with `=`, `+`, `-`, `@`, tab or carriage return)
/// starts with `'`. Admins only.
#[utoipa::path(
    get,
    path = "/api/accesskeys/report.csv",
    tag = "accesskeys",
    operation_id = "keyReport",
    security(("sqAuth" = []), ("sessionBearer" = []), ("basic" = []), ("session" = [])),
    responses(
        (status = 200, description = "A CSV download with a header row and one line per key", content_type = "text/csv", body = String),
        Refused, Forbidden,
    ),
)]
async fn report(State(state): State<AppState>, Admin(p): Admin) -> Result<Response, ApiError> {
    // The first chunk before the answer starts: a failure to read is still an error answer.
    let first = key_report::chunk(&state.0, &p, None).await?;
    let head = csv_text(&first, true)?;
    let cursor = Cursor {
        app: state.0.clone(),
        caller: p,
        after: last_if_full(&first),
    };
    let rest = futures_util::stream::unfold(cursor, next_chunk);
    let body = futures_util::StreamExt::chain(
        futures_util::stream::once(async move { Ok::<_, std::io::Error>(head) }),
        rest,
    );
    let filename = format!(
        "accesskeyd-keys-{}.csv",
        state.0.clock.now().format("%Y-%m-%d")
    );
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{filename}\""),
            ),
            (header::CACHE_CONTROL, "no-store".to_string()),
        ],
        Body::from_stream(body),
    )
        .into_response())
}
