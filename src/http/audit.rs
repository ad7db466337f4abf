//! `/api/audit`: the audit trail for admins, newest first, paged and filterable.

use super::error::ApiError;
use super::extract::{Admin, Query};
use super::paging::PageParams;
use super::state::AppState;
use crate::audit::{self, Filter};
use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

pub fn router() -> Router<AppState> {
    Router::new().route("/api/audit", get(list))
}

#[derive(Debug, Deserialize)]
struct AuditParams {
    offset: Option<i64>,
    limit: Option<i64>,
    action: Option<String>,
    actor: Option<String>,
}

async fn list(
    State(state): State<AppState>,
    Admin(_): Admin,
    Query(q): Query<AuditParams>,
) -> Result<Json<Value>, ApiError> {
    let page = PageParams {
        offset: q.offset,
        limit: q.limit,
    }
    .page()?;
    let mut extra = Vec::new();
    if let Some(a) = &q.action {
        extra.push(("action", a.clone()));
    }
    if let Some(a) = &q.actor {
        extra.push(("actor", a.clone()));
    }
    let (events, total) = audit::list(
        &state.0.store,
        Filter {
            action: q.action,
            actor: q.actor,
        },
        page.offset,
        page.limit,
    )
    .await?;
    Ok(Json(json!({
        "events": events,
        "offset": page.offset,
        "limit": page.limit,
        "totalResults": total,
        "next": page.next("/api/audit", &extra, total),
        "prev": page.prev("/api/audit", &extra),
    })))
}
