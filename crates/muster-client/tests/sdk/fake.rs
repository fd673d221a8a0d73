//! The stand-in gateway.
use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use base64::Engine;
use muster_client::{Auth, Client, ClientAuthMethod, SecretString};
use muster_proto::*;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

pub const CLIENT_ID: &str = "hr:feed";
pub const SECRET: &str = "mcs_a:b c/%d+e";

#[derive(Debug, Clone, Default)]
pub struct Upload {
    pub body_len: usize,
    pub content_type: Option<String>,
    pub query: String,
    pub idempotency_key: Option<String>,
    pub on_behalf_of: Option<String>,
}

#[derive(Default)]
pub struct Fake {
    pub one_time: bool,
    pub expires_in: u64,
    pub token_fetches: AtomicUsize,
    pub api_requests: AtomicUsize,
    pub refusals: AtomicUsize,
    pub polls: AtomicUsize,
    /// token -> used
    issued: Mutex<HashMap<String, bool>>,
    pub uploads: Mutex<Vec<Upload>>,
    pub revoked: Mutex<Vec<String>>,
}

pub struct App {
    pub url: String,
    pub fake: Arc<Fake>,
}

impl App {
    pub fn client(&self, method: ClientAuthMethod) -> Client {
        let auth = Auth::ClientCredentials {
            client_id: CLIENT_ID.into(),
            client_secret: SecretString::from(SECRET),
            scope: None,
            method,
        };
        Client::new(&self.url, auth).unwrap()
    }
}

pub async fn spawn(one_time: bool, expires_in: u64) -> App {
    let fake = Arc::new(Fake {
        one_time,
        expires_in,
        ..Fake::default()
    });
    let app = Router::new()
        .route("/oauth2/token", post(token))
        .route("/oauth2/revoke", post(revoke))
        .route("/api/v1/tenants", get(tenants))
        .route("/api/v1/imports", post(upload))
        .route("/api/v1/imports/{id}", get(import_get))
        .route("/api/v1/imports/{id}/events", get(events))
        .route("/api/v1/people/{id}", get(person_missing))
        .route("/api/v1/mappings", get(proxy_page))
        .with_state(fake.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    App { url, fake }
}

fn problem(status: StatusCode, code: &str, detail: &str) -> Response {
    let body = Problem {
        type_: "about:blank".into(),
        title: status.canonical_reason().unwrap_or("").into(),
        status: status.as_u16(),
        detail: detail.into(),
        code: code.into(),
        errors: vec![],
    };
    let mut r = (status, Json(body)).into_response();
    if status == StatusCode::UNAUTHORIZED {
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static(
                "Bearer error=\"invalid_token\", error_description=\"the token is not valid\"",
            ),
        );
    }
    r
}

fn oauth_error(status: StatusCode, error: &str) -> Response {
    let body = OAuthError {
        error: error.into(),
        error_description: Some("unknown client or wrong secret".into()),
    };
    (status, Json(body)).into_response()
}

/// RFC 6749 2.3.1: Basic, with both halves form-urlencoded.
fn basic(headers: &HeaderMap) -> Option<(String, String)> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(v.strip_prefix("Basic ")?)
        .ok()?;
    let raw = String::from_utf8(raw).ok()?;
    let (id, secret) = raw.split_once(':')?;
    let dec = |s: &str| {
        urlencoding::decode(&s.replace('+', " "))
            .ok()
            .map(|c| c.into_owned())
    };
    Some((dec(id)?, dec(secret)?))
}

fn client_authenticated(headers: &HeaderMap, form: &BTreeMap<String, String>) -> bool {
    let creds = basic(headers).or_else(|| {
        Some((
            form.get("client_id")?.clone(),
            form.get("client_secret")?.clone(),
        ))
    });
    creds.is_some_and(|(id, s)| id == CLIENT_ID && s == SECRET)
}

async fn token(
    State(f): State<Arc<Fake>>,
    headers: HeaderMap,
    Form(form): Form<BTreeMap<String, String>>,
) -> Response {
    if !client_authenticated(&headers, &form) {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client");
    }
    if form.get("grant_type").map(String::as_str) != Some("client_credentials") {
        return oauth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type");
    }
    let n = f.token_fetches.fetch_add(1, Ordering::SeqCst) + 1;
    let t = format!("mct_{n}");
    f.issued.lock().unwrap().insert(t.clone(), false);
    Json(TokenResponse {
        access_token: t,
        token_type: "Bearer".into(),
        expires_in: f.expires_in,
        scope: form.get("scope").cloned().unwrap_or_default(),
    })
    .into_response()
}

