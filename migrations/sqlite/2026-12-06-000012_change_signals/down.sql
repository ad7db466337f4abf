DROP TABLE ssf_seen;
DROP TABLE signal_suspensions;
DROP TABLE change_feeds;
ALTER TABLE users DROP COLUMN keys_lapsed_at;
ALTER TABLE users DROP COLUMN suspended_by_signal;
