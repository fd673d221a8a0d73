//! The OAuth 2.0 authorization server: client credentials grant (RFC 6749
//! 4.4) with `client_secret_basic`, `client_secret_post` and `private_key_jwt`
//! (RFC 7523, see [`crate::auth::client_assertion`]), token revocation
//! (RFC 7009) and server metadata (RFC 8414). Errors are RFC 6749 5.2 bodies.
use crate::auth::ratelimit::audit_refusal;
use crate::base::state::AppState;
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine;
use chrono::Duration;
use muster_core::policy::{parse_scope, role_permissions, scope_string, Permission};
use muster_core::secret;
use muster_proto::{OAuthError, ServerMetadata, TokenResponse};
use muster_store::{ClientRow, NewToken, PrincipalKind};
use std::collections::HashMap;

/// An RFC 6749 5.2 error answer.
pub struct OAuthFailure {
    status: StatusCode,
    error: &'static str,
    description: String,
    basic_challenge: bool,
    /// Seconds, for `Retry-After` on a 429.
    retry_after: Option<u64>,
    /// Whether (and against which client id) this failure counts as
    /// guessing (see `crate::auth::ratelimit`).
    guess: Guess,
}

/// What a failed client authentication is counted against.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) enum Guess {
    /// Not guessing: no credential, or one that was genuine.
    #[default]
    No,
    /// An unreadable credential: counted by source address.
    Address,
    /// A credential for this client id that did not verify.
    Client(String),
}

impl OAuthFailure {
    fn new(status: StatusCode, error: &'static str, description: impl Into<String>) -> Self {
        Self {
            status,
            error,
            description: description.into(),
            basic_challenge: false,
            retry_after: None,
            guess: Guess::No,
        }
    }
    /// Marks the failure as guessing: against `client` when the request
    /// named one, else by address only.
    pub(crate) fn guessing(self, client: Option<&str>) -> Self {
        Self {
            guess: client.map_or(Guess::Address, |c| Guess::Client(c.to_owned())),
            ..self
        }
    }
    pub(crate) fn invalid_request(d: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", d)
    }
    pub(crate) fn invalid_client(d: impl Into<String>, basic: bool) -> Self {
        Self {
            basic_challenge: basic,
            ..Self::new(StatusCode::UNAUTHORIZED, "invalid_client", d)
        }
    }
    fn too_many_requests(retry_after: u64) -> Self {
        Self {
            retry_after: Some(retry_after),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_requests",
                format!("too many token requests; try again in {retry_after} seconds"),
            )
        }
    }
    /// A body the endpoint would not read whole (see [`crate::http::bodies`]):
    /// `invalid_request` (RFC 6749 5.2) with the status that says why.
    pub(crate) fn body_refused(e: &crate::http::bodies::BodyError) -> Self {
        use crate::http::bodies::BodyError;
        match e {
            BodyError::TooLarge { limit } => Self::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "invalid_request",
                format!("the request body is larger than {limit} bytes"),
            ),
            BodyError::TooSlow(t) => Self::new(
                StatusCode::REQUEST_TIMEOUT,
                "invalid_request",
                format!("the request body arrived too slowly: {t}"),
            ),
            BodyError::Interrupted => {
                Self::invalid_request("the request body ended before it was complete")
            }
        }
    }
    fn server_error() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "the gateway could not complete the request",
        )
    }
}

impl IntoResponse for OAuthFailure {
    fn into_response(self) -> Response {
        let mut resp = (
            self.status,
            Json(OAuthError {
                error: self.error.to_owned(),
                error_description: Some(self.description),
            }),
        )
            .into_response();
        no_store(resp.headers_mut());
        if let Some(s) = self.retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        if self.basic_challenge {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"muster\", charset=\"UTF-8\""),
            );
        }
        resp
    }
}

fn no_store(h: &mut HeaderMap) {
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
}

impl From<crate::base::error::ApiError> for OAuthFailure {
    fn from(e: crate::base::error::ApiError) -> Self {
        tracing::error!(error = ?e, "token endpoint");
        OAuthFailure::server_error()
    }
}

/// Parses a form body; RFC 6749 3.2 forbids repeating a parameter.
fn parse_form(headers: &HeaderMap, body: &[u8]) -> Result<HashMap<String, String>, OAuthFailure> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !ct.split(';').next().is_some_and(|m| {
        m.trim()
            .eq_ignore_ascii_case("application/x-www-form-urlencoded")
    }) {
        return Err(OAuthFailure::invalid_request(
            "the body must be application/x-www-form-urlencoded",
        ));
    }
    let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(body)
        .map_err(|_| OAuthFailure::invalid_request("the form body does not decode"))?;
    let mut map = HashMap::new();
    for (k, v) in pairs {
        if map.contains_key(&k) {
            return Err(OAuthFailure::invalid_request(format!(
                "the parameter '{k}' appears more than once"
            )));
        }
        map.insert(k, v);
    }
    Ok(map)
}

