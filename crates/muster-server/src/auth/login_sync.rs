//! Just-in-time sync at login from the tenant's identity provider: the
//! admin API for registered issuers (`/api/v1/issuers`,
//! `clients:admin`), `POST /api/v1/login-sync` (the default tenant's
//! issuers) and `POST /api/v1/tenants/{tenant}/login-sync` (that
//! tenant's).
//!
//! A login-sync request carries the IdP's JWT as `Authorization: Bearer`.
//! The path names the tenant; among that tenant's issuers the gateway
//! selects one by `iss` and `aud` (RFC 7519 4.1.1, 4.1.3), so a login
//! lands in the tenant that registered the issuer and no other. It checks
//! the JWS `alg` against the issuer's list (RFC 7515 4.1.1; `none` never,
//! `HS256` only with a registered secret), verifies the
//! signature with the issuer's JWK Set (uploaded, or fetched and cached;
//! an unknown `kid`, RFC 7515 4.1.4, triggers one refetch), checks `exp`
//! and `nbf` with the issuer's clock skew (RFC 7519 4.1.4, 4.1.5) and that
//! the `jti` (4.1.7) is new. The claims then go through the issuer's
//! mapping like one JSON record of an import, through the write gate
//! ([`crate::ops::write::policy_errors`]) with the issuer's write policy, and
//! into [`muster_store::Store::apply_batch`] with source `login-sync` and
//! the token's `sub` as `on_behalf_of`.
//!
//! An issuer is not a principal row: it has no credential of its own that
//! could be used elsewhere. Audit names it `issuer:<name>`; its `jti`
//! values are remembered under `issuer:<id>`.
//!
//! Every refusal is a 401 with its own problem `code` and is audited as
//! `auth.failed` (never the token), aggregated per source address and
//! reason (see `crate::auth::ratelimit`): anyone can send a token, and no one
//! may grow a tenant's audit chain at will. A refusal before any issuer is
//! known (no token, malformed, unknown `iss`) is audited in the default
//! tenant, the operator's. Refusals of tokens that cannot pass count as
//! guessing by source address; a missing token, a replayed `jti` and a
//! verified token outside its validity do not.
use crate::auth::keys::{assertion_keys, signature_keys, AssertionKey};
use crate::base::error::{ApiError, ApiResult};
use crate::base::sealed::hs256_aad;
use crate::base::state::AppState;
use crate::http::outbound::{self, Redirects, Rule};
use crate::ops::input::RoleName;
use axum::http::{header, HeaderMap};
use base64::Engine;
use chrono::{DateTime, Duration, TimeZone, Utc};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{decode, Algorithm, DecodingKey, Validation};
use muster_core::TenantId;
use muster_proto::ErrorCode;
use muster_store::IssuerRow;
use std::collections::{BTreeSet, HashMap};
use std::str::FromStr;
use std::sync::{Arc, Mutex};

const B64URL: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;
/// The JWS algorithms an issuer may accept.
pub(crate) const SUPPORTED_ALGS: [&str; 4] = ["RS256", "ES256", "EdDSA", "HS256"];
pub(crate) const DEFAULT_ALGS: [&str; 3] = ["RS256", "ES256", "EdDSA"];
pub(crate) const DEFAULT_SKEW: u64 = 60;
pub(crate) const MAX_SKEW: u64 = 600;
pub(crate) const DEFAULT_JWKS_CACHE: u64 = 300;
/// A JWK Set fetch must answer within this and be no larger than that.
const FETCH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);
const MAX_JWKS_BYTES: usize = 256 * 1024;
/// An unknown `kid` refetches the JWK Set at most this often, so random
/// `kid` values cannot turn the gateway into a fetch amplifier.
pub(crate) const MIN_REFETCH_SECONDS: i64 = 10;
/// Redirects a JWK Set fetch follows, each hop checked by the outbound rule.
const MAX_REDIRECTS: usize = 3;
const MAX_TOKEN_BYTES: usize = 16 * 1024;
const MAX_JTI: usize = 256;
const MAX_SUB: usize = 256;
/// RFC 7518 3.2: an HS256 key is at least as long as the hash output.
pub(crate) const MIN_HS256_SECRET: usize = 32;

