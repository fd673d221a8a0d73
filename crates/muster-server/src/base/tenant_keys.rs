//! The tenant keys' secrets at rest: sealed under the master key, bound to
//! the key's id, opened only in memory when an upload is decrypted.
use crate::base::master_key::MasterKey;
use crate::base::sealed::key_secret_aad;
use muster_intake::decrypt::DecryptionKey;
use muster_store::{KeyPurpose, KeyRow, KeyState, Store, StoreError};

/// Seals a key's secret text under the master key, bound to the key's id
/// (a sealed secret copied onto another key row does not open).
pub(crate) fn seal_secret(master: &MasterKey, id: &str, secret: &[u8]) -> std::io::Result<Vec<u8>> {
    master.seal_stream(&key_secret_aad(id), secret)
}

pub(crate) fn unseal_secret(
    master: &MasterKey,
    id: &str,
    sealed: &[u8],
) -> std::io::Result<Vec<u8>> {
    master.open_stream(&key_secret_aad(id), sealed)
}

/// Opens a stored decryption key. Errors name the key, never its content.
pub(crate) fn open_key(master: &MasterKey, k: &KeyRow) -> anyhow::Result<DecryptionKey> {
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

/// The tenant's keys that may open an upload now (active and decrypt_only),
/// opened; and the revoked ones' ids, to name them when a file is
/// encrypted only to those.
pub(crate) fn decryption_keys(
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
