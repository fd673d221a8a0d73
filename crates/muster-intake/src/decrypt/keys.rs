//! Keys: a tenant's private [`DecryptionKey`] (an OpenPGP secret key or an
//! age X25519 identity), the matching [`PublicRecipient`] that clients
//! encrypt to, and the [`SignerKey`] whose signature an upload may be
//! required to carry. None of their `Debug` output shows key material.
use super::{DecryptError, EncryptError};
use age::secrecy::ExposeSecret;
use pgp::composed::{
    ArmorOptions, Deserializable, EncryptionCaps, KeyType, SecretKeyParamsBuilder, SignedPublicKey,
    SignedSecretKey, SubkeyParamsBuilder,
};
use pgp::crypto::ecc_curve::ECCCurve;
use pgp::crypto::hash::HashAlgorithm;
use pgp::crypto::sym::SymmetricKeyAlgorithm;
use pgp::types::{CompressionAlgorithm, KeyDetails};
use std::str::FromStr;

/// Key id (16 hex digits, upper case), as GnuPG prints it with
/// `--keyid-format long`.
pub(crate) fn hex_id(id: &pgp::types::KeyId) -> String {
    id.as_ref().iter().map(|b| format!("{b:02X}")).collect()
}

pub(crate) fn hex_fpr(fpr: &pgp::types::Fingerprint) -> String {
    fpr.as_bytes().iter().map(|b| format!("{b:02X}")).collect()
}

/// Error text of a key that does not parse, without echoing the key.
fn key_err(what: &str, e: impl std::fmt::Display) -> DecryptError {
    DecryptError::InvalidKey(format!("{what}: {}", super::clipped(e, 200)))
}

/// The kinds of OpenPGP key [`DecryptionKey::generate_openpgp`] makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenPgpKeyKind {
    /// Ed25519 primary (certify, sign) and a Curve25519 ECDH subkey
    /// (encrypt), in the v4 "legacy" encoding GnuPG 2.2 reads.
    Curve25519,
    /// RSA 3072 primary (certify, sign) and RSA 3072 subkey (encrypt).
    Rsa3072,
    /// RSA 4096 primary and subkey.
    Rsa4096,
}

/// A private key uploads are decrypted with.
#[derive(Clone)]
pub enum DecryptionKey {
    /// An OpenPGP transferable secret key (not passphrase-protected).
    OpenPgp(Box<SignedSecretKey>),
    /// An age X25519 identity (`AGE-SECRET-KEY-1...`).
    Age(age::x25519::Identity),
}

impl std::fmt::Debug for DecryptionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecryptionKey::OpenPgp(_) => write!(f, "DecryptionKey::OpenPgp({})", self.key_id()),
            DecryptionKey::Age(_) => write!(f, "DecryptionKey::Age({})", self.key_id()),
        }
    }
}

impl DecryptionKey {
    /// Parses an ASCII-armored OpenPGP secret key
    /// (`gpg --export-secret-keys --armor`) or an age identity (a line
    /// `AGE-SECRET-KEY-1...`, as `age-keygen` writes, comments allowed).
    pub fn parse(text: &str) -> Result<Self, DecryptError> {
        if text.contains("-----BEGIN PGP PRIVATE KEY BLOCK-----") {
            Self::from_openpgp_armored(text)
        } else {
            Self::from_age_identity(text)
        }
    }

    /// Parses an ASCII-armored OpenPGP secret key. Keys protected by a
    /// passphrase are refused: the server seals keys at rest itself.
    pub fn from_openpgp_armored(text: &str) -> Result<Self, DecryptError> {
        let (key, _) = SignedSecretKey::from_string(text)
            .map_err(|e| key_err("not an OpenPGP secret key", e))?;
        key.verify_bindings()
            .map_err(|e| key_err("the OpenPGP key's self-signatures do not verify", e))?;
        let locked = key.primary_key.secret_params().is_encrypted()
            || key
                .secret_subkeys
                .iter()
                .any(|s| s.secret_params().is_encrypted());
        if locked {
            return Err(DecryptError::InvalidKey(format!(
                "the OpenPGP key {} is protected by a passphrase; export it without one",
                hex_fpr(&key.fingerprint())
            )));
        }
        Ok(DecryptionKey::OpenPgp(Box::new(key)))
    }

