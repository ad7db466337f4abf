//! The command line: `serve`, `migrate`, `check-config` and `local-user`.

use crate::app::App;
use crate::audit::Actor;
use crate::bearer;
use crate::clock::{Clock, SystemClock};
use crate::config::{Config, DirectoryConfig};
use crate::directory::ldap::LdapDirectory;
use crate::error::Error;
use crate::http::tls::{Expiry, ReloadCause, Reloaded, ServerTls};
use crate::ids::DirectoryId;
use crate::secret::Secret;
use crate::store::Store;
use crate::users;
use clap::{Parser, Subcommand};

mod accounts;
mod tokens;

pub use accounts::{LocalUser, ServiceAccount};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
pub use tokens::{EventToken, ScimToken};

#[derive(Debug, Parser)]
#[command(
    name = "accesskeyd",
    version,
    about = "Access keys for scripts, notebooks and OData clients, bound to people in the company directory",
    long_about = "accesskeyd issues access keys bound to users of LDAP / Active Directory or its \
                  built-in directory. A key works only while its owner has logged in \
                  interactively within the validity window.\n\nConfiguration: built-in defaults, \
                  then the TOML file given with --config (or ACCESSKEYD_CONFIG), then \
                  ACCESSKEYD_* environment variables (nested keys joined with __)."
)]
pub struct Cli {
    /// Configuration file (TOML). Without one, built-in defaults and ACCESSKEYD_* variables.
    #[arg(short, long, global = true, env = "ACCESSKEYD_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon: apply migrations, create the first admin if there is none, serve HTTP.
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Load and validate the configuration, connect to the database and to every directory,
    /// and print what is wrong. Exits non-zero if anything is.
    CheckConfig,
    /// Reconcile an LDAP directory now: remove users deleted (or disabled) upstream with
    /// their keys, follow renames, admin standing and last logins. Prints progress and a
    /// summary. Exit status: 0 done (or dry run), 1 failed, 3 blocked by the deletion
    /// threshold (approve with --approve-run).
    Sync {
        /// The directory id.
        directory: DirectoryId,
        /// Read and decide, but change nothing; list who would be removed.
        #[arg(long, conflicts_with = "approve_run")]
        dry_run: bool,
        /// Approve a blocked run: read again and remove at most the users that run named.
        #[arg(long, value_name = "RUN_ID")]
        approve_run: Option<i64>,
    },
    /// Copy users, access keys (hashes only), options and the audit trail from one database
    /// to another, e.g. from SQLite to PostgreSQL. The target must be empty; its schema is
    /// created. Everything lands in one transaction, verified by row counts. Stop the daemon
    /// first so nothing changes during the copy.
    MigrateData {
        /// Source database URL (sqlite://PATH or postgres://...).
        #[arg(long)]
        from: String,
        /// Target database URL (must be empty).
        #[arg(long)]
        to: String,
    },
    /// Write a consistent copy of the embedded SQLite database to a new file while the daemon
    /// runs (SQLite's VACUUM INTO: one snapshot, never torn), checked and readable only by
    /// its owner. To restore: stop the daemon, put the copy in place of the database file,
    /// remove the old file's -wal and -shm, start. On PostgreSQL use pg_dump instead.
    Backup {
        /// The new file (must not exist).
        #[arg(long)]
        to: std::path::PathBuf,
    },
    /// Manage the bearer tokens identity providers use for SCIM provisioning of an OpenID
    /// Connect directory (shown once at creation, stored hashed).
    #[command(subcommand)]
    ScimToken(ScimToken),
    /// Manage the tokens trusted systems use to report logins (POST /api/events/logins);
    /// shown once at creation, stored hashed.
    #[command(subcommand)]
    EventToken(EventToken),
    /// Send the warnings before keys lapse now (what the daily job does), and print what was
    /// sent. Needs [notifications].
    Notify,
    /// Manage service accounts (non-human users whose keys carry an expiry).
    #[command(subcommand)]
    ServiceAccount(ServiceAccount),
    /// Manage users of the built-in directory (passwords are read from standard input).
    #[command(subcommand)]
    LocalUser(LocalUser),
}

