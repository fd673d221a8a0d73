//! The typed Rust SDK for Muster's HTTP API, used by `muster push`,
//! `muster admin` and integration tests.
//!
//! A [`Client`] speaks for one credential: an admin API token, or an
//! integration client's id and secret ([`Auth`]). With client credentials
//! it fetches OAuth 2.0 access tokens itself (RFC 6749 4.4), keeps one until
//! [`RENEW_MARGIN`] before it expires, and when the API refuses a token with
//! `WWW-Authenticate: Bearer error="invalid_token"` (a one-time token is
//! consumed by its first use) it drops it and retries the request once with
//! a fresh one. Every request is built by a closure so that the retry can
//! rebuild its body; a streamed file upload reopens the file.
//!
//! Each route has one method returning `Result<T, ClientError>`; see
//! [`ClientError`] for what can go wrong. Secrets are kept in
//! [`SecretString`] and `Debug` of [`Client`] and [`Auth`] redacts them.
//!
//! ```no_run
//! # async fn demo() -> Result<(), muster_client::ClientError> {
//! use muster_client::{Auth, Client, ImportParams, SecretString};
//! let auth = Auth::client_credentials("hr-feed", SecretString::from("mcs_..."));
//! let client = Client::new("https://muster.example.com", auth)?;
//! let (_, accepted) = client
//!     .upload_import("people.csv".as_ref(), &ImportParams::new("workday"), |_| {})
//!     .await?;
//! let done = client
//!     .wait_import(&accepted.id, std::time::Duration::from_secs(600))
//!     .await?;
//! println!("{} rows", done.counts.rows_total);
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]

mod auth;
mod error;
mod params;
mod signer;
mod sse;
mod subscriptions;

pub use auth::{
    basic_authorization, bearer_error, renewal_due, Auth, ClientAuthMethod, TokenCache,
    RENEW_MARGIN,
};
pub use error::ClientError;
pub use params::{EncryptTo, ImportEvent, ImportFormat, ImportMode, ImportParams, MappingFormat};
pub use reqwest::StatusCode;
pub use secrecy::{ExposeSecret, SecretString};
pub use signer::{JwtAssertionKey, RequestSigner, JWT_BEARER};

