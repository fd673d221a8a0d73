//! Tenant keys (SPEC 3): decryption keys that HR systems encrypt exports
//! to, and HR systems' signing keys that files can be required to carry.
//! Private keys exist in the clear only in memory, while a key is generated
//! or an upload is decrypted; at rest they are sealed under the master key.
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::json::JsonBody;
use crate::state::{AppState, MasterKey};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use muster_core::policy::{IntakePolicy, Permission};
use muster_intake::decrypt::{DecryptionKey, OpenPgpKeyKind, SignerKey};
use muster_proto::{IntakePolicyInfo, KeyInfo, KeySpec};
use muster_store::{KeyPurpose, KeyRow, KeyState, Store, StoreError};
use rand::RngCore;
use secrecy::ExposeSecret;

pub(crate) fn aad(id: &str) -> Vec<u8> {
    format!("muster-key:{id}").into_bytes()
}

/// Seals a key's secret text under the master key, bound to the key's id
/// (a sealed secret copied onto another key row does not open).
pub fn seal_secret(master: &MasterKey, id: &str, secret: &[u8]) -> std::io::Result<Vec<u8>> {
    master.seal_stream(&aad(id), secret)
}

pub fn unseal_secret(master: &MasterKey, id: &str, sealed: &[u8]) -> std::io::Result<Vec<u8>> {
    master.open_stream(&aad(id), sealed)
}

/// Opens a stored decryption key. Errors name the key, never its content.
pub fn open_key(master: &MasterKey, k: &KeyRow) -> anyhow::Result<DecryptionKey> {
    let sealed = k
        .sealed_secret
        .as_deref()
        .ok_or_else(|| anyhow::anyhow!("key {} has no secret", k.id))?;
    let text = unseal_secret(master, &k.id, sealed)
        .map_err(|_| anyhow::anyhow!("key {} cannot be unsealed with this master key", k.id))?;
    let text = String::from_utf8(text)
        .map_err(|_| anyhow::anyhow!("key {} is not valid text once unsealed", k.id))?;
    DecryptionKey::parse(&text).map_err(|_| anyhow::anyhow!("key {} does not parse", k.id))
}

pub fn key_info(k: &KeyRow) -> KeyInfo {
    KeyInfo {
        id: k.id.clone(),
        kind: k.kind.clone(),
        algorithm: k.algorithm.clone(),
        purpose: k.purpose.as_str().into(),
        state: k.state.as_str().into(),
        key_ids: k.key_ids.clone(),
        public_key: k.public_key.clone(),
        created_at: k.created_at,
        updated_at: k.updated_at,
    }
}

fn new_key_id() -> String {
    let mut b = [0u8; 8];
    rand::rngs::OsRng.fill_bytes(&mut b);
    format!("key_{}", hex::encode(b))
}

