//! Signed requests (docs/authentication.md#signed-requests): HTTP Message Signatures (RFC 9421) as an
//! alternative to a Bearer token on every `/api/v1` route.
//!
//! [`verify_signature`] is a middleware on the `/api/v1` router. It does
//! nothing unless the request carries `Signature` or `Signature-Input`;
//! then it authenticates the request completely and hands the client to the
//! [`crate::auth::Caller`] extractor as a [`SignedBy`] request extension:
//!
//! - `keyid` is the client id; the client's HMAC-SHA256 key (unsealed with
//!   the master key) and Ed25519 public key are tried, in that order.
//! - Policy [`VerifyPolicy::muster`] with the injected clock: `@method` and
//!   `@target-uri` covered, `content-digest` covered when there is a body,
//!   `created` within 300 s either way, `nonce` present.
//! - The nonce is recorded in the database ([`muster_store::Store::nonce_record`]),
//!   so a replay is refused by every gateway instance sharing it.
//!
//! **`@target-uri`** (RFC 9421 2.2.2) is the absolute URI the client used.
//! The gateway rebuilds it as: the configured `public_url` (scheme,
//! authority and any path prefix a proxy strips) followed by the request's
//! path and query; without `public_url`, `http://` (`https://` when the
//! gateway serves TLS itself) + the `Host` header + path and query. `X-Forwarded-*`
//! headers are never trusted: behind a TLS-terminating proxy, set
//! `public_url`, which also pins the host so a signature made for another
//! host does not verify here.
//!
//! **Bodies.** For every route but the upload, the body is buffered (up to
//! the route's own limit: `limits.max_json_bytes` for POST, PUT and PATCH,
//! `limits.max_unauthenticated_body_bytes` for login sync and the methods
//! that take no body; a larger one is answered 413 unread) and its
//! `Content-Digest` checked (RFC 9530) before the handler runs. The upload
//! (`POST /api/v1/imports`) is streamed to disk, never buffered: its body
//! is wrapped so that SHA-256 (or SHA-512) is computed as it flows, and a
//! mismatch at the end surfaces as a stream error, before the end of the
//! body. The import handler then discards the spooled file and creates no
//! import, and this middleware turns its answer into the 401.
//!
//! Every refusal is a 401 problem document whose `code` is the reason
//! ([`muster_httpsig::VerifyError::code`], or `nonce_reused`,
//! `client_disabled`, `multiple_credentials`), audited as `auth.failed` for
//! a known client (never with the signature or key; aggregated, see
//! `crate::auth::ratelimit`). The answer does not tell whether a key id names a
//! client: an unknown key id, a client without a key and a key of the other
//! algorithm are all answered `bad_signature`, and an unknown client's
//! signature goes through the same policy checks, against a random key, as
//! a known one's (the audit entry keeps the real reason). Only failures of
//! the signature itself count as guessing.
use crate::auth::keys::verifying_keys;
use crate::auth::ratelimit::audit_refusal;
use crate::base::error::ApiError;
use crate::base::state::AppState;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, OriginalUri, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use chrono::Duration;
use futures::StreamExt;
use muster_httpsig::{signature_keyid, verify, VerifiedSignature, VerifyError, VerifyPolicy};
use muster_proto::Problem;
use muster_store::{ClientRow, PrincipalKind};
use sha2::Digest;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// The client a verified signature speaks for (a request extension).
#[derive(Debug, Clone)]
pub struct SignedBy(pub ClientRow);

/// The one route whose body is streamed rather than buffered.
const UPLOAD_PATH: &str = "/api/v1/imports";
/// The routes reachable without a client credential (the JWT is the
/// credential), the default tenant's and every tenant's: they take no body.
fn is_login_sync(path: &str) -> bool {
    path == "/api/v1/login-sync"
        || path
            .strip_prefix("/api/v1/tenants/")
            .and_then(|rest| rest.strip_suffix("/login-sync"))
            .is_some_and(|tenant| !tenant.is_empty() && !tenant.contains('/'))
}

