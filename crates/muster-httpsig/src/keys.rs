//! Key material and algorithm names (RFC 9421 section 3.3).
//!
//! `Debug` never prints secret bytes: an HMAC key shows as `HmacKey([redacted])`
//! and `ed25519_dalek::SigningKey` prints only its public half.

use std::fmt;

/// A signature algorithm from the RFC 9421 registry that this crate implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// `hmac-sha256` (RFC 9421 section 3.3.3).
    HmacSha256,
    /// `ed25519` (RFC 9421 section 3.3.6).
    Ed25519,
}

impl Algorithm {
    /// The registered name used in the `alg` parameter.
    pub fn name(self) -> &'static str {
        match self {
            Self::HmacSha256 => "hmac-sha256",
            Self::Ed25519 => "ed25519",
        }
    }

    /// The algorithm for a registered name, if implemented here.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "hmac-sha256" => Some(Self::HmacSha256),
            "ed25519" => Some(Self::Ed25519),
            _ => None,
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A shared HMAC secret. Compared and used only through `hmac`, which checks
/// tags in constant time.
#[derive(Clone)]
pub struct HmacKey(Vec<u8>);

impl HmacKey {
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        Self(bytes.into())
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for HmacKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HmacKey([redacted])")
    }
}

impl Drop for HmacKey {
    fn drop(&mut self) {
        // Best effort: overwrite the secret before the allocation is freed.
        self.0.iter_mut().for_each(|b| *b = 0);
    }
}

/// A key to sign with.
#[derive(Debug, Clone)]
pub enum SigningKey {
    HmacSha256(HmacKey),
    Ed25519(ed25519_dalek::SigningKey),
}

impl SigningKey {
    pub fn algorithm(&self) -> Algorithm {
        match self {
            Self::HmacSha256(_) => Algorithm::HmacSha256,
            Self::Ed25519(_) => Algorithm::Ed25519,
        }
    }

    /// The matching key a verifier needs (the same secret for HMAC).
    pub fn verifying_key(&self) -> VerifyingKey {
        match self {
            Self::HmacSha256(k) => VerifyingKey::HmacSha256(k.clone()),
            Self::Ed25519(k) => VerifyingKey::Ed25519(k.verifying_key()),
        }
    }
}

/// A key to verify with, as returned by a [`crate::KeyResolver`].
#[derive(Debug, Clone)]
pub enum VerifyingKey {
    HmacSha256(HmacKey),
    Ed25519(ed25519_dalek::VerifyingKey),
}

impl VerifyingKey {
    pub fn algorithm(&self) -> Algorithm {
        match self {
            Self::HmacSha256(_) => Algorithm::HmacSha256,
            Self::Ed25519(_) => Algorithm::Ed25519,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_never_contains_the_hmac_secret() {
        let key = SigningKey::HmacSha256(HmacKey::new(b"super-secret-value".to_vec()));
        let shown = format!("{key:?} {:?}", key.verifying_key());
        assert!(!shown.contains("super-secret"));
        assert!(!shown.contains("115, 117")); // the bytes as a list
    }

    #[test]
    fn algorithm_names_round_trip() {
        for alg in [Algorithm::HmacSha256, Algorithm::Ed25519] {
            assert_eq!(Algorithm::from_name(alg.name()), Some(alg));
        }
        assert_eq!(Algorithm::from_name("rsa-pss-sha512"), None);
    }
}
