DROP TABLE key_warnings;
ALTER TABLE access_keys DROP COLUMN expires_at;
DROP INDEX users_manager;
ALTER TABLE users DROP COLUMN manager_id;
ALTER TABLE users DROP COLUMN is_service_account;
ALTER TABLE users DROP COLUMN session_duration_minutes;