/// How audit entries and row errors name an issuer.
pub(crate) fn principal_name(i: &IssuerRow) -> String {
    format!("issuer:{}", i.name)
}

// ---------------------------------------------------------------------
// JWK Set cache
// ---------------------------------------------------------------------

struct Cached {
    /// The keys of the last fetch that succeeded; `None` after a failed
    /// one (a set that could not be refreshed is not trusted on).
    keys: Option<Arc<Vec<AssertionKey>>>,
    fetched_at: DateTime<Utc>,
    /// The last fetch, whatever its outcome: the next one waits
    /// [`MIN_REFETCH_SECONDS`] after it.
    attempted_at: DateTime<Utc>,
}

/// Fetched JWK Sets by issuer id, each used until its issuer's
/// `jwks_cache_seconds` have passed (by the injected clock).
///
/// Login-sync requests are unauthenticated until their signature is
/// checked, so nothing they send may make the gateway fetch at will: an
/// issuer's set is fetched by one request at a time (the others wait for
/// its result), and at most once per [`MIN_REFETCH_SECONDS`], a failed
/// fetch included.
#[derive(Default)]
pub struct JwksCache {
    entries: Mutex<HashMap<String, Cached>>,
    /// One fetch at a time per issuer.
    gates: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    http: std::sync::OnceLock<reqwest::Client>,
}

impl std::fmt::Debug for JwksCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JwksCache(..)")
    }
}

impl JwksCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Cached>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn gate(&self, issuer_id: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut gates = self.gates.lock().unwrap_or_else(|p| p.into_inner());
        gates.entry(issuer_id.to_owned()).or_default().clone()
    }

    pub(crate) fn forget(&self, issuer_id: &str) {
        self.lock().remove(issuer_id);
        self.gates
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(issuer_id);
    }

    /// The client for JWK Set fetches: the outbound destination rule at
    /// connect time and on each of at most 3 redirects (an IdP may move
    /// its keys document; each hop is judged like the first URL).
    fn http(&self, rule: Rule) -> Result<&reqwest::Client, Refusal> {
        if let Some(c) = self.http.get() {
            return Ok(c);
        }
        let builder = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .connect_timeout(FETCH_TIMEOUT);
        let c = rule
            .client(builder, Redirects::Checked(MAX_REDIRECTS))
            .map_err(|e| {
                tracing::error!(error = %e, "cannot build the JWKS HTTP client");
                Refusal::JwksUnavailable
            })?;
        Ok(self.http.get_or_init(|| c))
    }

    /// The cached keys if fresh: `(keys, fetched_at)`.
    fn cached(
        &self,
        issuer: &IssuerRow,
        now: DateTime<Utc>,
    ) -> Option<(Arc<Vec<AssertionKey>>, DateTime<Utc>)> {
        let ttl = i64::try_from(issuer.settings.jwks_cache_seconds).unwrap_or(i64::MAX);
        let entries = self.lock();
        let c = entries.get(&issuer.id)?;
        let keys = c.keys.clone()?;
        (now < c.fetched_at + Duration::seconds(ttl)).then_some((keys, c.fetched_at))
    }

    /// Fetches the issuer's set unless a fetch was made in the last
    /// [`MIN_REFETCH_SECONDS`] (by this request's rivals, who it waits
    /// for, or before): then that fetch's result is the answer.
    async fn fetch(
        &self,
        issuer: &IssuerRow,
        url: &str,
        now: DateTime<Utc>,
        rule: Rule,
    ) -> Result<(Arc<Vec<AssertionKey>>, DateTime<Utc>), Refusal> {
        let gate = self.gate(&issuer.id);
        let _one_at_a_time = gate.lock().await;
        if let Some(c) = self.lock().get(&issuer.id) {
            if now - c.attempted_at < Duration::seconds(MIN_REFETCH_SECONDS) {
                return c
                    .keys
                    .clone()
                    .map(|k| (k, c.fetched_at))
                    .ok_or(Refusal::JwksUnavailable);
            }
        }
        let got = self.download(&issuer.name, url, rule).await;
        let mut entries = self.lock();
        match got {
            Ok(keys) => {
                let keys = Arc::new(keys);
                entries.insert(
                    issuer.id.clone(),
                    Cached {
                        keys: Some(keys.clone()),
                        fetched_at: now,
                        attempted_at: now,
                    },
                );
                Ok((keys, now))
            }
            Err(why) => {
                entries.insert(
                    issuer.id.clone(),
                    Cached {
                        keys: None,
                        fetched_at: now,
                        attempted_at: now,
                    },
                );
                Err(why)
            }
        }
    }

    async fn download(
        &self,
        issuer: &str,
        url: &str,
        rule: Rule,
    ) -> Result<Vec<AssertionKey>, Refusal> {
        let fail = |why: &str| {
            tracing::warn!(issuer, why, "fetching the issuer's JWK Set failed");
            Refusal::JwksUnavailable
        };
        let url = reqwest::Url::parse(url).map_err(|_| fail("the stored URL is not valid"))?;
        // An IP literal skips the resolver: judged here, at every fetch.
        if let Err(why) = rule.check_url(&url) {
            return Err(fail(&format!("refused: {why}")));
        }
        let mut resp = self
            .http(rule)?
            .get(url)
            .header(header::ACCEPT, "application/json, application/jwk-set+json")
            .send()
            .await
            .map_err(|e| match outbound::refusal(&e) {
                Some(why) => fail(&format!("refused: {why}")),
                None => fail("the request failed"),
            })?;
        if !resp.status().is_success() {
            return Err(fail("the answer was not a success"));
        }
        if resp
            .content_length()
            .is_some_and(|n| n > MAX_JWKS_BYTES as u64)
        {
            return Err(fail("the answer is too large"));
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|_| fail("reading failed"))? {
            if body.len() + chunk.len() > MAX_JWKS_BYTES {
                return Err(fail("the answer is too large"));
            }
            body.extend_from_slice(&chunk);
        }
        let set: JwkSet =
            serde_json::from_slice(&body).map_err(|_| fail("not a JWK Set (RFC 7517 5)"))?;
        Ok(signature_keys(&set))
    }
}

