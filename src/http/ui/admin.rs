//! The Admin Panel: every access key, users and their validity overrides, the runtime
//! configuration, directory sync, and the audit trail.

use super::charts::{self, Item};
use super::page::{render, see_other, CsrfOnly, Form, UiResult};
use super::session::UiAdmin;
use super::views::{
    notice_text, plural, when, window_text, AuditLine, AuditTab, ConfigTab, ConfirmPage,
    DirectoriesTab, DirectoryLine, KeyLine, KeysTab, LapseLine, OptionLine, OverviewTab, Page,
    Pager, RunFact, RunLine, RunPage, RunsChart, SignalsLine, UserLine, UserPage, UsersTab,
    PAGE_SIZE,
};
use crate::app::App;
use crate::audit::{self, Filter};
use crate::directory::Directory;
use crate::error::Error;
use crate::http::error::domain_status;
use crate::http::extract::{Path, Query};
use crate::http::state::AppState;
use crate::ids::{DirectoryId, UserId};
use crate::key_report;
use crate::key_usage;
use crate::keys::{self, Scope};
use crate::options::{self, Change};
use crate::store::key_columns::KeyScope;
use crate::store::models::SyncRunRow;
use crate::store::timestamp::Timestamp;
use crate::sync::{self, plan::Reason, Request, RunStatus, Trigger};
use crate::users::{self, Minutes, Override, UserInfo};
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/ui/admin", get(overview_tab))
        .route("/ui/admin/keys", get(keys_tab))
        .route(
            "/ui/admin/keys/{key_id}/delete",
            get(confirm_key_delete).post(delete_key),
        )
        .route("/ui/admin/users", get(users_tab))
        .route("/ui/admin/users/{id}", get(user_page))
        .route("/ui/admin/users/{id}/validity", post(set_validity))
        .route(
            "/ui/admin/users/{id}/delete",
            get(confirm_user_delete).post(delete_user),
        )
        .route("/ui/admin/config", get(config_tab).post(set_option))
        .route("/ui/admin/directories", get(directories_tab))
        .route("/ui/admin/directories/{id}/sync", post(start_sync))
        .route(
            "/ui/admin/directories/{id}/signals/resume",
            post(resume_signals),
        )
        .route("/ui/admin/directories/{id}/runs/{run}", get(run_page))
        .route(
            "/ui/admin/directories/{id}/runs/{run}/approve",
            post(approve_run),
        )
        .route("/ui/admin/audit", get(audit_tab))
}

/// `?q=` / `?offset=` / `?notice=` of the lists.
#[derive(Deserialize, Default)]
struct ListQuery {
    q: Option<String>,
    offset: Option<i64>,
    notice: Option<String>,
    action: Option<String>,
    actor: Option<String>,
}

impl ListQuery {
    fn offset(&self) -> i64 {
        self.offset.unwrap_or(0).max(0)
    }
}

/// The admin page layout with the notice of a redirect.
fn admin_page(a: &UiAdmin, title: &str, notice: Option<&str>) -> Page {
    let mut page = a.0.page(title, "admin");
    page.notice = notice_text(notice);
    page
}

/// Form values go into URLs of links; percent-encode them.
fn encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

async fn keys_tab(
    State(state): State<AppState>,
    a: UiAdmin,
    Query(q): Query<ListQuery>,
) -> UiResult {
    let search = q.q.clone().unwrap_or_default();
    let (rows, total) = keys::list(
        &state.0,
        &a.0.p,
        Scope::All,
        Some(&search),
        q.offset(),
        PAGE_SIZE,
    )
    .await?;
    let pager = Pager::new(
        &format!("/ui/admin/keys?q={}&", encode(&search)),
        q.offset(),
        rows.len(),
        total,
    );
    let keys = rows
        .into_iter()
        .map(|k| KeyLine {
            owner: k.owner_username,
            owner_is_admin: k.owner_is_admin,
            label: k.row.name,
            key_id: k.row.key_id,
            created: when(Some(k.row.created_at.at()), ""),
            last_used: when(k.row.last_used_at.map(Timestamp::at), "never"),
            read_only: k.row.scope == KeyScope::Read,
            networks: k
                .row
                .allowed_networks
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default(),
            last_address: k
                .recent_uses
                .first()
                .map(|u| u.address.clone())
                .unwrap_or_default(),
        })
        .collect();
    Ok(render(
        StatusCode::OK,
        &KeysTab {
            page: admin_page(&a, "Access Keys", q.notice.as_deref()),
            q: search,
            keys,
            total,
            pager,
        },
    ))
}