/// How much of a signed request's body is buffered to check its digest:
/// the JSON limit for the methods that carry a JSON body, the small
/// unauthenticated limit for the rest (they take no body) and login sync.
fn buffer_limit(limits: &crate::base::config::Limits, method: &Method, path: &str) -> usize {
    let takes_json =
        matches!(*method, Method::POST | Method::PUT | Method::PATCH) && !is_login_sync(path);
    if takes_json {
        limits.max_json_bytes
    } else {
        limits.max_unauthenticated_body_bytes
    }
}

/// Longest nonce accepted (and stored).
const MAX_NONCE: usize = 128;
/// How long a nonce is remembered: a signature is acceptable while its
/// `created` lies within 300 s of the gateway's clock, so 600 s after it is
/// first seen it can no longer verify; a minute more absorbs clock steps.
const NONCE_TTL_SECS: i64 = 2 * 300 + 60;

/// Whether the request carries a signature (and so must be verified).
pub fn has_signature(headers: &HeaderMap) -> bool {
    headers.contains_key(muster_httpsig::SIGNATURE)
        || headers.contains_key(muster_httpsig::SIGNATURE_INPUT)
}

/// A 401 problem document with a machine-readable reason.
pub fn refusal(code: &'static str, detail: String) -> Response {
    let body = Problem {
        type_: "about:blank".into(),
        title: "Unauthorized".into(),
        status: 401,
        detail,
        code: code.to_owned(),
        errors: Vec::new(),
    };
    let mut resp = (StatusCode::UNAUTHORIZED, axum::Json(body)).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    // RFC 9421 5.1: what a signature must cover here.
    resp.headers_mut().insert(
        "accept-signature",
        HeaderValue::from_static(
            "sig1=(\"@method\" \"@target-uri\" \"content-digest\");created;nonce;keyid",
        ),
    );
    resp
}

fn refused(e: &VerifyError) -> Response {
    match e {
        // One answer whether or not the key id names a client with such a key.
        VerifyError::UnknownKey | VerifyError::AlgorithmMismatch | VerifyError::BadSignature => {
            let e = VerifyError::BadSignature;
            refusal(e.code(), e.to_string())
        }
        _ => refusal(e.code(), e.to_string()),
    }
}

/// Whether a refusal tested a key (and so counts as guessing): the
/// signature did not verify, or could not be read.
fn guessing(e: &VerifyError) -> bool {
    matches!(
        e,
        VerifyError::UnknownKey
            | VerifyError::AlgorithmMismatch
            | VerifyError::BadSignature
            | VerifyError::Malformed(_)
            | VerifyError::MissingKeyId
            | VerifyError::MissingSignature
    )
}

/// Rebuilds the absolute target URI (see the module docs).
fn target_uri(state: &AppState, headers: &HeaderMap, uri: &Uri) -> Option<String> {
    let pq = uri.path_and_query().map_or("/", |p| p.as_str());
    let public = state.config.public_url.trim_end_matches('/');
    if !public.is_empty() {
        return Some(format!("{public}{pq}"));
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned)
        .or_else(|| uri.authority().map(|a| a.as_str().to_owned()))?;
    let valid = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b));
    let scheme = if state.config.tls.enabled() {
        "https"
    } else {
        "http"
    };
    valid.then(|| format!("{scheme}://{host}{pq}"))
}

/// An expected body digest for a streamed body (RFC 9530 2: the first of
/// sha-256 and sha-512 the field carries).
#[derive(Clone)]
enum Expected {
    Sha256(Vec<u8>),
    Sha512(Vec<u8>),
}

fn expected_digest(field: &str) -> Result<Expected, VerifyError> {
    let mut found = None;
    for member in field.split(',') {
        let Some((name, value)) = member.trim().split_once('=') else {
            return Err(VerifyError::Malformed("Content-Digest".into()));
        };
        let bytes = value
            .trim()
            .split(';')
            .next()
            .and_then(|v| v.strip_prefix(':'))
            .and_then(|v| v.strip_suffix(':'))
            .and_then(|v| base64::engine::general_purpose::STANDARD.decode(v).ok())
            .ok_or_else(|| VerifyError::Malformed("Content-Digest".into()))?;
        match name.trim() {
            "sha-256" if found.is_none() => found = Some(Expected::Sha256(bytes)),
            "sha-512" if found.is_none() => found = Some(Expected::Sha512(bytes)),
            _ => {}
        }
    }
    found.ok_or(VerifyError::UnsupportedDigest)
}