// ---------------------------------------------------------------------
// POST /api/v1/login-sync
// ---------------------------------------------------------------------

/// Why a login-sync token was refused; each has its own problem `code`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    MissingToken,
    Malformed,
    AlgNone,
    UnknownIssuer,
    WrongAudience,
    AlgNotAllowed,
    Hs256NotConfigured,
    JwksUnavailable,
    UnknownKid,
    BadSignature,
    MissingClaim,
    Expired,
    NotYetValid,
    JtiReplayed,
}

impl Refusal {
    fn code(self) -> &'static str {
        match self {
            Refusal::MissingToken => "missing_token",
            Refusal::Malformed => "malformed_token",
            Refusal::AlgNone => "alg_none",
            Refusal::UnknownIssuer => "unknown_issuer",
            Refusal::WrongAudience => "wrong_audience",
            Refusal::AlgNotAllowed => "alg_not_allowed",
            Refusal::Hs256NotConfigured => "hs256_not_configured",
            Refusal::JwksUnavailable => "jwks_unavailable",
            Refusal::UnknownKid => "unknown_kid",
            Refusal::BadSignature => "bad_signature",
            Refusal::MissingClaim => "missing_claim",
            Refusal::Expired => "token_expired",
            Refusal::NotYetValid => "token_not_yet_valid",
            Refusal::JtiReplayed => "jti_replayed",
        }
    }

    fn detail(self) -> &'static str {
        match self {
            Refusal::MissingToken => "an Authorization: Bearer JWT is required",
            Refusal::Malformed => "the token is not a JWS compact serialization with JSON claims",
            Refusal::AlgNone => "unsecured JWTs (alg none) are never accepted",
            Refusal::UnknownIssuer => "iss names no registered issuer",
            Refusal::WrongAudience => "aud does not name the issuer's registered audience",
            Refusal::AlgNotAllowed => "the issuer does not accept this alg",
            Refusal::Hs256NotConfigured => "HS256 is not configured for this issuer",
            Refusal::JwksUnavailable => "the issuer's JWK Set could not be fetched",
            Refusal::UnknownKid => "no key of the issuer matches the token's kid and alg",
            Refusal::BadSignature => "the signature does not verify",
            Refusal::MissingClaim => "exp, sub and jti are required",
            Refusal::Expired => "the token has expired",
            Refusal::NotYetValid => "the token is not valid yet (nbf or iat)",
            Refusal::JtiReplayed => "this jti was already used",
        }
    }
}

