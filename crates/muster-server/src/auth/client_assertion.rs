//! `private_key_jwt` client authentication at the token and revocation
//! endpoints (RFC 7523 2.2 and 3, RFC 7521 4.2; the name is from OpenID
//! Connect Core 9).
//!
//! The client sends `client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer`
//! and a `client_assertion` JWT signed (RS256, ES256 or EdDSA) with the
//! private key whose public half it registered (a JWK, a JWKS, or a PEM
//! key; a `kid` in the JWT header selects a key from a JWKS). The gateway
//! checks, with its injected clock:
//! - `iss` and `sub` are the client id (RFC 7523 3, items 1 and 2);
//! - `aud` names the token endpoint URL or the issuer (item 3);
//! - `exp` is present, not passed, and no further ahead than
//!   `tokens.max_assertion_lifetime_seconds` (item 4; default 300 s);
//! - `nbf`/`iat`, when present, are not in the future (items 5, 6);
//! - `jti` is present and was never used before (item 7), remembered in
//!   the same replay table as request-signature nonces until `exp`.
//!
//! Every failure is `invalid_client` (RFC 6749 5.2), audited for a known
//! client without the assertion. Until the signature has verified, every
//! failure that depends on the client (unknown id, no registered key, no
//! key matching `kid`/`alg`, a signature that does not verify) gets the
//! same answer, so the answer tells nobody whether a client id exists; the
//! audit entry keeps the reason. Those failures count as guessing (see
//! `crate::auth::ratelimit`); the ones after the signature verified do not.
use crate::auth::jws::{self, SigError};
use crate::auth::keys::{assertion_keys, AssertionKey};
use crate::auth::oauth::OAuthFailure;
use crate::auth::ratelimit::audit_refusal;
use crate::base::state::AppState;
use chrono::{Duration, TimeZone, Utc};
use jsonwebtoken::{decode_header, Algorithm};
use muster_store::{ClientRow, PrincipalKind};
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// RFC 7523 2.2.
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// Clock skew tolerated on `exp`, `nbf` and `iat`, in seconds.
const LEEWAY: i64 = 30;
const MAX_JTI: usize = 256;

#[derive(Debug, Deserialize)]
pub(crate) struct Claims {
    #[serde(default)]
    iss: Option<String>,
    #[serde(default)]
    sub: Option<String>,
    #[serde(default)]
    aud: Option<Audience>,
    #[serde(default)]
    exp: Option<i64>,
    #[serde(default)]
    nbf: Option<i64>,
    #[serde(default)]
    iat: Option<i64>,
    #[serde(default)]
    jti: Option<String>,
}

/// `aud`: one string or an array of them (RFC 7519 4.1.3).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Audience {
    fn names(&self, wanted: &[&str]) -> bool {
        match self {
            Self::One(a) => wanted.contains(&a.as_str()),
            Self::Many(all) => all.iter().any(|a| wanted.contains(&a.as_str())),
        }
    }
}

/// The claim checks of RFC 7523 3, items 1 to 7 but the replay check, for
/// `client_id` at `issuer` at `t` (Unix seconds) with assertions living at
/// most `max` seconds: the `exp` and the `jti` to remember.
pub(crate) fn check_claims(
    claims: Claims,
    client_id: &str,
    issuer: &str,
    t: i64,
    max: i64,
) -> Result<(i64, String), &'static str> {
    let (Some(exp), Some(iss), Some(sub), Some(aud)) =
        (claims.exp, &claims.iss, &claims.sub, &claims.aud)
    else {
        return Err("exp, iss, sub and aud are required");
    };
    if iss != client_id {
        return Err("iss is not the client id");
    }
    if sub != client_id {
        return Err("sub is not the client id");
    }
    let token_endpoint = format!("{issuer}/oauth2/token");
    if !aud.names(&[token_endpoint.as_str(), issuer]) {
        return Err("aud is neither the token endpoint nor the issuer");
    }
    if exp <= t - LEEWAY {
        return Err("the assertion has expired");
    }
    if exp > t + max + LEEWAY {
        return Err("exp lies further ahead than the gateway accepts");
    }
    if claims.nbf.is_some_and(|n| n > t + LEEWAY) || claims.iat.is_some_and(|i| i > t + LEEWAY) {
        return Err("the assertion is not valid yet");
    }
    let jti = claims
        .jti
        .filter(|j| !j.is_empty() && j.len() <= MAX_JTI)
        .ok_or("jti is required")?;
    Ok((exp, jti))
}