/// Days of key use the overview draws.
const USE_DAYS: i64 = 30;

/// Sync runs per directory the overview draws.
const RUNS_DRAWN: i64 = 10;

async fn overview_tab(State(state): State<AppState>, a: UiAdmin) -> UiResult {
    let app = &state.0;
    let (summary, warning_days) = key_report::summary(app, &a.0.p).await?;
    let now = app.clock.now();
    let today = key_usage::day_of(now);
    let days = app
        .store
        .read(move |c| key_usage::last_days(c, today, USE_DAYS))
        .await?;
    let mut directories = Vec::new();
    for d in &app.directories {
        if let Directory::Ldap(l) = d {
            let (mut runs, _) = sync::runs(app, &l.config().id, 0, RUNS_DRAWN).await?;
            runs.reverse();
            directories.push(runs_chart(d.name(), &runs));
        }
    }
    Ok(render(
        StatusCode::OK,
        &OverviewTab {
            page: admin_page(&a, "Overview", None),
            states: charts::horizontal(&[
                Item::new("working", summary.working, "good"),
                Item::new("lapsing", summary.lapsing, "warn"),
                Item::new("stopped", summary.stopped, "bad"),
            ]),
            total_keys: summary.total(),
            warning_days,
            uses_total: days.iter().map(|d| d.1).sum(),
            uses_days: USE_DAYS,
            uses: charts::columns(&use_items(&days), 7, USE_DAYS as usize),
            directories,
            soonest_chart: charts::horizontal(&lapse_items(&summary.soonest(), now, warning_days)),
            soonest: summary
                .soonest()
                .into_iter()
                .map(|l| LapseLine {
                    username: l.username,
                    user_id: l.owner_id.to_string(),
                    kind: if l.is_service_account {
                        "service account"
                    } else {
                        ""
                    },
                    at: when(Some(l.at), ""),
                    keys: l.keys,
                })
                .collect(),
        },
    ))
}

/// Each of the soonest lapses as a bar of the whole days left (rounded up), by urgency: a
/// day or less red, within the warning days amber, later green. Long names are cut so the
/// label column holds them.
fn lapse_items(
    soonest: &[crate::key_report::Lapse],
    now: chrono::DateTime<chrono::Utc>,
    warning_days: i64,
) -> Vec<Item> {
    const LABEL_CHARS: usize = 16;
    soonest
        .iter()
        .map(|l| {
            let seconds = (l.at - now).num_seconds().max(0);
            let days = (seconds + 86_399) / 86_400;
            let class = if days <= 1 {
                "bad"
            } else if days <= warning_days {
                "warn"
            } else {
                "good"
            };
            let label = if l.username.chars().count() > LABEL_CHARS {
                let cut: String = l.username.chars().take(LABEL_CHARS - 1).collect();
                format!("{cut}…")
            } else {
                l.username.clone()
            };
            Item::new(label, days, class)
        })
        .collect()
}

/// Each day's uses as a column labelled with its date (`MM-DD`, UTC).
fn use_items(days: &[(i64, i64)]) -> Vec<Item> {
    days.iter()
        .map(|(day, uses)| {
            let label = key_usage::start_of(*day)
                .map(|t| t.format("%m-%d").to_string())
                .unwrap_or_default();
            Item::new(label, *uses, "good")
        })
        .collect()
}

