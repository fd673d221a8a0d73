//! Associated data of the values sealed under the master key: each binds
//! a sealed value to its row, so a sealed value copied onto another row
//! does not open. `base::master_key` re-seals them all on rotation.

/// Associated data of a sealed webhook secret: binds it to its subscription.
pub(crate) fn secret_aad(subscription_id: &str) -> Vec<u8> {
    format!("muster-webhook-secret:{subscription_id}").into_bytes()
}

/// Associated data of a sealed HMAC key: binds it to its client.
pub(crate) fn hmac_aad(client_id: &str) -> Vec<u8> {
    format!("muster client hmac key:{client_id}").into_bytes()
}

/// Associated data of a sealed HS256 secret: binds it to its issuer.
pub(crate) fn hs256_aad(issuer_id: &str) -> Vec<u8> {
    format!("muster issuer hs256 secret:{issuer_id}").into_bytes()
}

/// Associated data of a sealed key secret: binds it to its key.
pub(crate) fn key_secret_aad(id: &str) -> Vec<u8> {
    format!("muster-key:{id}").into_bytes()
}
