//! Issuers for login sync: an identity provider's `iss` and `aud`, the keys
//! its tokens are checked with, and the mapping and write policy its logins
//! write people through (see `auth::login_sync` for the checks).
use crate::auth::keys::{assertion_keys, private_members};
use crate::auth::login_sync::{
    DEFAULT_ALGS, DEFAULT_JWKS_CACHE, DEFAULT_SKEW, MAX_SKEW, MIN_HS256_SECRET,
    MIN_REFETCH_SECONDS, SUPPORTED_ALGS,
};
use crate::auth::Caller;
use crate::base::error::{ApiError, ApiResult};
use crate::base::sealed::hs256_aad;
use crate::base::state::AppState;
use crate::http::outbound::Rule;
use crate::ops::audit::recorded;
use crate::ops::input::{CheckedWritePolicy, ClientId};
use muster_core::mapping::{MappingDoc, MappingFormat};
use muster_core::policy::Permission;
use muster_proto::ErrorCode;
use muster_proto::IssuerSpec;
use muster_store::{IssuerRow, IssuerSettings};

fn invalid(detail: impl Into<String>) -> ApiError {
    ApiError::unprocessable(ErrorCode::InvalidIssuer, detail)
}

fn check_algorithms(spec: &IssuerSpec) -> ApiResult<Vec<String>> {
    let algs: Vec<String> = match &spec.algorithms {
        Some(a) if a.is_empty() => return Err(invalid("algorithms: give at least one")),
        Some(a) => a.clone(),
        None if spec.hs256_secret.is_some() && spec.jwks.is_none() && spec.jwks_url.is_none() => {
            vec!["HS256".into()]
        }
        None => DEFAULT_ALGS.iter().map(|a| (*a).to_owned()).collect(),
    };
    for a in &algs {
        if a.eq_ignore_ascii_case("none") {
            // RFC 7518 3.6: an unsecured JWS proves nothing.
            return Err(invalid("algorithms: 'none' is never accepted"));
        }
        if !SUPPORTED_ALGS.contains(&a.as_str()) {
            return Err(invalid(format!(
                "algorithms: '{a}' is not one of {}",
                SUPPORTED_ALGS.join(", ")
            )));
        }
    }
    let hs = algs.iter().any(|a| a == "HS256");
    match (hs, spec.hs256_secret.is_some()) {
        (true, false) => {
            return Err(invalid(
                "algorithms: HS256 needs hs256_secret (the secret shared with the issuer)",
            ))
        }
        (false, true) => return Err(invalid("hs256_secret: only with HS256 in algorithms")),
        _ => {}
    }
    let asymmetric = algs.iter().any(|a| a != "HS256");
    match (asymmetric, spec.jwks.is_some(), spec.jwks_url.is_some()) {
        (_, true, true) => Err(invalid("give jwks or jwks_url, not both")),
        (true, false, false) => Err(invalid(
            "jwks or jwks_url is required for RS256, ES256 and EdDSA",
        )),
        _ => Ok(algs),
    }
}

