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
use chrono::{DateTime, Duration, TimeZone, Utc};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey};
use muster_core::TenantId;
use muster_jose::login::{self, ClaimMap, Unverified, MAX_TOKEN_BYTES};
use muster_proto::ErrorCode;
use muster_store::IssuerRow;
use std::collections::{BTreeSet, HashMap};
use std::str::FromStr;
use std::sync::{Arc, Mutex};

pub(crate) use muster_jose::login::{
    Refusal, DEFAULT_ALGS, DEFAULT_JWKS_CACHE, DEFAULT_SKEW, MAX_SKEW, MIN_HS256_SECRET,
    MIN_REFETCH_SECONDS, SUPPORTED_ALGS,
};

/// A JWK Set fetch must answer within this and be no larger than that.
const FETCH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);
const MAX_JWKS_BYTES: usize = 256 * 1024;
/// Redirects a JWK Set fetch follows, each hop checked by the outbound rule.
const MAX_REDIRECTS: usize = 3;

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
    why.is_guessing()
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
    let u = login::unverified(token).map_err(anon)?;
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
) -> Result<(ClaimMap, String), Refusal> {
    if !issuer.settings.algorithms.contains(&u.alg) {
        return Err(if u.alg == "HS256" {
            Refusal::Hs256NotConfigured
        } else {
            Refusal::AlgNotAllowed
        });
    }
    let alg = Algorithm::from_str(&u.alg).map_err(|_| Refusal::AlgNotAllowed)?;
    let keys = keys_for(state, issuer, alg, u.kid.as_deref()).await?;

    let v = login::validation(alg, &issuer.issuer, &issuer.audience);
    let claims = login::verify_signature(token, &keys, &v)?;

    let now = state.clock.now();
    let skew = i64::try_from(issuer.settings.clock_skew_seconds).unwrap_or(0);
    let login::Accepted { exp, sub, jti } = login::check_claims(&claims, now.timestamp(), skew)?;
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
    let Some(names) =
        login::roles_claim(claims, name).map_err(|e| claim_error(name, e.message()))?
    else {
        return Ok(None);
    };
    if names.iter().any(|r| RoleName::parse(r).is_none()) {
        return Err(claim_error(
            name,
            "a role name is 1 to 64 letters, digits or '_.:-'",
        ));
    }
    Ok(Some(names))
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
