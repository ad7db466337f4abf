DROP TABLE audit_events;
DROP TABLE options;
DROP TABLE sessions;
DROP TABLE access_keys;
DROP TABLE users;