    /// Parses an age X25519 identity; other lines (`# public key: ...`
    /// comments) are ignored.
    pub fn from_age_identity(text: &str) -> Result<Self, DecryptError> {
        let line = text
            .lines()
            .map(str::trim)
            .find(|l| l.starts_with("AGE-SECRET-KEY-1"))
            .ok_or_else(|| {
                DecryptError::InvalidKey(
                    "no age identity (a line starting with AGE-SECRET-KEY-1) found".into(),
                )
            })?;
        let id = age::x25519::Identity::from_str(line)
            .map_err(|_| DecryptError::InvalidKey("the age identity does not parse".into()))?;
        Ok(DecryptionKey::Age(id))
    }

    /// A new age X25519 identity.
    pub fn generate_age() -> Self {
        DecryptionKey::Age(age::x25519::Identity::generate())
    }

    /// A new OpenPGP key of `kind` for `user_id` (such as
    /// `"Acme HR import <hr-import@acme.example>"`), without passphrase.
    /// RSA generation takes seconds.
    pub fn generate_openpgp(kind: OpenPgpKeyKind, user_id: &str) -> Result<Self, EncryptError> {
        let (primary, sub) = match kind {
            OpenPgpKeyKind::Curve25519 => (
                KeyType::Ed25519Legacy,
                KeyType::ECDH(ECCCurve::Curve25519Legacy),
            ),
            OpenPgpKeyKind::Rsa3072 => (KeyType::Rsa(3072), KeyType::Rsa(3072)),
            OpenPgpKeyKind::Rsa4096 => (KeyType::Rsa(4096), KeyType::Rsa(4096)),
        };
        let failed =
            |e: &dyn std::fmt::Display| EncryptError::Failed(format!("key generation: {e}"));
        let subkey = SubkeyParamsBuilder::default()
            .key_type(sub)
            .can_encrypt(EncryptionCaps::All)
            .build()
            .map_err(|e| failed(&e))?;
        let params = SecretKeyParamsBuilder::default()
            .key_type(primary)
            .can_certify(true)
            .can_sign(true)
            .primary_user_id(user_id.to_owned())
            .preferred_symmetric_algorithms(
                [SymmetricKeyAlgorithm::AES256, SymmetricKeyAlgorithm::AES128][..].into(),
            )
            .preferred_hash_algorithms([HashAlgorithm::Sha256, HashAlgorithm::Sha512][..].into())
            .preferred_compression_algorithms(
                [CompressionAlgorithm::ZLIB, CompressionAlgorithm::ZIP][..].into(),
            )
            .subkeys(vec![subkey])
            .build()
            .map_err(|e| failed(&e))?;
        let key = params.generate(rand::rngs::OsRng).map_err(|e| failed(&e))?;
        Ok(DecryptionKey::OpenPgp(Box::new(key)))
    }

    /// A stable identifier: the OpenPGP primary key's fingerprint (40 hex
    /// digits, upper case) or the age recipient (`age1...`).
    pub fn key_id(&self) -> String {
        match self {
            DecryptionKey::OpenPgp(k) => hex_fpr(&k.fingerprint()),
            DecryptionKey::Age(id) => id.to_public().to_string(),
        }
    }

    /// Every id a message may name this key by: for OpenPGP the fingerprint
    /// and 16-hex key id of the primary key and of each subkey; for age the
    /// recipient.
    pub fn key_ids(&self) -> Vec<String> {
        match self {
            DecryptionKey::OpenPgp(k) => {
                let mut ids = vec![hex_fpr(&k.fingerprint()), hex_id(&k.legacy_key_id())];
                for s in &k.secret_subkeys {
                    ids.push(hex_fpr(&s.fingerprint()));
                    ids.push(hex_id(&s.legacy_key_id()));
                }
                ids
            }
            DecryptionKey::Age(_) => vec![self.key_id()],
        }
    }

    /// Whether `id` (a fingerprint, a 16-hex key id, or an age recipient)
    /// names this key; case and spaces in hex ids do not matter.
    pub fn matches(&self, id: &str) -> bool {
        let want: String = id.chars().filter(|c| !c.is_whitespace()).collect();
        let want = want.strip_prefix("0x").unwrap_or(&want);
        self.key_ids().iter().any(|k| k.eq_ignore_ascii_case(want))
    }

    /// What clients encrypt to.
    pub fn public(&self) -> PublicRecipient {
        match self {
            DecryptionKey::OpenPgp(k) => {
                PublicRecipient::OpenPgp(Box::new(SignedPublicKey::from((**k).clone())))
            }
            DecryptionKey::Age(id) => PublicRecipient::Age(id.to_public()),
        }
    }

