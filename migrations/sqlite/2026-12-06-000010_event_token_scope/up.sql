-- The directories an ingestion token may report logins for: a JSON array of directory ids.
-- NULL for tokens made before scopes existed: they report for every directory (never for
-- built-in admins, which no token may do).
ALTER TABLE event_tokens ADD COLUMN directory_ids TEXT;
