//! `/api/audit`: the audit trail for admins, newest first, paged and filterable.

use super::error::ApiError;
use super::extract::{Admin, Query};
use super::openapi::{Forbidden, Refused};
use super::paging::{PageLinks, PageParams};
use super::state::AppState;
use crate::audit::{self, AuditEntry, Filter};
use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct AuditParams {
    /// How many events to skip (default 0).
    #[param(minimum = 0)]
    offset: Option<i64>,
    /// How many events at most (default 40).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<i64>,
    /// Only events of this action (e.g. `key.create`).
    action: Option<String>,
    /// Only events by this actor.
    actor: Option<String>,
}

/// A page of the audit trail.
#[derive(Serialize, ToSchema)]
pub struct AuditList {
    /// Newest first.
    pub events: Vec<AuditEntry>,
    #[serde(flatten)]
    pub page: PageLinks,
}

/// The audit trail (admins)
///
/// Newest first, paged and filterable.
#[utoipa::path(
    get,
    path = "/api/audit",
    tag = "audit",
    operation_id = "listAuditEvents",
    security(("sqAuth" = []), ("sessionBearer" = []), ("basic" = []), ("session" = [])),
    params(AuditParams),
    responses((status = 200, body = AuditList), Refused, Forbidden),
)]
async fn list(
    State(state): State<AppState>,
    Admin(_admin): Admin,
    Query(q): Query<AuditParams>,
) -> Result<Json<AuditList>, ApiError> {
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
    Ok(Json(AuditList {
        events,
        page: page.links("/api/audit", &extra, total),
    }))
}