use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use muster_intake::decrypt::{encrypt_writer, PublicRecipient};
use muster_proto::*;
use reqwest::header::{HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use reqwest::{Method, RequestBuilder, Response};
use serde::de::DeserializeOwned;
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The events of one import, ending after [`ImportEvent::Done`].
pub type ImportEventStream = BoxStream<'static, Result<ImportEvent, ClientError>>;

/// Polling of [`Client::wait_import`] starts this fast...
const POLL_FIRST: Duration = Duration::from_millis(100);
/// ...and slows down to this.
const POLL_MAX: Duration = Duration::from_secs(2);
/// Uploads are read in pieces of this size.
const UPLOAD_CHUNK: usize = 256 * 1024;

const ON_BEHALF_OF: &str = "on-behalf-of";
const IDEMPOTENCY_KEY: &str = "idempotency-key";

type Progress = Arc<dyn Fn(u64) + Send + Sync>;

/// A connection to one gateway with one credential. Cheap to clone; clones
/// share the connection pool and the cached token.
#[derive(Clone)]
pub struct Client {
    base: String,
    http: reqwest::Client,
    auth: Arc<Auth>,
    tokens: Arc<tokio::sync::Mutex<TokenCache>>,
    on_behalf_of: Option<HeaderValue>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("base_url", &self.base)
            .field("auth", &self.auth)
            .field("on_behalf_of", &self.on_behalf_of)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A client for the gateway at `base_url` (e.g. `http://127.0.0.1:8080`;
    /// a path prefix is kept).
    pub fn new(base_url: &str, auth: Auth) -> Result<Self, ClientError> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("muster-client/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(ClientError::transport)?;
        Self::with_http_client(base_url, auth, http)
    }

    /// Like [`Client::new`] with a `reqwest::Client` of the caller's (for
    /// its own TLS roots, proxies or timeouts).
    pub fn with_http_client(
        base_url: &str,
        auth: Auth,
        http: reqwest::Client,
    ) -> Result<Self, ClientError> {
        let base = base_url.trim_end_matches('/');
        match reqwest::Url::parse(base) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.has_host() => {}
            _ => {
                return Err(ClientError::InvalidInput(format!(
                    "'{base}' is not an http:// or https:// URL"
                )))
            }
        }
        Ok(Self {
            base: base.to_owned(),
            http,
            auth: Arc::new(auth),
            tokens: Arc::new(tokio::sync::Mutex::new(TokenCache::new())),
            on_behalf_of: None,
        })
    }

    /// Sends `On-Behalf-Of: who` with every API request (recorded in the
    /// audit trail, never used for authorisation).
    pub fn with_on_behalf_of(mut self, who: &str) -> Result<Self, ClientError> {
        self.on_behalf_of = Some(header_value(who, "On-Behalf-Of")?);
        Ok(self)
    }

    pub fn base_url(&self) -> &str {
        &self.base
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    // ---- tokens ----------------------------------------------------------

    /// `POST /oauth2/token` (grant `client_credentials`) with this client's
    /// credentials, bypassing the cache.
    pub async fn request_token(&self) -> Result<TokenResponse, ClientError> {
        let scope = match &*self.auth {
            Auth::ClientCredentials { scope, .. } | Auth::PrivateKeyJwt { scope, .. } => scope,
            _ => return Err(not_client_credentials()),
        };
        let mut form = vec![("grant_type", "client_credentials")];
        if let Some(s) = scope {
            form.push(("scope", s.as_str()));
        }
        let resp = self.oauth_post("/oauth2/token", form).await?;
        decode(resp).await
    }

    /// `POST /oauth2/revoke` (RFC 7009) of an access token issued to this
    /// client. Revoking an unknown token also succeeds. If it is the cached
    /// token, the next request fetches a new one.
    pub async fn revoke_token(&self, token: &str) -> Result<(), ClientError> {
        self.tokens.lock().await.forget(token);
        let resp = self
            .oauth_post("/oauth2/revoke", vec![("token", token)])
            .await?;
        expect_success(resp).await
    }

    /// `GET /.well-known/oauth-authorization-server` (RFC 8414).
    pub async fn server_metadata(&self) -> Result<ServerMetadata, ClientError> {
        let resp = self
            .http
            .get(self.url("/.well-known/oauth-authorization-server"))
            .header(ACCEPT, "application/json")
            .send()
            .await
            .map_err(ClientError::transport)?;
        decode(resp).await
    }

    /// A form POST to an OAuth endpoint, authenticated as the client
    /// (RFC 6749 2.3.1).
    async fn oauth_post(
        &self,
        path: &str,
        mut form: Vec<(&str, &str)>,
    ) -> Result<Response, ClientError> {
        let mut rb = self
            .http
            .post(self.url(path))
            .header(ACCEPT, "application/json");
        let assertion;
        let (client_id, client_secret, method) = match &*self.auth {
            Auth::ClientCredentials {
                client_id,
                client_secret,
                method,
                ..
            } => (client_id, client_secret, method),
            Auth::PrivateKeyJwt { client_id, key, .. } => {
                // RFC 7523 3: aud is the token endpoint, also for revocation.
                let aud = self.url("/oauth2/token");
                assertion = key.assertion(client_id, &aud, signer::unix_now())?;
                let mut form: Vec<(&str, &str)> = form;
                form.push(("client_assertion_type", JWT_BEARER));
                form.push(("client_assertion", &assertion));
                return rb.form(&form).send().await.map_err(ClientError::transport);
            }
            _ => return Err(not_client_credentials()),
        };
        match method {
            ClientAuthMethod::Basic => {
                let value = basic_authorization(client_id, client_secret);
                rb = rb.header(AUTHORIZATION, sensitive(value.expose_secret())?);
            }
            ClientAuthMethod::Post => {
                form.push(("client_id", client_id));
                form.push(("client_secret", client_secret.expose_secret()));
            }
        }
        rb.form(&form).send().await.map_err(ClientError::transport)
    }

    /// The token to send: the admin token, or a cached or fresh access
    /// token. Holding the lock while fetching makes concurrent callers
    /// share one fetch.
    async fn access_token(&self) -> Result<SecretString, ClientError> {
        if let Auth::Bearer(t) = &*self.auth {
            return Ok(t.clone());
        }
        if let Auth::Signed(_) = &*self.auth {
            return Err(not_client_credentials());
        }
        let mut cache = self.tokens.lock().await;
        if let Some(t) = cache.get(Instant::now()) {
            return Ok(t);
        }
        let fetched = Instant::now();
        let t = self.request_token().await?;
        Ok(cache.store(
            SecretString::from(t.access_token),
            fetched,
            Duration::from_secs(t.expires_in),
        ))
    }

    /// Sends the request `build` makes, retrying once with a fresh token
    /// when the API refuses the one sent (client credentials only).
    async fn send<F>(&self, build: F) -> Result<Response, ClientError>
    where
        F: Fn(&reqwest::Client) -> Result<RequestBuilder, ClientError> + Send + Sync,
    {
        if let Auth::Signed(signer) = &*self.auth {
            return self.attempt_signed(&build, signer).await;
        }
        let token = self.access_token().await?;
        let renewable = matches!(
            &*self.auth,
            Auth::ClientCredentials { .. } | Auth::PrivateKeyJwt { .. }
        );
        match self.attempt(&build, &token).await {
            Ok(resp) if !renewable || !token_refused(&resp) => return Ok(resp),
            Ok(resp) => drop(resp),
            // The gateway checks the token before it reads a body: refusing
            // one (a consumed one-time token, say) it may answer and close
            // while a large upload is still being written, and the refusal
            // shows here as a broken connection. The request was not taken
            // (an accepted upload is read to its end), so it is sent once
            // more with a fresh token, as after a 401.
            Err(ClientError::Transport(e)) if renewable && body_cut_short(&e) => {}
            Err(e) => return Err(e),
        }
        self.tokens.lock().await.refused(&token);
        let token = self.access_token().await?;
        self.attempt(&build, &token).await
    }

    async fn attempt<F>(&self, build: &F, token: &SecretString) -> Result<Response, ClientError>
    where
        F: Fn(&reqwest::Client) -> Result<RequestBuilder, ClientError>,
    {
        let mut req = build(&self.http)?.build().map_err(ClientError::transport)?;
        let headers = req.headers_mut();
        headers.insert(
            AUTHORIZATION,
            sensitive(&format!("Bearer {}", token.expose_secret()))?,
        );
        if let Some(who) = &self.on_behalf_of {
            headers.entry(ON_BEHALF_OF).or_insert_with(|| who.clone());
        }
        self.http.execute(req).await.map_err(ClientError::transport)
    }

    /// Sends the request `build` makes, signed (RFC 9421) instead of
    /// carrying a token. A refused signature is not retried: a new nonce
    /// would not fix a wrong key or clock.
    async fn attempt_signed<F>(
        &self,
        build: &F,
        signer: &RequestSigner,
    ) -> Result<Response, ClientError>
    where
        F: Fn(&reqwest::Client) -> Result<RequestBuilder, ClientError>,
    {
        let mut req = build(&self.http)?.build().map_err(ClientError::transport)?;
        if let Some(who) = &self.on_behalf_of {
            req.headers_mut()
                .entry(ON_BEHALF_OF)
                .or_insert_with(|| who.clone());
        }
        signer.sign(&mut req, signer::unix_now())?;
        self.http.execute(req).await.map_err(ClientError::transport)
    }

    /// A JSON request to the API, decoded as `T`.
    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<Vec<u8>>,
    ) -> Result<T, ClientError> {
        let url = self.url(path);
        let resp = self
            .send(|http| {
                let mut rb = http
                    .request(method.clone(), &url)
                    .header(ACCEPT, "application/json");
                if !query.is_empty() {
                    rb = rb.query(query);
                }
                if let Some(b) = &body {
                    rb = rb.header(CONTENT_TYPE, "application/json").body(b.clone());
                }
                Ok(rb)
            })
            .await?;
        decode(resp).await
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.call(Method::GET, path, &[], None).await
    }

    async fn get_query<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<T, ClientError> {
        self.call(Method::GET, path, query, None).await
    }

    async fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &impl serde::Serialize,
    ) -> Result<T, ClientError> {
        self.call(Method::POST, path, &[], Some(to_json(body)?))
            .await
    }

    /// A DELETE whose success has no body to read.
    pub(crate) async fn delete(&self, path: &str) -> Result<(), ClientError> {
        let url = self.url(path);
        let resp = self
            .send(|http| {
                Ok(http
                    .request(Method::DELETE, &url)
                    .header(ACCEPT, "application/json"))
            })
            .await?;
        expect_success(resp).await
    }

    // ---- health ----------------------------------------------------------

    /// `GET /healthz`: the process answers.
    pub async fn healthz(&self) -> Result<(), ClientError> {
        self.probe("/healthz").await
    }

    /// `GET /readyz`: the gateway can serve (its database answers).
    pub async fn readyz(&self) -> Result<(), ClientError> {
        self.probe("/readyz").await
    }

    async fn probe(&self, path: &str) -> Result<(), ClientError> {
        let resp = self
            .http
            .get(self.url(path))
            .send()
            .await
            .map_err(ClientError::transport)?;
        expect_success(resp).await
    }

    // ---- tenants and clients --------------------------------------------

    /// `POST /api/v1/tenants`; the answer holds the tenant's first admin
    /// token, shown once.
    pub async fn tenant_create(&self, spec: &TenantSpec) -> Result<TenantCreated, ClientError> {
        self.post("/api/v1/tenants", spec).await
    }

    /// `GET /api/v1/tenants`
    pub async fn tenant_list(&self) -> Result<Vec<TenantInfo>, ClientError> {
        self.get("/api/v1/tenants").await
    }

    /// `GET /api/v1/admin/master-key`: the master key ring's ids and the
    /// key each live instance seals with (the installation's operator only).
    pub async fn master_key_status(&self) -> Result<serde_json::Value, ClientError> {
        self.get("/api/v1/admin/master-key").await
    }

    /// `POST /api/v1/admin/master-key/rotate`: a new master key, every
    /// sealed row re-sealed under it; the old key stays as previous.
    pub async fn master_key_rotate(&self) -> Result<serde_json::Value, ClientError> {
        self.call(Method::POST, "/api/v1/admin/master-key/rotate", &[], None)
            .await
    }

    /// `POST /api/v1/admin/master-key/retire-previous`: forgets the
    /// previous keys once nothing needs them (409 says what still does).
    pub async fn master_key_retire_previous(&self) -> Result<serde_json::Value, ClientError> {
        self.call(
            Method::POST,
            "/api/v1/admin/master-key/retire-previous",
            &[],
            None,
        )
        .await
    }

    /// `POST /api/v1/admin/tokens`: a new admin API token for the calling
    /// admin, shown once in the answer.
    pub async fn admin_token_create(
        &self,
        spec: &AdminTokenSpec,
    ) -> Result<AdminTokenCreated, ClientError> {
        self.post("/api/v1/admin/tokens", spec).await
    }

    /// `GET /api/v1/admin/tokens`: the tenant's admin tokens (never a
    /// secret).
    pub async fn admin_token_list(&self) -> Result<Vec<AdminTokenInfo>, ClientError> {
        self.get("/api/v1/admin/tokens").await
    }

    /// `POST /api/v1/admin/tokens/{id}/revoke`; `current` revokes the
    /// token this client presents.
    pub async fn admin_token_revoke(&self, id: &str) -> Result<AdminTokenInfo, ClientError> {
        let path = format!("/api/v1/admin/tokens/{}/revoke", seg(id)?);
        self.call(Method::POST, &path, &[], None).await
    }

    /// `POST /api/v1/clients`; the answer holds the secret, shown once.
    pub async fn client_create(&self, spec: &ClientSpec) -> Result<ClientCreated, ClientError> {
        self.post("/api/v1/clients", spec).await
    }

    /// `GET /api/v1/clients`
    pub async fn client_list(&self) -> Result<Vec<ClientInfo>, ClientError> {
        self.get("/api/v1/clients").await
    }

    /// `GET /api/v1/clients/{client_id}`
    pub async fn client_get(&self, client_id: &str) -> Result<ClientInfo, ClientError> {
        self.get(&format!("/api/v1/clients/{}", seg(client_id)?))
            .await
    }

    /// `POST /api/v1/clients/{client_id}/disable`
    pub async fn client_disable(&self, client_id: &str) -> Result<ClientInfo, ClientError> {
        let path = format!("/api/v1/clients/{}/disable", seg(client_id)?);
        self.call(Method::POST, &path, &[], None).await
    }

    /// `POST /api/v1/clients/{client_id}/enable`
    pub async fn client_enable(&self, client_id: &str) -> Result<ClientInfo, ClientError> {
        let path = format!("/api/v1/clients/{}/enable", seg(client_id)?);
        self.call(Method::POST, &path, &[], None).await
    }

    /// `POST /api/v1/clients/{client_id}/rotate-secret`; the answer holds
    /// the new secret, shown once.
    pub async fn client_rotate_secret(
        &self,
        client_id: &str,
        request: &RotateSecretRequest,
    ) -> Result<SecretRotated, ClientError> {
        let path = format!("/api/v1/clients/{}/rotate-secret", seg(client_id)?);
        self.post(&path, request).await
    }

    /// `POST /api/v1/clients/{client_id}/scim-token`
    pub async fn client_scim_token(
        &self,
        client_id: &str,
        request: &muster_proto::ScimTokenRequest,
    ) -> Result<muster_proto::ScimTokenCreated, ClientError> {
        let path = format!("/api/v1/clients/{}/scim-token", seg(client_id)?);
        self.post(&path, request).await
    }

    /// `GET /api/v1/clients/{client_id}/intake-policy`
    pub async fn intake_policy_get(
        &self,
        client_id: &str,
    ) -> Result<IntakePolicyInfo, ClientError> {
        self.get(&format!(
            "/api/v1/clients/{}/intake-policy",
            seg(client_id)?
        ))
        .await
    }

    /// `PUT /api/v1/clients/{client_id}/intake-policy`
    pub async fn intake_policy_put(
        &self,
        client_id: &str,
        policy: &IntakePolicyInfo,
    ) -> Result<IntakePolicyInfo, ClientError> {
        let path = format!("/api/v1/clients/{}/intake-policy", seg(client_id)?);
        self.call(Method::PUT, &path, &[], Some(to_json(policy)?))
            .await
    }

    /// `GET /api/v1/clients/{client_id}/read-policy`
    pub async fn read_policy_get(&self, client_id: &str) -> Result<ReadPolicyInfo, ClientError> {
        self.get(&format!("/api/v1/clients/{}/read-policy", seg(client_id)?))
            .await
    }

    /// `PUT /api/v1/clients/{client_id}/read-policy`
    pub async fn read_policy_put(
        &self,
        client_id: &str,
        policy: &ReadPolicyInfo,
    ) -> Result<ReadPolicyInfo, ClientError> {
        let path = format!("/api/v1/clients/{}/read-policy", seg(client_id)?);
        self.call(Method::PUT, &path, &[], Some(to_json(policy)?))
            .await
    }

    // ---- client signing and assertion keys --------------------------------

    /// `GET /api/v1/clients/{client_id}/keys`: which keys are set.
    pub async fn client_keys(&self, client_id: &str) -> Result<ClientKeysInfo, ClientError> {
        self.get(&format!("/api/v1/clients/{}/keys", seg(client_id)?))
            .await
    }

    /// `POST /api/v1/clients/{client_id}/keys/hmac`: a new HMAC-SHA256
    /// request-signing key, shown once.
    pub async fn client_hmac_issue(&self, client_id: &str) -> Result<HmacKeyIssued, ClientError> {
        let path = format!("/api/v1/clients/{}/keys/hmac", seg(client_id)?);
        self.call(Method::POST, &path, &[], None).await
    }

    /// `PUT /api/v1/clients/{client_id}/keys/ed25519`
    pub async fn client_ed25519_set(
        &self,
        client_id: &str,
        request: &Ed25519KeyRequest,
    ) -> Result<ClientKeysInfo, ClientError> {
        let path = format!("/api/v1/clients/{}/keys/ed25519", seg(client_id)?);
        self.call(Method::PUT, &path, &[], Some(to_json(request)?))
            .await
    }

    /// `PUT /api/v1/clients/{client_id}/keys/jwt` (`private_key_jwt` keys).
    pub async fn client_jwt_keys_set(
        &self,
        client_id: &str,
        request: &JwtKeysRequest,
    ) -> Result<ClientKeysInfo, ClientError> {
        let path = format!("/api/v1/clients/{}/keys/jwt", seg(client_id)?);
        self.call(Method::PUT, &path, &[], Some(to_json(request)?))
            .await
    }

    /// `DELETE /api/v1/clients/{client_id}/keys/{kind}`, kind `hmac`,
    /// `ed25519` or `jwt`.
    pub async fn client_key_remove(
        &self,
        client_id: &str,
        kind: &str,
    ) -> Result<ClientKeysInfo, ClientError> {
        let path = format!("/api/v1/clients/{}/keys/{}", seg(client_id)?, seg(kind)?);
        self.call(Method::DELETE, &path, &[], None).await
    }

    // ---- keys ------------------------------------------------------------

    /// `GET /api/v1/keys`: the keys to encrypt uploads to (key admins see
    /// every key).
    pub async fn key_list(&self) -> Result<Vec<KeyInfo>, ClientError> {
        self.get("/api/v1/keys").await
    }

    /// `GET /api/v1/keys/{id}`
    pub async fn key_get(&self, id: &str) -> Result<KeyInfo, ClientError> {
        self.get(&format!("/api/v1/keys/{}", seg(id)?)).await
    }

    /// `POST /api/v1/keys`: generate or import a key, or register a
    /// sender's signing key.
    pub async fn key_create(&self, spec: &KeySpec) -> Result<KeyInfo, ClientError> {
        self.post("/api/v1/keys", spec).await
    }

    /// `POST /api/v1/keys/{id}/rotate`: the answer is the new active key.
    pub async fn key_rotate(&self, id: &str) -> Result<KeyInfo, ClientError> {
        let path = format!("/api/v1/keys/{}/rotate", seg(id)?);
        self.call(Method::POST, &path, &[], None).await
    }

    /// `POST /api/v1/keys/{id}/revoke`
    pub async fn key_revoke(&self, id: &str) -> Result<KeyInfo, ClientError> {
        let path = format!("/api/v1/keys/{}/revoke", seg(id)?);
        self.call(Method::POST, &path, &[], None).await
    }

    // ---- mappings --------------------------------------------------------

    /// `PUT /api/v1/mappings/{name}`: stores `document` as the mapping's
    /// next version.
    pub async fn mapping_put(
        &self,
        name: &str,
        format: MappingFormat,
        document: String,
    ) -> Result<MappingInfo, ClientError> {
        let url = self.url(&format!("/api/v1/mappings/{}", seg(name)?));
        let resp = self
            .send(|http| {
                Ok(http
                    .put(&url)
                    .header(ACCEPT, "application/json")
                    .header(CONTENT_TYPE, format.content_type())
                    .body(document.clone()))
            })
            .await?;
        decode(resp).await
    }

    /// `GET /api/v1/mappings/{name}[?version=N]`: the latest version, or
    /// the one asked for.
    pub async fn mapping_get(
        &self,
        name: &str,
        version: Option<i64>,
    ) -> Result<MappingInfo, ClientError> {
        let query: Vec<_> = version
            .map(|v| ("version", v.to_string()))
            .into_iter()
            .collect();
        self.get_query(&format!("/api/v1/mappings/{}", seg(name)?), &query)
            .await
    }

    /// `GET /api/v1/mappings`: the latest version of each.
    pub async fn mapping_list(&self) -> Result<Vec<MappingInfo>, ClientError> {
        self.get("/api/v1/mappings").await
    }

    /// `GET /api/v1/mappings/{name}/versions`
    pub async fn mapping_versions(&self, name: &str) -> Result<Vec<MappingInfo>, ClientError> {
        self.get(&format!("/api/v1/mappings/{}/versions", seg(name)?))
            .await
    }

    // ---- login-sync issuers (docs/authentication.md#login-sync) -------------------------------------

    /// `POST /api/v1/issuers`
    pub async fn issuer_create(&self, spec: &IssuerSpec) -> Result<IssuerInfo, ClientError> {
        self.post("/api/v1/issuers", spec).await
    }

    /// `GET /api/v1/issuers`
    pub async fn issuer_list(&self) -> Result<Vec<IssuerInfo>, ClientError> {
        self.get("/api/v1/issuers").await
    }

    /// `GET /api/v1/issuers/{name}`
    pub async fn issuer_get(&self, name: &str) -> Result<IssuerInfo, ClientError> {
        self.get(&format!("/api/v1/issuers/{}", seg(name)?)).await
    }

    /// `DELETE /api/v1/issuers/{name}`
    pub async fn issuer_delete(&self, name: &str) -> Result<(), ClientError> {
        self.delete(&format!("/api/v1/issuers/{}", seg(name)?))
            .await
    }

    // ---- imports ---------------------------------------------------------

    /// `POST /api/v1/imports`: streams the file at `path`, calling
    /// `progress` with the bytes sent so far. Returns the status (202 for a
    /// new import, 200 when it is already final or its idempotency key was
    /// seen) and the import.
    pub async fn upload_import(
        &self,
        path: &Path,
        params: &ImportParams,
        progress: impl Fn(u64) + Send + Sync + 'static,
    ) -> Result<(StatusCode, ImportInfo), ClientError> {
        // A missing file is reported as such, not as a broken upload.
        let meta = tokio::fs::metadata(path)
            .await
            .map_err(|e| io_error(path, e))?;
        if !meta.is_file() {
            return Err(io_error(
                path,
                std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a file"),
            ));
        }
        let format = params.format.or_else(|| ImportFormat::from_path(path));
        let recipient = params
            .encrypt_to
            .as_ref()
            .map(|e| {
                PublicRecipient::parse(&e.public_key).map_err(|_| {
                    ClientError::InvalidInput(format!("key {}: not a usable public key", e.key_id))
                })
            })
            .transpose()?;
        let content_type = match (&recipient, format) {
            (Some(_), _) | (None, None) => "application/octet-stream",
            (None, Some(f)) => f.content_type(),
        };
        let query = params.query(format);
        let key = params
            .idempotency_key
            .as_deref()
            .map(|k| header_value(k, "Idempotency-Key"))
            .transpose()?;
        let who = params
            .on_behalf_of
            .as_deref()
            .map(|w| header_value(w, "On-Behalf-Of"))
            .transpose()?;
        // A signed upload covers its Content-Digest (RFC 9530), which must
        // be known before the body streams: hash the file first.
        let digest = match &*self.auth {
            Auth::Signed(_) => Some(header_value(&file_digest(path).await?, "Content-Digest")?),
            _ => None,
        };
        let progress: Progress = Arc::new(progress);
        let path = path.to_owned();
        let url = self.url("/api/v1/imports");
        let resp = self
            .send(|http| {
                // Each attempt opens the file afresh: a retry after a
                // refused token sends the whole body again.
                let mut rb = http
                    .post(&url)
                    .query(&query)
                    .header(ACCEPT, "application/json")
                    .header(CONTENT_TYPE, content_type)
                    .body(match &recipient {
                        Some(r) => encrypted_body(path.clone(), r.clone(), progress.clone()),
                        None => file_body(path.clone(), progress.clone()),
                    });
                if let Some(k) = &key {
                    rb = rb.header(IDEMPOTENCY_KEY, k.clone());
                }
                if let Some(w) = &who {
                    rb = rb.header(ON_BEHALF_OF, w.clone());
                }
                if let Some(d) = &digest {
                    rb = rb.header(muster_httpsig::CONTENT_DIGEST, d.clone());
                }
                Ok(rb)
            })
            .await?;
        let status = resp.status();
        Ok((status, decode(resp).await?))
    }

    /// `GET /api/v1/imports/{id}`
    pub async fn import_get(&self, id: &str) -> Result<ImportInfo, ClientError> {
        self.get(&format!("/api/v1/imports/{}", seg(id)?)).await
    }

    /// `GET /api/v1/imports`, newest first, optionally of one state.
    pub async fn import_list(
        &self,
        state: Option<ImportState>,
        limit: Option<u32>,
        after: Option<&str>,
    ) -> Result<Page<ImportInfo>, ClientError> {
        let mut q = Vec::new();
        if let Some(s) = state {
            q.push(("state", s.as_str().to_owned()));
        }
        q.extend(paging(limit, after));
        self.get_query("/api/v1/imports", &q).await
    }

    /// `GET /api/v1/imports/{id}/errors`: one page of row errors.
    pub async fn import_errors(
        &self,
        id: &str,
        limit: Option<u32>,
        after: Option<&str>,
    ) -> Result<Page<RowErrorInfo>, ClientError> {
        let path = format!("/api/v1/imports/{}/errors", seg(id)?);
        self.get_query(&path, &paging(limit, after)).await
    }

    /// `GET /api/v1/imports/{id}/events`: progress as it happens, ending
    /// with [`ImportEvent::Done`].
    pub async fn import_events(&self, id: &str) -> Result<ImportEventStream, ClientError> {
        let url = self.url(&format!("/api/v1/imports/{}/events", seg(id)?));
        let resp = self
            .send(|http| Ok(http.get(&url).header(ACCEPT, "text/event-stream")))
            .await?;
        let status = resp.status();
        if !status.is_success() {
            return Err(error_from(resp).await);
        }
        Ok(event_stream(resp, status))
    }

    /// Polls `GET /api/v1/imports/{id}` (every 100 ms at first, slowing to
    /// every 2 s) until the import is final or `timeout` has passed, and
    /// returns its latest state: check `state.is_final()` to tell which.
    pub async fn wait_import(
        &self,
        id: &str,
        timeout: Duration,
    ) -> Result<ImportInfo, ClientError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut pause = POLL_FIRST;
        loop {
            let info = self.import_get(id).await?;
            let now = tokio::time::Instant::now();
            if info.state.is_final() || now >= deadline {
                return Ok(info);
            }
            tokio::time::sleep(pause.min(deadline - now)).await;
            pause = next_pause(pause);
        }
    }

    // ---- people ----------------------------------------------------------

    /// `PUT /api/v1/people/{external_id}`: create or update one person.
    pub async fn person_put(
        &self,
        external_id: &str,
        input: &PersonInput,
    ) -> Result<SyncResult, ClientError> {
        let path = format!("/api/v1/people/{}", seg(external_id)?);
        self.call(Method::PUT, &path, &[], Some(to_json(input)?))
            .await
    }

    /// `POST /api/v1/people/sync`: a batch of upserts, one result each.
    pub async fn people_sync(&self, request: &SyncRequest) -> Result<SyncResponse, ClientError> {
        self.post("/api/v1/people/sync", request).await
    }

    /// `GET /api/v1/people/{external_id}`
    pub async fn person_get(&self, external_id: &str) -> Result<PersonInfo, ClientError> {
        self.get(&format!("/api/v1/people/{}", seg(external_id)?))
            .await
    }

    /// `GET /api/v1/people`: one page.
    pub async fn person_list(
        &self,
        limit: Option<u32>,
        after: Option<&str>,
    ) -> Result<Page<PersonInfo>, ClientError> {
        self.get_query("/api/v1/people", &paging(limit, after))
            .await
    }

    // ---- audit -----------------------------------------------------------

    /// `GET /api/v1/audit`: entries after sequence number `after`.
    pub async fn audit_list(
        &self,
        after: Option<i64>,
        limit: Option<u32>,
    ) -> Result<Page<AuditEntryInfo>, ClientError> {
        let mut q = Vec::new();
        if let Some(a) = after {
            q.push(("after", a.to_string()));
        }
        if let Some(l) = limit {
            q.push(("limit", l.to_string()));
        }
        self.get_query("/api/v1/audit", &q).await
    }

    /// `GET /api/v1/audit/verify`: the tenant's hash chain, checked by the
    /// gateway.
    pub async fn audit_verify(&self) -> Result<AuditVerification, ClientError> {
        self.get("/api/v1/audit/verify").await
    }
}