/// A directory's runs, oldest first, as columns of their removals coloured by status.
fn runs_chart(directory: &str, runs: &[SyncRunRow]) -> RunsChart {
    let items: Vec<Item> = runs
        .iter()
        .map(|r| {
            let class = match r.status {
                RunStatus::Ok => "good",
                RunStatus::Blocked => "warn",
                RunStatus::Failed => "bad",
                RunStatus::DryRun | RunStatus::Running => "muted",
            };
            Item::new(format!("run {} ({})", r.id, r.status), r.removed, class)
        })
        .collect();
    RunsChart {
        directory: directory.to_string(),
        chart: charts::columns(&items, 1, RUNS_DRAWN as usize),
        runs: runs
            .iter()
            .map(|r| RunFact {
                started: when(Some(r.started_at.at()), ""),
                status: r.status.to_string(),
                removed: r.removed,
            })
            .collect(),
    }
}

async fn confirm_key_delete(
    State(state): State<AppState>,
    a: UiAdmin,
    Path(key_id): Path<String>,
) -> UiResult {
    let (rows, _) = keys::list(&state.0, &a.0.p, Scope::All, Some(&key_id), 0, 10).await?;
    let key = rows
        .into_iter()
        .find(|k| k.row.key_id == key_id)
        .ok_or_else(|| Error::not_found(format!("no access key `{key_id}`")))?;
    Ok(render(
        StatusCode::OK,
        &ConfirmPage {
            page: a.0.page("Delete access key", "admin"),
            heading: format!("Delete {}'s access key “{}”?", key.owner_username, key.row.name),
            message: format!(
                "Key {} stops working at once for every script and report that uses it. The owner is not asked. This cannot be undone.",
                key.row.key_id
            ),
            action: format!("/ui/admin/keys/{}/delete", key.row.key_id),
            button: "Delete key".into(),
            cancel: "/ui/admin/keys".into(),
        },
    ))
}

async fn delete_key(
    State(state): State<AppState>,
    a: UiAdmin,
    Path(key_id): Path<String>,
    Form(f): Form<CsrfOnly>,
) -> UiResult {
    a.0.check(f.csrf.as_deref())?;
    keys::delete(&state.0, &a.0.p, &key_id).await?;
    Ok(see_other("/ui/admin/keys?notice=key-deleted"))
}

fn user_line(state: &AppState, u: &UserInfo, now: chrono::DateTime<chrono::Utc>) -> UserLine {
    let r = &u.row;
    let until = u.keys_valid_until();
    UserLine {
        id: r.id.to_string(),
        username: r.username.clone(),
        display_name: r.display_name.clone().unwrap_or_default(),
        is_admin: r.is_admin,
        is_service_account: r.is_service_account,
        manager: u
            .manager_name
            .clone()
            .unwrap_or_else(|| "none: suspended until one is assigned".into()),
        session: match r.session_duration_minutes {
            Some(_) => format!("{} (override)", plural(u.session_minutes, "minute")),
            None => plural(u.session_minutes, "minute"),
        },
        status: if r.is_service_account && r.suspended_at.is_some() {
            "suspended: no manager".into()
        } else if r.suspended_at.is_some() {
            "suspended".into()
        } else if !r.is_enabled {
            "disabled".into()
        } else {
            String::new()
        },
        directory: state
            .0
            .directory(&r.directory_id)
            .map_or_else(|| r.directory_id.to_string(), |d| d.name().to_string()),
        last_login: when(r.last_login(), "never"),
        validity: match r.access_key_validity_minutes {
            Some(_) => format!("{} (override)", window_text(u.window)),
            None => window_text(u.window),
        },
        valid_until: match until {
            None => "keys do not work".into(),
            Some(t) if t <= now => format!("stopped {}", when(Some(t), "")),
            Some(t) => when(Some(t), ""),
        },
    }
}

