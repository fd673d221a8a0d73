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
//!   `tokens.max_assertion_lifetime_seconds` (item 4; default an hour);
//! - `nbf`/`iat`, when present, are not in the future (items 5, 6), and
//!   `iat` no further back than `tokens.max_assertion_age_seconds`
//!   (default 300 s), which is required when `exp` lies further ahead;
//! - `jti` is present and was never used before (item 7), remembered in
//!   the same replay table as request-signature nonces until `exp` or the
//!   end of the assertion's age, whichever comes first: the table holds at
//!   most five minutes of assertions however long they live.
//!
//! Every failure is `invalid_client` (RFC 6749 5.2), audited for a known
//! client without the assertion. Until the signature has verified, every
//! failure that depends on the client (unknown id, no registered key, no
//! key matching `kid`/`alg`, a signature that does not verify) gets the
//! same answer, so the answer tells nobody whether a client id exists; the
//! audit entry keeps the reason. Those failures count as guessing (see
//! `crate::auth::ratelimit`); the ones after the signature verified do not.
use crate::auth::keys::{assertion_keys, AssertionKey};
use crate::auth::oauth::OAuthFailure;
use crate::auth::ratelimit::audit_refusal;
use crate::base::state::AppState;
use chrono::{Duration, TimeZone, Utc};
use muster_jose::assertion::{self, check_claims, AssertionError, LEEWAY};
use muster_store::{ClientRow, PrincipalKind};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

pub use muster_jose::assertion::JWT_BEARER;

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

/// What is read of an assertion before its client is known (see
/// [`assertion::read_unverified`]), its refusals answered as they are.
pub(crate) fn read_unverified(
    assertion: &str,
    client_id: Option<&String>,
) -> Result<(jsonwebtoken::Header, String), OAuthFailure> {
    assertion::read_unverified(assertion, client_id.map(String::as_str))
        .map_err(|e| fail(e.reason()))
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
    // Claims that do not decode come from the holder of the client's key.
    let claims = assertion::verify_signature(assertion, header, &keys).map_err(|e| match e {
        AssertionError::ClaimsMalformed => Proven(e.reason()),
        e => Unproven(e.reason()),
    })?;

    let now = state.clock.now();
    let seconds = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    let life = assertion::Lifetimes {
        max_lifetime: seconds(state.config.tokens.max_assertion_lifetime_seconds),
        max_age: seconds(state.config.tokens.max_assertion_age_seconds),
    };
    let assertion::Accepted { jti, forget_at, .. } = check_claims(
        claims,
        &client.client_id,
        &state.issuer,
        now.timestamp(),
        life,
    )
    .map_err(|e| Proven(e.reason()))?;
    if client.disabled {
        return Err(Proven("the client is disabled"));
    }
    let until = Utc
        .timestamp_opt(forget_at, 0)
        .single()
        .unwrap_or(now + Duration::seconds(life.max_age + 2 * LEEWAY));
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
