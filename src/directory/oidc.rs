//! OpenID Connect directories: the authorization-code flow with PKCE (S256), state and nonce,
//! ID-token validation (issuer, audience, signature via JWKS, expiry, nonce) with the
//! `openidconnect` crate, and claim mapping to a directory user.

use super::{DirectoryError, DirectoryUser};
use crate::config::OidcDirectoryConfig;
use base64::Engine;
use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreProviderMetadata};
use openidconnect::{
    AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, Nonce, OAuth2TokenResponse,
    PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope, TokenResponse,
};
use serde_json::{Map, Value};
use std::time::{Duration, Instant};
use tokio::sync::RwLock;

/// Provider metadata (endpoints and signing keys) is fetched again after this long, and at
/// once when an ID token is signed with a key we do not know (key rotation).
const METADATA_TTL: Duration = Duration::from_secs(600);

/// Tolerated clock difference with the provider when checking an ID token's expiry.
const CLOCK_SKEW_SECONDS: i64 = 60;

/// What the start of a login must remember until the callback.
#[derive(Debug, Clone)]
pub struct Pending {
    pub authorization_url: String,
    pub state: String,
    pub nonce: String,
    pub pkce_verifier: String,
}

pub struct OidcDirectory {
    cfg: OidcDirectoryConfig,
    http: reqwest::Client,
    metadata: RwLock<Option<(CoreProviderMetadata, Instant)>>,
}

fn unavailable(what: &str, e: impl std::fmt::Display) -> DirectoryError {
    DirectoryError::Unavailable(format!("{what}: {e}"))
}

/// A login that is refused (bad token, wrong audience, replayed code...): a 401 with reason.
fn refused(why: impl Into<String>) -> DirectoryError {
    DirectoryError::Refused(why.into())
}