async fn users_tab(
    State(state): State<AppState>,
    a: UiAdmin,
    Query(q): Query<ListQuery>,
) -> UiResult {
    let (rows, total) = users::list(&state.0, None, q.offset(), PAGE_SIZE).await?;
    let now = state.0.clock.now();
    Ok(render(
        StatusCode::OK,
        &UsersTab {
            page: admin_page(&a, "Users", q.notice.as_deref()),
            pager: Pager::new("/ui/admin/users?", q.offset(), rows.len(), total),
            users: rows.iter().map(|u| user_line(&state, u, now)).collect(),
            total,
        },
    ))
}

async fn key_count(state: &AppState, a: &UiAdmin, user_id: &UserId) -> Result<i64, Error> {
    let (_, total) = keys::list(&state.0, &a.0.p, Scope::User(user_id.clone()), None, 0, 1).await?;
    Ok(total)
}

async fn user_page(
    State(state): State<AppState>,
    a: UiAdmin,
    Path(id): Path<UserId>,
    Query(q): Query<ListQuery>,
) -> UiResult {
    let info = users::get(&state.0, &id).await?;
    let system_days = options::current(&state.0).await?.validity_days;
    let minutes = info.row.access_key_validity_minutes;
    Ok(render(
        StatusCode::OK,
        &UserPage {
            page: admin_page(&a, &info.row.username, q.notice.as_deref()),
            override_text: match minutes {
                None => "none (the system value applies)".into(),
                Some(0) => "0: this user's keys are disabled".into(),
                Some(m) => plural(m, "minute"),
            },
            override_value: minutes.map(|m| m.to_string()).unwrap_or_default(),
            key_count: key_count(&state, &a, &info.row.id).await?,
            u: user_line(&state, &info, state.0.clock.now()),
            system_days,
        },
    ))
}

#[derive(Deserialize)]
struct ValidityForm {
    csrf: Option<String>,
    action: Option<ValidityAction>,
    minutes: Option<String>,
}

/// The buttons of the user page's validity and session forms (the `action` field).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum ValidityAction {
    /// Saves the key-validity override given in `minutes`.
    Set,
    /// Back to the system's key validity.
    Reset,
    /// An override of 0: the user's keys are disabled.
    Disable,
    /// Saves the session duration given in `minutes`.
    SessionSet,
    /// Back to the system's session duration.
    SessionReset,
    /// Anything else: a 400 page, after the CSRF check.
    #[serde(other)]
    Unknown,
}

async fn set_validity(
    State(state): State<AppState>,
    a: UiAdmin,
    Path(id): Path<UserId>,
    Form(f): Form<ValidityForm>,
) -> UiResult {
    a.0.check(f.csrf.as_deref())?;
    let action = f.action.unwrap_or(ValidityAction::Unknown);
    let minutes = f.minutes.unwrap_or_default();
    let info = match action {
        ValidityAction::Set => {
            let to = Override::Set(Minutes(override_minutes(&minutes)?));
            set_override(&state, &a, &id, to).await?
        }
        ValidityAction::Reset => set_override(&state, &a, &id, Override::Reset).await?,
        ValidityAction::Disable => set_override(&state, &a, &id, Override::Set(Minutes(0))).await?,
        ValidityAction::SessionSet => {
            let to = Override::Set(Minutes(session_minutes(&minutes)?));
            set_session(&state, &a, &id, to).await?
        }
        ValidityAction::SessionReset => set_session(&state, &a, &id, Override::Reset).await?,
        ValidityAction::Unknown => {
            return Err(Error::invalid("override: unknown action").into());
        }
    };
    Ok(see_other(&format!(
        "/ui/admin/users/{}?notice=saved",
        info.row.id
    )))
}

/// The key-validity override typed in: whole minutes, 0 or more.
fn override_minutes(text: &str) -> Result<i64, Error> {
    let m: i64 = text.trim().parse().map_err(|_| {
        Error::invalid(format!(
            "override: `{text}` is not a whole number of minutes"
        ))
    })?;
    if m < 0 {
        return Err(Error::invalid(
            "override: minutes cannot be negative; use Reset",
        ));
    }
    Ok(m)
}

