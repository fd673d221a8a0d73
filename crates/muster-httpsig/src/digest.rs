//! `Content-Digest` (RFC 9530 section 2): a dictionary of algorithm names to
//! byte sequences holding the digest of the message content.

use crate::base::parse_dictionary;
use crate::error::VerifyError;
use sfv::{BareItem, DictSerializer, KeyRef, ListEntry};
use sha2::{Digest, Sha256, Sha512};
use subtle::ConstantTimeEq;

/// Hash algorithms accepted in `Content-Digest` (RFC 9530 section 5: the
/// two "Active" entries of the registry).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DigestAlgorithm {
    Sha256,
    Sha512,
}

impl DigestAlgorithm {
    /// The registered key in the dictionary.
    pub fn name(self) -> &'static str {
        match self {
            Self::Sha256 => "sha-256",
            Self::Sha512 => "sha-512",
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        match name {
            "sha-256" => Some(Self::Sha256),
            "sha-512" => Some(Self::Sha512),
            _ => None,
        }
    }

    fn digest(self, content: &[u8]) -> Vec<u8> {
        match self {
            Self::Sha256 => Sha256::digest(content).to_vec(),
            Self::Sha512 => Sha512::digest(content).to_vec(),
        }
    }
}

/// The `Content-Digest` field value for `content`, e.g. `sha-256=:...=:`.
pub fn content_digest(content: &[u8], alg: DigestAlgorithm) -> String {
    let digest = alg.digest(content);
    let mut ser = DictSerializer::new();
    // Both names are valid keys; the fallback is unreachable.
    if let Ok(key) = KeyRef::from_str(alg.name()) {
        _ = ser.bare_item(key, digest.as_slice());
    }
    ser.finish().unwrap_or_default()
}

/// Checks a `Content-Digest` field value against `content`.
///
/// Every member with a supported algorithm must match; members with other
/// algorithms are ignored (RFC 9530 section 2 lets a recipient pick), but at
/// least one supported member must be present.
pub fn verify_content_digest(field_value: &str, content: &[u8]) -> Result<(), VerifyError> {
    let dict = parse_dictionary(field_value, "Content-Digest")?;
    let mut checked = false;
    for (name, entry) in &dict {
        let Some(alg) = DigestAlgorithm::from_name(name.as_str()) else {
            continue;
        };
        let ListEntry::Item(item) = entry else {
            return Err(VerifyError::Malformed(
                "a Content-Digest member is not a byte sequence".to_owned(),
            ));
        };
        let BareItem::ByteSequence(claimed) = &item.bare_item else {
            return Err(VerifyError::Malformed(
                "a Content-Digest member is not a byte sequence".to_owned(),
            ));
        };
        let actual = alg.digest(content);
        if !bool::from(actual.as_slice().ct_eq(claimed.as_slice())) {
            return Err(VerifyError::DigestMismatch);
        }
        checked = true;
    }
    if checked {
        Ok(())
    } else {
        Err(VerifyError::UnsupportedDigest)
    }
}