/// The next pause between polls: doubling up to [`POLL_MAX`].
fn next_pause(pause: Duration) -> Duration {
    (pause * 2).min(POLL_MAX)
}

fn paging(limit: Option<u32>, after: Option<&str>) -> Vec<(&'static str, String)> {
    let mut q = Vec::new();
    if let Some(l) = limit {
        q.push(("limit", l.to_string()));
    }
    if let Some(a) = after {
        q.push(("after", a.to_owned()));
    }
    q
}

/// The file at `path` as a streamed body. It is opened when the body is
/// first polled, so every attempt reads it from the start.
/// The RFC 9530 `Content-Digest` (sha-256) of a file, read in pieces.
async fn file_digest(path: &Path) -> Result<String, ClientError> {
    use sha2::Digest;
    use tokio::io::AsyncReadExt;
    let mut f = tokio::fs::File::open(path)
        .await
        .map_err(|e| io_error(path, e))?;
    let mut hasher = sha2::Sha256::new();
    let mut buf = vec![0u8; UPLOAD_CHUNK];
    loop {
        let n = f.read(&mut buf).await.map_err(|e| io_error(path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    let b64 = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        hasher.finalize(),
    );
    Ok(format!("sha-256=:{b64}:"))
}

fn file_body(path: PathBuf, progress: Progress) -> reqwest::Body {
    let mut sent = 0u64;
    let chunks = futures::stream::once(tokio::fs::File::open(path))
        .map_ok(|f| tokio_util::io::ReaderStream::with_capacity(f, UPLOAD_CHUNK))
        .try_flatten()
        .inspect_ok(move |chunk| {
            sent += chunk.len() as u64;
            progress(sent);
        });
    reqwest::Body::wrap_stream(chunks)
}

/// The file at `path`, encrypted to `recipient` while it streams: a
/// blocking thread reads and encrypts, the request body takes the
/// ciphertext a chunk at a time. Progress counts plaintext bytes read.
fn encrypted_body(path: PathBuf, recipient: PublicRecipient, progress: Progress) -> reqwest::Body {
    use std::io::{Read, Write};
    type Chunk = Result<Vec<u8>, std::io::Error>;
    struct ToChannel(tokio::sync::mpsc::Sender<Chunk>);
    impl Write for ToChannel {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0
                .blocking_send(Ok(buf.to_vec()))
                .map_err(|_| std::io::Error::other("the upload stopped"))?;
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let (tx, rx) = tokio::sync::mpsc::channel::<Chunk>(8);
    let errors = tx.clone();
    tokio::task::spawn_blocking(move || {
        let run = || -> std::io::Result<()> {
            let mut file = std::fs::File::open(&path)?;
            let out = std::io::BufWriter::with_capacity(UPLOAD_CHUNK, ToChannel(tx));
            let mut w = encrypt_writer(out, &recipient, false).map_err(std::io::Error::other)?;
            let mut buf = vec![0u8; UPLOAD_CHUNK];
            let mut sent = 0u64;
            loop {
                let n = file.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                w.write_all(&buf[..n])?;
                sent += n as u64;
                progress(sent);
            }
            w.finish().map_err(std::io::Error::other)?.flush()
        };
        if let Err(e) = run() {
            let _ = errors.blocking_send(Err(e));
        }
    });
    let chunks =
        futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|c| (c, rx)) });
    reqwest::Body::wrap_stream(chunks)
}

