//! `/api/directories`: each directory with its sync schedule and last run, run history,
//! starting a sync (or a dry run), approving a blocked run.

use super::error::ApiError;
use super::extract::{Admin, Path, Query};
use super::openapi::{Conflict, Forbidden, NotFound, RawInput, Refused};
use super::paging::{PageLinks, PageParams};
use super::state::AppState;
use crate::directory::Directory;
use crate::ids::DirectoryId;
use crate::store::models::SyncRunRow;
use crate::store::timestamp::Timestamp;
use crate::sync::{self, plan::Removal, Request, RunStatus, Trigger};
use axum::extract::State;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{PartialSchema, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    let mut router = OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(one))
        .routes(routes!(resume_signals))
        .routes(routes!(runs))
        .routes(routes!(start))
        .routes(routes!(approve));
    // The optional body of `start` is named by reference (an `Option` body would admit
    // `null`, which is refused), so its schema is added here.
    router
        .get_openapi_mut()
        .components
        .get_or_insert_with(Default::default)
        .schemas
        .insert(SyncInput::name().into_owned(), SyncInput::schema());
    router
}

/// What a run counted. For `blocked` and `dry-run` runs what it would have done; for
/// `failed` runs 0.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunCounts {
    /// Entries the directory returned in scope.
    read: i64,
    /// Local users found in the read (disabled accounts included).
    matched: i64,
    /// Records renamed.
    renamed: i64,
    /// Users deleted (with a grace: those whose grace ended).
    removed: i64,
    /// Users suspended (only with `removal_grace_hours`).
    suspended: i64,
    /// Suspensions ended.
    restored: i64,
    /// Admin standings changed.
    admin_changes: i64,
    /// Last logins moved forward.
    last_logins: i64,
}

/// One sync run as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunOutput {
    /// The run's id, increasing.
    id: i64,
    directory_id: DirectoryId,
    status: RunStatus,
    /// Requested as a dry run (a dry run over a threshold ends `blocked`, and cannot be
    /// approved).
    dry_run: bool,
    /// `schedule`, `api`, `cli`, `ui` (*Run now* or *Dry run* in the web Admin Panel) or
    /// `approval` (also an approval in the Admin Panel).
    trigger: String,
    /// Who started it: `schedule`, `cli`, or the admin's username (API and Admin Panel).
    actor: Option<String>,
    /// Host name and process id of the process that ran it.
    replica: String,
    started_at: DateTime<Utc>,
    /// Null while running.
    finished_at: Option<DateTime<Utc>>,
    counts: RunCounts,
    /// Why it failed or was blocked, else null.
    error: Option<String>,
    /// Who leaves in this run: deleted, or suspended with a grace (for `blocked` and
    /// `dry-run` runs: who would have).
    removals: Vec<Removal>,
    /// Suspended earlier, deleted in this run because the grace ended.
    expired: Vec<Removal>,
    /// For `approval` runs: the blocked run approved.
    approves_run_id: Option<i64>,
    /// On a blocked run: who approved it (username or `cli`); set once the approving run
    /// has ended `ok`.
    approved_by: Option<String>,
    /// On a blocked run: when it was approved.
    approved_at: Option<DateTime<Utc>>,
    /// Domain controllers whose `lastLogon` this run could not read, as "url: reason"
    /// (`domain_controllers` / `domain_controllers_srv`); their values were missing, nothing
    /// else changed. Empty when all were read.
    unread_controllers: Vec<String>,
}

pub fn run_output(r: SyncRunRow) -> RunOutput {
    let plan = sync::plan_of(&r);
    let unread_controllers = sync::unread_controllers_of(&r);
    RunOutput {
        id: r.id,
        directory_id: r.directory_id,
        status: r.status,
        dry_run: r.dry_run,
        trigger: r.run_trigger,
        actor: r.actor,
        replica: r.replica,
        started_at: r.started_at.at(),
        finished_at: r.finished_at.map(Timestamp::at),
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
        approved_at: r.approved_at.map(Timestamp::at),
        unread_controllers,
    }
}

/// The kind of a directory.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DirectoryKind {
    Builtin,
    Ldap,
    Oidc,
}

