-- A pending OpenID Connect login is bound to the browser that started it: the SHA-256 of the
-- secret in its `accesskeyd_oidc_binding` cookie (login CSRF), and counted per client
-- address (`client_addr`, an IPv4 address or an IPv6 /64) so that no single address can fill
-- the global cap of pending logins. Rows made before this migration have neither and cannot
-- finish; they expire within 10 minutes.
ALTER TABLE oidc_logins ADD COLUMN binding_hash TEXT;
ALTER TABLE oidc_logins ADD COLUMN client_addr TEXT;
CREATE INDEX oidc_logins_client_addr ON oidc_logins (client_addr, expires_at);