impl OidcDirectory {
    /// Builds the directory from its configuration, which loading has checked (the issuer
    /// is an http(s) URL); fails only if the HTTP client cannot be set up.
    pub fn new(cfg: OidcDirectoryConfig) -> Result<OidcDirectory, DirectoryError> {
        let http = reqwest::Client::builder()
            // Following redirects from the provider's endpoints opens the door to SSRF.
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(cfg.timeout_seconds))
            .build()
            .map_err(|e| DirectoryError::Misconfigured(format!("HTTP client: {e}")))?;
        Ok(OidcDirectory {
            cfg,
            http,
            metadata: RwLock::new(None),
        })
    }

    pub fn config(&self) -> &OidcDirectoryConfig {
        &self.cfg
    }

    async fn metadata(&self, refresh: bool) -> Result<CoreProviderMetadata, DirectoryError> {
        if !refresh {
            if let Some((m, at)) = self.metadata.read().await.as_ref() {
                if at.elapsed() < METADATA_TTL {
                    return Ok(m.clone());
                }
            }
        }
        let issuer = IssuerUrl::new(self.cfg.issuer.clone())
            .map_err(|e| DirectoryError::Misconfigured(format!("issuer: {e}")))?;
        let m = CoreProviderMetadata::discover_async(issuer, &self.http)
            .await
            .map_err(|e| unavailable("OpenID provider discovery failed", e))?;
        *self.metadata.write().await = Some((m.clone(), Instant::now()));
        Ok(m)
    }

    /// For `accesskeyd check-config`: discovery works.
    pub async fn check(&self) -> Result<(), DirectoryError> {
        self.metadata(true).await.map(|_| ())
    }

    /// Begins a login: the URL to send the person to, and the state, nonce and PKCE
    /// verifier to keep (single use) until the callback.
    pub async fn start(&self, redirect_uri: &str) -> Result<Pending, DirectoryError> {
        let metadata = self.metadata(false).await?;
        let client = CoreClient::from_provider_metadata(
            metadata,
            ClientId::new(self.cfg.client_id.clone()),
            self.cfg
                .client_secret
                .as_ref()
                .map(|s| ClientSecret::new(s.expose().to_string())),
        )
        .set_redirect_uri(
            RedirectUrl::new(redirect_uri.to_string())
                .map_err(|e| DirectoryError::Misconfigured(format!("redirect URI: {e}")))?,
        );
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request = client.authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        );
        for scope in self.cfg.scopes.iter().filter(|s| s.as_str() != "openid") {
            request = request.add_scope(Scope::new(scope.clone()));
        }
        let (url, state, nonce) = request.set_pkce_challenge(challenge).url();
        Ok(Pending {
            authorization_url: url.to_string(),
            state: state.secret().clone(),
            nonce: nonce.secret().clone(),
            pkce_verifier: verifier.secret().clone(),
        })
    }

    /// Completes a login: exchanges the code (with the PKCE verifier), validates the ID
    /// token, reads userinfo when claims are missing, and maps the claims.
    pub async fn finish(
        &self,
        code: &str,
        pkce_verifier: &str,
        nonce: &str,
        redirect_uri: &str,
    ) -> Result<DirectoryUser, DirectoryError> {
        let metadata = self.metadata(false).await?;
        let userinfo_url = metadata.userinfo_endpoint().map(|u| u.url().clone());
        let client = CoreClient::from_provider_metadata(
            metadata,
            ClientId::new(self.cfg.client_id.clone()),
            self.cfg
                .client_secret
                .as_ref()
                .map(|s| ClientSecret::new(s.expose().to_string())),
        )
        .set_redirect_uri(
            RedirectUrl::new(redirect_uri.to_string())
                .map_err(|e| DirectoryError::Misconfigured(format!("redirect URI: {e}")))?,
        );
        let exchange = client
            .exchange_code(AuthorizationCode::new(code.to_string()))
            .map_err(|e| DirectoryError::Misconfigured(format!("token endpoint: {e}")))?
            .set_pkce_verifier(PkceCodeVerifier::new(pkce_verifier.to_string()));
        let token = match exchange.request_async(&self.http).await {
            Ok(t) => t,
            // The provider answered with an OAuth error (invalid_grant: a replayed or
            // expired code, a wrong verifier): the login is refused, the provider is fine.
            Err(openidconnect::RequestTokenError::ServerResponse(r)) => {
                return Err(refused(format!("the provider refused the code: {r}")))
            }
            Err(e) => return Err(unavailable("token request failed", e)),
        };
        let id_token = token
            .id_token()
            .ok_or_else(|| refused("the provider returned no ID token"))?;
        let nonce = Nonce::new(nonce.to_string());
        // A little clock skew between us and the provider must not fail fresh tokens.
        let skewed = client
            .id_token_verifier()
            .set_time_fn(|| chrono::Utc::now() - chrono::Duration::seconds(CLOCK_SKEW_SECONDS));
        let verified = match id_token.claims(&skewed, &nonce) {
            Ok(c) => Ok(c.subject().to_string()),
            Err(e) => Err(e),
        };
        let subject = match verified {
            Ok(s) => s,
            Err(first) => {
                // Perhaps the provider rotated its keys: fetch them again, check once more.
                let fresh = self.metadata(true).await?;
                let client = CoreClient::from_provider_metadata(
                    fresh,
                    ClientId::new(self.cfg.client_id.clone()),
                    None,
                );
                let verifier = client.id_token_verifier().set_time_fn(|| {
                    chrono::Utc::now() - chrono::Duration::seconds(CLOCK_SKEW_SECONDS)
                });
                id_token
                    .claims(&verifier, &nonce)
                    .map(|c| c.subject().to_string())
                    .map_err(|_| refused(format!("the ID token is not valid: {first}")))?
            }
        };
        // The token is verified; its payload holds the claims, standard or not.
        let mut claims = jwt_payload(&id_token.to_string())
            .ok_or_else(|| refused("the ID token payload cannot be read"))?;
        let missing = |c: &Map<String, Value>| {
            !c.contains_key(&self.cfg.username_claim)
                || self
                    .cfg
                    .groups_claim
                    .as_ref()
                    .is_some_and(|g| !c.contains_key(g))
        };
        if missing(&claims) {
            if let Some(url) = userinfo_url {
                let info: Map<String, Value> = self
                    .http
                    .get(url)
                    .bearer_auth(token.access_token().secret())
                    .send()
                    .await
                    .map_err(|e| unavailable("userinfo request failed", e))?
                    .error_for_status()
                    .map_err(|e| unavailable("userinfo request failed", e))?
                    .json()
                    .await
                    .map_err(|e| unavailable("userinfo answer unreadable", e))?;
                // Userinfo about someone else must not fill in this person's claims.
                if info.get("sub").and_then(Value::as_str) != Some(subject.as_str()) {
                    return Err(refused("userinfo is about another subject"));
                }
                for (k, v) in info {
                    claims.entry(k).or_insert(v);
                }
            }
        }
        self.map_claims(subject, &claims)
    }

    fn map_claims(
        &self,
        subject: String,
        claims: &Map<String, Value>,
    ) -> Result<DirectoryUser, DirectoryError> {
        let text = |k: &str| claims.get(k).and_then(Value::as_str).map(str::to_string);
        let username = text(&self.cfg.username_claim).ok_or_else(|| {
            refused(format!(
                "the provider sent no `{}` claim (username_claim)",
                self.cfg.username_claim
            ))
        })?;
        let groups: Vec<String> = match self.cfg.groups_claim.as_deref().and_then(|g| claims.get(g))
        {
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect(),
            Some(Value::String(s)) => vec![s.clone()],
            _ => Vec::new(),
        };
        if !self.cfg.allowed_groups.is_empty()
            && !groups.iter().any(|g| self.cfg.allowed_groups.contains(g))
        {
            return Err(refused(format!(
                "`{username}` is in none of the allowed groups of this directory"
            )));
        }
        let is_admin = self
            .cfg
            .admin_group
            .as_ref()
            .is_some_and(|a| groups.contains(a));
        Ok(DirectoryUser {
            external_id: subject,
            username,
            display_name: text("name"),
            first_name: text("given_name"),
            last_name: text("family_name"),
            email: text("email"),
            is_admin,
        })
    }
}

