//! The view models of the web pages: the values each askama template is rendered from, the
//! layout every page shares, and how dates, windows and counts read on a page. Handlers
//! fill these in; nothing here talks to the domain.

use super::charts::Chart;
use crate::validity::Window;
use askama::Template;
use chrono::{DateTime, Utc};

/// What every page's layout shows.
pub struct Page {
    pub title: String,
    pub nav: Option<Nav>,
    /// `keys` or `admin`: the highlighted main navigation entry.
    pub section: &'static str,
    pub csrf: String,
    pub notice: Option<String>,
    pub error: Option<String>,
}

/// The signed-in person's navigation bar.
pub struct Nav {
    pub name: String,
    pub directory: String,
    pub is_admin: bool,
}

impl Page {
    /// A page for someone not signed in.
    pub fn anonymous(title: &str) -> Page {
        Page {
            title: title.to_string(),
            nav: None,
            section: "",
            csrf: String::new(),
            notice: None,
            error: None,
        }
    }
}

/// A failed request.
#[derive(Template)]
#[template(path = "error.html", config = "src/http/ui/askama.toml")]
pub struct ErrorPage {
    pub page: Page,
    pub heading: String,
    pub message: String,
    pub back: &'static str,
    pub back_label: &'static str,
}

// Shared by the pages that delete something.

/// "Really delete?": a form that posts to `action`.
#[derive(Template)]
#[template(path = "confirm.html", config = "src/http/ui/askama.toml")]
pub struct ConfirmPage {
    pub page: Page,
    pub heading: String,
    pub message: String,
    pub action: String,
    pub button: String,
    pub cancel: String,
}

/// Previous / next links of a paged list.
pub struct Pager {
    pub prev: Option<String>,
    pub next: Option<String>,
    pub range: String,
}

/// Rows per page of the Admin Panel's lists.
pub const PAGE_SIZE: i64 = 50;

impl Pager {
    /// `base` ends in `?` or `&` so that `offset=` can follow.
    pub fn new(base: &str, offset: i64, shown: usize, total: i64) -> Pager {
        let end = offset + shown as i64;
        Pager {
            prev: (offset > 0).then(|| format!("{base}offset={}", (offset - PAGE_SIZE).max(0))),
            next: (end < total).then(|| format!("{base}offset={end}")),
            range: if shown == 0 {
                String::new()
            } else {
                format!("{}–{end} of {total}", offset + 1)
            },
        }
    }
}

// The sign-in page and a person's own keys (`account`).

/// A directory to sign in with.
pub struct DirectoryChoice {
    pub id: String,
    pub name: String,
}

#[derive(Template)]
#[template(path = "login.html", config = "src/http/ui/askama.toml")]
pub struct LoginPage {
    pub page: Page,
    pub login_csrf: String,
    pub password_directories: Vec<DirectoryChoice>,
    pub oidc_directories: Vec<DirectoryChoice>,
    pub windows: bool,
    pub selected: String,
    pub username: String,
}

/// One of the person's own keys.
pub struct KeyRow {
    pub label: String,
    pub description: Option<String>,
    pub key_id: String,
    pub created: String,
    pub last_used: String,
    /// Only GET, HEAD and OPTIONS.
    pub read_only: bool,
    /// The networks it may be used from ("" when anywhere).
    pub networks: String,
    /// Where it was used from lately: (address, when, user agent), newest first.
    pub recent: Vec<(String, String, String)>,
}

/// A key just created or rotated, with its password: shown in this answer only.
pub struct Created {
    pub label: String,
    pub key_id: String,
    pub password: String,
    /// A rotation: the old password still works until this (empty: it stopped).
    pub rotated_until: Option<String>,
}

/// Whether the person's keys work, and until when: prominent when under 3 days away.
pub struct Validity {
    pub level: &'static str,
    pub text: String,
}

