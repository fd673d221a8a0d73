//! Opaque secrets and tokens: 256 random bits, shown once, stored only as a
//! SHA-256 digest and compared in constant time.
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// A SHA-256 digest of a secret, as stored.
pub type SecretDigest = [u8; 32];

/// Generates `prefix` + 43 characters of base64url (256 random bits) and its
/// digest. The prefix (`mct_` for tokens, `mcs_` for client secrets, `mat_`
/// for admin tokens) lets secret scanners and people tell them apart.
pub fn generate(prefix: &str) -> (String, SecretDigest) {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let text = format!(
        "{prefix}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    );
    let d = digest(&text);
    (text, d)
}

/// SHA-256 is the right tool here: the input has 256 bits of entropy, so a
/// slow password hash would add cost and no safety.
pub fn digest(secret: &str) -> SecretDigest {
    Sha256::digest(secret.as_bytes()).into()
}

pub fn digest_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn generated_secrets_are_long_unique_and_match_their_digest() {
        let (a, da) = generate("mcs_");
        let (b, _) = generate("mcs_");
        assert_ne!(a, b);
        assert!(a.starts_with("mcs_") && a.len() == 4 + 43);
        assert!(digest_eq(&digest(&a), &da));
        assert!(!digest_eq(&digest(&b), &da));
    }
}
