//! Tenant keys: decryption keys that HR systems encrypt exports
//! to, and HR systems' signing keys that files can be required to carry.
//! Private keys exist in the clear only in memory, while a key is generated
//! or an upload is decrypted; at rest they are sealed under the master key.
use crate::auth::Caller;
use crate::base::error::{ApiError, ApiResult};
use crate::base::state::{AppState, MasterKey};
use crate::base::tenant_keys::seal_secret;
use crate::ops::audit::audit_entry;
use muster_core::policy::{IntakePolicy, Permission};
use muster_intake::decrypt::{DecryptionKey, OpenPgpKeyKind, SignerKey};
use muster_proto::ErrorCode;
use muster_proto::{IntakePolicyInfo, KeySpec};
use muster_store::{Audit, AuditDraft, KeyPurpose, KeyRotation, KeyRow, KeyState};
use rand::RngCore;
use secrecy::ExposeSecret;

fn new_key_id() -> String {
    let mut b = [0u8; 8];
    rand::rngs::OsRng.fill_bytes(&mut b);
    format!("key_{}", hex::encode(b))
}

/// What a key spec asks for, checked before any work is done.
pub(crate) enum Plan {
    Generate {
        kind: &'static str,
        algorithm: &'static str,
    },
    Import(String),
    Sender(String),
}

pub(crate) fn plan(spec: KeySpec) -> ApiResult<Plan> {
    let purpose = spec.purpose.as_deref().unwrap_or("decryption");
    match purpose {
        "sender_verification" => {
            if spec.kind.is_some() || spec.algorithm.is_some() || spec.secret_key.is_some() {
                return Err(ApiError::unprocessable(
                    ErrorCode::InvalidKeySpec,
                    "purpose sender_verification takes only public_key (an armored OpenPGP public key)",
                ));
            }
            let pk = spec.public_key.ok_or_else(|| {
                ApiError::unprocessable(
                    ErrorCode::InvalidKeySpec,
                    "public_key: required for sender_verification",
                )
            })?;
            Ok(Plan::Sender(pk))
        }
        "decryption" => {
            if spec.public_key.is_some() {
                return Err(ApiError::unprocessable(
                    ErrorCode::InvalidKeySpec,
                    "public_key: only for purpose sender_verification",
                ));
            }
            if let Some(secret) = spec.secret_key {
                if spec.kind.is_some() || spec.algorithm.is_some() {
                    return Err(ApiError::unprocessable(
                        ErrorCode::InvalidKeySpec,
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
                        ErrorCode::InvalidKeySpec,
                        "kind: must be openpgp or age",
                    ))
                }
                _ => {
                    return Err(ApiError::unprocessable(
                        ErrorCode::InvalidKeySpec,
                        "algorithm: openpgp keys are curve25519, rsa3072 or rsa4096; age keys are x25519",
                    ))
                }
            };
            Ok(Plan::Generate { kind, algorithm })
        }
        _ => Err(ApiError::unprocessable(
            ErrorCode::InvalidKeySpec,
            "purpose: must be decryption or sender_verification",
        )),
    }
}

