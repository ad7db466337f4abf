ALTER TABLE users DROP COLUMN scim_external_id;
DROP TABLE scim_tokens;
