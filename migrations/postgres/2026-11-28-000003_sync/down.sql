DROP TABLE sync_runs;
ALTER TABLE users DROP COLUMN suspended_at;
