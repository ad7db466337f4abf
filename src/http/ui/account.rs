//! Sign-in (password, OpenID Connect, Windows), sign-out, and a person's own access keys.

use super::page::{error_page, render, see_other, CsrfOnly, Form, UiError, UiResult};
use super::session::{tokens_match, UiUser};
use super::views::{
    notice_text, when, window_text, ConfirmPage, Created, DirectoryChoice, KeyRow, KeysPage,
    LoginPage, Page, Validity,
};
use crate::auth::{self, LoginInput};
use crate::directory::Directory;
use crate::error::Error;
use crate::http::cookies;
use crate::http::error::domain_status;
use crate::http::extract::{Path, Query, RemoteAddr};
use crate::http::sign_in::{negotiate_header, start_oidc_login, windows_sign_in, WindowsOutcome};
use crate::http::state::AppState;
use crate::ids::DirectoryId;
use crate::key_format as format;
use crate::keys::{self, NewKey, Scope};
use crate::secret::Secret;
use crate::store::key_columns::{KeyScope, Networks};
use crate::store::timestamp::Timestamp;
use crate::users;
use axum::extract::State;
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use axum_extra::extract::cookie::CookieJar;
use chrono::{DateTime, Utc};
use serde::Deserialize;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/ui/login", get(login_page).post(login))
        .route("/ui/login/oidc/{id}", get(oidc))
        .route("/ui/login/windows", get(windows))
        .route("/ui/logout", post(logout))
        .route("/ui/keys", get(keys_page).post(create_key))
        .route(
            "/ui/keys/{key_id}/delete",
            get(confirm_delete).post(delete_key),
        )
        .route("/ui/keys/{key_id}/rotate", post(rotate_key))
        .route("/ui/keys/{key_id}/networks", post(set_networks))
}

#[derive(Deserialize)]
struct NoticeQuery {
    notice: Option<String>,
}

/// How the sign-in page is answered.
enum LoginAnswer {
    /// First shown, with the notice of a redirect.
    First { notice: Option<String> },
    /// Again after a refused attempt: its status and message, and what was typed (never the
    /// password).
    Again {
        status: StatusCode,
        error: String,
        directory: String,
        username: String,
    },
}

/// The sign-in page, with the cookie of its double-submit token when the browser has none.
fn login_form(state: &AppState, jar: CookieJar, answer: LoginAnswer) -> Response {
    let (csrf, jar) = login_csrf(state, jar);
    let mut page = Page::anonymous("Sign in");
    let (status, selected, username) = match answer {
        LoginAnswer::First { notice } => {
            page.notice = notice;
            (StatusCode::OK, default_directory(state), String::new())
        }
        LoginAnswer::Again {
            status,
            error,
            directory,
            username,
        } => {
            page.error = Some(error);
            (status, directory, username)
        }
    };
    let view = login_view(state, page, csrf, selected, username);
    (jar, render(status, &view)).into_response()
}

/// The sign-in form's token: the browser's own while it has one, so that two open tabs
/// both work; else a fresh one, set as its cookie.
fn login_csrf(state: &AppState, jar: CookieJar) -> (String, CookieJar) {
    match cookies::LOGIN_CSRF.read(&jar) {
        Some(token) => (token, jar),
        None => {
            let token = crate::sessions::random_token("");
            let jar = jar.add(cookies::LOGIN_CSRF.set(state, token.clone(), None));
            (token, jar)
        }
    }
}

/// The directory the form starts with: the first LDAP directory, if any.
fn default_directory(state: &AppState) -> String {
    state
        .0
        .directories
        .iter()
        .find(|d| matches!(d, Directory::Ldap(_)))
        .map(|d| d.id().to_string())
        .unwrap_or_default()
}

fn login_view(
    state: &AppState,
    page: Page,
    login_csrf: String,
    selected: String,
    username: String,
) -> LoginPage {
    let app = &state.0;
    let choices = |keep: fn(&Directory) -> bool| {
        app.directories
            .iter()
            .filter(|d| keep(d))
            .map(|d| DirectoryChoice {
                id: d.id().to_string(),
                name: d.name().to_string(),
            })
            .collect()
    };
    LoginPage {
        page,
        login_csrf,
        password_directories: choices(|d| matches!(d, Directory::Builtin(_) | Directory::Ldap(_))),
        oidc_directories: choices(|d| matches!(d, Directory::Oidc(_))),
        windows: app.kerberos.is_some() || app.config.proxy_auth.is_some(),
        selected,
        username,
    }
}

async fn login_page(
    State(state): State<AppState>,
    jar: CookieJar,
    Query(q): Query<NoticeQuery>,
) -> Response {
    let notice = notice_text(q.notice.as_deref());
    login_form(&state, jar, LoginAnswer::First { notice })
}