/// Wraps a streamed body: hashes it as it flows and, when the content ends
/// with another digest than the signed one, yields an error instead of the
/// end, and sets `mismatch`.
fn digest_checked(body: Body, expected: Expected, mismatch: Arc<AtomicBool>) -> Body {
    enum Hasher {
        Sha256(sha2::Sha256),
        Sha512(sha2::Sha512),
    }
    let hasher = match &expected {
        Expected::Sha256(_) => Hasher::Sha256(sha2::Sha256::new()),
        Expected::Sha512(_) => Hasher::Sha512(sha2::Sha512::new()),
    };
    let start = Some((body.into_data_stream(), hasher, expected, mismatch));
    let stream = futures::stream::unfold(start, |st| async move {
        let (mut inner, mut hasher, expected, mismatch) = st?;
        match inner.next().await {
            Some(Ok(chunk)) => {
                match &mut hasher {
                    Hasher::Sha256(h) => h.update(&chunk),
                    Hasher::Sha512(h) => h.update(&chunk),
                }
                Some((Ok(chunk), Some((inner, hasher, expected, mismatch))))
            }
            Some(Err(e)) => Some((Err(axum::BoxError::from(e)), None)),
            None => {
                let ok = match (hasher, &expected) {
                    (Hasher::Sha256(h), Expected::Sha256(want)) => {
                        muster_core::secret::digest_eq(&h.finalize(), want)
                    }
                    (Hasher::Sha512(h), Expected::Sha512(want)) => {
                        muster_core::secret::digest_eq(&h.finalize(), want)
                    }
                    _ => false,
                };
                if ok {
                    None
                } else {
                    mismatch.store(true, Ordering::SeqCst);
                    let e: axum::BoxError = "Content-Digest does not match the content".into();
                    Some((Err(e), None))
                }
            }
        }
    });
    Body::from_stream(stream)
}

/// The middleware: see the module docs.
pub async fn verify_signature(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if !has_signature(req.headers()) {
        return next.run(req).await;
    }
    // Failed-authentication limits (see `crate::auth::ratelimit`): nothing is
    // refused before the signature is checked; a failure that counts as
    // guessing counts by source address and, once the key id is read, by
    // (address, key id). Served without connection info (embedded), all
    // peers count as one address.
    let peer = req
        .extensions()
        .get::<ConnectInfo<std::net::SocketAddr>>()
        .map_or(std::net::IpAddr::from([0u8; 4]), |c| c.0.ip());
    let addr = state.auth_failures.client_addr(peer, req.headers());
    let mut limit_keys = crate::auth::ratelimit::keys(addr, None);
    match authenticate(&state, req, addr, &mut limit_keys).await {
        Ok((req, None)) => next.run(req).await,
        Ok((req, Some((client, mismatch)))) => {
            let resp = next.run(req).await;
            if mismatch.load(Ordering::SeqCst) {
                // The signature verified: a damaged body is no guess.
                let e = VerifyError::DigestMismatch;
                audit_refusal(&state, &client, "httpsig", e.code(), addr).await;
                return refused(&e);
            }
            resp
        }
        Err((resp, guess)) => {
            if guess {
                crate::auth::ratelimit::record_failure(&state, limit_keys).await;
            }
            resp
        }
    }
}

type StreamCheck = Option<(ClientRow, Arc<AtomicBool>)>;

/// A refused signed request: the answer, and whether it counts as guessing.
type Refusal = (Response, bool);

/// A refusal that does not count as guessing.
fn plain(resp: Response) -> Refusal {
    (resp, false)
}

