DROP INDEX oidc_logins_client_addr;
ALTER TABLE oidc_logins DROP COLUMN client_addr;
ALTER TABLE oidc_logins DROP COLUMN binding_hash;