#[derive(Debug, Deserialize)]
struct Unverified {
    #[serde(default)]
    sub: Option<String>,
}

/// A refusal whose reason may be told: it does not depend on the client.
fn fail(why: &str) -> OAuthFailure {
    OAuthFailure::invalid_client(format!("client assertion refused: {why}"), false)
}

/// The one answer to every failure before the signature has verified that
/// depends on the client.
fn unproven(client_id: &str) -> OAuthFailure {
    OAuthFailure::invalid_client("client authentication failed", false).guessing(Some(client_id))
}

/// Why a known client's assertion was refused.
enum Refused {
    /// Before its signature verified: answered as [`unproven`].
    Unproven(&'static str),
    /// After: the signer holds the key and may be told why.
    Proven(&'static str),
}

/// Authenticates the client of a token or revocation request by its
/// assertion.
pub async fn authenticate(
    state: &AppState,
    addr: std::net::IpAddr,
    form: &HashMap<String, String>,
) -> Result<ClientRow, OAuthFailure> {
    match form.get("client_assertion_type").map(String::as_str) {
        Some(JWT_BEARER) => {}
        Some(_) => return Err(fail("unsupported client_assertion_type").guessing(None)),
        None => {
            return Err(OAuthFailure::invalid_request(
                "client_assertion_type is required with client_assertion",
            ))
        }
    }
    let assertion = form
        .get("client_assertion")
        .filter(|a| !a.is_empty())
        .ok_or_else(|| OAuthFailure::invalid_request("client_assertion is required"))?;
    // What is checked before the client is looked up is the same for
    // every client id, and answered as it is.
    let (header, client_id) =
        read_unverified(assertion, form.get("client_id")).map_err(|f| f.guessing(None))?;
    let lookup = client_id.clone();
    let client = match state.db_read(move |s| s.client_get(&lookup)).await {
        Ok(c) if c.kind == PrincipalKind::Client => c,
        Ok(_) | Err(crate::base::error::ApiError::NotFound(_)) => {
            // No tenant to audit under: the log keeps the attempt.
            tracing::warn!(
                reason = "unknown_client",
                "a client assertion named no known client"
            );
            return Err(unproven(&client_id));
        }
        Err(e) => return Err(e.into()),
    };
    match verify(state, &client, assertion, &header).await {
        Ok(()) => Ok(client),
        Err(Refused::Unproven(why)) => {
            let why = format!("client assertion: {why}");
            audit_refusal(state, &client, "oauth2", &why, addr).await;
            Err(unproven(&client.client_id))
        }
        Err(Refused::Proven(why)) => {
            let reason = format!("client assertion: {why}");
            audit_refusal(state, &client, "oauth2", &reason, addr).await;
            Err(fail(why))
        }
    }
}

/// What is read of an assertion before its client is known: the header,
/// whose `alg` must be one clients sign with, and the client it names
/// (`client_id` when sent, RFC 7521 4.2, else `sub`).
pub(crate) fn read_unverified(
    assertion: &str,
    client_id: Option<&String>,
) -> Result<(jsonwebtoken::Header, String), OAuthFailure> {
    let header = decode_header(assertion).map_err(|_| fail("not a JWT"))?;
    if !matches!(
        header.alg,
        Algorithm::RS256 | Algorithm::ES256 | Algorithm::EdDSA
    ) {
        return Err(fail("alg must be RS256, ES256 or EdDSA"));
    }
    let unverified = jsonwebtoken::dangerous::insecure_decode::<Unverified>(assertion)
        .map_err(|_| fail("the claims do not decode"))?
        .claims;
    let client_id = match (client_id, unverified.sub) {
        (Some(id), Some(sub)) if *id != sub => {
            return Err(fail("client_id differs from the assertion's sub"))
        }
        (Some(id), _) => id.clone(),
        (None, Some(sub)) => sub,
        (None, None) => return Err(fail("sub is required")),
    };
    Ok((header, client_id))
}

/// Parsed assertion keys per client, with the stored text they were parsed
/// from: a grant then parses no JSON or PEM, and a changed registration
/// (its text differs) is parsed afresh on first use.
#[derive(Default)]
pub struct KeyCache(Mutex<HashMap<String, Parsed>>);

/// A registration's stored text and the keys parsed from it.
type Parsed = (String, Arc<Vec<AssertionKey>>);

/// Clients whose parsed keys are kept; past it the cache starts over.
const KEY_CACHE_MAX: usize = 4096;

impl KeyCache {
    fn keys(&self, principal: &str, text: &str) -> Result<Arc<Vec<AssertionKey>>, &'static str> {
        let lock = || self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((t, k)) = lock().get(principal) {
            if t == text {
                return Ok(k.clone());
            }
        }
        let doc: serde_json::Value =
            serde_json::from_str(text).map_err(|_| "the client's registered key is unusable")?;
        let keys =
            Arc::new(assertion_keys(&doc).map_err(|_| "the client's registered key is unusable")?);
        let mut m = lock();
        if m.len() >= KEY_CACHE_MAX {
            m.clear();
        }
        m.insert(principal.to_owned(), (text.to_owned(), keys.clone()));
        Ok(keys)
    }
}

async fn verify(
    state: &AppState,
    client: &ClientRow,
    assertion: &str,
    header: &jsonwebtoken::Header,
) -> Result<(), Refused> {
    use Refused::{Proven, Unproven};
    let cid = client.client_id.clone();
    let stored = state
        .db_read(move |s| s.client_keys_get(&cid))
        .await
        .map_err(|_| Unproven("the client's keys cannot be read"))?;
    let text = stored
        .jwt_keys
        .as_deref()
        .ok_or(Unproven("the client has no registered key"))?;
    let keys = state
        .assertion_keys
        .keys(&client.id, text)
        .map_err(Unproven)?;
    let candidates: Vec<_> = keys
        .iter()
        .filter(|k| k.alg == header.alg)
        .filter(|k| match &header.kid {
            Some(kid) => k.kid.as_deref() == Some(kid.as_str()),
            None => true,
        })
        .collect();
    if candidates.is_empty() {
        return Err(Unproven("no registered key matches the JWT's kid and alg"));
    }
    let mut signed = false;
    for k in candidates {
        match jws::verify(assertion, k.alg, &k.key) {
            Ok(()) => {
                signed = true;
                break;
            }
            Err(SigError::Invalid) => continue,
            Err(_) => return Err(Unproven("the assertion is malformed")),
        }
    }
    if !signed {
        return Err(Unproven(
            "the signature does not verify with the registered key",
        ));
    }

    // The signer holds the client's key from here on.
    let claims: Claims = jws::payload(assertion).ok_or(Proven("the assertion is malformed"))?;
    let now = state.clock.now();
    let max = i64::try_from(state.config.tokens.max_assertion_lifetime_seconds).unwrap_or(300);
    let (exp, jti) = check_claims(
        claims,
        &client.client_id,
        &state.issuer,
        now.timestamp(),
        max,
    )
    .map_err(Proven)?;
    if client.disabled {
        return Err(Proven("the client is disabled"));
    }
    let until = Utc
        .timestamp_opt(exp + LEEWAY, 0)
        .single()
        .unwrap_or(now + Duration::seconds(max + LEEWAY));
    let (pid, key) = (client.id.clone(), format!("jti:{jti}"));
    let fresh = state
        .db(move |s| s.nonce_record(&pid, &key, until, now))
        .await
        .map_err(|_| Proven("the replay check failed"))?;
    if !fresh {
        return Err(Proven("this jti was already used"));
    }
    Ok(())
}