/// `GET /api/v1/keys`: clients that may import see the keys to encrypt to
/// (active decryption keys); key admins see every key in every state.
pub async fn key_list(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Vec<KeyInfo>>> {
    let admin = caller.has(Permission::KeysAdmin);
    if !admin {
        caller.require(Permission::ImportsCreate)?;
    }
    let tenant = caller.principal.tenant.clone();
    let keys = state.db(move |s| s.key_list(&tenant)).await?;
    Ok(Json(
        keys.iter()
            .filter(|k| {
                admin || (k.purpose == KeyPurpose::Decryption && k.state == KeyState::Active)
            })
            .map(key_info)
            .collect(),
    ))
}

pub async fn key_get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<KeyInfo>> {
    caller.require(Permission::KeysAdmin)?;
    let tenant = caller.principal.tenant.clone();
    let k = state.db(move |s| s.key_get(&tenant, &id)).await?;
    Ok(Json(key_info(&k)))
}

/// What a key spec asks for, checked before any work is done.
enum Plan {
    Generate {
        kind: &'static str,
        algorithm: &'static str,
    },
    Import(String),
    Sender(String),
}

fn plan(spec: KeySpec) -> ApiResult<Plan> {
    let purpose = spec.purpose.as_deref().unwrap_or("decryption");
    match purpose {
        "sender_verification" => {
            if spec.kind.is_some() || spec.algorithm.is_some() || spec.secret_key.is_some() {
                return Err(ApiError::unprocessable(
                    "invalid_key_spec",
                    "purpose sender_verification takes only public_key (an armored OpenPGP public key)",
                ));
            }
            let pk = spec.public_key.ok_or_else(|| {
                ApiError::unprocessable(
                    "invalid_key_spec",
                    "public_key: required for sender_verification",
                )
            })?;
            Ok(Plan::Sender(pk))
        }
        "decryption" => {
            if spec.public_key.is_some() {
                return Err(ApiError::unprocessable(
                    "invalid_key_spec",
                    "public_key: only for purpose sender_verification",
                ));
            }
            if let Some(secret) = spec.secret_key {
                if spec.kind.is_some() || spec.algorithm.is_some() {
                    return Err(ApiError::unprocessable(
                        "invalid_key_spec",
                        "secret_key: give either a key to import or kind/algorithm to generate one",
                    ));
                }
                return Ok(Plan::Import(secret));
            }
            let (kind, algorithm) = match (spec.kind.as_deref(), spec.algorithm.as_deref()) {
                (Some("openpgp") | None, Some("curve25519") | None) => ("openpgp", "curve25519"),
                (Some("openpgp") | None, Some("rsa3072")) => ("openpgp", "rsa3072"),
                (Some("openpgp") | None, Some("rsa4096")) => ("openpgp", "rsa4096"),
                (Some("age"), Some("x25519") | None) | (None, Some("x25519")) => ("age", "x25519"),
                (Some(k), _) if k != "openpgp" && k != "age" => {
                    return Err(ApiError::unprocessable(
                        "invalid_key_spec",
                        "kind: must be openpgp or age",
                    ))
                }
                _ => {
                    return Err(ApiError::unprocessable(
                        "invalid_key_spec",
                        "algorithm: openpgp keys are curve25519, rsa3072 or rsa4096; age keys are x25519",
                    ))
                }
            };
            Ok(Plan::Generate { kind, algorithm })
        }
        _ => Err(ApiError::unprocessable(
            "invalid_key_spec",
            "purpose: must be decryption or sender_verification",
        )),
    }
}

/// Generates or parses the decryption key a plan names, with its algorithm.
fn decryption_key(plan: Plan, user_id: &str) -> ApiResult<(DecryptionKey, String)> {
    let bad = || ApiError::unprocessable("invalid_key", "secret_key: not a usable key");
    match plan {
        Plan::Generate { kind: "age", .. } => Ok((DecryptionKey::generate_age(), "x25519".into())),
        Plan::Generate { algorithm, .. } => {
            let kind = match algorithm {
                "rsa3072" => OpenPgpKeyKind::Rsa3072,
                "rsa4096" => OpenPgpKeyKind::Rsa4096,
                _ => OpenPgpKeyKind::Curve25519,
            };
            let k = DecryptionKey::generate_openpgp(kind, user_id)
                .map_err(|e| ApiError::Internal(anyhow::anyhow!("key generation failed: {e}")))?;
            Ok((k, algorithm.to_owned()))
        }
        Plan::Import(text) => {
            let k = DecryptionKey::parse(&text).map_err(|_| bad())?;
            let alg = match &k {
                DecryptionKey::Age(_) => "x25519",
                DecryptionKey::OpenPgp(_) => "openpgp",
            };
            Ok((k, alg.to_owned()))
        }
        Plan::Sender(_) => Err(bad()),
    }
}

/// Builds the row for a planned key: generation and parsing are CPU work
/// (RSA 4096 takes seconds), so this runs on a blocking thread.
fn build_key(
    master: &MasterKey,
    tenant: &muster_core::TenantId,
    plan: Plan,
    now: chrono::DateTime<chrono::Utc>,
) -> ApiResult<KeyRow> {
    let id = new_key_id();
    let row = |kind: &str, algorithm: String, purpose, key_ids, public_key, sealed_secret| KeyRow {
        id: id.clone(),
        tenant: tenant.clone(),
        kind: kind.to_owned(),
        algorithm,
        purpose,
        key_ids,
        public_key,
        sealed_secret,
        state: KeyState::Active,
        created_at: now,
        updated_at: now,
    };
    if let Plan::Sender(text) = plan {
        let k = SignerKey::from_armored(&text).map_err(|_| {
            ApiError::unprocessable(
                "invalid_key",
                "public_key: not an armored OpenPGP public key",
            )
        })?;
        return Ok(row(
            "openpgp",
            "openpgp".into(),
            KeyPurpose::SenderVerification,
            vec![k.key_id()],
            text,
            None,
        ));
    }
    let user_id = format!("Muster intake ({tenant}) <{id}@muster.invalid>");
    let (key, algorithm) = decryption_key(plan, &user_id)?;
    let kind = match key {
        DecryptionKey::Age(_) => "age",
        DecryptionKey::OpenPgp(_) => "openpgp",
    };
    let internal = |what: &str| ApiError::Internal(anyhow::anyhow!("{what} failed"));
    let public = key
        .public()
        .to_text()
        .map_err(|_| internal("exporting the public key"))?;
    let secret = key
        .to_secret_text()
        .map_err(|_| internal("exporting the key"))?;
    let sealed = seal_secret(master, &id, secret.expose_secret().as_bytes())
        .map_err(|_| internal("sealing the key"))?;
    Ok(row(
        kind,
        algorithm,
        KeyPurpose::Decryption,
        key.key_ids(),
        public,
        Some(sealed),
    ))
}

async fn create(state: &AppState, caller: &Caller, plan: Plan) -> ApiResult<KeyRow> {
    let (master, tenant, now) = (
        state.master_key.clone(),
        caller.principal.tenant.clone(),
        state.clock.now(),
    );
    let row = tokio::task::spawn_blocking(move || build_key(&master, &tenant, plan, now)).await??;
    // A key the tenant holds already (same key ids) would make "which key
    // opened this file" ambiguous.
    let tenant = caller.principal.tenant.clone();
    let existing = state.db(move |s| s.key_list(&tenant)).await?;
    if let Some(k) = existing
        .iter()
        .find(|k| k.state != KeyState::Revoked && k.key_ids.iter().any(|i| row.key_ids.contains(i)))
    {
        return Err(ApiError::Conflict(format!(
            "the tenant holds this key already as {}",
            k.id
        )));
    }
    let audit = crate::admin::recorded(
        state,
        caller,
        "key.created",
        |k: &KeyRow| serde_json::json!({"key": k.id, "kind": k.kind, "algorithm": k.algorithm, "purpose": key_info(k).purpose, "key_ids": k.key_ids}),
    );
    let row = state.db(move |s| s.key_create(row, audit)).await?;
    Ok(row)
}

/// `POST /api/v1/keys`: generate or import a decryption key, or register a
/// sender's signing key.
pub async fn key_create(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(spec): JsonBody<KeySpec>,
) -> ApiResult<(StatusCode, Json<KeyInfo>)> {
    caller.require(Permission::KeysAdmin)?;
    let row = create(&state, &caller, plan(spec)?).await?;
    Ok((StatusCode::CREATED, Json(key_info(&row))))
}

async fn set_state(
    state: &AppState,
    caller: &Caller,
    id: String,
    to: KeyState,
) -> ApiResult<KeyRow> {
    let (tenant, now) = (caller.principal.tenant.clone(), state.clock.now());
    let cur = {
        let (tenant, id) = (tenant.clone(), id.clone());
        state.db(move |s| s.key_get(&tenant, &id)).await?
    };
    if cur.state == KeyState::Revoked && to != KeyState::Revoked {
        return Err(ApiError::Conflict(format!(
            "key {id} is revoked; a revoked key stays revoked"
        )));
    }
    let from = cur.state;
    let audit = crate::admin::recorded(
        state,
        caller,
        "key.state_changed",
        move |k: &KeyRow| serde_json::json!({"key": k.id, "from": from.as_str(), "to": to.as_str()}),
    );
    let row = state
        .db(move |s| s.key_set_state(&tenant, &id, to, now, audit))
        .await?;
    Ok(row)
}

/// `POST /api/v1/keys/{id}/rotate`: a new key of the same kind and
/// algorithm becomes active; the old one is kept `decrypt_only`, so files
/// already encrypted to it still import during the overlap.
pub async fn key_rotate(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, Json<KeyInfo>)> {
    caller.require(Permission::KeysAdmin)?;
    let tenant = caller.principal.tenant.clone();
    let old = {
        let id = id.clone();
        state.db(move |s| s.key_get(&tenant, &id)).await?
    };
    if old.purpose != KeyPurpose::Decryption || old.state != KeyState::Active {
        return Err(ApiError::Conflict(format!(
            "key {id} is not an active decryption key; only those are rotated"
        )));
    }
    let kind: &'static str = if old.kind == "age" { "age" } else { "openpgp" };
    let algorithm: &'static str = match old.algorithm.as_str() {
        "rsa3072" => "rsa3072",
        "rsa4096" => "rsa4096",
        "x25519" => "x25519",
        _ => "curve25519",
    };
    let row = create(&state, &caller, Plan::Generate { kind, algorithm }).await?;
    set_state(&state, &caller, id, KeyState::DecryptOnly).await?;
    Ok((StatusCode::CREATED, Json(key_info(&row))))
}