/// Client authentication: HTTP Basic (RFC 6749 2.3.1, with the id and
/// secret form-urlencoded) or the body parameters, never both.
async fn authenticate_client(
    state: &AppState,
    addr: std::net::IpAddr,
    headers: &HeaderMap,
    form: &HashMap<String, String>,
) -> Result<ClientRow, OAuthFailure> {
    let basic = crate::auth::authorization(headers, "basic");
    let in_body = form.contains_key("client_secret");
    if form.contains_key("client_assertion") || form.contains_key("client_assertion_type") {
        if basic.is_some() || in_body {
            return Err(OAuthFailure::invalid_request(
                "use one client authentication method, not two",
            ));
        }
        return crate::auth::client_assertion::authenticate(state, addr, form).await;
    }
    let (client_id, secret_text, used_basic) = match (basic, in_body) {
        (Some(_), true) => {
            return Err(OAuthFailure::invalid_request(
                "use one client authentication method, not two",
            ))
        }
        (Some(b), false) => {
            let malformed =
                || OAuthFailure::invalid_client("malformed Basic credentials", true).guessing(None);
            let raw = base64::engine::general_purpose::STANDARD
                .decode(b.trim())
                .ok()
                .and_then(|d| String::from_utf8(d).ok())
                .ok_or_else(malformed)?;
            let (id, sec) = raw.split_once(':').ok_or_else(malformed)?;
            let dec = |s: &str| {
                urlencoding::decode(&s.replace('+', " "))
                    .map(|c| c.into_owned())
                    .map_err(|_| malformed())
            };
            (dec(id)?, dec(sec)?, true)
        }
        (None, true) => (
            form.get("client_id").cloned().unwrap_or_default(),
            form.get("client_secret").cloned().unwrap_or_default(),
            false,
        ),
        (None, false) => {
            return Err(OAuthFailure::invalid_client(
                "client authentication is required (client_secret_basic, client_secret_post or private_key_jwt)",
                true,
            ))
        }
    };
    let lookup = client_id.clone();
    let client = match state.db_read(move |s| s.client_get(&lookup)).await {
        Ok(c) if c.kind == PrincipalKind::Client => c,
        Ok(_) | Err(crate::base::error::ApiError::NotFound(_)) => {
            // The same answer as a wrong secret: it tells nobody whether
            // the client id exists.
            return Err(
                OAuthFailure::invalid_client("client authentication failed", used_basic)
                    .guessing(Some(&client_id)),
            );
        }
        Err(e) => return Err(e.into()),
    };
    let now = state.clock.now();
    let presented = secret::digest(&secret_text);
    let mut ok = false;
    for s in &client.secrets {
        let live = s.expires_at.is_none_or(|e| e > now);
        // Compare every live secret, so timing does not tell which matched.
        ok |= live & secret::digest_eq(&s.digest, &presented);
    }
    if !ok {
        audit_refusal(
            state,
            &client,
            "oauth2",
            "client authentication failed",
            addr,
        )
        .await;
        return Err(
            OAuthFailure::invalid_client("client authentication failed", used_basic)
                .guessing(Some(&client.client_id)),
        );
    }
    // Checked once the secret has verified: before, a different answer
    // for a known client id would tell that it exists.
    if let Some(id_in_body) = form.get("client_id") {
        if used_basic && id_in_body != &client.client_id {
            return Err(OAuthFailure::invalid_request(
                "client_id in the body differs from the authenticated client",
            ));
        }
    }
    if client.disabled {
        audit_refusal(state, &client, "oauth2", "client is disabled", addr).await;
        return Err(OAuthFailure::invalid_client(
            "the client is disabled",
            used_basic,
        ));
    }
    Ok(client)
}

/// [`authenticate_client`] with the failed-authentication limits: nothing
/// is refused before the credential is checked, and a failure that counts
/// as guessing is counted (and its answer held back once over the limit,
/// see `crate::auth::ratelimit`).
async fn authenticate_limited(
    state: &AppState,
    addr: std::net::IpAddr,
    headers: &HeaderMap,
    form: &HashMap<String, String>,
) -> Result<ClientRow, OAuthFailure> {
    let result = authenticate_client(state, addr, headers, form).await;
    if let Err(f) = &result {
        let keys = match &f.guess {
            Guess::No => None,
            Guess::Address => Some(crate::auth::ratelimit::keys(addr, None)),
            Guess::Client(c) => Some(crate::auth::ratelimit::keys(addr, Some(c))),
        };
        if let Some(keys) = keys {
            crate::auth::ratelimit::record_failure(state, keys).await;
        }
    }
    result
}

