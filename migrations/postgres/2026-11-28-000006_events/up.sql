-- Tokens of trusted systems that report interactive logins (POST /api/events/logins); stored
-- only as SHA-256 hashes, shown once at creation.
CREATE TABLE event_tokens (
    id TEXT PRIMARY KEY NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    label TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    last_used_at BIGINT
);