/// Registers an identity provider's issuer for login sync in the caller's
/// tenant: its algorithms, keys (a JWK Set, a URL publishing one, or an
/// HS256 secret sealed at rest), mapping and write policy.
pub(crate) async fn create(
    state: &AppState,
    caller: &Caller,
    spec: IssuerSpec,
) -> ApiResult<IssuerRow> {
    caller.require(Permission::ClientsAdmin)?;
    let name =
        ClientId::parse(&spec.name).ok_or_else(|| invalid(format!("name: {}", ClientId::RULE)))?;
    for (field, v) in [("issuer", &spec.issuer), ("audience", &spec.audience)] {
        if v.trim().is_empty() || v.len() > 1024 || v.chars().any(char::is_control) {
            return Err(invalid(format!("{field}: 1 to 1024 printable characters")));
        }
    }
    let algorithms = check_algorithms(&spec)?;
    let skew = spec.clock_skew_seconds.unwrap_or(DEFAULT_SKEW);
    if skew > MAX_SKEW {
        return Err(invalid(format!("clock_skew_seconds: at most {MAX_SKEW}")));
    }
    let cache = spec.jwks_cache_seconds.unwrap_or(DEFAULT_JWKS_CACHE);
    if !(MIN_REFETCH_SECONDS as u64..=86_400).contains(&cache) {
        return Err(invalid(format!(
            "jwks_cache_seconds: between {MIN_REFETCH_SECONDS} and 86400"
        )));
    }
    let jwks = match &spec.jwks {
        None => None,
        Some(doc) => {
            if doc.get("keys").is_none() {
                return Err(invalid("jwks: a JWK Set (RFC 7517 5), {\"keys\": [...]}"));
            }
            if let Some(m) = private_members(doc) {
                return Err(invalid(format!(
                    "jwks: the private key member '{m}' must not be sent (RFC 7518 6)"
                )));
            }
            assertion_keys(doc).map_err(invalid)?;
            Some(serde_json::to_string(doc).map_err(|e| ApiError::Internal(e.into()))?)
        }
    };
    if let Some(u) = &spec.jwks_url {
        // The fetch is judged again at connect time and on every redirect.
        Rule::outbound(&state.config)
            .check_registration(u)
            .await
            .map_err(|why| invalid(format!("jwks_url: {why}")))?;
    }
    if let Some(c) = &spec.roles_claim {
        if c.is_empty() || c.len() > 128 {
            return Err(invalid("roles_claim: 1 to 128 characters"));
        }
    }
    let write_policy = CheckedWritePolicy::parse(&spec.write_policy)?.into_inner();
    // The mapping must exist and parse now, not at the first login.
    let (t, m) = (caller.principal.tenant.clone(), spec.mapping.clone());
    let mapping = state
        .db(move |s| s.mapping_get(&t, &m, None))
        .await
        .map_err(|e| match e {
            ApiError::NotFound(_) => invalid("mapping: no such mapping in this tenant"),
            e => e,
        })?;
    MappingDoc::parse(&mapping.document.to_string(), MappingFormat::Json)
        .map_err(|e| invalid(format!("mapping: {e}")))?;

    let id = uuid::Uuid::new_v4().to_string();
    let hs256_sealed = match &spec.hs256_secret {
        None => None,
        Some(s) if s.len() < MIN_HS256_SECRET => {
            return Err(invalid(format!(
                "hs256_secret: at least {MIN_HS256_SECRET} bytes (RFC 7518 3.2)"
            )))
        }
        Some(s) => Some(state.master_key.seal_box(&hs256_aad(&id), s.as_bytes())),
    };
    let row = IssuerRow {
        id,
        tenant: caller.principal.tenant.clone(),
        name: name.into_inner(),
        issuer: spec.issuer,
        audience: spec.audience,
        settings: IssuerSettings {
            algorithms,
            clock_skew_seconds: skew,
            jwks,
            jwks_url: spec.jwks_url,
            jwks_cache_seconds: cache,
            mapping: spec.mapping,
            roles_claim: spec.roles_claim,
            write_policy,
        },
        hs256_sealed,
        created_at: state.clock.now(),
    };
    let audit = recorded(
        state,
        caller,
        "issuer.created",
        |i: &IssuerRow| serde_json::json!({ "issuer": i.name, "iss": i.issuer, "aud": i.audience }),
    );
    state.db(move |s| s.issuer_create(row, audit)).await
}

/// Removes an issuer: logins through it are refused from now on.
pub(crate) async fn delete(state: &AppState, caller: &Caller, name: String) -> ApiResult<()> {
    caller.require(Permission::ClientsAdmin)?;
    let t = caller.principal.tenant.clone();
    let row = state.db(move |s| s.issuer_get(&t, &name)).await?;
    let (t, n) = (row.tenant.clone(), row.name.clone());
    let detail = serde_json::json!({ "issuer": row.name });
    let audit = recorded(state, caller, "issuer.deleted", move |_: &()| detail);
    state.db(move |s| s.issuer_delete(&t, &n, audit)).await?;
    state.jwks_cache.forget(&row.id);
    Ok(())
}