async fn authenticate(
    state: &AppState,
    req: Request,
    addr: std::net::IpAddr,
    limit_keys: &mut Vec<String>,
) -> Result<(Request, StreamCheck), Refusal> {
    if req.headers().contains_key(header::AUTHORIZATION) {
        return Err(plain(refusal(
            "multiple_credentials",
            "send either a signature or an Authorization header, not both".into(),
        )));
    }
    let (mut parts, body) = req.into_parts();
    let uri = parts
        .extensions
        .get::<OriginalUri>()
        .map_or_else(|| parts.uri.clone(), |o| o.0.clone());
    let target = target_uri(state, &parts.headers, &uri).ok_or_else(|| {
        plain(refusal(
            "component_unavailable",
            "the target URI cannot be determined (no valid Host header)".into(),
        ))
    })?;
    let streaming = parts.method == Method::POST && uri.path() == UPLOAD_PATH;
    let (buffered, streamed): (Option<Bytes>, Option<Body>) = if streaming {
        (None, Some(body))
    } else {
        // Read before the signature is checked, so no more than the route
        // itself would take.
        let limit = buffer_limit(&state.config.limits, &parts.method, uri.path());
        let refuse =
            |e: crate::http::bodies::BodyError| plain(e.api_error("the body").into_response());
        if crate::http::bodies::declared_length(&parts.headers).is_some_and(|n| n > limit as u64) {
            return Err(refuse(crate::http::bodies::BodyError::TooLarge { limit }));
        }
        let bytes = crate::http::bodies::read_limited(body, limit)
            .await
            .map_err(refuse)?;
        (Some(bytes), None)
    };
    // Header lines for the signature base; values that are not visible
    // ASCII cannot be covered and are left out (a covered one then reads as
    // absent, RFC 9421 2.5).
    let header_lines: Vec<(String, String)> = parts
        .headers
        .iter()
        .filter_map(|(n, v)| Some((n.as_str().to_owned(), v.to_str().ok()?.to_owned())))
        .collect();
    let message = || {
        let mut m = muster_httpsig::Request::new(parts.method.as_str(), &target);
        for (n, v) in &header_lines {
            m = m.header(n, v);
        }
        if let Some(b) = &buffered {
            m = m.body(b);
        }
        m
    };

    let failed = |e: VerifyError| (refused(&e), guessing(&e));
    let keyid = signature_keyid(&message(), None).map_err(failed)?;
    limit_keys.extend(crate::auth::ratelimit::pair_key(addr, &keyid));
    let now = state.clock.now();
    let policy = VerifyPolicy::muster(now.timestamp());
    let lookup = keyid.clone();
    let client = match state.db_read(move |s| s.client_get(&lookup)).await {
        Ok(c) if c.kind == PrincipalKind::Client => c,
        Ok(_) | Err(ApiError::NotFound(_)) => {
            // The same checks as for a known client, against a key nobody
            // has, so the answer is the same as for a wrong key. No tenant
            // to audit under: the log keeps the attempt.
            let e = check(&message(), &[decoy()], &policy, streaming)
                .err()
                .unwrap_or(VerifyError::BadSignature);
            tracing::warn!(
                reason = "unknown_key",
                "a signed request named no known client"
            );
            return Err(failed(e));
        }
        Err(e) => return Err(plain(e.into_response())),
    };
    let cid = client.client_id.clone();
    let stored = state
        .db_read(move |s| s.client_keys_get(&cid))
        .await
        .map_err(|e| plain(e.into_response()))?;
    let mut keys = verifying_keys(state, &client.client_id, &stored);
    let keyless = keys.is_empty();
    if keyless {
        keys.push(decoy());
    }

    let verified = match check(&message(), &keys, &policy, streaming) {
        Ok(_) if keyless => {
            audit_refusal(state, &client, "httpsig", "unknown_key", addr).await;
            return Err(failed(VerifyError::UnknownKey));
        }
        Ok(v) => v,
        Err(e) => {
            let code = match e {
                VerifyError::BadSignature if keyless => "unknown_key",
                _ => e.code(),
            };
            audit_refusal(state, &client, "httpsig", code, addr).await;
            return Err(failed(e));
        }
    };
    let expected = if streaming {
        let field = parts
            .headers
            .get(muster_httpsig::CONTENT_DIGEST)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        match expected_digest(field) {
            Ok(x) => Some(x),
            Err(e) => {
                audit_refusal(state, &client, "httpsig", e.code(), addr).await;
                return Err(plain(refused(&e)));
            }
        }
    } else {
        None
    };
    if client.disabled {
        audit_refusal(state, &client, "httpsig", "client_disabled", addr).await;
        return Err(plain(refusal(
            "client_disabled",
            "the client is disabled".into(),
        )));
    }
    let nonce = verified.nonce.unwrap_or_default();
    if nonce.is_empty() || nonce.len() > MAX_NONCE {
        audit_refusal(state, &client, "httpsig", "malformed", addr).await;
        return Err(plain(refusal(
            "malformed",
            format!("the nonce must be 1 to {MAX_NONCE} characters"),
        )));
    }
    let (pid, key, until) = (
        client.id.clone(),
        format!("sig:{nonce}"),
        now + Duration::seconds(NONCE_TTL_SECS),
    );
    let fresh = state
        .db(move |s| s.nonce_record(&pid, &key, until, now))
        .await
        .map_err(|e| plain(e.into_response()))?;
    if !fresh {
        // A replay of a signature that verified: not a guess.
        audit_refusal(state, &client, "httpsig", "nonce_reused", addr).await;
        return Err(plain(refusal(
            "nonce_reused",
            "this signature nonce was already used".into(),
        )));
    }

    parts.extensions.insert(SignedBy(client.clone()));
    let (body, check) = match (buffered, streamed, expected) {
        (Some(b), _, _) => (Body::from(b), None),
        (None, Some(body), Some(expected)) => {
            let flag = Arc::new(AtomicBool::new(false));
            (
                digest_checked(body, expected, flag.clone()),
                Some((client, flag)),
            )
        }
        _ => (Body::empty(), None),
    };
    Ok((Request::from_parts(parts, body), check))
}