/// The parts of a JWT read before its signature is checked, only to find
/// the issuer and key.
pub(crate) struct Unverified {
    alg: String,
    kid: Option<String>,
    iss: String,
    aud: Vec<String>,
}

fn b64_json(part: &str) -> Option<serde_json::Map<String, serde_json::Value>> {
    let bytes = B64URL.decode(part.trim_end_matches('=')).ok()?;
    match serde_json::from_slice(&bytes).ok()? {
        serde_json::Value::Object(m) => Some(m),
        _ => None,
    }
}

pub(crate) fn unverified(token: &str) -> Result<Unverified, Refusal> {
    let parts: Vec<&str> = token.split('.').collect();
    // RFC 7515 7.1: three parts; five would be a JWE, which is not accepted.
    let [h, c, _] = parts.as_slice() else {
        return Err(Refusal::Malformed);
    };
    let header = b64_json(h).ok_or(Refusal::Malformed)?;
    let alg = header
        .get("alg")
        .and_then(|a| a.as_str())
        .ok_or(Refusal::Malformed)?;
    if alg.eq_ignore_ascii_case("none") {
        return Err(Refusal::AlgNone);
    }
    // RFC 7515 4.1.11: extensions we do not understand must be refused.
    if header.contains_key("crit") {
        return Err(Refusal::Malformed);
    }
    let kid = match header.get("kid") {
        None => None,
        Some(serde_json::Value::String(k)) => Some(k.clone()),
        Some(_) => return Err(Refusal::Malformed),
    };
    let claims = b64_json(c).ok_or(Refusal::Malformed)?;
    let iss = claims
        .get("iss")
        .and_then(|v| v.as_str())
        .ok_or(Refusal::UnknownIssuer)?
        .to_owned();
    // RFC 7519 4.1.3: one string or an array of strings.
    let aud = match claims.get("aud") {
        Some(serde_json::Value::String(a)) => vec![a.clone()],
        Some(serde_json::Value::Array(a)) => a
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    };
    Ok(Unverified {
        alg: alg.to_owned(),
        kid,
        iss,
        aud,
    })
}

fn bearer(headers: &HeaderMap) -> Result<&str, Refusal> {
    let t = crate::auth::authorization(headers, "bearer")
        .filter(|t| !t.is_empty())
        .ok_or(Refusal::MissingToken)?;
    if t.len() > MAX_TOKEN_BYTES {
        return Err(Refusal::Malformed);
    }
    Ok(t)
}

pub(crate) async fn audit_failure(
    state: &AppState,
    issuer: Option<&IssuerRow>,
    why: Refusal,
    addr: std::net::IpAddr,
) {
    let (tenant, principal) = match issuer {
        Some(i) => (i.tenant.clone(), principal_name(i)),
        None => (TenantId::default_tenant(), "anonymous".to_owned()),
    };
    crate::auth::ratelimit::audit_failure(state, tenant, principal, "login-sync", why.code(), addr)
        .await;
}

/// Whether a refusal counts as guessing (see the module docs).
pub(crate) fn guessing(why: Refusal) -> bool {
    !matches!(
        why,
        Refusal::MissingToken | Refusal::JtiReplayed | Refusal::Expired | Refusal::NotYetValid
    )
}

pub(crate) fn refused(why: Refusal) -> ApiError {
    ApiError::AuthRefused {
        // Every refusal's code is in the catalogue (a test in muster-proto
        // checks docs/errors.md lists them); a code missing from it would
        // still be answered as a refused token.
        code: ErrorCode::parse(why.code()).unwrap_or(ErrorCode::InvalidToken),
        detail: why.detail(),
    }
}