fn init_tracing(config: &Config) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&config.log.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if config.log.format == "json" {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

pub async fn run(cli: Cli) -> ExitCode {
    let config = match Config::load(cli.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("accesskeyd: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    // What only the directory modules can judge (an LDAP CA file's contents) is a
    // configuration error too, and gets the same exit code.
    if let Err(e) = crate::services::build_directories(&config) {
        eprintln!("accesskeyd: configuration error: {e}");
        return ExitCode::from(2);
    }
    // So is a keytab that cannot be read or lacks the service principal, or [windows] in a
    // build without Kerberos: checked here for every command, `check-config` included.
    if let Some(w) = &config.windows {
        if let Some(e) = crate::kerberos::Acceptor::new(w).err() {
            eprintln!("accesskeyd: configuration error: {e}");
            return ExitCode::from(2);
        }
    }
    // The HTTPS certificate and key: read and checked by the commands that use them (a
    // `local-user` run by an admin need not be able to read the service's key).
    let tls = match cli.command {
        Command::Serve | Command::CheckConfig => match ServerTls::load(&config.server) {
            Ok(tls) => tls.map(Arc::new),
            Err(e) => {
                eprintln!("accesskeyd: configuration error: {e}");
                return ExitCode::from(2);
            }
        },
        _ => None,
    };
    init_tracing(&config);
    let result = match cli.command {
        Command::Serve => serve(config, tls).await,
        Command::Migrate => migrate(config).await,
        Command::Backup { to } => backup(config, to).await,
        Command::CheckConfig => return check_config(config, tls.as_deref()).await,
        Command::MigrateData { from, to } => migrate_data(from, to).await,
        Command::Sync {
            directory,
            dry_run,
            approve_run,
        } => return sync(config, directory, dry_run, approve_run).await,
        Command::LocalUser(cmd) => accounts::local_user(config, cmd).await,
        Command::ScimToken(cmd) => {
            tokens::bearer_token(config, bearer::Kind::Scim, cmd.into()).await
        }
        Command::EventToken(cmd) => {
            tokens::bearer_token(config, bearer::Kind::Events, cmd.into()).await
        }
        Command::ServiceAccount(cmd) => accounts::service_account(config, cmd).await,
        Command::Notify => notify(config).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("accesskeyd: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(config: Config, tls: Option<Arc<ServerTls>>) -> anyhow::Result<()> {
    // Taken over first: SIGHUP's default action would end the process, and systemd's
    // ExecReload may send it at any time, also during a long migration at start.
    let reloads = reload_signals()?;
    let listen = config.server.listen.clone();
    let app = App::new(config, Arc::new(SystemClock)).await?;
    if let Some(tls) = &tls {
        crate::http::tls::announce(tls, app.clock.now(), &app.metrics);
    }
    if let Some(password) = users::ensure_initial_admin(&app).await? {
        let show =
            initial_password_destination(std::io::stdout().is_terminal(), &app.config.database.url);
        show_initial_password(show, &password);
    }
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e}"))?;
    let management_listen = app.config.server.management_listen.clone();
    let management = crate::http::bind_management(&management_listen)
        .await
        .map_err(|e| {
            anyhow::anyhow!("cannot listen on {management_listen} (server.management_listen): {e}")
        })?;
    if let Some(m) = &management {
        // The bound address, not the configured one: a port 0 becomes the one chosen.
        let address = m.local_addr()?;
        tracing::info!(address = %address, "accesskeyd management listening (/metrics, /healthz, /readyz)");
        // Before the `listening on` line, which tells scripts and tests that serve is up.
        println!("accesskeyd management on http://{address}");
    }
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!(address = %listen, version = env!("CARGO_PKG_VERSION"), %scheme, "accesskeyd listening");
    println!("accesskeyd listening on {scheme}://{listen}");
    let (key_uses, tally) = crate::jobs::spawn_key_use_days(app.clone());
    let mut jobs = vec![
        key_uses,
        crate::jobs::spawn_session_cleanup(app.clone()),
        crate::jobs::spawn_refusal_summary(app.clone()),
    ];
    jobs.extend(crate::jobs::spawn_sync_schedulers(app.clone()));
    jobs.extend(crate::jobs::spawn_lapse_warnings(app.clone()));
    jobs.extend(crate::feeds::spawn_change_feeds(app.clone()));
    jobs.extend(crate::jobs::spawn_ssf_pollers(app.clone()));
    jobs.extend(crate::systemd::spawn_watchdog());
    jobs.push(spawn_reloads(reloads, app.clone(), tls.clone()));
    if let Some(tls) = &tls {
        jobs.push(tokio::spawn(crate::http::tls::watch_files(
            tls.clone(),
            app.clone(),
        )));
    }
    // Listeners bound, migrations applied, the first admin made: systemd may go on.
    crate::systemd::ready();
    let shutdown = async {
        shutdown_signal().await;
        crate::systemd::stopping();
    };
    crate::http::serve_listeners(app.clone(), listener, tls, management, shutdown).await?;
    for job in jobs {
        job.abort();
    }
    // The last minute's key uses, so that a restart loses none.
    crate::jobs::flush_key_uses(&app, &tally).await;
    tracing::info!("accesskeyd stopped");
    Ok(())
}

/// Name of the file the first start writes the built-in admin's password to, when nobody
/// watches the console.
pub const INITIAL_PASSWORD_FILE: &str = "initial-admin-password";

/// Where the first start shows the built-in admin's password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasswordDestination {
    /// Someone watches the console: print it there, once.
    Terminal,
    /// stdout is a pipe or a file (systemd's journal, a log collector), where it would stay
    /// readable for as long as the log is kept: write it to this file (0600) instead.
    File(PathBuf),
}

/// Decides where the first admin password goes: the console when stdout is one, else a file
/// in the state directory (the SQLite file's directory; the working directory with
/// PostgreSQL, which under the systemd unit is /var/lib/accesskeyd).
pub fn initial_password_destination(
    stdout_is_terminal: bool,
    database_url: &str,
) -> PasswordDestination {
    if stdout_is_terminal {
        return PasswordDestination::Terminal;
    }
    let dir = match crate::store::Backend::parse(database_url) {
        Ok(crate::store::Backend::Sqlite(path)) => std::path::Path::new(&path)
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map(std::path::Path::to_path_buf),
        _ => None,
    };
    PasswordDestination::File(
        dir.unwrap_or_else(|| PathBuf::from("."))
            .join(INITIAL_PASSWORD_FILE),
    )
}

fn show_initial_password(destination: PasswordDestination, password: &Secret) {
    match destination {
        // Printed once, on the console only (not through the log pipeline), like Jenkins'
        // initial admin password. It is not stored anywhere in clear.
        PasswordDestination::Terminal => println!(
            "\n*************************************************************\n\
             accesskeyd created the built-in admin user `admin` with password:\n\n    {}\n\n\
             It is shown only this once. Log in and create your own admin, or change it with\n\
             `accesskeyd local-user passwd admin`.\n\
             *************************************************************\n",
            password.expose()
        ),
        PasswordDestination::File(path) => {
            let shown = std::path::absolute(&path).unwrap_or_else(|_| path.clone());
            match write_private_file(&path, password.expose()) {
                Ok(()) => println!(
                    "accesskeyd created the built-in admin user `admin`; its password is in {} \
                     (readable by this user only). Log in, create your own admin, then delete \
                     the file.",
                    shown.display()
                ),
                // The admin exists, but nobody can know its password: say how to set one.
                Err(e) => println!(
                    "accesskeyd created the built-in admin user `admin` but could not write its \
                     password to {}: {e}. Set one with `accesskeyd local-user passwd admin`.",
                    shown.display()
                ),
            }
        }
    }
}

/// Writes `text` to a new file that only this user can read. A file left from an earlier
/// first start is replaced; a symlink there is refused rather than followed.
fn write_private_file(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(format!("{text}\n").as_bytes())?;
    file.sync_all()
}

/// Reloads what changes without a restart: the HTTPS certificate and key (from the same
/// files; a bad file keeps the current certificate and logs why). Without TLS it logs that
/// there is nothing to reload. SIGHUP, and so `systemctl reload`, calls it. Blocking file
/// I/O: call it off the async threads.
pub fn reload(app: &App, tls: Option<&ServerTls>) -> Reloaded {
    crate::http::tls::reload(tls, ReloadCause::Signal, app.clock.now(), &app.metrics)
}

/// SIGHUP, taken over from its default action (the end of the process).
#[cfg(unix)]
fn reload_signals() -> anyhow::Result<Option<tokio::signal::unix::Signal>> {
    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .map(Some)
        .map_err(|e| anyhow::anyhow!("cannot handle SIGHUP: {e}"))
}

#[cfg(not(unix))]
fn reload_signals() -> anyhow::Result<Option<()>> {
    Ok(None)
}

/// Calls [`reload`] at every SIGHUP.
#[cfg(unix)]
fn spawn_reloads(
    signals: Option<tokio::signal::unix::Signal>,
    app: Arc<App>,
    tls: Option<Arc<ServerTls>>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let Some(mut signals) = signals else { return };
        while signals.recv().await.is_some() {
            // systemd hears of the reload (`systemctl reload` waits for it to end).
            crate::systemd::reloading();
            let (app, tls) = (app.clone(), tls.clone());
            let outcome = tokio::task::spawn_blocking(move || reload(&app, tls.as_deref())).await;
            crate::systemd::ready_after_reload(&match outcome {
                Ok(Reloaded::NothingToReload) => "serving; nothing to reload".to_string(),
                Ok(Reloaded::Replaced(cert)) => {
                    format!("serving with the new certificate (serial {})", cert.serial)
                }
                Ok(Reloaded::Kept { kept, .. }) => format!(
                    "serving with the old certificate (serial {}): the new files could not be used, see the log",
                    kept.serial
                ),
                Err(_) => "serving; the reload failed, see the log".to_string(),
            });
        }
    })
}

#[cfg(not(unix))]
fn spawn_reloads(
    _signals: Option<()>,
    _app: Arc<App>,
    _tls: Option<Arc<ServerTls>>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async {})
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

async fn migrate(config: Config) -> anyhow::Result<()> {
    let store = Store::open(&config.database)?;
    let applied = store.migrate().await?;
    if applied.is_empty() {
        println!("database is up to date");
    } else {
        for m in applied {
            println!("applied {m}");
        }
    }
    Ok(())
}

async fn backup(config: Config, to: std::path::PathBuf) -> anyhow::Result<()> {
    let backend = crate::store::Backend::parse(&config.database.url)?;
    let b =
        tokio::task::spawn_blocking(move || crate::store::backup::sqlite(&backend, &to)).await??;
    println!(
        "backup written to {}: {} users, {} access keys, {} bytes, integrity ok",
        b.path.display(),
        b.users,
        b.access_keys,
        b.bytes
    );
    Ok(())
}

async fn check_config(config: Config, tls: Option<&ServerTls>) -> ExitCode {
    let mut problems = 0;
    let db_name = crate::config::redact(&config.database.url);
    println!(
        "configuration: ok ({} directories)",
        config.directories.len()
    );
    if let Some(tls) = tls {
        let c = tls.certificate();
        println!(
            "TLS certificate {} with key {}: ok ({}, serial {}, expires {}, TLS {} and later)",
            tls.files().cert.display(),
            tls.files().key.display(),
            c.subject,
            c.serial,
            c.not_after,
            tls.files().min_version
        );
        match crate::http::tls::expiry(c.not_after, SystemClock.now()) {
            Expiry::Valid => {}
            Expiry::Soon { days_left } => {
                println!("  expires in {days_left} day(s): renew it (a reload picks it up)")
            }
            Expiry::Expired => {
                problems += 1;
                println!("  has expired: clients refuse it");
            }
        }
    }
    match Store::open(&config.database) {
        Ok(store) => match store.ready().await {
            Ok(()) => println!("database {}: ok", db_name),
            // `serve` applies them at start, so this is not a problem, just worth knowing.
            Err(Error::Unavailable(crate::error::Message::Public(m))) if m.contains("pending") => println!(
                "database {}: ok (migrations pending: `accesskeyd migrate` or `serve` applies them)",
                db_name
            ),
            Err(e) => {
                problems += 1;
                println!("database {}: {e}", db_name);
            }
        },
        Err(e) => {
            problems += 1;
            println!("database {}: {e}", db_name);
        }
    }
    for dir in &config.directories {
        match dir {
            DirectoryConfig::Builtin(b) => println!("directory {} (builtin): ok", b.id),
            DirectoryConfig::Ldap(l) => {
                let (result, controllers) = match LdapDirectory::new(l.as_ref().clone()) {
                    Ok(d) => (d.check().await, d.check_controllers().await),
                    Err(e) => (Err(e), Vec::new()),
                };
                match result {
                    Ok(()) => println!("directory {} (ldap {}): ok", l.id, l.url),
                    Err(e) => {
                        problems += 1;
                        println!("directory {} (ldap {}): {e}", l.id, l.url);
                    }
                }
                // lastLogon is read from each; one down is no failure at run time, but a
                // check should say so.
                for (controller, result) in controllers {
                    match result {
                        Ok(()) => println!("  domain controller {controller}: ok"),
                        Err(e) => {
                            problems += 1;
                            println!("  domain controller {controller}: {e}");
                        }
                    }
                }
            }
            DirectoryConfig::Oidc(o) => {
                let result = match crate::directory::oidc::OidcDirectory::new(o.as_ref().clone()) {
                    Ok(d) => d.check().await,
                    Err(e) => Err(e),
                };
                match result {
                    Ok(()) => println!("directory {} (oidc {}): ok", o.id, o.issuer),
                    Err(e) => {
                        problems += 1;
                        println!("directory {} (oidc {}): {e}", o.id, o.issuer);
                    }
                }
            }
        }
    }
    if problems == 0 {
        println!("all checks passed");
        ExitCode::SUCCESS
    } else {
        println!("{problems} problem(s) found");
        ExitCode::FAILURE
    }
}

async fn sync(
    config: Config,
    directory: DirectoryId,
    dry_run: bool,
    approve_run: Option<i64>,
) -> ExitCode {
    use crate::sync::RunStatus;
    let app = match App::new(config, Arc::new(SystemClock)).await {
        Ok(a) => a,
        Err(e) => {
            eprintln!("accesskeyd: {e}");
            return ExitCode::FAILURE;
        }
    };
    let request = crate::sync::Request {
        directory_id: directory,
        dry_run,
        trigger: crate::sync::Trigger::Cli,
        actor: Actor::system("cli"),
        approve_run,
    };
    let run = match crate::sync::run(&app, request, &|line| println!("{line}")).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("accesskeyd: {e}");
            return ExitCode::FAILURE;
        }
    };
    let plan = crate::sync::plan_of(&run);
    println!(
        "run {}: {} — read {}, matched {}, renamed {}, removed {}, suspended {}, restored {}, admin changes {}, last logins {}",
        run.id, run.status, run.read_count, run.matched, run.renamed, run.removed, run.suspended,
        run.restored, run.admin_changes, run.last_logins
    );
    let done = run.status == RunStatus::Ok;
    // With a grace period the run's removals are suspensions; expired ones are deletions.
    let removals_suspend = matches!(
        app.directory(&run.directory_id),
        Some(crate::directory::Directory::Ldap(l)) if l.config().sync.removal_grace_hours > 0
    );
    let listed = plan
        .removals
        .iter()
        .map(|r| {
            (
                r,
                if removals_suspend {
                    "suspend"
                } else {
                    "remove"
                },
            )
        })
        .chain(plan.expired.iter().map(|r| (r, "remove")));
    for (r, what) in listed {
        let verb = match (done, what) {
            (true, "suspend") => "suspended".to_string(),
            (true, _) => "removed".to_string(),
            (false, w) => format!("would {w}"),
        };
        println!(
            "  {verb} {} (id {}, stable id {}): {:?}, {} key(s)",
            r.username, r.user_id, r.external_id, r.reason, r.keys
        );
    }
    if let Some(e) = &run.error {
        println!("{e}");
    }
    match run.status {
        RunStatus::Ok | RunStatus::DryRun => ExitCode::SUCCESS,
        RunStatus::Blocked => ExitCode::from(3),
        RunStatus::Failed | RunStatus::Running => ExitCode::FAILURE,
    }
}