pub async fn token_create(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, OAuthFailure> {
    let form = parse_form(&headers, &body)?;
    let addr = state.auth_failures.client_addr(peer.ip(), &headers);
    // The request rate (when limited): the address's before any credential
    // is looked at, the client's once the client has proven who it is, so
    // nobody else can spend a client's share.
    let addr_rate = [format!("addr:{}", crate::auth::ratelimit::addr_key(addr))];
    if let Err(retry) = state.token_rate.allow(&addr_rate, state.clock.now()) {
        return Err(OAuthFailure::too_many_requests(retry));
    }
    let client = authenticate_limited(&state, addr, &headers, &form).await?;
    let client_rate = [format!("client:{}", client.client_id)];
    if let Err(retry) = state.token_rate.allow(&client_rate, state.clock.now()) {
        return Err(OAuthFailure::too_many_requests(retry));
    }
    match form.get("grant_type").map(String::as_str) {
        Some("client_credentials") => {}
        Some(_) => {
            return Err(OAuthFailure::new(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "only the client_credentials grant is supported",
            ))
        }
        None => return Err(OAuthFailure::invalid_request("grant_type is required")),
    }
    let allowed = role_permissions(&client.role).unwrap_or_default();
    let granted = match form.get("scope") {
        None => allowed,
        Some(scope) => {
            let wanted = parse_scope(scope).map_err(|unknown| {
                OAuthFailure::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_scope",
                    format!("unknown scope '{unknown}'"),
                )
            })?;
            if let Some(p) = wanted.iter().find(|p| !allowed.contains(p)) {
                return Err(OAuthFailure::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_scope",
                    format!("the client may not have the scope '{p}'"),
                ));
            }
            if wanted.is_empty() {
                return Err(OAuthFailure::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_scope",
                    "the scope is empty",
                ));
            }
            wanted
        }
    };
    let ttl = if client.token_ttl_seconds == 0 {
        state.config.tokens.default_ttl_seconds
    } else {
        client.token_ttl_seconds
    };
    let now = state.clock.now();
    let (token, digest) = secret::generate("mct_");
    let scope = scope_string(&granted);
    let new = NewToken {
        digest,
        principal_id: client.id.clone(),
        scope: scope.clone(),
        one_time: client.token_policy == "one_time",
        created_at: now,
        expires_at: Some(now + Duration::seconds(ttl as i64)),
    };
    state.db(move |s| s.token_insert(new)).await?;
    // Authentication succeeded, so the form says how it was done.
    state
        .metrics
        .token_granted(if form.contains_key("client_assertion") {
            "private_key_jwt"
        } else if form.contains_key("client_secret") {
            "client_secret_post"
        } else {
            "client_secret_basic"
        });
    let mut resp = Json(TokenResponse {
        access_token: token,
        token_type: "Bearer".into(),
        expires_in: ttl,
        scope,
    })
    .into_response();
    no_store(resp.headers_mut());
    Ok(resp)
}

/// RFC 7009: the answer is 200 whether or not the token was known.
pub async fn token_revoke(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, OAuthFailure> {
    let form = parse_form(&headers, &body)?;
    let addr = state.auth_failures.client_addr(peer.ip(), &headers);
    let client = authenticate_limited(&state, addr, &headers, &form).await?;
    let token = form
        .get("token")
        .filter(|t| !t.is_empty())
        .ok_or_else(|| OAuthFailure::invalid_request("token is required"))?;
    let digest = secret::digest(token);
    let pid = client.id.clone();
    match state.db(move |s| s.token_revoke(digest, &pid)).await {
        Ok(()) | Err(crate::base::error::ApiError::NotFound(_)) => {}
        Err(e) => return Err(e.into()),
    }
    let mut resp = StatusCode::OK.into_response();
    no_store(resp.headers_mut());
    Ok(resp)
}

pub async fn metadata(State(state): State<AppState>) -> Json<ServerMetadata> {
    let base = state.issuer.to_string();
    Json(ServerMetadata {
        issuer: base.clone(),
        token_endpoint: format!("{base}/oauth2/token"),
        revocation_endpoint: format!("{base}/oauth2/revoke"),
        grant_types_supported: vec!["client_credentials".into()],
        token_endpoint_auth_methods_supported: auth_methods(),
        token_endpoint_auth_signing_alg_values_supported: signing_algs(),
        revocation_endpoint_auth_methods_supported: auth_methods(),
        revocation_endpoint_auth_signing_alg_values_supported: signing_algs(),
        scopes_supported: Permission::ALL
            .iter()
            .map(|p| p.as_str().to_owned())
            .collect(),
        response_types_supported: vec![],
    })
}

fn auth_methods() -> Vec<String> {
    [
        "client_secret_basic",
        "client_secret_post",
        "private_key_jwt",
    ]
    .map(String::from)
    .to_vec()
}

/// RFC 8414 2: the JWS algorithms accepted for `private_key_jwt`.
fn signing_algs() -> Vec<String> {
    ["RS256", "ES256", "EdDSA"].map(String::from).to_vec()
}

/// The small body limit of the OAuth endpoints; refusals as RFC 6749 5.2
/// error bodies.
pub async fn limit_oauth(
    State(limit): State<crate::http::bodies::SmallBody>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    match crate::http::bodies::buffer_small(limit, req).await {
        Ok(req) => next.run(req).await,
        Err(e) => OAuthFailure::body_refused(&e).into_response(),
    }
}