struct EventState<S> {
    bytes: S,
    parser: sse::SseParser,
    pending: VecDeque<sse::SseEvent>,
    status: StatusCode,
    done: bool,
}

fn event_stream(resp: Response, status: StatusCode) -> ImportEventStream {
    let state = EventState {
        bytes: resp.bytes_stream().boxed(),
        parser: sse::SseParser::default(),
        pending: VecDeque::new(),
        status,
        done: false,
    };
    futures::stream::unfold(state, |mut st| async move {
        loop {
            if st.done {
                return None;
            }
            if let Some(ev) = st.pending.pop_front() {
                let kind = match ev.event.as_str() {
                    "progress" => ImportEvent::Progress,
                    "done" => ImportEvent::Done,
                    _ => continue,
                };
                return Some(match serde_json::from_str::<ImportProgress>(&ev.data) {
                    Ok(p) => {
                        let e = kind(p);
                        st.done = matches!(e, ImportEvent::Done(_));
                        (Ok(e), st)
                    }
                    Err(e) => {
                        st.done = true;
                        let err = ClientError::Decode {
                            status: st.status,
                            message: format!(
                                "an event's data: {}",
                                error::redact_quoted(&e.to_string())
                            ),
                        };
                        (Err(err), st)
                    }
                });
            }
            match st.bytes.next().await {
                Some(Ok(chunk)) => {
                    let mut out = Vec::new();
                    st.parser.feed(&chunk, &mut out);
                    st.pending.extend(out);
                }
                Some(Err(e)) => {
                    st.done = true;
                    return Some((Err(ClientError::transport(e)), st));
                }
                None => return None,
            }
        }
    })
    .boxed()
}

