-- Whether the one email SCIM keeps of a user was sent as the primary one (RFC 7643 §2.4), so
-- that it comes back as sent. TRUE for records made before, by a login, or by a provider that
-- did not send `primary`: the only email kept is the preferred one.
ALTER TABLE users ADD COLUMN scim_email_primary BOOLEAN NOT NULL DEFAULT TRUE;
