//! A client's credentials besides its secrets: the HMAC request-signing
//! key (generated here, shown once, stored sealed), the Ed25519
//! request-signing public key and the `private_key_jwt` keys. Every change
//! is audited by kind, never with key material.
use crate::auth::keys::JwtKeys;
use crate::auth::Caller;
use crate::base::error::ApiResult;
use crate::base::sealed::hmac_aad;
use crate::base::state::AppState;
use crate::ops::audit::recorded;
use crate::ops::input::Overlap;
use base64::Engine;
use muster_core::policy::Permission;
use muster_store::{ClientKeyChange, ClientKeys, ClientRow};
use rand::RngCore;

/// Which of a client's keys an operation names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyKind {
    Hmac,
    Ed25519,
    Jwt,
}

impl KeyKind {
    fn as_str(self) -> &'static str {
        match self {
            KeyKind::Hmac => "hmac",
            KeyKind::Ed25519 => "ed25519",
            KeyKind::Jwt => "jwt",
        }
    }
}

/// A client of the caller's tenant, for a caller that administers clients.
pub(crate) async fn own_client(
    state: &AppState,
    caller: &Caller,
    id: String,
) -> ApiResult<ClientRow> {
    caller.require(Permission::ClientsAdmin)?;
    crate::ops::own_client(state, caller, id).await
}

async fn change(
    state: &AppState,
    caller: &Caller,
    client: &ClientRow,
    change: ClientKeyChange,
    action: &str,
    kind: KeyKind,
) -> ApiResult<ClientKeys> {
    let now = state.clock.now();
    let cid = client.client_id.clone();
    let detail = serde_json::json!({ "client_id": client.client_id, "key": kind.as_str() });
    let audit = recorded(state, caller, action, move |_: &ClientKeys| detail);
    state
        .db(move |s| s.client_keys_set(&cid, change, now, audit))
        .await
}

/// A short public name for an HMAC key (never the key), so a client and
/// an operator can tell which key is which during an overlap.
fn hmac_key_id(key: &[u8]) -> String {
    use sha2::Digest;
    let d = sha2::Sha256::new()
        .chain_update(b"muster hmac key id\0")
        .chain_update(key)
        .finalize();
    format!("hk_{}", &hex::encode(d)[..12])
}

/// A new HMAC key, shown once by the caller.
pub(crate) struct HmacIssued {
    pub client: ClientRow,
    pub keys: ClientKeys,
    /// The key, base64url.
    pub key: String,
    pub key_id: String,
}

/// Issues the HMAC key, or rotates it: the previous one keeps verifying
/// until the overlap ends (like a client secret's rotation); an overlap of
/// 0 drops it at once.
pub(crate) async fn hmac_rotate(
    state: &AppState,
    caller: &Caller,
    id: String,
    overlap: Overlap,
) -> ApiResult<HmacIssued> {
    let c = own_client(state, caller, id).await?;
    let now = state.clock.now();
    let seconds = overlap.seconds();
    let until = (seconds > 0).then(|| now + chrono::Duration::seconds(seconds as i64));
    let mut key = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut key);
    let sealed = state.master_key.seal_box(&hmac_aad(&c.client_id), &key);
    let shown = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key);
    let key_id = hmac_key_id(&key);
    key.iter_mut().for_each(|b| *b = 0);
    let cid = c.client_id.clone();
    let (client_id, kid) = (c.client_id.clone(), key_id.clone());
    let audit = recorded(state, caller, "client.key_set", move |k: &ClientKeys| {
        serde_json::json!({
            "client_id": client_id,
            "key": "hmac",
            "key_id": kid,
            "previous_valid_until": k.hmac_previous_until,
        })
    });
    let keys = state
        .db(move |s| s.client_hmac_rotate(&cid, sealed, until, now, audit))
        .await?;
    Ok(HmacIssued {
        client: c,
        keys,
        key: shown,
        key_id,
    })
}

/// Sets the client's Ed25519 request-signing public key.
pub(crate) async fn ed25519_set(
    state: &AppState,
    caller: &Caller,
    id: String,
    public: [u8; 32],
) -> ApiResult<(ClientRow, ClientKeys)> {
    let c = own_client(state, caller, id).await?;
    let what = ClientKeyChange::Ed25519(Some(public.to_vec()));
    let keys = change(state, caller, &c, what, "client.key_set", KeyKind::Ed25519).await?;
    Ok((c, keys))
}

/// Sets the client's `private_key_jwt` keys.
pub(crate) async fn jwt_keys_set(
    state: &AppState,
    caller: &Caller,
    id: String,
    keys: JwtKeys,
) -> ApiResult<(ClientRow, ClientKeys)> {
    let c = own_client(state, caller, id).await?;
    let what = ClientKeyChange::JwtKeys(Some(keys.into_inner()));
    let keys = change(state, caller, &c, what, "client.key_set", KeyKind::Jwt).await?;
    Ok((c, keys))
}

/// Removes one of the client's keys.
pub(crate) async fn remove(
    state: &AppState,
    caller: &Caller,
    id: String,
    kind: KeyKind,
) -> ApiResult<(ClientRow, ClientKeys)> {
    let c = own_client(state, caller, id).await?;
    let what = match kind {
        KeyKind::Hmac => ClientKeyChange::Hmac(None),
        KeyKind::Ed25519 => ClientKeyChange::Ed25519(None),
        KeyKind::Jwt => ClientKeyChange::JwtKeys(None),
    };
    let keys = change(state, caller, &c, what, "client.key_removed", kind).await?;
    Ok((c, keys))
}