async fn revoke(
    State(f): State<Arc<Fake>>,
    headers: HeaderMap,
    Form(form): Form<BTreeMap<String, String>>,
) -> Response {
    if !client_authenticated(&headers, &form) {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client");
    }
    if let Some(t) = form.get("token") {
        f.revoked.lock().unwrap().push(t.clone());
        f.issued.lock().unwrap().remove(t);
    }
    StatusCode::OK.into_response()
}

/// Checks the bearer token as Muster does: unknown, revoked or (for a
/// one-time client) already used tokens get 401 `invalid_token`.
fn refusal(f: &Fake, headers: &HeaderMap) -> Option<Response> {
    f.api_requests.fetch_add(1, Ordering::SeqCst);
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default()
        .to_owned();
    let mut issued = f.issued.lock().unwrap();
    match issued.get_mut(&token) {
        Some(used) if !(f.one_time && *used) => {
            *used = true;
            None
        }
        _ => {
            f.refusals.fetch_add(1, Ordering::SeqCst);
            Some(problem(
                StatusCode::UNAUTHORIZED,
                "invalid_token",
                "the access token is expired, used or unknown",
            ))
        }
    }
}

async fn tenants(State(f): State<Arc<Fake>>, headers: HeaderMap) -> Response {
    if let Some(r) = refusal(&f, &headers) {
        return r;
    }
    Json(Vec::<TenantInfo>::new()).into_response()
}

pub fn import(id: &str, state: ImportState, bytes: u64) -> ImportInfo {
    let now = chrono::Utc::now();
    let base = format!("/api/v1/imports/{id}");
    ImportInfo {
        id: id.into(),
        state,
        client_id: CLIENT_ID.into(),
        on_behalf_of: None,
        mapping: "workday".into(),
        mapping_version: 1,
        mode: "upsert".into(),
        source: None,
        dry_run: false,
        format: "csv".into(),
        bytes,
        created_at: now,
        updated_at: now,
        finished_at: state.is_final().then_some(now),
        counts: ImportCounts {
            rows_total: 3,
            created: 3,
            ..ImportCounts::default()
        },
        error: None,
        warnings: Vec::new(),
        links: ImportLinks {
            errors: format!("{base}/errors"),
            events: format!("{base}/events"),
            self_: base,
        },
    }
}

/// Authorises before reading the body, as the real handler does.
async fn upload(
    State(f): State<Arc<Fake>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if let Some(r) = refusal(&f, &headers) {
        return r;
    }
    let bytes: Bytes = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(b) => b,
        Err(_) => return StatusCode::BAD_REQUEST.into_response(),
    };
    let h = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    f.uploads.lock().unwrap().push(Upload {
        body_len: bytes.len(),
        content_type: h("content-type"),
        query: query.unwrap_or_default(),
        idempotency_key: h("idempotency-key"),
        on_behalf_of: h("on-behalf-of"),
    });
    (
        StatusCode::ACCEPTED,
        Json(import("imp_1", ImportState::Received, bytes.len() as u64)),
    )
        .into_response()
}

/// Applying for the first two polls, then succeeded.
async fn import_get(
    State(f): State<Arc<Fake>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Some(r) = refusal(&f, &headers) {
        return r;
    }
    let n = f.polls.fetch_add(1, Ordering::SeqCst);
    let state = if n < 2 {
        ImportState::Applying
    } else {
        ImportState::Succeeded
    };
    Json(import(&id, state, 10)).into_response()
}

async fn events(State(f): State<Arc<Fake>>, headers: HeaderMap) -> Response {
    if let Some(r) = refusal(&f, &headers) {
        return r;
    }
    let p = |state: ImportState, n: u64| {
        serde_json::to_string(&ImportProgress {
            state,
            rows_processed: n,
            counts: ImportCounts::default(),
        })
        .unwrap()
    };
    let text = format!(
        ": keep-alive\n\nevent: progress\ndata: {}\n\nevent: progress\ndata: {}\n\nevent: done\ndata: {}\n\nevent: progress\ndata: {}\n\n",
        p(ImportState::Parsing, 0),
        p(ImportState::Applying, 2),
        p(ImportState::Succeeded, 3),
        p(ImportState::Succeeded, 3),
    );
    ([(header::CONTENT_TYPE, "text/event-stream")], text).into_response()
}

async fn person_missing(State(f): State<Arc<Fake>>, headers: HeaderMap) -> Response {
    if let Some(r) = refusal(&f, &headers) {
        return r;
    }
    problem(StatusCode::NOT_FOUND, "person_not_found", "no such person")
}

async fn proxy_page() -> Response {
    (
        StatusCode::BAD_GATEWAY,
        [(header::CONTENT_TYPE, "text/html")],
        "<html>bad gateway</html>",
    )
        .into_response()
}