fn token_refused(resp: &Response) -> bool {
    resp.status() == StatusCode::UNAUTHORIZED
        && resp
            .headers()
            .get_all(WWW_AUTHENTICATE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| bearer_error(v).as_deref() == Some("invalid_token"))
}

async fn decode<T: DeserializeOwned>(resp: Response) -> Result<T, ClientError> {
    let status = resp.status();
    if !status.is_success() {
        return Err(error_from(resp).await);
    }
    let bytes = resp.bytes().await.map_err(ClientError::transport)?;
    serde_json::from_slice(&bytes).map_err(|e| ClientError::Decode {
        status,
        message: error::redact_quoted(&e.to_string()),
    })
}

async fn expect_success(resp: Response) -> Result<(), ClientError> {
    if resp.status().is_success() {
        Ok(())
    } else {
        Err(error_from(resp).await)
    }
}

/// The error an unsuccessful answer stands for: a problem document, an
/// OAuth error, or something else (a proxy's page).
async fn error_from(resp: Response) -> ClientError {
    let status = resp.status();
    let media = resp
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_owned());
    let bytes = match resp.bytes().await {
        Ok(b) => b,
        Err(e) => return ClientError::transport(e),
    };
    if let Ok(problem) = serde_json::from_slice::<Problem>(&bytes) {
        return ClientError::Api {
            status,
            problem: Box::new(problem),
        };
    }
    if let Ok(error) = serde_json::from_slice::<OAuthError>(&bytes) {
        return ClientError::OAuth { status, error };
    }
    let message = match (bytes.is_empty(), media) {
        (true, _) => "an empty body".to_owned(),
        (false, Some(m)) => format!("a {m} body, not a problem document"),
        (false, None) => "a body that is not a problem document".to_owned(),
    };
    ClientError::Decode { status, message }
}