#[derive(Deserialize)]
struct LoginForm {
    csrf: Option<String>,
    directory: Option<String>,
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
}

async fn login(
    State(state): State<AppState>,
    RemoteAddr(addr): RemoteAddr,
    jar: CookieJar,
    Form(f): Form<LoginForm>,
) -> Response {
    let directory = f.directory.clone().unwrap_or_default();
    let username = f.username.clone();
    match password_sign_in(&state, addr, &jar, f).await {
        Ok(done) => signed_in(&state, jar, &done),
        Err((status, error)) => login_form(
            &state,
            jar,
            LoginAnswer::Again {
                status,
                error,
                directory,
                username,
            },
        ),
    }
}

/// Checks the sign-in form and signs in; a refusal in the words and status of the page.
async fn password_sign_in(
    state: &AppState,
    addr: Option<String>,
    jar: &CookieJar,
    f: LoginForm,
) -> Result<auth::LoggedIn, (StatusCode, String)> {
    let expected = cookies::LOGIN_CSRF.read(jar);
    if !tokens_match(expected.as_deref().unwrap_or(""), f.csrf.as_deref()) {
        return Err((
            StatusCode::FORBIDDEN,
            "The sign-in form expired or did not come from this page; please try again.".into(),
        ));
    }
    // Keys never open a browser session, whichever field they were typed into.
    if format::is_key_id(f.username.trim()) || format::is_password(f.password.trim()) {
        return Err((
            StatusCode::BAD_REQUEST,
            "That is an access key. Access keys are for scripts, notebooks and OData clients \
             (Excel, Power BI), not for signing in here: use your own username and password."
                .into(),
        ));
    }
    let input = LoginInput {
        username: f.username.trim().to_string(),
        password: Secret::new(f.password),
        directory_id: Some(DirectoryId::from(f.directory.unwrap_or_default())),
    };
    auth::login(&state.0, input, addr).await.map_err(|e| {
        let (status, message, _) = domain_status(e);
        (status, message)
    })
}

/// After a successful sign-in: the session cookie, the sign-in form's cookie cleared, and
/// on to the key list.
fn signed_in(state: &AppState, jar: CookieJar, done: &auth::LoggedIn) -> Response {
    let jar = cookies::LOGIN_CSRF
        .clear(state, jar)
        .add(cookies::session(state, done));
    (jar, see_other("/ui/keys")).into_response()
}

/// Starts an OpenID Connect login whose callback comes back to the pages.
async fn oidc(
    State(state): State<AppState>,
    Path(id): Path<DirectoryId>,
    parts: Parts,
) -> UiResult {
    let (url, binding) = start_oidc_login(&state, &id, &parts).await?;
    let back = cookies::UI_RETURN.set(&state, "1", Some(cookies::UI_RETURN_SECONDS));
    let jar = CookieJar::new().add(binding).add(back);
    Ok((jar, see_other(&url)).into_response())
}

/// Windows sign-in from the page: the browser answers the Negotiate challenge by itself.
async fn windows(State(state): State<AppState>, parts: Parts) -> UiResult {
    Ok(match windows_sign_in(&state, &parts).await? {
        WindowsOutcome::SignedIn(done, mutual) => {
            let jar = CookieJar::from_headers(&parts.headers);
            let mut r = signed_in(&state, jar, &done);
            if let Some(m) = mutual {
                r.headers_mut()
                    .insert(header::WWW_AUTHENTICATE, negotiate_header(Some(&m))?);
            }
            r
        }
        WindowsOutcome::NotConfigured(m) => {
            let mut r = error_page(Error::invalid(m));
            *r.status_mut() = StatusCode::NOT_FOUND;
            r
        }
        WindowsOutcome::Refused(e) => {
            let mut r = error_page(e);
            if r.status() == StatusCode::UNAUTHORIZED {
                r.headers_mut()
                    .insert(header::WWW_AUTHENTICATE, negotiate_header(None)?);
            }
            r
        }
    })
}

async fn logout(
    State(state): State<AppState>,
    u: UiUser,
    jar: CookieJar,
    Form(f): Form<CsrfOnly>,
) -> UiResult {
    u.check(f.csrf.as_deref())?;
    auth::logout(&state.0, &u.p).await?;
    let jar = cookies::SESSION.clear(&state, jar);
    Ok((jar, see_other("/ui/login?notice=signed-out")).into_response())
}

