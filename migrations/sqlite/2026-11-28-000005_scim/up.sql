-- Bearer tokens SCIM clients (the identity provider) use, one directory each; stored only
-- as SHA-256 hashes, shown once at creation.
CREATE TABLE scim_tokens (
    id TEXT PRIMARY KEY NOT NULL,
    directory_id TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    label TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    last_used_at BIGINT
);

-- The identity provider's own id for a user (SCIM externalId), as it sent it.
ALTER TABLE users ADD COLUMN scim_external_id TEXT;
