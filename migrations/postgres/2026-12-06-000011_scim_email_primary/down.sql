ALTER TABLE users DROP COLUMN scim_email_primary;