fn to_json(v: &impl serde::Serialize) -> Result<Vec<u8>, ClientError> {
    serde_json::to_vec(v)
        .map_err(|e| ClientError::InvalidInput(format!("cannot encode the request: {e}")))
}

fn not_client_credentials() -> ClientError {
    ClientError::InvalidInput(
        "this client holds a bearer token or a request signer, not client credentials".into(),
    )
}

fn header_value(v: &str, name: &str) -> Result<HeaderValue, ClientError> {
    HeaderValue::from_str(v).map_err(|_| {
        ClientError::InvalidInput(format!(
            "{name}: has characters an HTTP header cannot carry"
        ))
    })
}

/// A header value kept out of debug output (`Authorization`).
fn sensitive(v: &str) -> Result<HeaderValue, ClientError> {
    let mut h = HeaderValue::from_str(v).map_err(|_| {
        ClientError::InvalidInput(
            "the credential has characters an HTTP header cannot carry".into(),
        )
    })?;
    h.set_sensitive(true);
    Ok(h)
}

fn io_error(path: &Path, e: std::io::Error) -> ClientError {
    ClientError::Io(std::io::Error::new(
        e.kind(),
        format!("{}: {e}", path.display()),
    ))
}

/// One path segment, percent-encoded.
fn seg(s: &str) -> Result<String, ClientError> {
    if s.is_empty() || s == "." || s == ".." {
        return Err(ClientError::InvalidInput(format!(
            "'{s}' cannot be used as an id in a URL"
        )));
    }
    Ok(urlencoding::encode(s).into_owned())
}

