-- What narrows, rotates and traces an access key.
-- scope: `full` (as before) or `read` (GET, HEAD and OPTIONS only).
ALTER TABLE access_keys ADD COLUMN scope TEXT NOT NULL DEFAULT 'full';
-- The client networks a key may be used from (CIDRs, comma-separated); NULL: anywhere.
ALTER TABLE access_keys ADD COLUMN allowed_networks TEXT NULL;
-- A keyed (peppered) HMAC-SHA256 of the password, to match a leaked password reported by a
-- secret scanner without hashing every key; NULL until known (keys from before, no pepper).
ALTER TABLE access_keys ADD COLUMN lookup_hash TEXT NULL;
-- A rotation's old password, accepted until previous_until so running jobs finish.
ALTER TABLE access_keys ADD COLUMN previous_password_hash TEXT NULL;
ALTER TABLE access_keys ADD COLUMN previous_lookup_hash TEXT NULL;
ALTER TABLE access_keys ADD COLUMN previous_until BIGINT NULL;
ALTER TABLE access_keys ADD COLUMN rotated_at BIGINT NULL;
CREATE INDEX access_keys_lookup ON access_keys (lookup_hash);
CREATE INDEX access_keys_previous_lookup ON access_keys (previous_lookup_hash);

-- The last distinct client addresses each key was used from (at most 5 kept per key).
CREATE TABLE key_uses (
    key_row_id TEXT NOT NULL REFERENCES access_keys (id) ON DELETE CASCADE,
    address TEXT NOT NULL,
    user_agent TEXT NULL,
    at BIGINT NOT NULL,
    PRIMARY KEY (key_row_id, address)
);

-- Key authentications per UTC day (days since 1970-01-01), summed over every process.
CREATE TABLE key_use_days (
    day BIGINT PRIMARY KEY NOT NULL,
    uses BIGINT NOT NULL DEFAULT 0
);