/// The verified claims of a token and the issuer that signed it.
pub(crate) struct Verified {
    pub issuer: IssuerRow,
    pub claims: serde_json::Map<String, serde_json::Value>,
    pub sub: String,
}

pub(crate) async fn authenticate(
    state: &AppState,
    tenant: &TenantId,
    headers: &HeaderMap,
) -> Result<Verified, (Option<IssuerRow>, Refusal)> {
    let anon = |why: Refusal| -> (Option<IssuerRow>, Refusal) { (None, why) };
    let token = bearer(headers).map_err(anon)?;
    let u = unverified(token).map_err(anon)?;
    let (t, iss) = (tenant.clone(), u.iss.clone());
    let candidates = state
        .db(move |s| s.issuer_find(&t, &iss))
        .await
        .map_err(|e| {
            tracing::error!(error = ?e, "cannot read issuers");
            (None, Refusal::UnknownIssuer)
        })?;
    let Some(first) = candidates.first().cloned() else {
        return Err(anon(Refusal::UnknownIssuer));
    };
    let Some(issuer) = candidates.into_iter().find(|i| u.aud.contains(&i.audience)) else {
        return Err((Some(first), Refusal::WrongAudience));
    };
    match verify(state, &issuer, token, &u).await {
        Ok((claims, sub)) => Ok(Verified {
            issuer,
            claims,
            sub,
        }),
        Err(why) => Err((Some(issuer), why)),
    }
}

/// The keys to try for this token, refetching a URL-published JWK Set
/// once when the `kid` is unknown.
async fn keys_for(
    state: &AppState,
    issuer: &IssuerRow,
    alg: Algorithm,
    kid: Option<&str>,
) -> Result<Vec<DecodingKey>, Refusal> {
    let pick = |keys: &[AssertionKey]| -> Vec<DecodingKey> {
        keys.iter()
            .filter(|k| k.alg == alg)
            .filter(|k| kid.is_none_or(|kid| k.kid.as_deref() == Some(kid)))
            .map(|k| k.key.clone())
            .collect()
    };
    if alg == Algorithm::HS256 {
        let sealed = issuer
            .hs256_sealed
            .as_deref()
            .ok_or(Refusal::Hs256NotConfigured)?;
        let secret = state
            .master_key
            .open_box(&hs256_aad(&issuer.id), sealed)
            .map_err(|e| {
                tracing::error!(issuer = %issuer.name, error = %e, "a sealed HS256 secret does not open");
                Refusal::Hs256NotConfigured
            })?;
        return Ok(vec![DecodingKey::from_secret(&secret)]);
    }
    if let Some(text) = &issuer.settings.jwks {
        let doc: serde_json::Value = serde_json::from_str(text).map_err(|_| Refusal::UnknownKid)?;
        let keys = assertion_keys(&doc).map_err(|_| Refusal::UnknownKid)?;
        let found = pick(&keys);
        return if found.is_empty() {
            Err(Refusal::UnknownKid)
        } else {
            Ok(found)
        };
    }
    let url = issuer
        .settings
        .jwks_url
        .as_deref()
        .ok_or(Refusal::UnknownKid)?;
    let now = state.clock.now();
    let cache = &state.jwks_cache;
    let rule = Rule::outbound(&state.config);
    let (keys, fetched_at) = match cache.cached(issuer, now) {
        Some(c) => c,
        None => cache.fetch(issuer, url, now, rule).await?,
    };
    let found = pick(&keys);
    if !found.is_empty() {
        return Ok(found);
    }
    // The IdP may have rotated its keys since the set was fetched.
    if now - fetched_at < Duration::seconds(MIN_REFETCH_SECONDS) {
        return Err(Refusal::UnknownKid);
    }
    let (keys, _) = cache.fetch(issuer, url, now, rule).await?;
    let found = pick(&keys);
    if found.is_empty() {
        Err(Refusal::UnknownKid)
    } else {
        Ok(found)
    }
}