/// `POST /api/v1/keys/{id}/revoke`: the key opens nothing from now on.
pub async fn key_revoke(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<KeyInfo>> {
    caller.require(Permission::KeysAdmin)?;
    Ok(Json(key_info(
        &set_state(&state, &caller, id, KeyState::Revoked).await?,
    )))
}

fn policy_info(p: IntakePolicy) -> IntakePolicyInfo {
    IntakePolicyInfo {
        require_encryption: p.require_encryption,
        require_signed_by: p.require_signed_by,
    }
}

pub async fn intake_policy_get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<IntakePolicyInfo>> {
    caller.require(Permission::ClientsAdmin)?;
    let c = crate::admin::own_client(&state, &caller, id).await?;
    Ok(Json(policy_info(
        state.db(move |s| s.intake_policy_get(&c.id)).await?,
    )))
}

/// `PUT /api/v1/clients/{id}/intake-policy`.
pub async fn intake_policy_put(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(info): JsonBody<IntakePolicyInfo>,
) -> ApiResult<Json<IntakePolicyInfo>> {
    caller.require(Permission::ClientsAdmin)?;
    let c = crate::admin::own_client(&state, &caller, id).await?;
    if let Some(k) = &info.require_signed_by {
        let (tenant, k) = (caller.principal.tenant.clone(), k.clone());
        let key = state
            .db(move |s| s.key_get(&tenant, &k))
            .await
            .map_err(|e| match e {
                ApiError::NotFound(_) => {
                    ApiError::unprocessable("unknown_key", "require_signed_by: no such key")
                }
                e => e,
            })?;
        if key.purpose != KeyPurpose::SenderVerification || key.state == KeyState::Revoked {
            return Err(ApiError::unprocessable(
                "invalid_key",
                "require_signed_by: must name a sender_verification key that is not revoked",
            ));
        }
    }
    let p = IntakePolicy {
        require_encryption: info.require_encryption,
        require_signed_by: info.require_signed_by.clone(),
    };
    let pid = c.id.clone();
    let stored = p.clone();
    let detail = serde_json::json!({"client": c.client_id, "require_encryption": p.require_encryption, "require_signed_by": p.require_signed_by});
    let audit = crate::admin::recorded(
        &state,
        &caller,
        "client.intake_policy_set",
        move |_: &()| detail,
    );
    state
        .db(move |s| s.intake_policy_put(&pid, &stored, audit))
        .await?;
    Ok(Json(policy_info(p)))
}

/// The tenant's keys that may open an upload now (active and decrypt_only),
/// opened; and the revoked ones' ids, to name them when a file is
/// encrypted only to those.
pub fn decryption_keys(
    store: &dyn Store,
    master: &MasterKey,
    tenant: &muster_core::TenantId,
) -> Result<(Vec<DecryptionKey>, Vec<KeyRow>), anyhow::Error> {
    let all = store
        .key_list(tenant)
        .map_err(|e: StoreError| anyhow::anyhow!("{e}"))?;
    let mut usable = Vec::new();
    let mut revoked = Vec::new();
    for k in all
        .into_iter()
        .filter(|k| k.purpose == KeyPurpose::Decryption)
    {
        if k.state == KeyState::Revoked {
            revoked.push(k);
        } else {
            usable.push(open_key(master, &k)?);
        }
    }
    Ok((usable, revoked))
}