/// The decoded payload of a compact JWT.
fn jwt_payload(jwt: &str) -> Option<Map<String, Value>> {
    let payload = jwt.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;

    fn dir(groups: Option<&str>, allowed: &[&str], admin: Option<&str>) -> OidcDirectory {
        OidcDirectory::new(OidcDirectoryConfig {
            id: "idp".into(),
            name: "IdP".into(),
            issuer: "http://127.0.0.1:1".into(),
            client_id: "c".into(),
            client_secret: Some(Secret::new("s")),
            scopes: vec!["openid".into()],
            username_claim: "preferred_username".into(),
            groups_claim: groups.map(str::to_string),
            admin_group: admin.map(str::to_string),
            allowed_groups: allowed.iter().map(|s| s.to_string()).collect(),
            timeout_seconds: 5,
            removal_grace_hours: 0,
            username_claim_is_provider_controlled: false,
            pending_logins_per_address: 20,
            ssf: None,
        })
        .unwrap()
    }

    fn claims(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn claims_map_to_a_user() {
        let d = dir(Some("groups"), &[], Some("admins"));
        let u = d
            .map_claims(
                "sub-1".into(),
                &claims(serde_json::json!({"preferred_username": "ann", "email": "a@x", "name": "Ann", "groups": ["admins", "x"]})),
            )
            .unwrap();
        assert_eq!(
            (u.external_id.as_str(), u.username.as_str(), u.is_admin),
            ("sub-1", "ann", true)
        );
        assert_eq!(u.email.as_deref(), Some("a@x"));
        let err = d.map_claims("s".into(), &claims(serde_json::json!({"email": "a@x"})));
        assert!(matches!(err, Err(DirectoryError::Refused(m)) if m.contains("preferred_username")));
    }

    #[test]
    fn allowed_groups_gate_the_login() {
        let d = dir(Some("groups"), &["staff"], None);
        let c = claims(serde_json::json!({"preferred_username": "ann", "groups": "staff"}));
        assert!(d.map_claims("s".into(), &c).is_ok());
        let c = claims(serde_json::json!({"preferred_username": "ann", "groups": ["guests"]}));
        assert!(matches!(
            d.map_claims("s".into(), &c),
            Err(DirectoryError::Refused(_))
        ));
    }

    #[test]
    fn jwt_payloads_decode() {
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(br#"{"sub":"x"}"#);
        let m = jwt_payload(&format!("h.{payload}.s")).unwrap();
        assert_eq!(m["sub"], "x");
        assert!(jwt_payload("nope").is_none());
    }
}