/// Whether a request failed because the peer had closed the connection
/// while its body was being written.
fn body_cut_short(e: &reqwest::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(err) = source {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            // A write to a closed connection; a reset may also come while
            // reading the answer to a request that was taken, so it is not
            // counted here.
            return io.kind() == std::io::ErrorKind::BrokenPipe;
        }
        source = err.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_futures_can_be_spawned() {
        fn is_send<T: Send>(_: T) {}
        let c = Client::new("http://127.0.0.1:1", Auth::Bearer("mat_x".into())).unwrap();
        let p = ImportParams::new("m");
        // Built, never polled: this only has to compile.
        is_send(c.upload_import(Path::new("x.csv"), &p, |_| {}));
        is_send(c.import_events("i"));
        is_send(c.wait_import("i", Duration::ZERO));
        is_send(c.people_sync(&SyncRequest { people: vec![] }));
    }

    #[test]
    fn polling_backs_off_from_100_ms_to_2_s() {
        let mut p = POLL_FIRST;
        let mut seen = vec![p];
        for _ in 0..6 {
            p = next_pause(p);
            seen.push(p);
        }
        let ms: Vec<u128> = seen.iter().map(|d| d.as_millis()).collect();
        assert_eq!(ms, [100, 200, 400, 800, 1600, 2000, 2000]);
    }

    #[test]
    fn ids_are_percent_encoded_path_segments() {
        assert_eq!(seg("E 1/2?x").unwrap(), "E%201%2F2%3Fx");
        assert!(seg("").is_err());
        assert!(seg("..").is_err());
    }

    #[test]
    fn a_client_needs_an_http_url_and_hides_its_secret() {
        let auth = Auth::client_credentials("hr", SecretString::from("mcs_topsecret"));
        assert!(Client::new("ftp://x", auth.clone()).is_err());
        assert!(Client::new("not a url", auth.clone()).is_err());
        let c = Client::new("http://127.0.0.1:1/prefix/", auth).unwrap();
        assert_eq!(c.base_url(), "http://127.0.0.1:1/prefix");
        assert_eq!(c.url("/healthz"), "http://127.0.0.1:1/prefix/healthz");
        let shown = format!("{c:?}");
        assert!(
            shown.contains("hr") && !shown.contains("topsecret"),
            "{shown}"
        );
    }
}