async fn notify(config: Config) -> anyhow::Result<()> {
    if config.notifications.is_none() {
        anyhow::bail!("no [notifications] section: configure SMTP and/or a webhook first");
    }
    let app = App::new(config, Arc::new(SystemClock)).await?;
    let r = crate::notify::run(&app).await?;
    println!(
        "warnings due: {}; sent: {} e-mail(s), {} webhook(s); already sent before: {}; failed: {}; without an e-mail address: {}",
        r.due, r.emails, r.webhooks, r.already_sent, r.failed, r.no_email
    );
    if r.failed > 0 {
        anyhow::bail!(
            "{} warning(s) could not be sent; the log says why",
            r.failed
        );
    }
    Ok(())
}

async fn migrate_data(from: String, to: String) -> anyhow::Result<()> {
    let (f, t) = (crate::config::redact(&from), crate::config::redact(&to));
    println!("copying {f} -> {t}");
    let counts = tokio::task::spawn_blocking(move || crate::transfer::copy(&from, &to)).await??;
    println!("copied and verified: {counts}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn on_a_terminal_the_password_is_printed() {
        assert_eq!(
            initial_password_destination(true, "sqlite:///var/lib/accesskeyd/accesskeyd.db"),
            PasswordDestination::Terminal
        );
    }

    #[test]
    fn under_a_service_manager_it_goes_to_a_file_in_the_state_directory() {
        assert_eq!(
            initial_password_destination(false, "sqlite:///var/lib/accesskeyd/accesskeyd.db"),
            PasswordDestination::File(PathBuf::from("/var/lib/accesskeyd/initial-admin-password"))
        );
        assert_eq!(
            initial_password_destination(false, "sqlite://accesskeyd.db"),
            PasswordDestination::File(PathBuf::from("./initial-admin-password"))
        );
        assert_eq!(
            initial_password_destination(false, "postgres://akd@db/akd"),
            PasswordDestination::File(PathBuf::from("./initial-admin-password"))
        );
    }

    #[test]
    fn the_file_is_readable_by_its_owner_only_and_replaces_an_old_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(INITIAL_PASSWORD_FILE);
        std::fs::write(&path, "old").unwrap();
        write_private_file(&path, "s3cret").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "s3cret\n");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