/// A directory with its sync schedule and last run.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DirectoryOutput {
    pub id: String,
    pub name: String,
    pub kind: DirectoryKind,
    /// The cron schedule of its sync (LDAP); null when none.
    pub schedule: Option<String>,
    /// When the next scheduled sync starts; null when none.
    pub next_run: Option<DateTime<Utc>>,
    /// The latest run; null when none.
    pub last_run: Option<RunOutput>,
    /// Its change signals (an LDAP change feed, shared signals); null when it has none.
    pub signals: Option<SignalsOutput>,
}

/// What a directory's change signals are doing.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SignalsOutput {
    /// `syncrepl` (OpenLDAP), `dirsync` (Active Directory) or `shared-signals`.
    pub source: &'static str,
    /// Whether a replica follows the feed right now (always false for shared signals, which
    /// are pushed or polled).
    pub connected: bool,
    pub connected_at: Option<DateTime<Utc>>,
    /// The replica following it.
    pub replica: Option<String>,
    pub last_event_at: Option<DateTime<Utc>>,
    /// Seconds since the stored resume point (cookie) was written; null when there is none.
    pub cookie_age_seconds: Option<i64>,
    pub last_error: Option<String>,
    pub reconnects: i64,
    /// True when more suspensions than the threshold came within the window: signals no
    /// longer suspend anyone until an admin resumes them.
    pub stopped: bool,
    pub stopped_at: Option<DateTime<Utc>>,
    pub stopped_reason: Option<String>,
    /// Suspensions and key lapses made by signals since midnight UTC.
    pub suspensions_today: i64,
}

async fn signals_output(
    app: &crate::services::Services,
    d: &Directory,
) -> Result<Option<SignalsOutput>, ApiError> {
    let Some(source) = crate::signals::source(d) else {
        return Ok(None);
    };
    let st = crate::signals::state::of(app, d.id()).await?;
    let now = app.clock.now();
    Ok(Some(SignalsOutput {
        source: source.as_str(),
        connected: st.connected_at.is_some(),
        connected_at: st.connected_at,
        replica: st.connected_at.and(st.replica),
        last_event_at: st.last_event_at,
        cookie_age_seconds: st.cookie_at.map(|c| (now - c).num_seconds().max(0)),
        last_error: st.last_error,
        reconnects: st.reconnects,
        stopped: st.tripped_at.is_some(),
        stopped_at: st.tripped_at,
        stopped_reason: st.tripped_reason,
        suspensions_today: st.suspensions_today,
    }))
}

async fn directory_output(
    app: &crate::services::Services,
    d: &Directory,
) -> Result<DirectoryOutput, ApiError> {
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
    Ok(DirectoryOutput {
        id: d.id().to_string(),
        name: d.name().to_string(),
        kind: match d {
            Directory::Builtin(_) => DirectoryKind::Builtin,
            Directory::Ldap(_) => DirectoryKind::Ldap,
            Directory::Oidc(_) => DirectoryKind::Oidc,
        },
        schedule,
        next_run: next,
        last_run: last,
        signals: signals_output(app, d).await?,
    })
}

fn find<'a>(
    app: &'a crate::services::Services,
    id: &DirectoryId,
) -> Result<&'a Directory, ApiError> {
    Ok(app
        .directory(id)
        .ok_or_else(|| crate::error::Error::not_found(format!("no directory with id `{id}`")))?)
}

/// One directory, with its sync schedule, last run and change signals (admins)
#[utoipa::path(
    get,
    path = "/api/directories/{id}",
    tag = "directories",
    operation_id = "getDirectory",
    security(("sqAuth" = []), ("sessionBearer" = []), ("basic" = []), ("session" = [])),
    params(("id" = String, Path, description = "The directory's id")),
    responses((status = 200, body = DirectoryOutput), Refused, Forbidden, NotFound),
)]
async fn one(
    State(state): State<AppState>,
    Admin(_admin): Admin,
    Path(id): Path<DirectoryId>,
) -> Result<Json<DirectoryOutput>, ApiError> {
    let d = find(&state.0, &id)?;
    Ok(Json(directory_output(&state.0, d).await?))
}