async fn verify(
    state: &AppState,
    issuer: &IssuerRow,
    token: &str,
    u: &Unverified,
) -> Result<(serde_json::Map<String, serde_json::Value>, String), Refusal> {
    if !issuer.settings.algorithms.contains(&u.alg) {
        return Err(if u.alg == "HS256" {
            Refusal::Hs256NotConfigured
        } else {
            Refusal::AlgNotAllowed
        });
    }
    let alg = Algorithm::from_str(&u.alg).map_err(|_| Refusal::AlgNotAllowed)?;
    let keys = keys_for(state, issuer, alg, u.kid.as_deref()).await?;

    let mut v = Validation::new(alg);
    // Time is checked below against the injected clock and the issuer's skew.
    v.validate_exp = false;
    v.validate_nbf = false;
    v.set_required_spec_claims(&["iss", "aud"]);
    v.set_issuer(&[&issuer.issuer]);
    v.set_audience(&[&issuer.audience]);
    let mut claims = None;
    for k in &keys {
        match decode::<serde_json::Map<String, serde_json::Value>>(token, k, &v) {
            Ok(data) => {
                claims = Some(data.claims);
                break;
            }
            Err(e) => match e.kind() {
                ErrorKind::InvalidSignature => continue,
                ErrorKind::InvalidAudience => return Err(Refusal::WrongAudience),
                ErrorKind::InvalidIssuer => return Err(Refusal::UnknownIssuer),
                ErrorKind::MissingRequiredClaim(_) => return Err(Refusal::MissingClaim),
                _ => return Err(Refusal::Malformed),
            },
        }
    }
    let claims = claims.ok_or(Refusal::BadSignature)?;

    let now = state.clock.now();
    let skew = i64::try_from(issuer.settings.clock_skew_seconds).unwrap_or(0);
    let (exp, sub, jti) = check_claims(&claims, now.timestamp(), skew)?;
    let until = Utc
        .timestamp_opt(exp.saturating_add(skew), 0)
        .single()
        .unwrap_or(now + Duration::days(1));
    let (pid, key) = (format!("issuer:{}", issuer.id), format!("jti:{jti}"));
    let fresh = state
        .db(move |s| s.nonce_record(&pid, &key, until, now))
        .await
        .map_err(|e| {
            tracing::error!(error = ?e, "the login-sync replay check failed");
            Refusal::JtiReplayed
        })?;
    if !fresh {
        return Err(Refusal::JtiReplayed);
    }
    Ok((claims, sub))
}

/// The time and identity claims of a verified token, at `t` (Unix
/// seconds) with the issuer's `skew`: RFC 7519 4.1.4, 4.1.5 (and 4.1.6 for
/// `iat`), a usable `sub`, and a `jti` (4.1.7) to remember. Returns `exp`,
/// `sub` and `jti`.
pub(crate) fn check_claims(
    claims: &serde_json::Map<String, serde_json::Value>,
    t: i64,
    skew: i64,
) -> Result<(i64, String, String), Refusal> {
    let num = |name: &str| -> Result<Option<i64>, Refusal> {
        match claims.get(name) {
            None => Ok(None),
            Some(v) => v
                .as_i64()
                .or_else(|| v.as_f64().map(|f| f as i64))
                .map(Some)
                .ok_or(Refusal::Malformed),
        }
    };
    let exp = num("exp")?.ok_or(Refusal::MissingClaim)?;
    if exp <= t - skew {
        return Err(Refusal::Expired);
    }
    if num("nbf")?.is_some_and(|n| n > t + skew) || num("iat")?.is_some_and(|i| i > t + skew) {
        return Err(Refusal::NotYetValid);
    }
    let sub = claims
        .get("sub")
        .and_then(|s| s.as_str())
        .filter(|s| !s.is_empty() && s.len() <= MAX_SUB && !s.chars().any(char::is_control))
        .ok_or(Refusal::MissingClaim)?
        .to_owned();
    // RFC 7519 4.1.7; the caller remembers it until the token could not
    // pass anyway.
    let jti = claims
        .get("jti")
        .and_then(|j| j.as_str())
        .filter(|j| !j.is_empty() && j.len() <= MAX_JTI)
        .ok_or(Refusal::MissingClaim)?
        .to_owned();
    Ok((exp, sub, jti))
}