/// The session duration typed in: whole minutes (`users` checks the range).
fn session_minutes(text: &str) -> Result<i64, Error> {
    text.trim().parse().map_err(|_| {
        Error::invalid(format!(
            "session duration: `{text}` is not a whole number of minutes"
        ))
    })
}

async fn set_override(
    state: &AppState,
    a: &UiAdmin,
    id: &UserId,
    to: Override,
) -> Result<UserInfo, Error> {
    users::set_validity_override(&state.0, &a.0.p.actor(), id, to).await
}

async fn set_session(
    state: &AppState,
    a: &UiAdmin,
    id: &UserId,
    to: Override,
) -> Result<UserInfo, Error> {
    let update = users::Update {
        session_duration: Some(to),
        ..users::Update::default()
    };
    users::update(&state.0, &a.0.p.actor(), id, update).await
}

async fn confirm_user_delete(
    State(state): State<AppState>,
    a: UiAdmin,
    Path(id): Path<UserId>,
) -> UiResult {
    let info = users::get(&state.0, &id).await?;
    let keys = key_count(&state, &a, &info.row.id).await?;
    Ok(render(
        StatusCode::OK,
        &ConfirmPage {
            page: a.0.page("Delete user", "admin"),
            heading: format!("Delete the user {}?", info.row.username),
            message: format!(
                "This deletes {} and signs the user out everywhere. If they sign in again later they start with no keys.",
                plural(keys, "access key")
            ),
            action: format!("/ui/admin/users/{}/delete", info.row.id),
            button: "Delete user and keys".into(),
            cancel: format!("/ui/admin/users/{}", info.row.id),
        },
    ))
}

async fn delete_user(
    State(state): State<AppState>,
    a: UiAdmin,
    Path(id): Path<UserId>,
    Form(f): Form<CsrfOnly>,
) -> UiResult {
    a.0.check(f.csrf.as_deref())?;
    users::delete(&state.0, &a.0.p.actor(), &id).await?;
    crate::metrics::inc(&state.0.metrics.users_deleted);
    Ok(see_other("/ui/admin/users?notice=user-deleted"))
}

async fn config_view(
    state: &AppState,
    a: &UiAdmin,
    notice: Option<&str>,
    error: Option<String>,
) -> Result<ConfigTab, Error> {
    let list = options::list(&state.0).await?;
    let mut page = admin_page(a, "Configuration", notice);
    page.error = error;
    Ok(ConfigTab {
        page,
        options: list
            .into_iter()
            .map(|o| OptionLine {
                path: o.path,
                description: o.description,
                value: o.value.to_string(),
                default_value: o.default_value.to_string(),
                units: o.units,
                modifiable: o.modifiable,
                is_bool: o.value.is_boolean(),
            })
            .collect(),
    })
}

async fn config_tab(
    State(state): State<AppState>,
    a: UiAdmin,
    Query(q): Query<ListQuery>,
) -> UiResult {
    Ok(render(
        StatusCode::OK,
        &config_view(&state, &a, q.notice.as_deref(), None).await?,
    ))
}

#[derive(Deserialize)]
struct OptionForm {
    csrf: Option<String>,
    path: Option<String>,
    value: Option<String>,
}

async fn set_option(
    State(state): State<AppState>,
    a: UiAdmin,
    Form(f): Form<OptionForm>,
) -> UiResult {
    a.0.check(f.csrf.as_deref())?;
    let path = f.path.unwrap_or_default();
    let text = f.value.unwrap_or_default();
    let value = match (text.trim().parse::<i64>(), text.trim()) {
        (Ok(n), _) => serde_json::Value::from(n),
        (_, "true") => serde_json::Value::from(true),
        (_, "false") => serde_json::Value::from(false),
        (_, other) => serde_json::Value::from(other),
    };
    let change = Change {
        path,
        value,
        note: Some("web Admin Panel".into()),
    };
    match options::set(&state.0, &a.0.p.actor(), vec![change], false).await {
        Ok(_) => Ok(see_other("/ui/admin/config?notice=saved")),
        Err(e @ Error::Invalid(_)) => {
            let (status, message, _) = domain_status(e);
            Ok(render(
                status,
                &config_view(&state, &a, None, Some(message)).await?,
            ))
        }
        Err(e) => Err(e.into()),
    }
}