/// Lets a directory's stopped change signals suspend again (admins)
///
/// Signals stop suspending when more than the directory's deletion threshold came within the
/// window; this resumes them (audited). 409 when they are not stopped.
#[utoipa::path(
    post,
    path = "/api/directories/{id}/signals/resume",
    tag = "directories",
    operation_id = "resumeSignals",
    security(("sqAuth" = []), ("sessionBearer" = []), ("basic" = [])),
    params(("id" = String, Path, description = "The directory's id")),
    responses((status = 200, body = DirectoryOutput), Refused, Forbidden, NotFound, Conflict),
)]
async fn resume_signals(
    State(state): State<AppState>,
    Admin(p): Admin,
    Path(id): Path<DirectoryId>,
) -> Result<Json<DirectoryOutput>, ApiError> {
    let d = find(&state.0, &id)?;
    crate::signals::resume(&state.0, &p.actor(), d.id()).await?;
    Ok(Json(directory_output(&state.0, d).await?))
}

/// The configured directories.
#[derive(Debug, Serialize, ToSchema)]
pub struct DirectoryList {
    pub directories: Vec<DirectoryOutput>,
}

/// The directories, with their sync schedule and last run (admins)
#[utoipa::path(
    get,
    path = "/api/directories",
    tag = "directories",
    operation_id = "listDirectories",
    security(("sqAuth" = []), ("sessionBearer" = []), ("basic" = []), ("session" = [])),
    responses((status = 200, body = DirectoryList), Refused, Forbidden),
)]
async fn list(
    State(state): State<AppState>,
    Admin(_admin): Admin,
) -> Result<Json<DirectoryList>, ApiError> {
    let app = &state.0;
    let mut out = Vec::new();
    for d in &app.directories {
        out.push(directory_output(app, d).await?);
    }
    Ok(Json(DirectoryList { directories: out }))
}

/// A page of a directory's sync runs.
#[derive(Serialize, ToSchema)]
pub struct RunList {
    /// Newest first.
    pub runs: Vec<RunOutput>,
    #[serde(flatten)]
    pub page: PageLinks,
}

/// A directory's sync runs (admins)
#[utoipa::path(
    get,
    path = "/api/directories/{id}/runs",
    tag = "directories",
    operation_id = "listSyncRuns",
    security(("sqAuth" = []), ("sessionBearer" = []), ("basic" = []), ("session" = [])),
    params(("id" = String, Path, description = "The directory's id"), PageParams),
    responses((status = 200, body = RunList), Refused, Forbidden, NotFound),
)]
async fn runs(
    State(state): State<AppState>,
    Admin(_admin): Admin,
    Path(id): Path<DirectoryId>,
    Query(params): Query<PageParams>,
) -> Result<Json<RunList>, ApiError> {
    let page = params.page()?;
    let dir = state
        .0
        .directory(&id)
        .ok_or_else(|| crate::error::Error::not_found(format!("no directory with id `{id}`")))?;
    let dir_id = dir.id().clone();
    let (rows, total) = sync::runs(&state.0, &dir_id, page.offset, page.limit).await?;
    let path = format!("/api/directories/{dir_id}/runs");
    Ok(Json(RunList {
        runs: rows.into_iter().map(run_output).collect(),
        page: page.links(&path, &[], total),
    }))
}

#[derive(Debug, Deserialize, Default, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SyncInput {
    /// Decide, change nothing.
    #[serde(default)]
    dry_run: bool,
}

/// Runs a directory's sync now (admins)
///
/// Answers with the finished run (status ok, dry-run, blocked or failed). The body is
/// optional: without one, a real run.
#[utoipa::path(
    post,
    path = "/api/directories/{id}/sync",
    tag = "directories",
    operation_id = "startSync",
    security(("sqAuth" = []), ("sessionBearer" = []), ("basic" = [])),
    params(("id" = String, Path, description = "An LDAP directory's id")),
    request_body(
        content = ref("#/components/schemas/SyncInput"),
        content_type = "application/json",
        description = "Optional: without a body, a real run",
    ),
    responses((status = 200, body = RunOutput), Refused, RawInput, Forbidden, NotFound, Conflict),
)]
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

/// Approves a blocked sync run (admins)
///
/// A new run reads the directory again and removes at most the people the blocked run named;
/// the answer is that run.
#[utoipa::path(
    post,
    path = "/api/directories/{id}/runs/{run}/approve",
    tag = "directories",
    operation_id = "approveSyncRun",
    security(("sqAuth" = []), ("sessionBearer" = []), ("basic" = [])),
    params(
        ("id" = String, Path, description = "The directory's id"),
        ("run" = i64, Path, description = "The blocked run's id"),
    ),
    responses((status = 200, body = RunOutput), Refused, Forbidden, NotFound, Conflict),
)]
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
