-- A user the directory no longer has, waiting out `removal_grace_hours`: keys and sessions
-- are refused from this moment; the user is deleted when the grace ends, restored if back.
ALTER TABLE users ADD COLUMN suspended_at BIGINT;

-- One row per directory reconciliation run.
CREATE TABLE sync_runs (
    id BIGSERIAL PRIMARY KEY,
    directory_id TEXT NOT NULL,
    started_at BIGINT NOT NULL,
    finished_at BIGINT,
    dry_run BOOLEAN NOT NULL,
    run_trigger TEXT NOT NULL,
    actor TEXT,
    replica TEXT NOT NULL,
    status TEXT NOT NULL,
    read_count BIGINT NOT NULL DEFAULT 0,
    matched BIGINT NOT NULL DEFAULT 0,
    renamed BIGINT NOT NULL DEFAULT 0,
    removed BIGINT NOT NULL DEFAULT 0,
    suspended BIGINT NOT NULL DEFAULT 0,
    restored BIGINT NOT NULL DEFAULT 0,
    admin_changes BIGINT NOT NULL DEFAULT 0,
    last_logins BIGINT NOT NULL DEFAULT 0,
    error TEXT,
    plan TEXT,
    approves_run_id BIGINT,
    approved_by TEXT,
    approved_at BIGINT
);
CREATE INDEX sync_runs_directory ON sync_runs (directory_id, id);
-- At most one run per directory at a time, across every replica.
CREATE UNIQUE INDEX sync_runs_one_running ON sync_runs (directory_id) WHERE status = 'running';