#[derive(Template)]
#[template(path = "keys.html", config = "src/http/ui/askama.toml")]
pub struct KeysPage {
    pub page: Page,
    pub validity: Validity,
    pub created: Option<Created>,
    pub keys: Vec<KeyRow>,
    pub max_label: usize,
}

// The Admin Panel (`admin`).

/// A key in the list of every key.
pub struct KeyLine {
    pub owner: String,
    pub owner_is_admin: bool,
    pub label: String,
    pub key_id: String,
    pub created: String,
    pub last_used: String,
    /// A read-only key (`read` scope).
    pub read_only: bool,
    /// The networks it may be used from; empty: anywhere.
    pub networks: String,
    /// The newest client address it was used from; empty when none is known.
    pub last_address: String,
}

/// A directory's recent sync runs as the overview draws them.
pub struct RunsChart {
    pub directory: String,
    pub chart: Chart,
    /// The runs in words, oldest first: when, status, removals.
    pub runs: Vec<RunFact>,
}

/// One run under its chart.
pub struct RunFact {
    pub started: String,
    pub status: String,
    pub removed: i64,
}

/// Someone whose keys lapse soon.
pub struct LapseLine {
    pub username: String,
    pub user_id: String,
    pub kind: &'static str,
    pub at: String,
    pub keys: i64,
}

/// The Admin Panel's landing tab: keys by state, uses per day, sync runs, soonest lapses.
#[derive(Template)]
#[template(path = "admin_overview.html", config = "src/http/ui/askama.toml")]
pub struct OverviewTab {
    pub page: Page,
    pub states: Chart,
    pub total_keys: i64,
    pub warning_days: i64,
    pub uses: Chart,
    pub uses_total: i64,
    pub uses_days: i64,
    pub directories: Vec<RunsChart>,
    pub soonest: Vec<LapseLine>,
    /// The same, as bars of the days left.
    pub soonest_chart: Chart,
}

#[derive(Template)]
#[template(path = "admin_keys.html", config = "src/http/ui/askama.toml")]
pub struct KeysTab {
    pub page: Page,
    pub q: String,
    pub keys: Vec<KeyLine>,
    pub total: i64,
    pub pager: Pager,
}

/// A user as the user list and the user page show them.
pub struct UserLine {
    pub id: String,
    pub username: String,
    pub display_name: String,
    pub is_admin: bool,
    pub is_service_account: bool,
    pub manager: String,
    pub session: String,
    pub status: String,
    pub directory: String,
    pub last_login: String,
    pub validity: String,
    pub valid_until: String,
}

#[derive(Template)]
#[template(path = "admin_users.html", config = "src/http/ui/askama.toml")]
pub struct UsersTab {
    pub page: Page,
    pub users: Vec<UserLine>,
    pub total: i64,
    pub pager: Pager,
}

#[derive(Template)]
#[template(path = "admin_user.html", config = "src/http/ui/askama.toml")]
pub struct UserPage {
    pub page: Page,
    pub u: UserLine,
    pub override_text: String,
    pub override_value: String,
    pub key_count: i64,
    pub system_days: i64,
}

/// A runtime option.
pub struct OptionLine {
    pub path: String,
    pub description: String,
    pub value: String,
    pub default_value: String,
    pub units: String,
    pub modifiable: bool,
    pub is_bool: bool,
}

#[derive(Template)]
#[template(path = "admin_config.html", config = "src/http/ui/askama.toml")]
pub struct ConfigTab {
    pub page: Page,
    pub options: Vec<OptionLine>,
}

/// A sync run.
pub struct RunLine {
    pub id: i64,
    pub started: String,
    pub status: String,
    pub status_class: &'static str,
    pub trigger: String,
    pub read: i64,
    pub removed: i64,
    pub note: String,
}

/// A directory with its recent sync runs.
pub struct DirectoryLine {
    pub id: String,
    pub name: String,
    pub kind: &'static str,
    pub syncs: bool,
    pub kind_note: &'static str,
    pub schedule: String,
    pub next_run: String,
    pub runs: Vec<RunLine>,
    /// Its change signals, when it has any.
    pub signals: Option<SignalsLine>,
}