/// Whether the person's keys work, and until when: prominent when under 3 days away.
fn validity(info: &users::UserInfo, now: DateTime<Utc>) -> Validity {
    use crate::validity::Window;
    match (info.window, info.keys_valid_until()) {
        (Window::Disabled, _) => Validity {
            level: "stopped",
            text: "Your access keys are disabled by an administrator: they do not work, \
                   whenever you sign in."
                .into(),
        },
        (_, None) => Validity {
            level: "stopped",
            text: "Your access keys do not work yet: sign in interactively once.".into(),
        },
        (w, Some(until)) if until <= now => Validity {
            level: "stopped",
            text: format!(
                "Your access keys stopped working on {} because you had not signed in for {}. \
                 Signing in again makes them work again.",
                when(Some(until), ""),
                window_text(w)
            ),
        },
        (w, Some(until)) => Validity {
            level: if until - now < chrono::Duration::days(3) {
                "soon"
            } else {
                "ok"
            },
            text: format!(
                "Your access keys work until {} unless you sign in again before then \
                 (each interactive sign-in extends them by {}).",
                when(Some(until), ""),
                window_text(w)
            ),
        },
    }
}

async fn keys_view(
    state: &AppState,
    u: &UiUser,
    created: Option<Created>,
    notice: Option<String>,
    error: Option<String>,
) -> Result<KeysPage, Error> {
    let app = &state.0;
    let info = users::get(app, &u.p.user.id).await?;
    // Everyone's own keys fit on one page: the per-user maximum is small.
    let (rows, _) = keys::list(app, &u.p, Scope::Mine, None, 0, 1000).await?;
    let mut page = u.page("My access keys", "keys");
    page.notice = notice;
    page.error = error;
    Ok(KeysPage {
        page,
        validity: validity(&info, app.clock.now()),
        created,
        keys: rows
            .into_iter()
            .map(|k| KeyRow {
                read_only: k.row.scope == KeyScope::Read,
                networks: k
                    .row
                    .allowed_networks
                    .as_ref()
                    .map(ToString::to_string)
                    .unwrap_or_default(),
                recent: k
                    .recent_uses
                    .iter()
                    .map(|u| {
                        (
                            u.address.clone(),
                            when(Some(u.at.at()), ""),
                            u.user_agent.clone().unwrap_or_default(),
                        )
                    })
                    .collect(),
                label: k.row.name,
                description: k.row.description,
                key_id: k.row.key_id,
                created: when(Some(k.row.created_at.at()), ""),
                last_used: when(k.row.last_used_at.map(Timestamp::at), "never"),
            })
            .collect(),
        max_label: app.config.access_keys.max_label_length,
    })
}

async fn keys_page(
    State(state): State<AppState>,
    u: UiUser,
    Query(q): Query<NoticeQuery>,
) -> UiResult {
    let view = keys_view(&state, &u, None, notice_text(q.notice.as_deref()), None).await?;
    Ok(render(StatusCode::OK, &view))
}

#[derive(Deserialize)]
struct NewKeyForm {
    csrf: Option<String>,
    label: Option<String>,
    description: Option<String>,
    /// A checkbox: present when ticked.
    read_only: Option<String>,
    /// CIDRs separated by commas or spaces; empty: anywhere.
    networks: Option<String>,
}

/// The networks typed into the form: None when left empty.
fn form_networks(text: Option<&str>) -> Result<Option<Networks>, Error> {
    let items: Vec<&str> = text
        .unwrap_or_default()
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
        .collect();
    if items.is_empty() {
        return Ok(None);
    }
    Networks::parse(&items)
        .map(Some)
        .map_err(|e| Error::invalid(format!("allowed networks: {e}")))
}

/// Creates a key and shows its password once, in this answer only.
async fn create_key(
    State(state): State<AppState>,
    u: UiUser,
    Form(f): Form<NewKeyForm>,
) -> UiResult {
    u.check(f.csrf.as_deref())?;
    let scope = if f.read_only.is_some() {
        KeyScope::Read
    } else {
        KeyScope::Full
    };
    let result = match form_networks(f.networks.as_deref()) {
        Ok(allowed_networks) => {
            keys::create(
                &state.0,
                &u.p,
                NewKey {
                    name: f.label,
                    description: f.description,
                    user_id: None,
                    expiry: None,
                    scope,
                    allowed_networks,
                },
            )
            .await
        }
        Err(e) => Err(e),
    };
    match result {
        Ok((view, password)) => {
            let created = Created {
                label: view.row.name.clone(),
                key_id: view.row.key_id.clone(),
                password: password.expose().to_string(),
                rotated_until: None,
            };
            let page = keys_view(&state, &u, Some(created), None, None).await?;
            Ok(render(StatusCode::CREATED, &page))
        }
        Err(e @ (Error::Invalid(_) | Error::Conflict(_) | Error::Forbidden(_))) => {
            let (status, message, _) = domain_status(e);
            let page = keys_view(&state, &u, None, None, Some(message)).await?;
            Ok(render(status, &page))
        }
        Err(e) => Err(UiError(e)),
    }
}

