//! Directory change feeds, run on the leading replica: OpenLDAP's content-synchronization
//! search (pushed by the server) and Active Directory's DirSync (polled), each resuming from
//! its stored cookie. What they report goes to `signals::feed`; a feed that drops reconnects
//! with backoff and never suspends anyone for having dropped.

use crate::app::App;
use crate::directory::ldap::feed::FeedBatch;
use crate::directory::ldap::LdapDirectory;
use crate::directory::{Directory, DirectoryError};
use crate::error::{Error, Result};
use crate::ids::DirectoryId;
use crate::signals::{self, state};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Backoff after a failure: doubles from the first to the last, reset by a session that ran
/// at least `STEADY` (a server that is up again is followed at once).
const BACKOFF_FIRST: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(60);
const STEADY: Duration = Duration::from_secs(60);
/// How often a follower checks it still leads, and a non-leader whether it leads now.
const LEAD_CHECK: Duration = Duration::from_secs(5);
/// Changes applied together (one local lookup for all of them), at most.
const BATCH: usize = 500;
/// Batches the server may run ahead of what has been applied: memory stays bounded.
const QUEUE: usize = 64;

/// Starts one follower per LDAP directory with `change_feed = true`.
pub fn spawn_change_feeds(app: Arc<App>) -> Vec<tokio::task::JoinHandle<()>> {
    app.directories
        .iter()
        .filter_map(|d| match d {
            Directory::Ldap(l) if l.config().change_feed.is_some() => Some(l.config().id.clone()),
            _ => None,
        })
        .map(|id| tokio::spawn(follow(app.clone(), id)))
        .collect()
}

fn ldap<'a>(app: &'a App, dir: &DirectoryId) -> Option<&'a LdapDirectory> {
    match app.directory(dir) {
        Some(Directory::Ldap(l)) => Some(l),
        _ => None,
    }
}

async fn leads(app: &Arc<App>) -> bool {
    let a = app.clone();
    matches!(
        tokio::task::spawn_blocking(move || a.leadership.claim_blocking()).await,
        Ok(Ok(true))
    )
}

/// Why a session with the server ended.
enum Ended {
    /// Another replica leads now.
    LostLead,
    Failed(Error),
}