fn run_line(r: &SyncRunRow) -> RunLine {
    RunLine {
        id: r.id,
        started: when(Some(r.started_at.at()), ""),
        status: match r.status {
            RunStatus::DryRun => "dry run: nothing changed".into(),
            other => other.to_string(),
        },
        status_class: match r.status {
            RunStatus::Ok | RunStatus::DryRun => "good",
            RunStatus::Failed => "bad",
            RunStatus::Blocked => "warn",
            RunStatus::Running => "",
        },
        trigger: r.actor.clone().map_or_else(
            || r.run_trigger.clone(),
            |a| format!("{} ({a})", r.run_trigger),
        ),
        read: r.read_count,
        removed: r.removed,
        note: {
            let unread = sync::unread_controllers_of(r);
            let error = r.error.clone().unwrap_or_default();
            if unread.is_empty() {
                error
            } else {
                let line = format!("lastLogon not read from: {}", unread.join("; "));
                if error.is_empty() {
                    line
                } else {
                    format!("{error}. {line}")
                }
            }
        },
    }
}

async fn directories_tab(
    State(state): State<AppState>,
    a: UiAdmin,
    Query(q): Query<ListQuery>,
) -> UiResult {
    let mut directories = Vec::new();
    for d in &state.0.directories {
        let mut line = directory_line(&state.0, d).await?;
        line.signals = signals_line(&state.0, d).await?;
        directories.push(line);
    }
    Ok(render(
        StatusCode::OK,
        &DirectoriesTab {
            page: admin_page(&a, "Directories", q.notice.as_deref()),
            directories,
        },
    ))
}

/// A directory on the Directories tab: LDAP directories with their schedule and recent
/// runs, the others with why they have none.
async fn directory_line(app: &App, d: &Directory) -> Result<DirectoryLine, Error> {
    let line = |kind, kind_note| DirectoryLine {
        id: d.id().to_string(),
        name: d.name().to_string(),
        kind,
        syncs: false,
        kind_note,
        schedule: String::new(),
        next_run: String::new(),
        runs: Vec::new(),
        signals: None,
    };
    Ok(match d {
        Directory::Builtin(_) => line(
            "built-in",
            "Users of the built-in directory are managed here; nothing to synchronise.",
        ),
        Directory::Oidc(_) => line(
            "OpenID Connect",
            "OpenID Connect providers are kept in step by SCIM provisioning, not by a scheduled read.",
        ),
        Directory::Ldap(l) => {
            let cfg = l.config();
            let (runs, _) = sync::runs(app, &cfg.id, 0, 10).await?;
            DirectoryLine {
                syncs: true,
                schedule: cfg
                    .sync
                    .schedule
                    .as_ref()
                    .map(|s| s.source().to_string())
                    .unwrap_or_else(|| "none (runs only when started)".into()),
                next_run: when(sync::next_run(cfg, app.clock.now()), "—"),
                runs: runs.iter().map(run_line).collect(),
                ..line("LDAP", "")
            }
        }
    })
}

async fn signals_line(app: &App, d: &Directory) -> Result<Option<SignalsLine>, Error> {
    let Some(source) = crate::signals::source(d) else {
        return Ok(None);
    };
    let st = crate::signals::state::of(app, d.id()).await?;
    let now = app.clock.now();
    Ok(Some(SignalsLine {
        source: source.as_str(),
        connection: match (st.connected_at, &st.last_error) {
            _ if source == crate::signals::Source::SharedSignals => {
                "pushed to accesskeyd, or polled; no connection is held".into()
            }
            (Some(at), _) => format!(
                "connected since {} ({})",
                when(Some(at), ""),
                st.replica.as_deref().unwrap_or("")
            ),
            (None, Some(e)) => format!("not connected: {e}"),
            (None, None) => "not connected".into(),
        },
        last_event: when(st.last_event_at, "none yet"),
        cookie_age: st.cookie_at.map_or_else(
            || "none".into(),
            |c| format!("{} s", (now - c).num_seconds().max(0)),
        ),
        reconnects: st.reconnects,
        suspensions_today: st.suspensions_today,
        stopped: st
            .tripped_at
            .map(|at| {
                format!(
                    "{} (since {})",
                    st.tripped_reason.as_deref().unwrap_or(""),
                    when(Some(at), "")
                )
            })
            .unwrap_or_default(),
    }))
}