/// Generates or parses the decryption key a plan names, with its algorithm.
fn decryption_key(plan: Plan, user_id: &str) -> ApiResult<(DecryptionKey, String)> {
    let bad = || ApiError::unprocessable(ErrorCode::InvalidKey, "secret_key: not a usable key");
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
                ErrorCode::InvalidKey,
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

/// Generates or imports a decryption key, or registers a sender's signing
/// key, as the spec's [`Plan`] says.
pub(crate) async fn create(state: &AppState, caller: &Caller, plan: Plan) -> ApiResult<KeyRow> {
    caller.require(Permission::KeysAdmin)?;
    let row = new_key(state, caller, plan).await?;
    let audit = crate::ops::audit::recorded(state, caller, "key.created", created_detail);
    let row = state.db(move |s| s.key_create(row, audit)).await?;
    Ok(row)
}

/// Builds the key a [`Plan`] asks for, refused when the tenant holds the
/// same key already (same key ids): "which key opened this file" would be
/// ambiguous.
async fn new_key(state: &AppState, caller: &Caller, plan: Plan) -> ApiResult<KeyRow> {
    let (master, tenant, now) = (
        state.master_key.clone(),
        caller.principal.tenant.clone(),
        state.clock.now(),
    );
    let row = tokio::task::spawn_blocking(move || build_key(&master, &tenant, plan, now)).await??;
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
    Ok(row)
}

/// The audit detail of `key.created`.
fn created_detail(k: &KeyRow) -> serde_json::Value {
    serde_json::json!({"key": k.id, "kind": k.kind, "algorithm": k.algorithm, "purpose": k.purpose.as_str(), "key_ids": k.key_ids})
}

/// The audit detail of `key.state_changed`.
fn state_detail(k: &KeyRow, from: KeyState) -> serde_json::Value {
    serde_json::json!({"key": k.id, "from": from.as_str(), "to": k.state.as_str()})
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
    let audit =
        crate::ops::audit::recorded(state, caller, "key.state_changed", move |k: &KeyRow| {
            state_detail(k, from)
        });
    let row = state
        .db(move |s| s.key_set_state(&tenant, &id, to, now, audit))
        .await?;
    Ok(row)
}

/// A new key of the same kind and
/// algorithm becomes active; the old one is kept `decrypt_only`, so files
/// already encrypted to it still import during the overlap.
pub(crate) async fn rotate(state: &AppState, caller: &Caller, id: String) -> ApiResult<KeyRow> {
    caller.require(Permission::KeysAdmin)?;
    let tenant = caller.principal.tenant.clone();
    let old = {
        let id = id.clone();
        state.db(move |s| s.key_get(&tenant, &id)).await?
    };
    // Checked again inside the rotation's transaction; here it spares
    // generating a key for nothing.
    if let Some(refused) = muster_store::rotation_refused(&old) {
        return Err(refused.into());
    }
    let kind: &'static str = if old.kind == "age" { "age" } else { "openpgp" };
    let algorithm: &'static str = match old.algorithm.as_str() {
        "rsa3072" => "rsa3072",
        "rsa4096" => "rsa4096",
        "x25519" => "x25519",
        _ => "curve25519",
    };
    let new = new_key(state, caller, Plan::Generate { kind, algorithm }).await?;
    // Both changes and both audit entries commit together: a crash leaves
    // the old key active and no new one, or the rotation done.
    let (created, changed) = (
        audit_entry(state, caller, "key.created", serde_json::Value::Null),
        audit_entry(state, caller, "key.state_changed", serde_json::Value::Null),
    );
    let audit: Audit<KeyRotation> = Box::new(move |r| {
        vec![
            AuditDraft {
                detail: created_detail(&r.new),
                ..created
            },
            AuditDraft {
                detail: state_detail(&r.old, KeyState::Active),
                ..changed
            },
        ]
    });
    let now = state.clock.now();
    let done = state
        .db(move |s| s.key_rotate(new, &id, now, audit))
        .await?;
    Ok(done.new)
}

/// Revokes a key: it opens nothing from now on.
pub(crate) async fn revoke(state: &AppState, caller: &Caller, id: String) -> ApiResult<KeyRow> {
    caller.require(Permission::KeysAdmin)?;
    set_state(state, caller, id, KeyState::Revoked).await
}

/// Sets what a client's uploads must be: encrypted, and signed by one of
/// the tenant's sender keys.
pub(crate) async fn intake_policy_put(
    state: &AppState,
    caller: &Caller,
    id: String,
    info: IntakePolicyInfo,
) -> ApiResult<IntakePolicy> {
    caller.require(Permission::ClientsAdmin)?;
    let c = crate::ops::own_client(state, caller, id).await?;
    if let Some(k) = &info.require_signed_by {
        let (tenant, k) = (caller.principal.tenant.clone(), k.clone());
        let key = state
            .db(move |s| s.key_get(&tenant, &k))
            .await
            .map_err(|e| match e {
                ApiError::NotFound(_) => {
                    ApiError::unprocessable(ErrorCode::UnknownKey, "require_signed_by: no such key")
                }
                e => e,
            })?;
        if key.purpose != KeyPurpose::SenderVerification || key.state == KeyState::Revoked {
            return Err(ApiError::unprocessable(
                ErrorCode::InvalidKey,
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
    let audit =
        crate::ops::audit::recorded(state, caller, "client.intake_policy_set", move |_: &()| {
            detail
        });
    state
        .db(move |s| s.intake_policy_put(&pid, &stored, audit))
        .await?;
    Ok(p)
}
