-- Users of every directory. `id` is random and never reused, so a later user with the same
-- name never inherits anything; keys and sessions hang off the id, not the name.
CREATE TABLE users (
    id TEXT PRIMARY KEY NOT NULL,
    directory_id TEXT NOT NULL,
    external_id TEXT NOT NULL,
    username TEXT NOT NULL,
    display_name TEXT,
    first_name TEXT,
    last_name TEXT,
    email TEXT,
    is_admin BOOLEAN NOT NULL DEFAULT FALSE,
    is_enabled BOOLEAN NOT NULL DEFAULT TRUE,
    password_hash TEXT,
    created_at BIGINT NOT NULL,
    last_login_at BIGINT,
    access_key_validity_minutes BIGINT,
    UNIQUE (directory_id, external_id)
);
CREATE UNIQUE INDEX users_directory_username ON users (directory_id, username);

CREATE TABLE access_keys (
    id TEXT PRIMARY KEY NOT NULL,
    key_id TEXT NOT NULL UNIQUE,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    description TEXT,
    password_hash TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    last_used_at BIGINT
);
CREATE INDEX access_keys_user ON access_keys (user_id);

-- Session tokens are stored only as SHA-256 hashes. A session opened with a key points at
-- the key, so deleting the key deletes the session in the same statement.
CREATE TABLE sessions (
    token_hash TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    access_key_id TEXT REFERENCES access_keys (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX sessions_user ON sessions (user_id);
CREATE INDEX sessions_expires ON sessions (expires_at);

-- Runtime options changed by admins; absent rows take their default.
CREATE TABLE options (
    path TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    updated_by TEXT
);

-- Append-only audit trail. Never holds a secret.
CREATE TABLE audit_events (
    id BIGSERIAL PRIMARY KEY,
    at BIGINT NOT NULL,
    action TEXT NOT NULL,
    outcome TEXT NOT NULL,
    actor_user_id TEXT,
    actor TEXT,
    target_type TEXT,
    target_id TEXT,
    target TEXT,
    detail TEXT,
    remote_addr TEXT
);
CREATE INDEX audit_events_at ON audit_events (at);