async fn resume_signals(
    State(state): State<AppState>,
    a: UiAdmin,
    Path(id): Path<DirectoryId>,
    Form(f): Form<CsrfOnly>,
) -> UiResult {
    a.0.check(f.csrf.as_deref())?;
    crate::signals::resume(&state.0, &a.0.p.actor(), &id).await?;
    Ok(see_other(&format!(
        "/ui/admin/directories?notice=signals-resumed#dir-{id}"
    )))
}

#[derive(Deserialize)]
struct SyncForm {
    csrf: Option<String>,
    dry_run: Option<String>,
}

async fn start_sync(
    State(state): State<AppState>,
    a: UiAdmin,
    Path(id): Path<DirectoryId>,
    Form(f): Form<SyncForm>,
) -> UiResult {
    a.0.check(f.csrf.as_deref())?;
    let row = sync::run_detached(
        state.0.services.clone(),
        Request {
            directory_id: id,
            dry_run: f.dry_run.as_deref() == Some("true"),
            trigger: Trigger::Ui,
            actor: a.0.p.actor(),
            approve_run: None,
        },
    )
    .await?;
    Ok(see_other(&format!(
        "/ui/admin/directories/{}/runs/{}",
        row.directory_id, row.id
    )))
}

async fn run_page(
    State(state): State<AppState>,
    a: UiAdmin,
    Path((id, run)): Path<(DirectoryId, i64)>,
    Query(q): Query<ListQuery>,
) -> UiResult {
    let dir = state
        .0
        .directory(&id)
        .ok_or_else(|| Error::not_found(format!("no directory with id `{id}`")))?;
    let row = sync::run_of(&state.0, dir.id(), run).await?;
    let plan = sync::plan_of(&row);
    let removals = plan
        .removals
        .iter()
        .chain(plan.expired.iter())
        .map(|x| {
            let why = match x.reason {
                Reason::Absent => "no longer in the directory",
                Reason::Disabled => "disabled in the directory",
            };
            (
                x.username.clone(),
                format!("{why}; {}", plural(x.keys, "access key")),
            )
        })
        .collect();
    Ok(render(
        StatusCode::OK,
        &RunPage {
            page: admin_page(&a, &format!("Run {run}"), q.notice.as_deref()),
            directory: dir.name().to_string(),
            directory_id: dir.id().to_string(),
            dry_run: row.dry_run,
            applied: row.status == RunStatus::Ok && !row.dry_run,
            blocked: row.status == RunStatus::Blocked,
            r: run_line(&row),
            removals,
        },
    ))
}

async fn approve_run(
    State(state): State<AppState>,
    a: UiAdmin,
    Path((id, run)): Path<(DirectoryId, i64)>,
    Form(f): Form<CsrfOnly>,
) -> UiResult {
    a.0.check(f.csrf.as_deref())?;
    let row = sync::run_detached(
        state.0.services.clone(),
        Request {
            directory_id: id,
            dry_run: false,
            trigger: Trigger::Ui,
            actor: a.0.p.actor(),
            approve_run: Some(run),
        },
    )
    .await?;
    Ok(see_other(&format!(
        "/ui/admin/directories/{}/runs/{}?notice=approved",
        row.directory_id, row.id
    )))
}