/// Rotates one of the person's keys and shows the new password once.
async fn rotate_key(
    State(state): State<AppState>,
    u: UiUser,
    Path(key_id): Path<String>,
    Form(f): Form<CsrfOnly>,
) -> UiResult {
    u.check(f.csrf.as_deref())?;
    let (view, password) = keys::rotate(&state.0, &u.p, &key_id).await?;
    let now = state.0.clock.now();
    let until = view
        .row
        .previous_until
        .filter(|_| view.row.previous_hash_at(now).is_some())
        .map(|t| when(Some(t.at()), ""))
        .unwrap_or_default();
    let created = Created {
        label: view.row.name.clone(),
        key_id: view.row.key_id.clone(),
        password: password.expose().to_string(),
        rotated_until: Some(until),
    };
    let page = keys_view(&state, &u, Some(created), None, None).await?;
    Ok(render(StatusCode::OK, &page))
}

#[derive(Deserialize)]
struct NetworksForm {
    csrf: Option<String>,
    networks: Option<String>,
}

/// Changes where one of the person's keys may be used from (empty: anywhere).
async fn set_networks(
    State(state): State<AppState>,
    u: UiUser,
    Path(key_id): Path<String>,
    Form(f): Form<NetworksForm>,
) -> UiResult {
    u.check(f.csrf.as_deref())?;
    let result = match form_networks(f.networks.as_deref()) {
        Ok(networks) => keys::set_networks(&state.0, &u.p, &key_id, networks).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(_) => Ok(see_other("/ui/keys?notice=key-networks")),
        Err(e @ Error::Invalid(_)) => {
            let (status, message, _) = domain_status(e);
            let page = keys_view(&state, &u, None, None, Some(message)).await?;
            Ok(render(status, &page))
        }
        Err(e) => Err(UiError(e)),
    }
}

async fn confirm_delete(
    State(state): State<AppState>,
    u: UiUser,
    Path(key_id): Path<String>,
) -> UiResult {
    let (rows, _) = keys::list(&state.0, &u.p, Scope::Mine, None, 0, 1000).await?;
    let key = rows
        .into_iter()
        .find(|k| k.row.key_id == key_id)
        .ok_or_else(|| Error::not_found(format!("you have no access key `{key_id}`")))?;
    Ok(render(
        StatusCode::OK,
        &ConfirmPage {
            page: u.page("Delete access key", "keys"),
            heading: format!("Delete the access key “{}”?", key.row.name),
            message: format!(
                "Key {} stops working at once for every script and report that uses it. This cannot be undone.",
                key.row.key_id
            ),
            action: format!("/ui/keys/{}/delete", key.row.key_id),
            button: "Delete key".into(),
            cancel: "/ui/keys".into(),
        },
    ))
}

async fn delete_key(
    State(state): State<AppState>,
    u: UiUser,
    Path(key_id): Path<String>,
    Form(f): Form<CsrfOnly>,
) -> UiResult {
    u.check(f.csrf.as_deref())?;
    keys::delete(&state.0, &u.p, &key_id).await?;
    Ok(see_other("/ui/keys?notice=key-deleted"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::models::UserRow;
    use crate::store::timestamp::Timestamp;
    use crate::validity::Window;

    fn info(last_login: Option<DateTime<Utc>>, window: Window) -> users::UserInfo {
        users::UserInfo {
            row: UserRow {
                last_login_at: last_login.map(Timestamp::from),
                ..UserRow::fixture("alice")
            },
            window,
            session_minutes: 720,
            manager_name: None,
        }
    }

    #[test]
    fn the_banner_is_prominent_under_three_days_and_when_stopped() {
        let now = DateTime::parse_from_rfc3339("2026-11-28T12:00:00Z")
            .unwrap()
            .to_utc();
        let days = |d: i64| Window::Minutes(d * 1440);
        let v = validity(&info(Some(now), days(14)), now);
        assert_eq!(v.level, "ok");
        assert!(v.text.contains("2026-12-12 12:00 UTC"), "{}", v.text);
        let v = validity(&info(Some(now - chrono::Duration::days(12)), days(14)), now);
        assert_eq!(v.level, "soon", "{}", v.text);
        let v = validity(&info(Some(now - chrono::Duration::days(15)), days(14)), now);
        assert_eq!(v.level, "stopped");
        assert!(
            v.text.contains("stopped working on 2026-11-27"),
            "{}",
            v.text
        );
        assert_eq!(validity(&info(None, days(14)), now).level, "stopped");
        let v = validity(&info(Some(now), Window::Disabled), now);
        assert_eq!(v.level, "stopped");
        assert!(v.text.contains("disabled by an administrator"));
    }
}