/// A random HMAC key nobody holds: what a signature naming no client (or a
/// client without keys) is checked against.
fn decoy() -> muster_httpsig::VerifyingKey {
    muster_httpsig::VerifyingKey::HmacSha256(muster_httpsig::HmacKey::new(
        rand::random::<[u8; 32]>().to_vec(),
    ))
}

/// Verifies with each of the client's keys in turn (RFC 9421 3.2). A policy
/// failure is the same for every key, so only a bad signature or an `alg`
/// that names the other key's algorithm moves on to the next key.
fn check(
    message: &muster_httpsig::Request<'_>,
    keys: &[muster_httpsig::VerifyingKey],
    policy: &VerifyPolicy,
    streaming: bool,
) -> Result<VerifiedSignature, VerifyError> {
    let mut last = VerifyError::UnknownKey;
    for key in keys {
        let resolver = |_: &str| Some(key.clone());
        match verify(message, None, &resolver, policy) {
            Ok(v) => {
                // A streamed body is not in `message`, so the crate could
                // not require its digest: require it here (RFC 9530 6.1).
                let digest = muster_httpsig::CONTENT_DIGEST;
                if streaming && !v.components.iter().any(|c| c == digest) {
                    return Err(VerifyError::MissingComponent(digest.to_owned()));
                }
                return Ok(v);
            }
            Err(e @ (VerifyError::BadSignature | VerifyError::AlgorithmMismatch)) => {
                if !matches!(last, VerifyError::BadSignature) {
                    last = e;
                }
            }
            Err(e) => return Err(e),
        }
    }
    Err(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_content_digest_field_yields_the_expected_hash() {
        let field = muster_httpsig::content_digest(b"abc", muster_httpsig::DigestAlgorithm::Sha256);
        match expected_digest(&field) {
            Ok(Expected::Sha256(d)) => assert_eq!(d, sha2::Sha256::digest(b"abc").to_vec()),
            _ => panic!("sha-256 expected"),
        }
        assert!(matches!(
            expected_digest("md5=:AAAA:"),
            Err(VerifyError::UnsupportedDigest)
        ));
        assert!(matches!(
            expected_digest("garbage"),
            Err(VerifyError::Malformed(_))
        ));
    }

    #[test]
    fn every_tenants_login_sync_route_gets_the_small_body_limit() {
        let limits = crate::base::config::Config::load_from(None, Vec::new())
            .unwrap()
            .limits;
        let small = limits.max_unauthenticated_body_bytes;
        for path in ["/api/v1/login-sync", "/api/v1/tenants/acme/login-sync"] {
            assert_eq!(buffer_limit(&limits, &Method::POST, path), small, "{path}");
        }
        for path in [
            "/api/v1/tenants//login-sync",
            "/api/v1/tenants/a/b/login-sync",
        ] {
            assert!(!is_login_sync(path), "{path}");
        }
        assert_eq!(
            buffer_limit(&limits, &Method::POST, "/api/v1/people/sync"),
            limits.max_json_bytes
        );
    }
}