/// Roles from the issuer's roles claim: an array of names or one string
/// of space-separated names. `None` when the token lacks the claim (the
/// stored roles stay).
pub(crate) fn roles_from_claim(
    issuer: &IssuerRow,
    claims: &serde_json::Map<String, serde_json::Value>,
) -> ApiResult<Option<BTreeSet<String>>> {
    let Some(name) = &issuer.settings.roles_claim else {
        return Ok(None);
    };
    let names: Vec<String> = match claims.get(name) {
        None => return Ok(None),
        Some(serde_json::Value::String(s)) => s.split_whitespace().map(str::to_owned).collect(),
        Some(serde_json::Value::Array(a)) => a
            .iter()
            .map(|v| v.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| claim_error(name, "the roles claim must hold strings"))?,
        Some(_) => {
            return Err(claim_error(
                name,
                "the roles claim must be an array or a string",
            ))
        }
    };
    let mut set = BTreeSet::new();
    for r in names {
        if RoleName::parse(&r).is_none() {
            return Err(claim_error(
                name,
                "a role name is 1 to 64 letters, digits or '_.:-'",
            ));
        }
        set.insert(r);
    }
    Ok(Some(set))
}

fn claim_error(claim: &str, message: &str) -> ApiError {
    ApiError::Unprocessable {
        code: ErrorCode::InvalidPerson,
        detail: "the person was not written; see errors".into(),
        errors: vec![muster_proto::RowErrorInfo {
            row: 1,
            column: Some(claim.to_owned()),
            attribute: Some(muster_core::schema::ROLES.into()),
            code: "invalid_role".into(),
            message: message.into(),
        }],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(header: serde_json::Value, claims: serde_json::Value) -> String {
        format!(
            "{}.{}.",
            B64URL.encode(header.to_string()),
            B64URL.encode(claims.to_string())
        )
    }

    #[test]
    fn alg_none_is_refused_before_anything_else() {
        let t = jwt(
            serde_json::json!({"alg": "none"}),
            serde_json::json!({"iss": "x"}),
        );
        assert_eq!(unverified(&t).err(), Some(Refusal::AlgNone));
        let t = jwt(
            serde_json::json!({"alg": "NONE"}),
            serde_json::json!({"iss": "x"}),
        );
        assert_eq!(unverified(&t).err(), Some(Refusal::AlgNone));
    }

    #[test]
    fn crit_headers_and_jwe_are_refused() {
        let t = jwt(
            serde_json::json!({"alg": "RS256", "crit": ["exp"]}),
            serde_json::json!({"iss": "x"}),
        );
        assert_eq!(unverified(&t).err(), Some(Refusal::Malformed));
        assert_eq!(unverified("a.b.c.d.e").err(), Some(Refusal::Malformed));
    }

    #[test]
    fn aud_may_be_a_string_or_an_array() {
        let t = jwt(
            serde_json::json!({"alg": "RS256", "kid": "k"}),
            serde_json::json!({"iss": "x", "aud": ["a", "b"]}),
        );
        let u = unverified(&t).unwrap();
        assert_eq!(u.aud, vec!["a".to_string(), "b".to_string()]);
        assert_eq!(u.kid.as_deref(), Some("k"));
    }

    #[test]
    fn every_refusal_has_a_distinct_code() {
        use Refusal::*;
        let all = [
            MissingToken,
            Malformed,
            AlgNone,
            UnknownIssuer,
            WrongAudience,
            AlgNotAllowed,
            Hs256NotConfigured,
            JwksUnavailable,
            UnknownKid,
            BadSignature,
            MissingClaim,
            Expired,
            NotYetValid,
            JtiReplayed,
        ];
        let codes: BTreeSet<_> = all.iter().map(|r| r.code()).collect();
        assert_eq!(codes.len(), all.len());
    }
}
