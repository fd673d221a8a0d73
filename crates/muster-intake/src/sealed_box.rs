//! Short secrets sealed at rest under the master key: a client's HMAC
//! request-signing key must be usable by the server (so it cannot be a
//! digest) but must never sit in the database in plaintext (docs/intake.md#master-key).
//!
//! One-shot XChaCha20-Poly1305 (the 24-byte random nonce makes nonce reuse
//! a non-issue without a counter). Layout: `MSTBOX1\0` (8 bytes), the nonce,
//! then the ciphertext and its 16-byte tag. The associated data binds the
//! box to its purpose and owner (e.g. the client id), so one client's sealed
//! key cannot be swapped in for another's.
use chacha20poly1305::aead::generic_array::GenericArray;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::XChaCha20Poly1305;
use rand::RngCore;

const MAGIC: &[u8; 8] = b"MSTBOX1\0";
const NONCE: usize = 24;

/// Why a box did not open. Says nothing of the key or the content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    #[error("the sealed value is not in the expected format")]
    Format,
    #[error("the sealed value does not authenticate under this key and label")]
    Authentication,
}

/// Seals `plaintext` under `key`, bound to `aad`.
pub fn seal(key: &[u8; 32], aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
    let mut nonce = [0u8; NONCE];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    let aead = XChaCha20Poly1305::new(GenericArray::from_slice(key));
    // Encryption with a valid key and nonce length cannot fail; an empty
    // result would only fail to open later, never leak.
    let ct = aead
        .encrypt(
            GenericArray::from_slice(&nonce),
            Payload {
                msg: plaintext,
                aad,
            },
        )
        .unwrap_or_default();
    let mut out = Vec::with_capacity(MAGIC.len() + NONCE + ct.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ct);
    out
}

/// Opens what [`seal`] produced with the same key and `aad`.
pub fn open(key: &[u8; 32], aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, OpenError> {
    let rest = sealed.strip_prefix(MAGIC).ok_or(OpenError::Format)?;
    if rest.len() < NONCE + 16 {
        return Err(OpenError::Format);
    }
    let (nonce, ct) = rest.split_at(NONCE);
    let aead = XChaCha20Poly1305::new(GenericArray::from_slice(key));
    aead.decrypt(GenericArray::from_slice(nonce), Payload { msg: ct, aad })
        .map_err(|_| OpenError::Authentication)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_secret_opens_only_with_its_key_and_label() {
        let key = [3u8; 32];
        let boxed = seal(&key, b"client:a", b"secret bytes");
        assert!(!boxed.windows(6).any(|w| w == b"secret"));
        assert_eq!(open(&key, b"client:a", &boxed).unwrap(), b"secret bytes");
        assert_eq!(
            open(&key, b"client:b", &boxed),
            Err(OpenError::Authentication)
        );
        assert_eq!(
            open(&[4u8; 32], b"client:a", &boxed),
            Err(OpenError::Authentication)
        );
        let mut tampered = boxed.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert_eq!(
            open(&key, b"client:a", &tampered),
            Err(OpenError::Authentication)
        );
        assert_eq!(open(&key, b"client:a", b"junk"), Err(OpenError::Format));
    }

    #[test]
    fn two_seals_of_the_same_secret_differ() {
        let key = [3u8; 32];
        assert_ne!(seal(&key, b"x", b"same"), seal(&key, b"x", b"same"));
    }
}
