-- Suspensions by change signals (directory change feeds, OpenID Shared Signals). They stop
-- keys and sessions through suspended_at like every suspension; suspended_by_signal names the
-- signal, so a signal that the person is back may lift it, and so reconciliation counts their
-- removal against its thresholds instead of treating them as already suspended.
ALTER TABLE users ADD COLUMN suspended_by_signal TEXT NULL;
-- Keys refused until an interactive login after this time (a credential revoked or
-- compromised upstream): the validity window counts only logins after it.
ALTER TABLE users ADD COLUMN keys_lapsed_at BIGINT NULL;

-- One row per directory with a change feed: where it resumes, and what it is doing.
CREATE TABLE change_feeds (
    directory_id TEXT PRIMARY KEY NOT NULL,
    cookie TEXT NULL,
    cookie_at BIGINT NULL,
    replica TEXT NULL,
    connected_at BIGINT NULL,
    last_event_at BIGINT NULL,
    last_error TEXT NULL,
    reconnects BIGINT NOT NULL DEFAULT 0,
    tripped_at BIGINT NULL,
    tripped_reason TEXT NULL
);

-- Suspensions made by signals, for the threshold window and "suspensions today"; pruned
-- after a week by the cleanup job.
CREATE TABLE signal_suspensions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    directory_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    at BIGINT NOT NULL,
    signal TEXT NOT NULL
);
CREATE INDEX signal_suspensions_dir_at ON signal_suspensions (directory_id, at);

-- Security Event Tokens already accepted, by issuer and jti, to refuse replays; kept as long
-- as a SET is fresh enough to be accepted.
CREATE TABLE ssf_seen (
    issuer TEXT NOT NULL,
    jti TEXT NOT NULL,
    seen_at BIGINT NOT NULL,
    PRIMARY KEY (issuer, jti)
);
CREATE INDEX ssf_seen_at ON ssf_seen (seen_at);