    /// The secret key as text: an armored OpenPGP secret key, or the age
    /// identity line. Handle as a secret (seal it at rest).
    pub fn to_secret_text(&self) -> Result<age::secrecy::SecretString, EncryptError> {
        match self {
            DecryptionKey::OpenPgp(k) => k
                .to_armored_string(ArmorOptions::default())
                .map(Into::into)
                .map_err(|e| EncryptError::Failed(format!("exporting the key: {e}"))),
            DecryptionKey::Age(id) => Ok(id.to_string().expose_secret().to_owned().into()),
        }
    }

    pub(crate) fn as_openpgp(&self) -> Option<&SignedSecretKey> {
        match self {
            DecryptionKey::OpenPgp(k) => Some(k),
            DecryptionKey::Age(_) => None,
        }
    }

    pub(crate) fn as_age(&self) -> Option<&age::x25519::Identity> {
        match self {
            DecryptionKey::Age(id) => Some(id),
            DecryptionKey::OpenPgp(_) => None,
        }
    }
}

/// A public key clients encrypt uploads to.
#[derive(Debug, Clone)]
pub enum PublicRecipient {
    /// An OpenPGP certificate (transferable public key).
    OpenPgp(Box<SignedPublicKey>),
    /// An age X25519 recipient (`age1...`).
    Age(age::x25519::Recipient),
}

impl PublicRecipient {
    /// Parses an armored OpenPGP public key or an age recipient `age1...`.
    pub fn parse(text: &str) -> Result<Self, DecryptError> {
        let trimmed = text.trim();
        if trimmed.starts_with("age1") {
            let r = age::x25519::Recipient::from_str(trimmed)
                .map_err(|e| key_err("not an age recipient", e))?;
            return Ok(PublicRecipient::Age(r));
        }
        let (key, _) = SignedPublicKey::from_string(text)
            .map_err(|e| key_err("not an OpenPGP public key", e))?;
        key.verify_bindings()
            .map_err(|e| key_err("the OpenPGP key's self-signatures do not verify", e))?;
        Ok(PublicRecipient::OpenPgp(Box::new(key)))
    }

    /// The same identifier as [`DecryptionKey::key_id`].
    pub fn key_id(&self) -> String {
        match self {
            PublicRecipient::OpenPgp(k) => hex_fpr(&k.fingerprint()),
            PublicRecipient::Age(r) => r.to_string(),
        }
    }

    /// The armored OpenPGP public key, or the age recipient string.
    pub fn to_text(&self) -> Result<String, EncryptError> {
        match self {
            PublicRecipient::OpenPgp(k) => k
                .to_armored_string(ArmorOptions::default())
                .map_err(|e| EncryptError::Failed(format!("exporting the key: {e}"))),
            PublicRecipient::Age(r) => Ok(r.to_string()),
        }
    }
}

/// An OpenPGP public key whose signature an upload must carry.
#[derive(Debug, Clone)]
pub struct SignerKey(pub(crate) Box<SignedPublicKey>);

impl SignerKey {
    /// Parses an armored OpenPGP public key (`gpg --export --armor`).
    pub fn from_armored(text: &str) -> Result<Self, DecryptError> {
        let (key, _) = SignedPublicKey::from_string(text)
            .map_err(|e| key_err("not an OpenPGP public key", e))?;
        key.verify_bindings()
            .map_err(|e| key_err("the OpenPGP key's self-signatures do not verify", e))?;
        Ok(SignerKey(Box::new(key)))
    }

    /// The primary key's fingerprint (40 hex digits, upper case).
    pub fn key_id(&self) -> String {
        hex_fpr(&self.0.fingerprint())
    }

    /// Whether a signature naming `issuer` (key id) may be by this key.
    pub(crate) fn has_key_id(&self, issuer: &pgp::types::KeyId) -> bool {
        self.0.legacy_key_id() == *issuer
            || self
                .0
                .public_subkeys
                .iter()
                .any(|s| s.legacy_key_id() == *issuer)
    }

    pub(crate) fn has_fingerprint(&self, fpr: &pgp::types::Fingerprint) -> bool {
        self.0.fingerprint() == *fpr
            || self
                .0
                .public_subkeys
                .iter()
                .any(|s| s.fingerprint() == *fpr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_key_error_in_another_script_is_cut_without_a_panic() {
        // One ASCII byte, then two-byte characters: byte 200 falls inside one.
        let DecryptError::InvalidKey(text) = key_err("bad", format!("x{}", "é".repeat(150)))
        else {
            panic!("not InvalidKey");
        };
        assert_eq!(text.len(), "bad: ".len() + 199);
    }
}