async fn follow(app: Arc<App>, dir: DirectoryId) {
    let mut backoff = BACKOFF_FIRST;
    loop {
        if !leads(&app).await {
            tokio::time::sleep(LEAD_CHECK).await;
            continue;
        }
        let Some(l) = ldap(&app, &dir) else {
            return;
        };
        let started = Instant::now();
        let ended = if l.config().active_directory {
            poll_dirsync(&app, &dir).await
        } else {
            follow_syncrepl(&app, &dir).await
        };
        if started.elapsed() >= STEADY {
            backoff = BACKOFF_FIRST;
        }
        let error = match ended {
            Ended::LostLead => None,
            Ended::Failed(e) => {
                tracing::warn!(directory = %dir, error = %e, retry_in_s = backoff.as_secs(), "change feed stopped; reconnecting (nobody is suspended for it)");
                app.metrics.feed_reconnect(dir.as_str());
                Some(e.to_string())
            }
        };
        if let Err(e) = state::disconnected(&app, &dir, error).await {
            tracing::warn!(directory = %dir, error = %e, "could not record the change feed's state");
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

/// Applies a batch and then stores its cookie, so a restart never skips a change.
async fn apply(app: &Arc<App>, dir: &DirectoryId, batch: FeedBatch) -> Result<()> {
    let Some(l) = ldap(app, dir) else {
        return Ok(());
    };
    let n = batch.changes.len();
    if n > 0 {
        app.metrics.feed_changes(dir.as_str(), n as u64);
        let done = signals::feed::process(app, l, &batch.changes).await?;
        if done.suspended + done.lifted + done.withheld > 0 {
            tracing::info!(directory = %dir, changes = n, looked_up = done.looked_up, suspended = done.suspended, lifted = done.lifted, withheld = done.withheld, "change feed applied");
        }
    }
    state::save_cookie(app, dir, batch.cookie, n).await
}

/// OpenLDAP: one refreshAndPersist search until it fails or this replica stops leading.
async fn follow_syncrepl(app: &Arc<App>, dir: &DirectoryId) -> Ended {
    let cookie = match state::cookie(app, dir).await {
        Ok(c) => c,
        Err(e) => return Ended::Failed(e),
    };
    let (tx, mut rx) = mpsc::channel::<FeedBatch>(QUEUE);
    let (a, d) = (app.clone(), dir.clone());
    let mut search = tokio::spawn(async move {
        match ldap(&a, &d) {
            Some(l) => l.syncrepl(cookie, tx).await,
            None => Ok(()),
        }
    });
    let mut lead_check = tokio::time::interval(LEAD_CHECK);
    lead_check.tick().await;
    let mut connected = false;
    loop {
        tokio::select! {
            batch = rx.recv() => {
                let Some(mut batch) = batch else { break };
                if !connected {
                    connected = true;
                    if let Err(e) = state::connected(app, dir).await {
                        search.abort();
                        return Ended::Failed(e);
                    }
                }
                // Whatever else is already queued goes with it, up to a bound.
                while batch.changes.len() < BATCH {
                    match rx.try_recv() {
                        Ok(more) => {
                            batch.changes.extend(more.changes);
                            if more.cookie.is_some() {
                                batch.cookie = more.cookie;
                            }
                        }
                        Err(_) => break,
                    }
                }
                if let Err(e) = apply(app, dir, batch).await {
                    search.abort();
                    return Ended::Failed(e);
                }
            }
            _ = lead_check.tick() => {
                if !leads(app).await {
                    search.abort();
                    return Ended::LostLead;
                }
            }
        }
    }
    // The channel closed: the search ended; say why.
    match (&mut search).await {
        Ok(Ok(())) => Ended::Failed(Error::unavailable("the change feed's search ended")),
        Ok(Err(e)) => reset_or_fail(app, dir, e).await,
        Err(e) => Ended::Failed(Error::Internal(format!("change feed task failed: {e}"))),
    }
}

/// A cookie the server will not continue from is dropped: the next session starts from the
/// directory's current state (what changed in between is left to the scheduled sync).
async fn reset_or_fail(app: &Arc<App>, dir: &DirectoryId, e: DirectoryError) -> Ended {
    if let DirectoryError::FeedReset(why) = &e {
        tracing::warn!(directory = %dir, reason = %why, "the directory will not continue the change feed from its stored cookie; starting over from its current state");
        if let Err(e) = state::drop_cookie(app, dir).await {
            return Ended::Failed(e);
        }
    }
    Ended::Failed(Error::unavailable(e.to_string()))
}

/// Active Directory: DirSync polls every `change_feed_poll_seconds` until one fails or this
/// replica stops leading. Without a stored cookie the first poll only learns where "now" is:
/// what it returns is the whole directory, not changes.
async fn poll_dirsync(app: &Arc<App>, dir: &DirectoryId) -> Ended {
    let Some(every) = ldap(app, dir).and_then(|l| l.config().change_feed.as_ref().map(|f| f.poll))
    else {
        return Ended::LostLead;
    };
    let mut connected = false;
    let mut last_lead_check = Instant::now();
    loop {
        let Some(l) = ldap(app, dir) else {
            return Ended::LostLead;
        };
        let cookie = match state::cookie(app, dir).await {
            Ok(c) => c,
            Err(e) => return Ended::Failed(e),
        };
        let polled = match cookie {
            None => l.dirsync_baseline().await.map(|c| (None, c)),
            Some(c) => l.dirsync(Some(c)).await.map(|b| (Some(b), Vec::new())),
        };
        let (batch, baseline) = match polled {
            Ok(p) => p,
            Err(e) => return reset_or_fail(app, dir, e).await,
        };
        if !connected {
            connected = true;
            if let Err(e) = state::connected(app, dir).await {
                return Ended::Failed(e);
            }
        }
        let outcome = match batch {
            Some(batch) => apply(app, dir, batch).await,
            None => {
                tracing::info!(directory = %dir, "change feed starts from the directory's current state");
                state::save_cookie(app, dir, Some(baseline), 0).await
            }
        };
        if let Err(e) = outcome {
            return Ended::Failed(e);
        }
        tokio::time::sleep(every).await;
        if last_lead_check.elapsed() >= LEAD_CHECK {
            last_lead_check = Instant::now();
            if !leads(app).await {
                return Ended::LostLead;
            }
        }
    }
}