async fn audit_tab(
    State(state): State<AppState>,
    a: UiAdmin,
    Query(q): Query<ListQuery>,
) -> UiResult {
    let action = q.action.clone().unwrap_or_default().trim().to_string();
    let actor = q.actor.clone().unwrap_or_default().trim().to_string();
    let filter = Filter {
        action: (!action.is_empty()).then(|| action.clone()),
        actor: (!actor.is_empty()).then(|| actor.clone()),
    };
    let (rows, total) = audit::list(&state.0.store, filter, q.offset(), PAGE_SIZE).await?;
    let base = format!(
        "/ui/admin/audit?action={}&actor={}&",
        encode(&action),
        encode(&actor)
    );
    Ok(render(
        StatusCode::OK,
        &AuditTab {
            page: admin_page(&a, "Audit", None),
            pager: Pager::new(&base, q.offset(), rows.len(), total),
            entries: rows
                .into_iter()
                .map(|e| AuditLine {
                    at: when(Some(e.at), ""),
                    failed: e.outcome != "success",
                    action: e.action,
                    outcome: e.outcome,
                    actor: e.actor.unwrap_or_default(),
                    target: e.target.unwrap_or_default(),
                    detail: e.detail.unwrap_or_default(),
                    remote: e.remote_addr.unwrap_or_default(),
                })
                .collect(),
            action,
            actor,
            total,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_soonest_lapses_are_drawn_as_days_left_by_urgency() {
        let now = chrono::DateTime::from_timestamp(1_800_000_000, 0).expect("a time");
        let lapse = |name: &str, hours: i64| crate::key_report::Lapse {
            owner_id: crate::ids::UserId::from(name),
            username: name.to_string(),
            is_service_account: false,
            at: now + chrono::Duration::hours(hours),
            keys: 1,
        };
        let items = lapse_items(
            &[
                lapse("today", 5),
                lapse("soon", 49),
                lapse("later", 24 * 9),
                lapse("a-very-long-user-name-indeed", 24 * 3),
            ],
            now,
            3,
        );
        let got: Vec<(&str, i64, &str)> = items
            .iter()
            .map(|i| (i.label.as_str(), i.value, i.class))
            .collect();
        assert_eq!(
            got,
            [
                ("today", 1, "bad"),
                ("soon", 3, "warn"),
                ("later", 9, "good"),
                ("a-very-long-use…", 3, "warn"),
            ]
        );
    }

    /// The action of a form body, decoded as the form extractor decodes it.
    fn action(form: &str) -> Option<ValidityAction> {
        let uri: axum::http::Uri = format!("/?{form}").parse().expect("uri");
        axum::extract::Query::<ValidityForm>::try_from_uri(&uri)
            .expect("a validity form")
            .0
            .action
    }

    #[test]
    fn validity_actions_are_read_from_the_buttons() {
        assert_eq!(
            action("csrf=t&action=set&minutes=5"),
            Some(ValidityAction::Set)
        );
        assert_eq!(action("action=reset"), Some(ValidityAction::Reset));
        assert_eq!(action("action=disable"), Some(ValidityAction::Disable));
        assert_eq!(
            action("action=session-set&minutes=60"),
            Some(ValidityAction::SessionSet)
        );
        assert_eq!(
            action("action=session-reset"),
            Some(ValidityAction::SessionReset)
        );
        assert_eq!(
            action("action=session-other"),
            Some(ValidityAction::Unknown)
        );
        assert_eq!(action("action="), Some(ValidityAction::Unknown));
        assert_eq!(action("csrf=t"), None);
    }

    #[test]
    fn typed_minutes_are_whole_and_an_override_is_not_negative() {
        assert_eq!(override_minutes(" 90 ").ok(), Some(90));
        assert_eq!(override_minutes("0").ok(), Some(0));
        let e = override_minutes("-5").expect_err("negative");
        assert!(e.to_string().contains("cannot be negative"), "{e}");
        let e = override_minutes("1.5").expect_err("not whole");
        assert!(e.to_string().contains("`1.5` is not a whole number"), "{e}");
        assert_eq!(session_minutes("720").ok(), Some(720));
        let e = session_minutes("").expect_err("empty");
        assert!(e.to_string().contains("session duration"), "{e}");
    }
}
