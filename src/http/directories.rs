//! `/api/directories`: each directory with its sync schedule and last run, run history,
//! starting a sync (or a dry run), approving a blocked run.

use super::error::ApiError;
use super::extract::{Admin, Path, Query};
use super::paging::PageParams;
use super::state::AppState;
use crate::directory::Directory;
use crate::ids::DirectoryId;
use crate::store::models::{from_ms, SyncRunRow};
use crate::sync::{self, plan::Removal, Request, Trigger};
use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/directories", get(list))
        .route("/api/directories/{id}/runs", get(runs))
        .route("/api/directories/{id}/sync", post(start))
        .route("/api/directories/{id}/runs/{run}/approve", post(approve))
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunCounts {
    read: i64,
    matched: i64,
    renamed: i64,
    removed: i64,
    suspended: i64,
    restored: i64,
    admin_changes: i64,
    last_logins: i64,
}

/// One sync run as the API shows it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunOutput {
    id: i64,
    directory_id: DirectoryId,
    status: String,
    dry_run: bool,
    trigger: String,
    actor: Option<String>,
    replica: String,
    started_at: DateTime<Utc>,
    finished_at: Option<DateTime<Utc>>,
    counts: RunCounts,
    error: Option<String>,
    /// Who the run removed, suspended or (dry run, blocked) would have.
    removals: Vec<Removal>,
    /// Suspended users whose grace ended in this run.
    expired: Vec<Removal>,
    approves_run_id: Option<i64>,
    approved_by: Option<String>,
    approved_at: Option<DateTime<Utc>>,
}

pub fn run_output(r: SyncRunRow) -> RunOutput {
    let plan = sync::plan_of(&r);
    RunOutput {
        id: r.id,
        directory_id: r.directory_id,
        status: r.status,
        dry_run: r.dry_run,
        trigger: r.run_trigger,
        actor: r.actor,
        replica: r.replica,
        started_at: from_ms(r.started_at),
        finished_at: r.finished_at.map(from_ms),
        counts: RunCounts {
            read: r.read_count,
            matched: r.matched,
            renamed: r.renamed,
            removed: r.removed,
            suspended: r.suspended,
            restored: r.restored,
            admin_changes: r.admin_changes,
            last_logins: r.last_logins,
        },
        error: r.error,
        removals: plan.removals,
        expired: plan.expired,
        approves_run_id: r.approves_run_id,
        approved_by: r.approved_by,
        approved_at: r.approved_at.map(from_ms),
    }
}

async fn list(State(state): State<AppState>, Admin(_): Admin) -> Result<Json<Value>, ApiError> {
    let app = &state.0;
    let mut out = Vec::new();
    for d in &app.directories {
        let (schedule, next, last) = match d {
            Directory::Ldap(l) => {
                let cfg = l.config();
                let (rows, _) = sync::runs(app, &cfg.id, 0, 1).await?;
                (
                    cfg.sync.schedule.as_ref().map(|s| s.source().to_string()),
                    sync::next_run(cfg, app.clock.now()),
                    rows.into_iter().next().map(run_output),
                )
            }
            Directory::Builtin(_) | Directory::Oidc(_) => (None, None, None),
        };
        out.push(json!({
            "id": d.id(),
            "name": d.name(),
            "kind": match d {
                Directory::Builtin(_) => "builtin",
                Directory::Ldap(_) => "ldap",
                Directory::Oidc(_) => "oidc",
            },
            "schedule": schedule,
            "nextRun": next,
            "lastRun": last,
        }));
    }
    Ok(Json(json!({ "directories": out })))
}

async fn runs(
    State(state): State<AppState>,
    Admin(_): Admin,
    Path(id): Path<DirectoryId>,
    Query(params): Query<PageParams>,
) -> Result<Json<Value>, ApiError> {
    let page = params.page()?;
    let dir = state
        .0
        .directory(&id)
        .ok_or_else(|| crate::error::Error::not_found(format!("no directory with id `{id}`")))?;
    let dir_id = dir.id().clone();
    let (rows, total) = sync::runs(&state.0, &dir_id, page.offset, page.limit).await?;
    let path = format!("/api/directories/{dir_id}/runs");
    Ok(Json(json!({
        "runs": rows.into_iter().map(run_output).collect::<Vec<_>>(),
        "offset": page.offset,
        "limit": page.limit,
        "totalResults": total,
        "next": page.next(&path, &[], total),
        "prev": page.prev(&path, &[]),
    })))
}

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SyncInput {
    #[serde(default)]
    dry_run: bool,
}

/// Runs a sync now and answers with the finished run (status ok, dry-run, blocked or failed).
async fn start(
    State(state): State<AppState>,
    Admin(p): Admin,
    Path(id): Path<DirectoryId>,
    super::extract::RawBody(body): super::extract::RawBody,
) -> Result<Json<RunOutput>, ApiError> {
    // The body is optional (`curl -X POST .../sync` starts a real run).
    let input: SyncInput = if body.iter().all(u8::is_ascii_whitespace) {
        SyncInput::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| crate::error::Error::invalid(format!("body: {e}")))?
    };
    let row = sync::run_detached(
        state.0.services.clone(),
        Request {
            directory_id: id,
            dry_run: input.dry_run,
            trigger: Trigger::Api,
            actor: p.actor(),
            approve_run: None,
        },
    )
    .await?;
    Ok(Json(run_output(row)))
}

/// Approves a blocked run: a new run reads the directory again and removes at most the
/// people the blocked run named.
async fn approve(
    State(state): State<AppState>,
    Admin(p): Admin,
    Path((id, run)): Path<(DirectoryId, i64)>,
) -> Result<Json<RunOutput>, ApiError> {
    let row = sync::run_detached(
        state.0.services.clone(),
        Request {
            directory_id: id,
            dry_run: false,
            trigger: Trigger::Api,
            actor: p.actor(),
            approve_run: Some(run),
        },
    )
    .await?;
    Ok(Json(run_output(row)))
}
