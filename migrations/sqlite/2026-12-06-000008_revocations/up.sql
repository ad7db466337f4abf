-- Changes that alter remembered authentication decisions, for the other processes on this
-- database file (a CLI sync beside the daemon): each polls rows after the last it saw.
-- PostgreSQL uses NOTIFY instead. Rows older than an hour are pruned by the cleanup job.
CREATE TABLE revocations (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at BIGINT NOT NULL,
    subject TEXT NOT NULL
);
CREATE INDEX revocations_at ON revocations (at);