/// A directory's change signals on the Directories tab.
pub struct SignalsLine {
    pub source: &'static str,
    pub connection: String,
    pub last_event: String,
    pub cookie_age: String,
    pub reconnects: i64,
    pub suspensions_today: i64,
    /// Why signals stopped suspending; empty while they run.
    pub stopped: String,
}

#[derive(Template)]
#[template(path = "admin_directories.html", config = "src/http/ui/askama.toml")]
pub struct DirectoriesTab {
    pub page: Page,
    pub directories: Vec<DirectoryLine>,
}

#[derive(Template)]
#[template(path = "admin_run.html", config = "src/http/ui/askama.toml")]
pub struct RunPage {
    pub page: Page,
    pub directory: String,
    pub directory_id: String,
    pub r: RunLine,
    pub dry_run: bool,
    pub applied: bool,
    pub blocked: bool,
    pub removals: Vec<(String, String)>,
}

/// An audit event.
pub struct AuditLine {
    pub at: String,
    pub action: String,
    pub outcome: String,
    pub failed: bool,
    pub actor: String,
    pub target: String,
    pub detail: String,
    pub remote: String,
}

#[derive(Template)]
#[template(path = "admin_audit.html", config = "src/http/ui/askama.toml")]
pub struct AuditTab {
    pub page: Page,
    pub action: String,
    pub actor: String,
    pub entries: Vec<AuditLine>,
    pub total: i64,
    pub pager: Pager,
}

// How values read on a page.

/// Date and time as the pages show them.
pub fn when(t: Option<DateTime<Utc>>, none: &str) -> String {
    t.map_or_else(
        || none.to_string(),
        |t| t.format("%Y-%m-%d %H:%M UTC").to_string(),
    )
}

/// A validity window in words: `14 days`, `90 minutes`, `disabled`.
pub fn window_text(w: Window) -> String {
    match w {
        Window::Disabled => "disabled".into(),
        Window::Minutes(m) if m % 1440 == 0 => plural(m / 1440, "day"),
        Window::Minutes(m) if m % 60 == 0 => plural(m / 60, "hour"),
        Window::Minutes(m) => plural(m, "minute"),
    }
}

/// `1 day`, `2 days`.
pub fn plural(n: i64, unit: &str) -> String {
    if n == 1 {
        format!("1 {unit}")
    } else {
        format!("{n} {unit}s")
    }
}

/// Fixed texts for `?notice=` after a redirect (never text from the request itself).
pub fn notice_text(code: Option<&str>) -> Option<String> {
    let text = match code? {
        "expired" => "Your session has ended. Please sign in again.",
        "signed-out" => "You are signed out.",
        "key-deleted" => "The access key was deleted; it no longer works.",
        "key-networks" => "Where the access key may be used from was changed.",
        "user-deleted" => "The user was deleted with their access keys and sessions.",
        "saved" => "Saved.",
        "approved" => "The removals were approved and applied.",
        "signals-resumed" => "Change signals suspend people again.",
        _ => return None,
    };
    Some(text.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_read_in_whole_units() {
        assert_eq!(window_text(Window::Minutes(14 * 1440)), "14 days");
        assert_eq!(window_text(Window::Minutes(120)), "2 hours");
        assert_eq!(window_text(Window::Minutes(1)), "1 minute");
        assert_eq!(window_text(Window::Disabled), "disabled");
    }

    #[test]
    fn pager_links() {
        let p = Pager::new("/ui/admin/keys?", 0, 50, 120);
        assert_eq!(p.prev, None);
        assert_eq!(p.next.as_deref(), Some("/ui/admin/keys?offset=50"));
        let p = Pager::new("/x?q=a&", 100, 20, 120);
        assert_eq!(p.prev.as_deref(), Some("/x?q=a&offset=50"));
        assert_eq!(p.next, None);
        assert_eq!(p.range, "101–120 of 120");
    }
}
