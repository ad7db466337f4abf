-- Session duration per user (minutes; NULL: the system option applies).
ALTER TABLE users ADD COLUMN session_duration_minutes BIGINT;
-- Service accounts: non-human built-in users with a responsible person. manager_id is not a
-- foreign key on purpose: when the manager is removed the account stays, suspended, until an
-- admin assigns someone else (the removal path does that in its own transaction).
ALTER TABLE users ADD COLUMN is_service_account BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE users ADD COLUMN manager_id TEXT;
CREATE INDEX users_manager ON users (manager_id);
-- Explicit end of a service-account key (epoch ms); NULL for people's keys.
ALTER TABLE access_keys ADD COLUMN expires_at BIGINT;

-- Warnings sent before keys stop working: one row per subject, lapse and channel, so nothing
-- is sent twice for the same lapse. A new sign-in moves the lapse, which re-arms it.
CREATE TABLE key_warnings (
    subject TEXT NOT NULL,
    lapse_at BIGINT NOT NULL,
    channel TEXT NOT NULL,
    sent_at BIGINT NOT NULL,
    PRIMARY KEY (subject, lapse_at, channel)
);
