-- The same table as on SQLite, so both backends have one schema; on PostgreSQL replicas
-- hear each other through NOTIFY accesskeyd_revocations and nothing is written here.
CREATE TABLE revocations (
    id BIGSERIAL PRIMARY KEY,
    at BIGINT NOT NULL,
    subject TEXT NOT NULL
);
CREATE INDEX revocations_at ON revocations (at);
